import Drivers
import Glibc
@testable import MBusSimulator

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The gateway's end of the line in tests: opens the pty's device side with open(2) and termios as a
/// master opens a serial port, writes requests and reads answers with poll(2) and deadlines.
final class TestMaster {
    let fd: Int32

    init(path: String) throws {
        fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw TestFailure("open \(path): \(String(cString: strerror(errno)))") }
        var attributes = termios()
        tcgetattr(fd, &attributes)
        cfmakeraw(&attributes)
        // 2400 8E1, as a real M-Bus port; the pty accepts and ignores it.
        cfsetispeed(&attributes, speed_t(B2400))
        cfsetospeed(&attributes, speed_t(B2400))
        attributes.c_cflag |= tcflag_t(PARENB)
        tcsetattr(fd, TCSANOW, &attributes)
    }

    deinit { close(fd) }

    /// Writes a frame at once, as a program writes to a serial port, and returns the instant just
    /// before the write (monotonic nanoseconds).
    @discardableResult
    func send(_ frame: MBusFrame) -> Int64 {
        send(frame.encoded)
    }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Int64 {
        let before = MonotonicClock.now()
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { offset += n } else if errno != EINTR && errno != EAGAIN { break }
        }
        return before
    }

    /// Bytes read and the instant each read returned them.
    struct Received {
        var bytes: [UInt8] = []
        var times: [Int64] = []
    }

    /// Reads until `done` says so or `timeout` passes.
    func read(timeout: Duration, until done: ([UInt8]) -> Bool = { _ in false }) -> Received {
        let deadline = MonotonicClock.now() + timeout.nanoseconds
        var received = Received()
        var buffer = [UInt8](repeating: 0, count: 512)
        while !done(received.bytes) {
            let remaining = deadline - MonotonicClock.now()
            if remaining <= 0 { break }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            // Round up so the loop does not spin in the last millisecond.
            guard poll(&pfd, 1, Int32(clamping: (remaining + 999_999) / 1_000_000)) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { continue }
            let now = MonotonicClock.now()
            received.bytes += buffer[0..<n]
            received.times += Array(repeating: now, count: n)
        }
        return received
    }

    /// Reads until `count` frames decode (line noise is skipped) or `timeout` passes.
    func frames(_ count: Int, timeout: Duration = .seconds(2)) -> [MBusFrame] {
        var frames: [MBusFrame] = []
        var reader = FrameReader()
        var consumed = 0
        _ = read(timeout: timeout) { bytes in
            reader.append(bytes[consumed...])
            consumed = bytes.count
            while let event = reader.next() {
                if case .frame(let frame) = event { frames.append(frame) }
            }
            return frames.count >= count
        }
        return frames
    }

    /// All events FrameReader finds in what arrives within `timeout`, including the undecodable tail.
    static func events(_ bytes: [UInt8]) -> [FrameReader.Event] {
        var reader = FrameReader()
        reader.append(bytes)
        var events = reader.drain()
        if let tail = reader.finish() { events.append(tail) }
        return events
    }
}

/// A simulator started for one test, on a quick baud rate unless timing is the point.
func runningBus(_ slaves: [SimulatedSlave], baudRate: Int = 38400) throws -> (MBusBusSimulator, TestMaster) {
    let bus = try MBusBusSimulator(slaves: slaves, baudRate: baudRate)
    try bus.start()
    return (bus, try TestMaster(path: bus.devicePath))
}

/// How long to listen before concluding that nobody answers: the whole response window after a
/// request of `requestBytes`, plus the longest answer's first byte and a margin for a loaded machine.
func silenceTimeout(_ bus: MBusBusSimulator, requestBytes: Int = 5) -> Duration {
    let timing = LineTiming(baudRate: bus.baudRate)
    return .nanoseconds(timing.duration(characters: requestBytes + 1)) + bus.responseWindow.latest + .milliseconds(100)
}
