/// IMST iU891A(-XL), the iM871A's successor: a second-generation HCI that is not the iM871A's. Messages are
/// SLIP-framed (C0h at both ends; DBh DCh stands for C0h, DBh DDh for DBh) and hold a service access point
/// (01h device management, 09h wM-Bus gateway), a message id, the payload and a CRC-16/X-25 over them,
/// low byte first. Responses carry the request's id + 1 and start with a status byte (0 = OK); a received
/// telegram comes unasked as 09h/20h without one: stick time (u32 LE), decryption status, encryption mode,
/// an info byte, RSSI (signed, dBm), then the frame from its L-field with the link-layer CRCs removed.
///
/// No IMST document for this HCI is public. Built from three independent open-source drivers read as
/// sources of facts (wmbusmeters src/wmbus_iu891a.cc, jktjkt/wmbus-walkby-web wmbus.js,
/// lvogt/ioBroker.wireless-mbus lib/receiver/HciMessageV2.js) and the real capture quoted in wmbusmeters'
/// `extractFrame`, which the tests decode. What they leave open (the meaning of the info byte, whether the
/// stick rewrites L for format B) is handled by checks, not assumptions.
public struct IU891Message: Hashable, Sendable {
    public var sap: UInt8
    public var messageID: UInt8
    public var payload: [UInt8]

    public init(sap: UInt8, messageID: UInt8, payload: [UInt8] = []) {
        self.sap = sap
        self.messageID = messageID
        self.payload = payload
    }
}

public enum IU891 {
    public static let end: UInt8 = 0xC0
    public static let escape: UInt8 = 0xDB
    public static let escapedEnd: UInt8 = 0xDC
    public static let escapedEscape: UInt8 = 0xDD

    public static let deviceManagement: UInt8 = 0x01
    public static let wmbusGateway: UInt8 = 0x09

    public static let pingRequest: UInt8 = 0x01
    public static let getDeviceInfoRequest: UInt8 = 0x03
    public static let getFirmwareInfoRequest: UInt8 = 0x05
    public static let getActiveConfigRequest: UInt8 = 0x01
    public static let setActiveConfigRequest: UInt8 = 0x03
    public static let receivedTelegram: UInt8 = 0x20

    /// Module types of this HCI family (Get Device Info, first byte after the status).
    public static let moduleTypes: [UInt8: String] = [0x6E: "iU891A-XL", 0x6D: "iM891A-XL", 0xA3: "iM881A-XL", 0x71: "iU893A-XL"]

    /// Longest message accepted: a 255-byte frame, the 8-byte receive header, SAP, id and CRC, with room.
    public static let maximumMessage = 300

    /// Link mode byte of the active configuration (byte 0): S 1, T 2, C+T 3, C 5.
    public static func linkModeByte(_ mode: DongleLinkMode) -> UInt8 {
        switch mode {
        case .s1: 1
        case .t1: 2
        case .c1t1: 3
        case .c1: 5
        }
    }

    /// The active configuration with `mode`, the receive filter off (hear every meter, not only a device
    /// list) and receive notification on (else no 09h/20h arrives); the other fields as the stick had them.
    public static func configuration(_ current: [UInt8], linkMode: DongleLinkMode) throws(DongleError) -> [UInt8] {
        guard current.count == 11 else {
            throw DongleError(.malformedResponse, "the active configuration has \(current.count) bytes instead of 11")
        }
        var c = current
        c[0] = linkModeByte(linkMode)
        c[1] = (c[1] & ~0x01) | 0x02
        return c
    }

    /// CRC-16/X-25 (reflected 0x1021, init and final XOR FFFFh), as HCI v1 uses.
    public static func crc(_ bytes: some Sequence<UInt8>) -> UInt16 { HCI.crc16(bytes) }

    /// A message as sent on the wire: SLIP-framed, CRC appended low byte first.
    public static func encode(_ m: IU891Message) -> [UInt8] {
        var body = [m.sap, m.messageID] + m.payload
        let c = crc(body)
        body += [UInt8(c & 0xFF), UInt8(c >> 8)]
        var out: [UInt8] = [end]
        out.reserveCapacity(body.count + 8)
        for b in body {
            switch b {
            case end: out += [escape, escapedEnd]
            case escape: out += [escape, escapedEscape]
            default: out.append(b)
            }
        }
        out.append(end)
        return out
    }

    public static func ping() -> [UInt8] { encode(IU891Message(sap: deviceManagement, messageID: pingRequest)) }
    public static func getDeviceInfo() -> [UInt8] { encode(IU891Message(sap: deviceManagement, messageID: getDeviceInfoRequest)) }
    public static func getActiveConfiguration() -> [UInt8] { encode(IU891Message(sap: wmbusGateway, messageID: getActiveConfigRequest)) }
    public static func setActiveConfiguration(_ c: [UInt8]) -> [UInt8] {
        encode(IU891Message(sap: wmbusGateway, messageID: setActiveConfigRequest, payload: c))
    }

    /// Device info after the status byte: module type and its 32-bit unique id (little-endian).
    public struct DeviceInfo: Hashable, Sendable {
        public var moduleType: UInt8
        public var uniqueID: UInt32
        public var moduleName: String { IU891.moduleTypes[moduleType] ?? "IMST module type \(Hex.encode([moduleType]))h" }

        public init(moduleType: UInt8, uniqueID: UInt32) {
            self.moduleType = moduleType
            self.uniqueID = uniqueID
        }

        public static func parse(_ payload: [UInt8]) throws(DongleError) -> DeviceInfo {
            guard payload.count >= 6 else {
                throw DongleError(.malformedResponse, "device info of \(payload.count) bytes cannot hold status, module type and id")
            }
            guard payload[0] == 0 else { throw DongleError(.rejected, "the stick refused Get Device Info (status \(payload[0]))") }
            let id = UInt32(payload[2]) | UInt32(payload[3]) << 8 | UInt32(payload[4]) << 16 | UInt32(payload[5]) << 24
            return DeviceInfo(moduleType: payload[1], uniqueID: id)
        }

        /// Status, type, id and two bytes the sources do not explain (sent as zero).
        public var payload: [UInt8] {
            [0, moduleType, UInt8(uniqueID & 0xFF), UInt8((uniqueID >> 8) & 0xFF), UInt8((uniqueID >> 16) & 0xFF), UInt8(uniqueID >> 24), 0, 0]
        }
    }

    /// A received telegram (09h/20h payload): the frame L-first without CRCs and its RSSI in dBm.
    public static func telegram(_ payload: [UInt8]) throws(DongleError) -> (bytes: [UInt8], rssiDBm: Double) {
        guard payload.count >= 8 + 10 else {
            throw DongleError(.invalidLength, "a received telegram of \(payload.count) bytes cannot hold the 8-byte header and L, C, M and A")
        }
        let frame = Array(payload[8...])
        let l = Int(frame[0])
        // L counts the bytes after it. Format B's L may still count its CRCs (unconfirmed): take the bytes
        // that are there when L claims 2 or 4 more, never more than there are.
        guard l == frame.count - 1 || (l > frame.count - 1 && l - (frame.count - 1) <= 4) else {
            throw DongleError(.invalidLength, "the telegram's L-field says \(l) bytes follow, the stick sent \(frame.count - 1)")
        }
        var bytes = frame
        guard let length = UInt8(exactly: frame.count - 1) else {
            throw DongleError(.invalidLength, "a received telegram of \(frame.count) bytes is longer than an L-field can say")
        }
        bytes[0] = length
        return (bytes, Double(Int8(bitPattern: payload[7])))
    }

    /// The 09h/20h payload a stick sends for `frame` (L-first, no CRCs): for simulators and tests.
    public static func telegramPayload(frame: [UInt8], rssiDBm: Double, stickSeconds: UInt32) -> [UInt8] {
        let rssi = Int8(clamping: Int(rssiDBm.isFinite ? rssiDBm.rounded() : -128))
        return [UInt8(stickSeconds & 0xFF), UInt8((stickSeconds >> 8) & 0xFF), UInt8((stickSeconds >> 16) & 0xFF), UInt8(stickSeconds >> 24),
                0x00, 0x00, 0x02, UInt8(bitPattern: rssi)] + frame
    }
}

/// Streaming SLIP decoder for the iU891A: bytes in, messages out, CRC checked. Garbage between frames, a
/// bad escape, an overlong run or a CRC mismatch is skipped with the reason; the next C0h resynchronises.
public struct IU891FrameReader: DongleStreamDecoder {
    public enum Event: Hashable, Sendable {
        case message(IU891Message)
        case skipped(bytes: [UInt8], reason: DongleError)
    }

    private var current: [UInt8] = []
    private var raw: [UInt8] = []
    private var inFrame = false
    private var escaping = false
    private var broken: String?
    private var pending: [Event] = []
    private var offset = 0

    public init() {}

    public var pendingByteCount: Int { raw.count }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        for b in bytes {
            offset += 1
            if b == IU891.end {
                if inFrame && !raw.isEmpty { finishFrame() } else if !raw.isEmpty { skip("bytes outside a SLIP frame") }
                inFrame = true
                reset()
                continue
            }
            raw.append(b)
            guard inFrame else {
                if raw.count > IU891.maximumMessage { skip("bytes outside a SLIP frame") }
                continue
            }
            if raw.count > 2 * IU891.maximumMessage {
                skip("a frame longer than \(IU891.maximumMessage) bytes (a lost C0h end byte)")
                inFrame = false
                continue
            }
            if escaping {
                escaping = false
                switch b {
                case IU891.escapedEnd: current.append(IU891.end)
                case IU891.escapedEscape: current.append(IU891.escape)
                default: broken = broken ?? "escape DBh followed by \(Hex.encode([b]))h instead of DCh or DDh"
                }
            } else if b == IU891.escape {
                escaping = true
            } else {
                current.append(b)
            }
        }
    }

    public mutating func next() -> Event? { pending.isEmpty ? nil : pending.removeFirst() }

    public mutating func finish() -> Event? {
        if let e = next() { return e }
        guard !raw.isEmpty else { return nil }
        let bytes = raw
        reset()
        inFrame = false
        return .skipped(bytes: bytes, reason: DongleError(.truncated, "the stream ended inside a SLIP frame", offset: offset))
    }

    private mutating func reset() {
        current = []
        raw = []
        escaping = false
        broken = nil
    }

    private mutating func skip(_ why: String, _ code: DongleError.Code = .noise) {
        pending.append(.skipped(bytes: raw, reason: DongleError(code, why, offset: offset)))
        reset()
    }

    private mutating func finishFrame() {
        if let broken { return skip(broken) }
        guard current.count >= 4 else { return skip("a SLIP frame of \(current.count) bytes cannot hold SAP, id and CRC", .invalidLength) }
        let body = Array(current.dropLast(2))
        let sent = UInt16(current[current.count - 2]) | UInt16(current[current.count - 1]) << 8
        let computed = IU891.crc(body)
        guard sent == computed else {
            return skip("CRC \(Hex.encode([UInt8(sent >> 8), UInt8(sent & 0xFF)]))h does not match \(Hex.encode([UInt8(computed >> 8), UInt8(computed & 0xFF)]))h", .checksumMismatch)
        }
        pending.append(.message(IU891Message(sap: body[0], messageID: body[1], payload: Array(body.dropFirst(2)))))
        reset()
    }
}
