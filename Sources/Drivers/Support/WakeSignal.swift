import CThread
import Glibc

/// An eventfd that another thread signals to wake a reader blocked in poll(2).
///
/// Readers that wait for bytes on their own thread used to wake every 100 ms to look for a stop request;
/// on an idle receiver that was ten wake-ups a second for nothing. With the signal beside the input in the
/// same poll(2) (`wait(for:timeoutMilliseconds:)`), a reader blocks until bytes arrive or its deadline
/// passes, and still stops at once.
public final class WakeSignal: Sendable {
    /// The eventfd, or -1 when the kernel refused one (then `wait` cuts every wait to 100 ms).
    public let fd: Int32

    /// The longest wait without an eventfd: how often such a reader looks for a stop.
    static let fallbackMilliseconds: Int32 = 100

    public init() {
        fd = cthread_eventfd()
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// True when poll(2) can wait on it.
    public var isAvailable: Bool { fd >= 0 }

    /// Wakes the reader (now, or at its next wait if it is not waiting yet). Safe from any thread and
    /// from a cancellation handler; repeated signals before the wait sees them count once.
    public func signal() {
        guard fd >= 0 else { return }
        var one: UInt64 = 1
        // EAGAIN only when the counter is at its maximum, i.e. already signalled: nothing to do.
        _ = withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) }
    }

    /// Clears a pending signal; true when there was one.
    @discardableResult
    public func drain() -> Bool {
        guard fd >= 0 else { return false }
        var value: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) }
        return n == 8 && value > 0
    }

    /// How a wait ended.
    public enum Wait: Equatable, Sendable {
        /// `fd` has something: its poll(2) revents (POLLIN, or POLLHUP/POLLERR for a gone device).
        case ready(revents: Int16)
        /// The signal fired (and was cleared) with nothing on `fd`: the caller looks for its stop request.
        case woken
        /// The timeout passed (or, without an eventfd, the 100 ms fallback did).
        case timedOut
    }

    /// Waits for `fd` to become readable (nil: for the signal alone), for the signal, or for the timeout
    /// (milliseconds, -1 for none). EINTR is retried; a signal that comes with input is cleared and the
    /// input reported, so the caller reads it before it looks for a stop.
    public func wait(for fd: Int32?, timeoutMilliseconds: Int32) throws(SystemCallError) -> Wait {
        var timeout = timeoutMilliseconds
        if !isAvailable { timeout = timeout < 0 ? Self.fallbackMilliseconds : min(timeout, Self.fallbackMilliseconds) }
        var fds: [pollfd] = []
        if let fd { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
        if isAvailable { fds.append(pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)) }
        let ready = try systemCall("poll") { poll(&fds, nfds_t(fds.count), timeout) }
        if ready == 0 { return .timedOut }
        if isAvailable, fds[fds.count - 1].revents != 0 { drain() }
        if fd != nil, fds[0].revents != 0 { return .ready(revents: fds[0].revents) }
        return .woken
    }
}
