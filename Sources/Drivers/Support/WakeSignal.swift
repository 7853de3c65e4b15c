import CThread
import Glibc

/// An eventfd that another thread signals to wake a reader blocked in poll(2).
///
/// Readers that wait for bytes on their own thread used to wake every 100 ms to look for a stop request;
/// on an idle receiver that was ten wake-ups a second for nothing. With the signal beside the port in the
/// same poll(2), a reader can block until bytes arrive or its deadline passes, and still stop at once.
public final class WakeSignal: Sendable {
    /// The eventfd, or -1 when the kernel refused one (then readers fall back to short poll timeouts).
    public let fd: Int32

    public init() {
        fd = cthread_eventfd()
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// True when poll(2) can wait on it; false leaves the caller polling on a short timeout.
    public var isAvailable: Bool { fd >= 0 }

    /// Wakes the reader (now, or at its next poll if it is not waiting yet). Safe from any thread and
    /// from a signal-free cancellation handler; repeated signals before a `drain` count once.
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
}
