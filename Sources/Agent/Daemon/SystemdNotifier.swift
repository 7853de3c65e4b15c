#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One assignment of the sd_notify protocol (sd_notify(3)): the daemon tells systemd how it is doing.
public enum NotifyState: Hashable, Sendable {
    /// `READY=1`: start-up is finished (for gatewayd: the buses are up).
    case ready
    /// `RELOADING=1`: a configuration reload began; `READY=1` ends it. systemd ≥ 253 wants the
    /// `MONOTONIC_USEC=` of the moment beside it, which `SystemdNotifier.reloading()` adds.
    case reloading
    /// `MONOTONIC_USEC=…`: CLOCK_MONOTONIC in microseconds.
    case monotonicMicroseconds(UInt64)
    /// `STOPPING=1`: shutdown began.
    case stopping
    /// `STATUS=…`: one line of free text shown by `systemctl status`.
    case status(String)
    /// `WATCHDOG=1`: the keep-alive ping.
    case watchdog
    /// `WATCHDOG=trigger`: ask systemd to act as if the watchdog had fired.
    case watchdogTrigger
    /// `EXTEND_TIMEOUT_USEC=…`: more time for start-up, reload or shutdown.
    case extendTimeout(Duration)
    /// `ERRNO=…`: why the service failed.
    case errno(Int32)

    /// The line as it goes on the socket, without the newline.
    public var line: String {
        switch self {
        case .ready: return "READY=1"
        case .reloading: return "RELOADING=1"
        case .monotonicMicroseconds(let usec): return "MONOTONIC_USEC=\(usec)"
        case .stopping: return "STOPPING=1"
        // A newline would start a new assignment: status text stays on one line.
        case .status(let text): return "STATUS=" + text.split(whereSeparator: \.isNewline).joined(separator: " ")
        case .watchdog: return "WATCHDOG=1"
        case .watchdogTrigger: return "WATCHDOG=trigger"
        case .extendTimeout(let d): return "EXTEND_TIMEOUT_USEC=\(SystemdNotifier.microseconds(d))"
        case .errno(let e): return "ERRNO=\(e)"
        }
    }
}

/// A failed send on the notify socket. The service keeps running; the daemon logs this once.
public struct SystemdNotifyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The system call that failed (socket, sendto).
    public let call: String
    public let errno: Int32
    public let socket: String

    public var description: String {
        let reason = String(cString: strerror(errno))
        var text = "sd_notify to \(socket): \(call) failed: \(reason) (errno \(errno))"
        switch errno {
        case ECONNREFUSED, ENOENT:
            text += "; systemd no longer listens there (was the unit restarted under a different manager?)"
        case EACCES, EPERM:
            text += "; the service may not write to the notify socket: check NotifyAccess= and the unit's sandboxing"
        case EAFNOSUPPORT:
            text += "; the unit's RestrictAddressFamilies= must include AF_UNIX"
        default: break
        }
        return text
    }
}

/// Talks to systemd over `$NOTIFY_SOCKET` without libsystemd: a datagram of `KEY=VALUE` lines per
/// message (sd_notify(3)). When the service does not run under systemd (no `NOTIFY_SOCKET`) every
/// call is a no-op, so the daemon calls it unconditionally.
///
/// The environment is injected, not read from the process, so tests can point it at a fake socket.
public struct SystemdNotifier: Sendable {
    /// Where the notify socket lives.
    public enum Address: Hashable, Sendable, CustomStringConvertible {
        /// A socket file, e.g. /run/systemd/notify.
        case path(String)
        /// An abstract-namespace socket: `NOTIFY_SOCKET=@name` (the name without the '@').
        case abstract(String)

        public var description: String {
            switch self {
            case .path(let p): return p
            case .abstract(let name): return "@" + name
            }
        }
    }

    /// The socket to write to; nil when not under systemd (or when `problem` says why not).
    public let address: Address?
    /// systemd's watchdog timeout (`WATCHDOG_USEC`), nil when the watchdog is off or meant for
    /// another process (`WATCHDOG_PID` names a different pid).
    public let watchdogTimeout: Duration?
    /// Why `NOTIFY_SOCKET` or `WATCHDOG_USEC` was ignored, for one log line at start-up.
    public let problem: String?

    /// True when there is a socket to talk to.
    public var isActive: Bool { address != nil }

    /// How often to send `WATCHDOG=1`: half the timeout, as sd_watchdog_enabled(3) advises.
    public var watchdogPingInterval: Duration? { watchdogTimeout.map { $0 / 2 } }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    /// - Parameter pid: this process's id, to compare with `WATCHDOG_PID`.
    public init(environment: [String: String], pid: Int32 = getpid()) {
        var problems: [String] = []
        var address: Address?
        if let raw = environment["NOTIFY_SOCKET"], !raw.isEmpty {
            switch Self.parseAddress(raw) {
            case .success(let a): address = a
            case .failure(let message): problems.append(message.description)
            }
        }
        self.address = address

        var timeout: Duration?
        if let raw = environment["WATCHDOG_USEC"] {
            if let usec = UInt64(raw), usec > 0, usec <= UInt64(Int64.max) {
                timeout = .microseconds(Int64(usec))
            } else {
                problems.append("WATCHDOG_USEC=\(raw) is not a positive number of microseconds; watchdog pings are off")
            }
        }
        if timeout != nil, let rawPID = environment["WATCHDOG_PID"] {
            if let watched = Int32(rawPID), watched > 0 {
                // The watchdog belongs to another process (we were forked off the main one).
                if watched != pid { timeout = nil }
            } else {
                problems.append("WATCHDOG_PID=\(rawPID) is not a process id; watchdog pings are off")
                timeout = nil
            }
        }
        self.watchdogTimeout = timeout
        self.problem = problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// The notifier for this process's own environment.
    public static func fromProcessEnvironment() -> SystemdNotifier {
        SystemdNotifier(environment: ProcessInfo.processInfo.environment)
    }

    /// The `NOTIFY_SOCKET` forms systemd uses: an absolute path or `@abstract-name`.
    package static func parseAddress(_ raw: String) -> Result<Address, AddressProblem> {
        let limit = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        if raw.hasPrefix("@") {
            let name = String(raw.dropFirst())
            if name.isEmpty { return .failure(AddressProblem("NOTIFY_SOCKET=@ names no abstract socket; not notifying systemd")) }
            // One byte of sun_path is the leading NUL.
            if name.utf8.count > limit - 1 {
                return .failure(AddressProblem("NOTIFY_SOCKET=\(raw) is longer than a unix socket address allows; not notifying systemd"))
            }
            return .success(.abstract(name))
        }
        if raw.hasPrefix("/") {
            if raw.utf8.count > limit - 1 {
                return .failure(AddressProblem("NOTIFY_SOCKET=\(raw) is longer than a unix socket address allows; not notifying systemd"))
            }
            return .success(.path(raw))
        }
        // systemd ≥ 254 can hand out vsock: addresses (for VMs); gatewayd runs on the host.
        return .failure(AddressProblem(
            "NOTIFY_SOCKET=\(raw) is neither an absolute path nor @abstract (vsock is not supported); not notifying systemd"))
    }

    package struct AddressProblem: Error, CustomStringConvertible {
        package let description: String
        package init(_ description: String) { self.description = description }
    }

    // MARK: Sending

    /// Sends `states` as one datagram (one `KEY=VALUE` line each). No-op when not under systemd.
    public func notify(_ states: [NotifyState]) throws(SystemdNotifyError) {
        guard let address, !states.isEmpty else { return }
        let message = states.map(\.line).joined(separator: "\n") + "\n"
        try Self.send(Array(message.utf8), to: address)
    }

    /// `READY=1`, with a status line when given.
    public func ready(status: String? = nil) throws(SystemdNotifyError) {
        try notify([.ready] + (status.map { [.status($0)] } ?? []))
    }

    /// `STATUS=…`
    public func status(_ text: String) throws(SystemdNotifyError) {
        try notify([.status(text)])
    }

    /// `WATCHDOG=1`. Sent whether or not this process was told about a watchdog, as sd_notify does:
    /// systemd ignores it when `WatchdogSec=` is unset.
    public func watchdog() throws(SystemdNotifyError) {
        try notify([.watchdog])
    }

    /// `STOPPING=1`, with a status line when given.
    public func stopping(status: String? = nil) throws(SystemdNotifyError) {
        try notify([.stopping] + (status.map { [.status($0)] } ?? []))
    }

    /// `RELOADING=1` and `MONOTONIC_USEC=` of now (systemd ≥ 253 uses it to tell this reload from a
    /// stale one; older versions ignore it). Follow with `ready()` when the reload is done.
    public func reloading(status: String? = nil, monotonicMicroseconds: UInt64 = SystemdNotifier.monotonicNow())
        throws(SystemdNotifyError)
    {
        try notify([.reloading, .monotonicMicroseconds(monotonicMicroseconds)] + (status.map { [.status($0)] } ?? []))
    }

    /// Sends `WATCHDOG=1` every `watchdogPingInterval` while `isHealthy()` says so, until the task is
    /// cancelled. An unhealthy check skips the ping, so systemd restarts a wedged daemon. Returns at
    /// once when there is no watchdog. Send failures go to `onError` and the loop carries on.
    public func runWatchdog(
        isHealthy: @Sendable () async -> Bool = { true },
        onError: @Sendable (SystemdNotifyError) -> Void = { _ in }
    ) async {
        guard isActive, let interval = watchdogPingInterval else { return }
        while !Task.isCancelled {
            if await isHealthy() {
                do throws(SystemdNotifyError) {
                    try watchdog()
                } catch {
                    onError(error)
                }
            }
            do {
                try await Task.sleep(for: interval)
            } catch {
                return  // cancelled
            }
        }
    }

    /// CLOCK_MONOTONIC in microseconds, the clock systemd compares MONOTONIC_USEC with.
    public static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    package static func microseconds(_ d: Duration) -> UInt64 {
        let (seconds, attoseconds) = d.components
        if seconds < 0 { return 0 }
        return UInt64(seconds) * 1_000_000 + UInt64(attoseconds / 1_000_000_000_000)
    }

    /// One datagram on a fresh SOCK_DGRAM unix socket, as sd_notify does: no state to go stale when
    /// systemd re-executes.
    package static func send(_ bytes: [UInt8], to address: Address) throws(SystemdNotifyError) {
        #if os(Linux)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
        if fd < 0 { throw SystemdNotifyError(call: "socket", errno: errno, socket: address.description) }
        defer { close(fd) }

        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let pathBytes: [UInt8]
        switch address {
        case .path(let p): pathBytes = Array(p.utf8)
        case .abstract(let name): pathBytes = [0] + Array(name.utf8)
        }
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in
            raw.copyBytes(from: pathBytes)  // the rest stays zero: a path gets its terminating NUL
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        // An abstract name is exactly its bytes (no NUL counted); a path includes its NUL.
        let length: Int
        switch address {
        case .path: length = pathOffset + pathBytes.count + 1
        case .abstract: length = pathOffset + pathBytes.count
        }

        while true {
            let sent = bytes.withUnsafeBytes { buffer in
                withUnsafePointer(to: &sa) { sap in
                    sap.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                        sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), p, socklen_t(length))
                    }
                }
            }
            if sent >= 0 { return }
            let e = errno
            if e == EINTR { continue }
            throw SystemdNotifyError(call: "sendto", errno: e, socket: address.description)
        }
    }
}
