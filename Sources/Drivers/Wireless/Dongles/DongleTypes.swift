#if canImport(Glibc)
import Glibc
#endif

/// Why a dongle, its byte stream, an rtl_wmbus line or a replay file could not give a telegram, and
/// what to do next.
///
/// Codes are static members, so adding one never breaks a caller that switches on the ones it knows.
public struct DongleError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }
        public init(name: String) { self.name = name }

        // Stream codecs
        /// The HCI CRC16 or the Amber XOR checksum does not match the message.
        public static let checksumMismatch = Code(name: "checksum_mismatch")
        /// A length field that cannot be right (too short for the fields it must hold).
        public static let invalidLength = Code(name: "invalid_length")
        /// Bytes that cannot start a message, skipped while resynchronising.
        public static let noise = Code(name: "noise")
        /// An endpoint, message id or command the protocol does not define.
        public static let unknownMessage = Code(name: "unknown_message")
        /// The stream ended inside a message.
        public static let truncated = Code(name: "truncated")
        /// A response whose payload does not have the documented shape.
        public static let malformedResponse = Code(name: "malformed_response")

        // Text sources
        /// An rtl_wmbus or replay line that does not have the documented fields.
        public static let invalidLine = Code(name: "invalid_line")

        // Sessions
        /// The dongle did not answer in time.
        public static let timeout = Code(name: "timeout")
        /// The dongle answered with a failure status.
        public static let rejected = Code(name: "rejected")
        /// The device node cannot be opened or went away.
        public static let transport = Code(name: "transport")
        /// The dongle cannot do what was asked (a link mode it does not support).
        public static let unsupported = Code(name: "unsupported")
        /// Neither protocol got an answer during `--type auto` detection.
        public static let notDetected = Code(name: "not_detected")
    }

    public let code: Code
    public let message: String
    /// Byte offset in the stream (codecs) or 1-based line number (text sources), when known.
    public let offset: Int?
    /// The transport failure behind a `.transport` error.
    public let transport: TransportError?

    public init(_ code: Code, _ message: String, offset: Int? = nil, transport: TransportError? = nil) {
        self.code = code
        self.message = message
        self.offset = offset
        self.transport = transport
    }

    public var description: String { message }
}

/// The receive mode a dongle is configured for. `c1t1` listens to C1 and T1 at once (iM871A firmware
/// 1.4 and later, AMB8465); the dongle does not say which of the two a telegram came in.
public enum DongleLinkMode: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case s1, t1, c1, c1t1

    /// Accepts "s1", "T1", "c1", "c1+t1", "c1t1", "t1+c1".
    public init?(text: String) {
        switch String(text.lowercased().filter { $0 != "+" && $0 != "," && $0 != " " }) {
        case "s1": self = .s1
        case "t1": self = .t1
        case "c1": self = .c1
        case "c1t1", "t1c1": self = .c1t1
        default: return nil
        }
    }

    /// The radio link mode of every telegram received in this mode, when it is a single one.
    public var singleLinkMode: WMBusLinkMode? {
        switch self {
        case .s1: return .s1
        case .t1: return .t1
        case .c1: return .c1
        case .c1t1: return nil
        }
    }

    /// Whether a telegram sent in `mode` is heard in this receive mode.
    public func receives(_ mode: WMBusLinkMode) -> Bool {
        switch self {
        case .c1t1: return mode == .c1 || mode == .t1
        default: return singleLinkMode == mode
        }
    }

    public var description: String { self == .c1t1 ? "C1+T1" : rawValue.uppercased() }
}

/// A UTC instant with millisecond resolution, parsed and printed without Foundation
/// (`2026-11-21T08:00:00.123Z`).
public struct DongleTimestamp: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var millisecondsSince1970: Int64

    public init(millisecondsSince1970: Int64) { self.millisecondsSince1970 = millisecondsSince1970 }

    /// The current wall-clock time (`clock_gettime(CLOCK_REALTIME)`).
    public static func now() -> DongleTimestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return DongleTimestamp(millisecondsSince1970: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }

    public static func < (a: DongleTimestamp, b: DongleTimestamp) -> Bool {
        a.millisecondsSince1970 < b.millisecondsSince1970
    }

    /// Parses `YYYY-MM-DDThh:mm:ss[.fff][Z]` or with a space instead of `T` (rtl_wmbus); times without a
    /// zone are taken as UTC.
    public init?(text: some StringProtocol) {
        let u = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= u.count else { return nil }
            var v = 0
            for i in range {
                guard u[i] >= 48, u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard u.count >= 19, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"),
              u[10] == UInt8(ascii: "T") || u[10] == UInt8(ascii: " "),
              u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":"),
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        var millis = 0
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < u.count, u[i] >= 48, u[i] <= 57 {
                if digits < 3 { millis = millis * 10 + Int(u[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { millis *= 10 } }
        }
        if i < u.count, u[i] == UInt8(ascii: "Z") { i += 1 }
        guard i == u.count else { return nil }
        let days = CivilCalendar.days(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        millisecondsSince1970 = seconds * 1000 + Int64(millis)
    }

    /// `2026-11-21T08:00:00.123Z`
    public var description: String {
        let ms = millisecondsSince1970
        let seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let millis = Int(ms - seconds * 1000)
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (y, m, d) = CivilCalendar.date(days: Int(days))
        func pad(_ v: Int, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(millis, 3))Z"
    }
}

/// A wireless M-Bus telegram as a receiver delivered it: the frame without CRCs (L-field first, L
/// counting the bytes after it) and what the receiver knows about it.
public struct ReceivedTelegram: Hashable, Sendable, CustomStringConvertible {
    /// L-field first, data-link CRCs removed (what `WMBusFrameCodec.decode(_, format: .noCRC)` takes).
    public var bytes: [UInt8]
    /// Signal strength in dBm, when the receiver reports a calibrated one.
    public var rssiDBm: Double?
    /// When the gateway received it (or the time recorded in an rtl_wmbus line or replay file).
    public var receivedAt: DongleTimestamp
    /// Known when the receiver listened in a single mode or says which mode it heard.
    public var linkMode: WMBusLinkMode?
    /// Which receiver: "iM871A /dev/serial/by-id/…", "rtl_wmbus", "replay capture.log".
    public var receiver: String

    public init(bytes: [UInt8], rssiDBm: Double? = nil, receivedAt: DongleTimestamp, linkMode: WMBusLinkMode? = nil, receiver: String) {
        self.bytes = bytes
        self.rssiDBm = rssiDBm
        self.receivedAt = receivedAt
        self.linkMode = linkMode
        self.receiver = receiver
    }

    /// The link-layer frame, for the wireless decoder.
    public func frame() throws(DecodeError) -> WMBusFrame {
        try WMBusFrameCodec.decode(bytes, format: .noCRC, linkMode: linkMode)
    }

    public var description: String {
        let rssi = rssiDBm.map { " \($0) dBm" } ?? ""
        let mode = linkMode.map { " \($0.rawValue.uppercased())" } ?? ""
        return "\(receivedAt)\(mode)\(rssi) \(receiver): \(Hex.encode(bytes))"
    }
}

/// A streaming decoder: bytes in, in whatever chunks, events out. `next()` never decides on partial
/// input, so the events are the same whatever the chunking.
public protocol DongleStreamDecoder: Sendable {
    associatedtype Event: Hashable & Sendable
    mutating func append(_ bytes: some Sequence<UInt8>)
    /// The next complete event, or nil when more bytes are needed.
    mutating func next() -> Event?
    /// At the end of the stream: what is left, as an event (an error for an unfinished message).
    mutating func finish() -> Event?
}

extension DongleStreamDecoder {
    /// Drains all complete events.
    public mutating func drain() -> [Event] {
        var events: [Event] = []
        while let e = next() { events.append(e) }
        return events
    }
}

/// The buffer every stream decoder here keeps: bytes appended at the end, consumed from `start`.
struct StreamBuffer: Sendable {
    private(set) var bytes: [UInt8] = []
    private(set) var start = 0
    /// Total bytes consumed since the beginning of the stream, for error offsets.
    private(set) var consumedTotal = 0

    var available: Int { bytes.count - start }
    var isEmpty: Bool { start >= bytes.count }

    mutating func append(_ more: some Sequence<UInt8>) {
        if start > 0 && start >= bytes.count / 2 {
            bytes.removeFirst(start)
            start = 0
        }
        bytes.append(contentsOf: more)
    }

    subscript(i: Int) -> UInt8 { bytes[start + i] }

    func slice(_ range: Range<Int>) -> [UInt8] { Array(bytes[(start + range.lowerBound)..<(start + range.upperBound)]) }

    mutating func consume(_ n: Int) -> [UInt8] {
        let taken = Array(bytes[start..<(start + n)])
        start += n
        consumedTotal += n
        return taken
    }

    mutating func reset() {
        consumedTotal += available
        bytes.removeAll(keepingCapacity: true)
        start = 0
    }
}
