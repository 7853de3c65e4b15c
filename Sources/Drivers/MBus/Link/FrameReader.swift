/// Turns a byte stream, delivered in whatever chunks the serial port likes, into frames.
///
/// Garbage and broken frames are skipped up to the next byte that can start a frame (E5, 10, 68), and
/// reported, so a technician sees line noise instead of a silent gap. The reader never decides on
/// partial data, so the output is the same whether bytes arrive one by one or all at once.
public struct FrameReader: Sendable {
    public enum Event: Hashable, Sendable {
        case frame(MBusFrame)
        /// Bytes that were dropped while resynchronising, and why.
        case skipped(bytes: [UInt8], reason: FrameError)
    }

    private var buffer: [UInt8] = []
    private var start = 0

    /// Longest garbage run reported as one event, so a noisy line cannot grow memory.
    public static let maximumSkipReport = 256

    public init() {}

    /// Bytes received but not yet part of a complete frame.
    public var pendingByteCount: Int { buffer.count - start }

    /// Drops buffered bytes, for example after a response timeout.
    public mutating func reset() {
        buffer.removeAll(keepingCapacity: true)
        start = 0
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next frame or skip event, or nil when more bytes are needed.
    public mutating func next() -> Event? {
        guard start < buffer.count else { return nil }
        do {
            switch try FrameCodec.decode(buffer[start...]) {
            case .frame(let frame, let consumed):
                start += consumed
                return .frame(frame)
            case .needMoreBytes:
                return nil
            }
        } catch {
            // Skip the offending start byte, then everything that cannot start a frame.
            var end = start + 1
            while end < buffer.count, end - start < Self.maximumSkipReport, !Self.canStartFrame(buffer[end]) {
                end += 1
            }
            // Only report once the run is known to be complete, so chunking cannot change the events.
            if end == buffer.count && end - start < Self.maximumSkipReport {
                return nil
            }
            let skipped = Array(buffer[start..<end])
            start = end
            return .skipped(bytes: skipped, reason: error)
        }
    }

    /// Drains all complete events.
    public mutating func drain() -> [Event] {
        var events: [Event] = []
        while let e = next() { events.append(e) }
        return events
    }

    /// At the end of the stream (file replay, closed port): reports what is left as skipped bytes.
    public mutating func finish() -> Event? {
        guard start < buffer.count else { return nil }
        let rest = Array(buffer[start...])
        reset()
        let reason: FrameError
        do {
            switch try FrameCodec.decode(rest) {
            case .needMoreBytes(let n):
                reason = FrameError(code: .invalidLength, offset: rest.count,
                                    message: "the stream ended inside a frame: \(n) more bytes expected")
            case .frame:
                // next() would have returned it; only reachable if next() was not drained first.
                reason = FrameError(code: .invalidLength, offset: 0, message: "undrained frame at end of stream")
            }
        } catch {
            reason = error
        }
        return .skipped(bytes: rest, reason: reason)
    }

    static func canStartFrame(_ b: UInt8) -> Bool {
        b == MBusFrame.ackByte || b == MBusFrame.shortStart || b == MBusFrame.longStart
    }
}

