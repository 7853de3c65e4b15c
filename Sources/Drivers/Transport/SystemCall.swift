#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An errno value with its name, for typed errors.
public struct Errno: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }
    public var description: String { String(cString: strerror(rawValue)) + " (errno \(rawValue))" }
}

/// A failed system call: which one and why.
public struct SystemCallError: Error, Hashable, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Errno
    public var description: String { "\(call): \(errno)" }
}

/// Every system call of the transports goes through here: EINTR is retried, programming errors
/// (EBADF, EFAULT) trap, and anything else becomes a typed `SystemCallError`.
@inline(__always)
func systemCall<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws(SystemCallError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let e = errno
        if e == EINTR { continue }
        precondition(e != EBADF && e != EFAULT, "\(name) was given a bad descriptor or address: a bug in gatewayd")
        throw SystemCallError(call: name, errno: Errno(e))
    }
}

/// The monotonic clock the transports measure deadlines with.
public typealias Deadline = ContinuousClock.Instant

extension ContinuousClock.Instant {
    /// Milliseconds from now until this instant, clamped to 0...Int32.max, for poll().
    var pollTimeoutMilliseconds: Int32 {
        let remaining = ContinuousClock.now.duration(to: self)
        if remaining <= .zero { return 0 }
        let (seconds, attoseconds) = remaining.components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: ms)
    }
}

/// Writes all of `bytes` to a non-blocking descriptor: retries EINTR, waits for POLLOUT on EAGAIN.
/// `write` is the system call (write(2) for ports, send(2) with MSG_NOSIGNAL for sockets).
func writeAll(_ fd: Int32, _ bytes: [UInt8], write: (Int32, UnsafeRawPointer, Int) -> Int) -> SystemCallError? {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress! + offset, raw.count - offset) }
        if n < 0 {
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 100)
                continue
            }
            return SystemCallError(call: "write", errno: Errno(e))
        }
        offset += n
    }
    return nil
}
