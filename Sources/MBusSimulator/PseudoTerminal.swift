import Glibc
import Synchronization

/// The pseudo-terminal the simulated bus lives behind, and the pipe that wakes its thread.
///
/// Words: the pty's *controller* side (POSIX "master") belongs to the simulator; the *device* side
/// (/dev/pts/N) is what the gateway's M-Bus master opens like a serial port. The simulator keeps its
/// own descriptor of the device side open, so the controller never sees a hang-up while the gateway
/// closes and reopens the port between polls.
final class PseudoTerminal: Sendable {
    let controller: Int32
    let device: Int32
    let devicePath: String
    /// Self-pipe: a byte written to `wakeWrite` ends the simulator thread's poll(2) early.
    let wakeRead: Int32
    let wakeWrite: Int32
    private let closed = Atomic<Bool>(false)

    /// Wraps `openpty`, `cfmakeraw`/`tcsetattr` on both sides and `pipe`.
    init() throws(SimulatorError) {
        var controller: Int32 = -1
        var device: Int32 = -1
        guard openpty(&controller, &device, nil, nil, nil) == 0 else {
            throw SystemCall.error("openpty")
        }
        var path = [CChar](repeating: 0, count: 256)
        var pipeEnds: [Int32] = [-1, -1]
        do {
            // Raw mode on both sides: no echo, no CR/LF translation, no XON/XOFF, 8 data bits, so every
            // byte of a telegram passes unchanged. A pty ignores the baud rate; the simulator paces itself.
            for fd in [device, controller] {
                var attributes = termios()
                try SystemCall.check(tcgetattr(fd, &attributes), "tcgetattr")
                cfmakeraw(&attributes)
                try SystemCall.check(tcsetattr(fd, TCSANOW, &attributes), "tcsetattr")
            }
            try SystemCall.check(ttyname_r(device, &path, path.count) == 0 ? 0 : -1, "ttyname_r")
            try SystemCall.check(pipe(&pipeEnds), "pipe")
            for fd in [controller, device, pipeEnds[0], pipeEnds[1]] {
                try SystemCall.check(fcntl(fd, F_SETFD, FD_CLOEXEC), "fcntl(F_SETFD)")
            }
            // Never block the bus thread: reads drain until EAGAIN, and a master that stops reading
            // loses bytes (counted) instead of stalling the simulator.
            for fd in [controller, pipeEnds[0], pipeEnds[1]] {
                try SystemCall.check(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), "fcntl(F_SETFL)")
            }
        } catch {
            for fd in [controller, device, pipeEnds[0], pipeEnds[1]] where fd >= 0 { Glibc.close(fd) }
            throw error
        }
        self.controller = controller
        self.device = device
        self.devicePath = path.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        self.wakeRead = pipeEnds[0]
        self.wakeWrite = pipeEnds[1]
    }

    /// Interrupts the simulator thread's poll(2).
    func wake() {
        var byte: UInt8 = 1
        // A full pipe already holds a wake-up; nothing is lost by ignoring EAGAIN.
        _ = SystemCall.retryingEINTR { write(wakeWrite, &byte, 1) }
    }

    /// Empties the wake-up pipe.
    func drainWakeups() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while SystemCall.retryingEINTR({ read(wakeRead, &buffer, buffer.count) }) > 0 {}
    }

    /// Closes every descriptor once; the device path disappears with the last one.
    func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for fd in [controller, device, wakeRead, wakeWrite] { Glibc.close(fd) }
    }

    deinit { close() }
}

/// System call helpers, in the manner of swift-nio's: retry EINTR, turn failures into typed errors.
enum SystemCall {
    static func error(_ function: String) -> SimulatorError {
        let code = errno
        return SimulatorError(.systemCall, "\(function) failed: \(String(cString: strerror(code)))", errno: code)
    }

    static func check(_ result: Int32, _ function: String) throws(SimulatorError) {
        if result < 0 { throw error(function) }
    }

    /// Calls `body` again while it fails with EINTR (a signal arrived).
    static func retryingEINTR(_ body: () -> Int) -> Int {
        while true {
            let result = body()
            if result >= 0 || errno != EINTR { return result }
        }
    }
}
