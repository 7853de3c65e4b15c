import Glibc
import MBusSimulator

/// The pseudo-terminal a simulated dongle lives behind, with the pipe that wakes its thread.
///
/// The simulator owns the controller side and keeps its own descriptor of the device side open, so the
/// gateway can close and reopen the port without the controller seeing a hang-up. Closing both is what
/// an unplug looks like from the gateway: its reads fail with EIO and the node goes away.
final class DongleTerminal: @unchecked Sendable {
    let controller: Int32
    let device: Int32
    let devicePath: String
    let wakeRead: Int32
    let wakeWrite: Int32
    private var closed = false

    /// Wraps `openpty`, `cfmakeraw`/`tcsetattr`, `ttyname_r`, `pipe` and `fcntl`.
    init() throws(SimulatorError) {
        var controller: Int32 = -1
        var device: Int32 = -1
        guard openpty(&controller, &device, nil, nil, nil) == 0 else { throw Self.error("openpty") }
        var pipeEnds: [Int32] = [-1, -1]
        var path = [CChar](repeating: 0, count: 256)
        var failed: SimulatorError? = nil
        for fd in [device, controller] where failed == nil {
            var attributes = termios()
            if tcgetattr(fd, &attributes) != 0 { failed = Self.error("tcgetattr"); break }
            cfmakeraw(&attributes)
            if tcsetattr(fd, TCSANOW, &attributes) != 0 { failed = Self.error("tcsetattr") }
        }
        if failed == nil, ttyname_r(device, &path, path.count) != 0 { failed = Self.error("ttyname_r") }
        if failed == nil, pipe(&pipeEnds) != 0 { failed = Self.error("pipe") }
        if failed == nil {
            for fd in [controller, device, pipeEnds[0], pipeEnds[1]] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            for fd in [controller, pipeEnds[0], pipeEnds[1]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        }
        if let failed {
            for fd in [controller, device, pipeEnds[0], pipeEnds[1]] where fd >= 0 { Glibc.close(fd) }
            throw failed
        }
        self.controller = controller
        self.device = device
        self.devicePath = path.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        self.wakeRead = pipeEnds[0]
        self.wakeWrite = pipeEnds[1]
    }

    static func error(_ function: String) -> SimulatorError {
        let code = errno
        return SimulatorError(.systemCall, "\(function) failed: \(String(cString: strerror(code)))", errno: code)
    }

    func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    func drainWakeups() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &buffer, buffer.count) > 0 {}
    }

    /// Writes everything (the controller is non-blocking: waits for room when the gateway reads slowly).
    /// False when the pty is gone or `abandon` says to stop waiting (an unplug while nobody reads).
    @discardableResult
    func writeAll(_ bytes: [UInt8], abandon: () -> Bool = { false }) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(controller, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    if abandon() { return false }
                    var p = pollfd(fd: controller, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&p, 1, 50)
                    continue
                }
                return false
            }
            offset += n
        }
        return true
    }

    /// Must be called once, after the thread using the descriptors has ended.
    func close() {
        guard !closed else { return }
        closed = true
        for fd in [controller, device, wakeRead, wakeWrite] { Glibc.close(fd) }
    }

    deinit { close() }
}

/// Nanoseconds on the monotonic clock.
enum Monotonic {
    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
