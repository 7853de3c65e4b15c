@testable import Agent
import CLISupport
import Foundation
import Testing
@testable import gatewayd

/// A stand-in for systemd's end of the notify socket: a bound SOCK_DGRAM unix socket that hands
/// back each datagram as text.
final class FakeNotifySocket: @unchecked Sendable {  // one fd; receive is only called from one thread at a time
    let fd: Int32
    /// What goes into NOTIFY_SOCKET.
    let environmentValue: String
    private let directory: String?

    /// A socket file in a fresh temporary directory.
    init() throws {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        directory = dir
        let path = dir + "/notify"
        environmentValue = path
        fd = try Self.bind(Array(path.utf8) + [0])
    }

    /// An abstract-namespace socket (`@name`).
    init(abstract name: String) throws {
        directory = nil
        environmentValue = "@" + name
        fd = try Self.bind([0] + Array(name.utf8), abstract: true)
    }

    private static func bind(_ pathBytes: [UInt8], abstract: Bool = false) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: pathBytes) }
        let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        // The abstract name is exactly its bytes; a path's length counts its NUL.
        let length = socklen_t(offset + pathBytes.count)
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw POSIXError(.init(rawValue: e)!)
        }
        return fd
    }

    /// The next datagram, or nil when none arrives within `timeout`.
    func receive(timeout: Duration = .seconds(2)) -> String? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&p, 1, ms) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    deinit {
        close(fd)
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }
}

@Suite("systemd notify protocol")
struct SystemdNotifierTests {

    @Test("READY, STATUS, WATCHDOG and STOPPING arrive as the exact datagrams sd_notify would send")
    func exactDatagrams() throws {
        let fake = try FakeNotifySocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": fake.environmentValue])
        #expect(notifier.isActive)
        #expect(notifier.address == .path(fake.environmentValue))

        try notifier.ready(status: "3 buses up")
        #expect(fake.receive() == "READY=1\nSTATUS=3 buses up\n")
        try notifier.ready()
        #expect(fake.receive() == "READY=1\n")
        try notifier.status("reading line 2 of 3")
        #expect(fake.receive() == "STATUS=reading line 2 of 3\n")
        try notifier.watchdog()
        #expect(fake.receive() == "WATCHDOG=1\n")
        try notifier.stopping(status: "draining the M-Bus line")
        #expect(fake.receive() == "STOPPING=1\nSTATUS=draining the M-Bus line\n")
        try notifier.notify([.watchdogTrigger, .extendTimeout(.seconds(90)), .errno(5)])
        #expect(fake.receive() == "WATCHDOG=trigger\nEXTEND_TIMEOUT_USEC=90000000\nERRNO=5\n")
        #expect(fake.receive(timeout: .milliseconds(50)) == nil, "nothing more was sent")
    }

    @Test("RELOADING carries MONOTONIC_USEC of CLOCK_MONOTONIC (systemd ≥ 253)")
    func reloading() throws {
        let fake = try FakeNotifySocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": fake.environmentValue])
        try notifier.reloading(monotonicMicroseconds: 123_456_789)
        #expect(fake.receive() == "RELOADING=1\nMONOTONIC_USEC=123456789\n")

        let before = SystemdNotifier.monotonicNow()
        try notifier.reloading(status: "reloading /etc/gatewayd/gatewayd.toml")
        let after = SystemdNotifier.monotonicNow()
        let lines = try #require(fake.receive()).split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0] == "RELOADING=1")
        #expect(lines[2] == "STATUS=reloading /etc/gatewayd/gatewayd.toml")
        let usec = try #require(UInt64(lines[1].dropFirst("MONOTONIC_USEC=".count)))
        #expect(lines[1].hasPrefix("MONOTONIC_USEC="))
        #expect(before <= usec && usec <= after)
    }

    @Test("a status with a newline stays one assignment")
    func statusNewline() throws {
        let fake = try FakeNotifySocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": fake.environmentValue])
        try notifier.status("line 1 down\nREADY=1")
        #expect(fake.receive() == "STATUS=line 1 down READY=1\n")
    }

    @Test("an abstract-namespace NOTIFY_SOCKET (@name) is reached without a file")
    func abstractNamespace() throws {
        let name = "gatewayd-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fake = try FakeNotifySocket(abstract: name)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name])
        #expect(notifier.address == .abstract(name))
        try notifier.ready()
        #expect(fake.receive() == "READY=1\n")
        try notifier.stopping()
        #expect(fake.receive() == "STOPPING=1\n")
    }

    @Test("without NOTIFY_SOCKET every call is a no-op")
    func notUnderSystemd() throws {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isActive)
        #expect(notifier.problem == nil)
        try notifier.ready(status: "x")
        try notifier.watchdog()
        try notifier.stopping()
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]).isActive == false)
    }

    @Test("unusable NOTIFY_SOCKET values are refused with a reason", arguments: [
        "relative/notify", "@", "vsock:2:1234", "/" + String(repeating: "x", count: 200),
    ])
    func badAddress(_ value: String) {
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": value])
        #expect(!notifier.isActive)
        #expect(notifier.problem?.contains("NOTIFY_SOCKET") == true)
    }

    @Test("a socket nobody listens on gives an error that names it and what to check")
    func nobodyListening() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-notify-\(getpid())").path
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        #expect(throws: SystemdNotifyError.self) { try notifier.ready() }
        do {
            try notifier.ready()
        } catch {
            #expect(error.call == "sendto")
            #expect(error.errno == ENOENT)
            #expect(error.description.contains(path))
            #expect(error.description.contains("systemd no longer listens"))
        }
    }

    @Test("watchdog interval: WATCHDOG_USEC, pinged at half", arguments: [
        (["WATCHDOG_USEC": "60000000"], Duration?.some(.seconds(60)), Duration?.some(.seconds(30))),
        (["WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4242"], .seconds(60), .seconds(30)),
        (["WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4243"], nil, nil),  // another process's watchdog
        (["WATCHDOG_USEC": "1500"], .microseconds(1500), .microseconds(750)),
        (["WATCHDOG_USEC": "0"], nil, nil),
        (["WATCHDOG_USEC": "sixty"], nil, nil),
        (["WATCHDOG_USEC": "-5"], nil, nil),
        (["WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"], nil, nil),
        ([:], nil, nil),
    ] as [([String: String], Duration?, Duration?)])
    func watchdogInterval(_ env: [String: String], timeout: Duration?, ping: Duration?) {
        let notifier = SystemdNotifier(environment: env, pid: 4242)
        #expect(notifier.watchdogTimeout == timeout)
        #expect(notifier.watchdogPingInterval == ping)
        let malformed = env["WATCHDOG_USEC"].map { UInt64($0) == nil || $0 == "0" } == true || env["WATCHDOG_PID"] == "x"
        #expect((notifier.problem != nil) == malformed)
    }

    @Test("runWatchdog pings at half the interval while healthy and stops on cancel")
    func watchdogLoop() async throws {
        let fake = try FakeNotifySocket()
        let notifier = SystemdNotifier(
            environment: ["NOTIFY_SOCKET": fake.environmentValue, "WATCHDOG_USEC": "40000"])  // ping every 20 ms
        let task = Task { await notifier.runWatchdog() }
        for _ in 0..<3 {
            // The blocking receive runs off the cooperative pool: on two cores, blocking a pool thread here
            // can keep the watchdog task itself from running.
            let datagram = await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
                // A hang guard, not a timing check: in the full suite the snapshot tests run the binary
                // synchronously and can hold both pool threads for many seconds.
                DispatchQueue.global().async { c.resume(returning: fake.receive(timeout: .seconds(120))) }
            }
            #expect(datagram == "WATCHDOG=1\n")
        }
        task.cancel()
        await task.value
        while fake.receive(timeout: .milliseconds(10)) != nil {}  // one may have been in flight
        #expect(fake.receive(timeout: .milliseconds(100)) == nil, "no pings after cancellation")
    }

    @Test("an unhealthy main loop gets no watchdog pings")
    func watchdogUnhealthy() async throws {
        let fake = try FakeNotifySocket()
        let notifier = SystemdNotifier(
            environment: ["NOTIFY_SOCKET": fake.environmentValue, "WATCHDOG_USEC": "20000"])
        let task = Task { await notifier.runWatchdog(isHealthy: { false }) }
        #expect(fake.receive(timeout: .milliseconds(150)) == nil)
        task.cancel()
        await task.value
    }

    @Test("runWatchdog returns at once without a watchdog")
    func watchdogOff() async throws {
        let fake = try FakeNotifySocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": fake.environmentValue])
        await notifier.runWatchdog()  // would hang if it looped
        #expect(fake.receive(timeout: .milliseconds(50)) == nil)
    }
}
