/// Why fragments could not be put together (EN 13757-7:2018, 6: AFL fragmentation).
public struct AFLReassemblyError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }
        /// The message was not complete before its deadline: fragments are missing (a gap).
        public static let timedOut = Code(name: "afl_timed_out")
        /// A new message (fragment 1) started while the previous one still missed fragments.
        public static let superseded = Code(name: "afl_superseded")
        /// A fragment of a message whose first fragment was never seen, or a fragment after the last one.
        public static let unexpectedFragment = Code(name: "afl_unexpected_fragment")
        /// The same fragment id twice with different bytes.
        public static let conflictingDuplicate = Code(name: "afl_conflicting_duplicate")
        /// More fragments or bytes than the reassembler keeps for one message.
        public static let tooLarge = Code(name: "afl_too_large")
        /// AFL.ML disagrees with the bytes received.
        public static let lengthMismatch = Code(name: "afl_length_mismatch")
        /// The fragment is not an AFL fragment this reassembler can read (truncated header, encrypted ELL).
        public static let malformed = Code(name: "afl_malformed")
    }

    public var code: Code
    public var meter: WMBusAddress
    /// Fragment ids that never arrived (for gaps and timeouts).
    public var missing: [UInt8]
    public var message: String

    public var description: String { "\(meter): \(message) (\(code))" }
}

/// What one received telegram did to the reassembler.
public enum AFLReassemblyResult: Hashable, Sendable {
    /// Not fragmented (no AFL, or FID 0 without more fragments): decode the bytes as they are.
    case unfragmented
    /// Kept; the message is not complete yet.
    case pending(received: Int)
    /// All fragments are here: one telegram (L-field first, no CRCs) with the AFL of the first fragment,
    /// its more-fragments bit cleared, and the fragments' payloads in order. `WirelessDecoder` decodes
    /// it (and checks the MAC over the whole message).
    case complete([UInt8])
}

/// Puts the fragments of AFL-fragmented wM-Bus messages back together (EN 13757-7:2018, 6.3.2:
/// FID 1 for the first fragment, incremented per fragment, MF set on all but the last).
///
/// A value type with an injected clock (`now` in milliseconds), so tests need no sleeping. Bounded:
/// at most `maximumMessages` meters in flight (the oldest is dropped, with an error, for a new one),
/// `maximumFragments` fragments and `maximumBytes` bytes per message.
public struct AFLReassembler: Sendable {
    struct Pending: Sendable {
        var address: WMBusAddress
        var control: WMBusControlField
        /// Fragment 1's bytes from the CI of the first layer to the end of its AFL.
        var head: [UInt8]?
        var fragments: [UInt8: [UInt8]] = [:]
        var last: UInt8?
        var messageLength: Int?
        var bytes = 0
        var deadline: UInt64
        var started: UInt64
    }

    public var timeoutMilliseconds: UInt64
    public var maximumMessages: Int
    public var maximumFragments: Int
    public var maximumBytes: Int
    var pending: [[UInt8]: Pending] = [:]

    public init(timeoutMilliseconds: UInt64 = 30_000, maximumMessages: Int = 256, maximumFragments: Int = 32, maximumBytes: Int = 4096) {
        self.timeoutMilliseconds = timeoutMilliseconds
        self.maximumMessages = maximumMessages
        self.maximumFragments = maximumFragments
        self.maximumBytes = maximumBytes
    }

    /// Messages waiting for fragments.
    public var pendingCount: Int { pending.count }

    /// Takes one received telegram (L-field first, CRCs removed).
    public mutating func accept(_ bytes: [UInt8], now: UInt64) throws(AFLReassemblyError) -> AFLReassemblyResult {
        let frame: WMBusFrame
        do { frame = try WMBusFrameCodec.decode(bytes, format: .noCRC) } catch {
            throw AFLReassemblyError(code: .malformed, meter: WMBusAddress(manufacturer: ManufacturerCode(rawValue: 0), identification: IdentificationNumber(rawValue: 0), version: 0, deviceType: .other),
                                     missing: [], message: "not a wM-Bus telegram: \(error.message)")
        }
        return try accept(frame, now: now)
    }

    public mutating func accept(_ frame: WMBusFrame, now: UInt64) throws(AFLReassemblyError) -> AFLReassemblyResult {
        let p = frame.payload
        func fail(_ code: AFLReassemblyError.Code, _ m: String, missing: [UInt8] = []) -> AFLReassemblyError {
            AFLReassemblyError(code: code, meter: frame.address, missing: missing, message: m)
        }
        // Find the AFL: directly, or after an unencrypted short ELL (8Ch) or ELL with receiver (8Eh).
        var i = 0
        if i < p.count, p[i] == 0x8C || p[i] == 0x8E { i += 1 + ExtendedLinkLayer.headerLength(p[i]) }
        // Anything else (including a session-encrypted ELL 8Dh/8Fh, which hides what follows) is passed on whole.
        guard i < p.count, p[i] == WirelessCI.afl else { return .unfragmented }
        guard i + 4 <= p.count else { throw fail(.malformed, "the AFL header is cut short") }
        let length = Int(p[i + 1])
        let end = i + 2 + length
        guard end <= p.count, length >= 2 else { throw fail(.malformed, "AFL.L announces \(length) bytes, \(p.count - i - 2) remain") }
        let afl = AuthenticationLayer(fragmentControl: UInt16(p[i + 2]) | UInt16(p[i + 3]) << 8)
        let fid = afl.fragmentID
        if fid == 0 && !afl.moreFragments { return .unfragmented }
        guard fid != 0 else { throw fail(.malformed, "FID 0 (unfragmented) with the more-fragments bit set") }

        let key = frame.addressBytes.isEmpty ? frame.address.wireBytes : frame.addressBytes
        var notice: AFLReassemblyError?
        if fid == 1, let old = pending[key], old.head != nil {
            pending[key] = nil
            notice = fail(.superseded, "a new message started; the previous one missed fragments \(Self.missing(old))", missing: Self.missing(old))
        }
        if let m = pending[key], now > m.deadline {
            pending[key] = nil
            throw fail(.timedOut, "fragments \(Self.missing(m)) did not arrive within \(timeoutMilliseconds) ms", missing: Self.missing(m))
        }
        if pending[key] == nil {
            if pending.count >= maximumMessages, let oldest = pending.min(by: { $0.value.started < $1.value.started }) {
                pending[oldest.key] = nil
            }
            pending[key] = Pending(address: frame.address, control: frame.control, deadline: now + timeoutMilliseconds, started: now)
        }
        var m = pending[key]!
        if let last = m.last, fid > last {
            throw fail(.unexpectedFragment, "fragment \(fid) after the last fragment \(last)")
        }
        guard Int(fid) <= maximumFragments else {
            pending[key] = nil
            throw fail(.tooLarge, "fragment \(fid): more than \(maximumFragments) fragments in one message")
        }
        let data = Array(p[end...])
        if let seen = m.fragments[fid] {
            if seen == data { return .pending(received: m.fragments.count) }  // a repeat on the air
            pending[key] = nil
            throw fail(.conflictingDuplicate, "fragment \(fid) arrived twice with different bytes")
        }
        m.bytes += data.count
        guard m.bytes <= maximumBytes else {
            pending[key] = nil
            throw fail(.tooLarge, "more than \(maximumBytes) bytes in one message")
        }
        m.fragments[fid] = data
        if !afl.moreFragments { m.last = fid }
        if fid == 1 {
            var head = Array(p[0..<end])
            head[i + 3] &= ~0x40  // clear MF: the reassembled message is one
            m.head = head
            if afl.fragmentControl & 0x1000 != 0 {
                // ML follows MCL, KI, MCR and MAC; the decoder found it, read it the same way.
                m.messageLength = Self.messageLength(Array(p[i..<end]))
            }
        }
        if let last = m.last, let head = m.head, m.fragments.count == Int(last) {
            pending[key] = nil
            var payload = head
            for f in 1...last { payload += m.fragments[f] ?? [] }
            let body = payload.count - head.count
            if let ml = m.messageLength, ml != body {
                throw fail(.lengthMismatch, "AFL.ML says \(ml) bytes, the fragments hold \(body)")
            }
            // A one-fragment message that superseded a broken one: the message matters more than the notice.
            return .complete(WMBusFrameCodec.encode(control: m.control, address: m.address, payload: payload, format: .noCRC))
        }
        pending[key] = m
        if let notice { throw notice }
        return .pending(received: m.fragments.count)
    }

    /// Drops messages past their deadline and names their missing fragments.
    public mutating func expire(now: UInt64) -> [AFLReassemblyError] {
        var out: [AFLReassemblyError] = []
        for (k, m) in pending where now > m.deadline {
            pending[k] = nil
            out.append(AFLReassemblyError(code: .timedOut, meter: m.address, missing: Self.missing(m),
                                          message: "fragments \(Self.missing(m)) did not arrive within \(timeoutMilliseconds) ms"))
        }
        return out.sorted { $0.meter.identification.rawValue < $1.meter.identification.rawValue }
    }

    static func missing(_ m: Pending) -> [UInt8] {
        let top = m.last ?? (m.fragments.keys.max() ?? 0) &+ 1
        guard top >= 1 else { return [] }
        return (1...top).filter { m.fragments[$0] == nil }
    }

    /// AFL.ML of an AFL that starts at its CI, nil when absent or unreadable.
    static func messageLength(_ a: [UInt8]) -> Int? {
        guard a.count >= 4 else { return nil }
        let fcl = UInt16(a[2]) | UInt16(a[3]) << 8
        var i = 4
        var mcl: UInt8 = 0
        if fcl & 0x2000 != 0 { guard i < a.count else { return nil }; mcl = a[i]; i += 1 }
        if fcl & 0x0200 != 0 { i += 2 }
        if fcl & 0x0800 != 0 { i += 4 }
        if fcl & 0x0400 != 0 {
            guard let n = AuthenticationLayer.macLength(authenticationType: mcl & 0x0F) else { return nil }
            i += n
        }
        guard fcl & 0x1000 != 0, i + 2 <= a.count else { return nil }
        return Int(a[i]) | Int(a[i + 1]) << 8
    }
}
