/// IMST's Host Controller Interface (WMBus HCI spec), spoken by the iM871A and iM170A over USB serial
/// at 57600 baud, 8N1.
///
/// A message is `A5h`, a control byte (high nibble: flags for attached timestamp 2h, RSSI 4h and CRC16
/// 8h; low nibble: endpoint id), the message id, a payload length, the payload, then the attachments in
/// that order: a 32-bit little-endian timestamp, one RSSI byte, a CRC16 (little-endian) over everything
/// after `A5h`.
public struct HCIMessage: Hashable, Sendable, CustomStringConvertible {
    public var endpoint: UInt8
    public var messageID: UInt8
    public var payload: [UInt8]
    /// The module's receive timestamp (its RTC ticks), when the timestamp attachment is enabled.
    public var timestamp: UInt32?
    /// The raw RSSI byte, when the RSSI attachment is enabled; `HCI.rssiDBm` converts it.
    public var rssi: UInt8?
    /// Whether a CRC16 was attached (and checked).
    public var hasCRC: Bool

    public init(endpoint: UInt8, messageID: UInt8, payload: [UInt8] = [], timestamp: UInt32? = nil, rssi: UInt8? = nil, hasCRC: Bool = false) {
        self.endpoint = endpoint
        self.messageID = messageID
        self.payload = payload
        self.timestamp = timestamp
        self.rssi = rssi
        self.hasCRC = hasCRC
    }

    /// "DEVMGMT PING_RSP", "RADIOLINK WMBUSMSG_IND".
    public var name: String { HCI.name(endpoint: endpoint, messageID: messageID) }

    public var description: String { "\(name) [\(Hex.encode(payload, separator: " "))]" }
}

/// Constants, encoders and conversions of the HCI protocol.
public enum HCI {
    public static let startOfFrame: UInt8 = 0xA5

    // Endpoints (low nibble of the control byte).
    public static let deviceManagement: UInt8 = 0x01
    public static let radioLink: UInt8 = 0x02
    public static let radioLinkTest: UInt8 = 0x03
    public static let hardwareTest: UInt8 = 0x04

    // Control flags (high nibble of the control byte). 10h is reserved.
    public static let timestampFlag: UInt8 = 0x20
    public static let rssiFlag: UInt8 = 0x40
    public static let crcFlag: UInt8 = 0x80
    static let reservedFlag: UInt8 = 0x10

    // Device management message ids.
    public static let pingRequest: UInt8 = 0x01
    public static let pingResponse: UInt8 = 0x02
    public static let setConfigRequest: UInt8 = 0x03
    public static let setConfigResponse: UInt8 = 0x04
    public static let getConfigRequest: UInt8 = 0x05
    public static let getConfigResponse: UInt8 = 0x06
    public static let resetRequest: UInt8 = 0x07
    public static let resetResponse: UInt8 = 0x08
    public static let getDeviceInfoRequest: UInt8 = 0x0F
    public static let getDeviceInfoResponse: UInt8 = 0x10
    public static let getFirmwareInfoRequest: UInt8 = 0x13
    public static let getFirmwareInfoResponse: UInt8 = 0x14
    /// Highest device management id (DEVMGMT_MSG_AES_DEC_ERROR_IND).
    static let lastDeviceManagementID: UInt8 = 0x27

    // Radio link message ids.
    public static let wmbusMessageRequest: UInt8 = 0x01
    public static let wmbusMessageResponse: UInt8 = 0x02
    /// A received wM-Bus frame, C-field first (the L-field is the payload length, CRCs removed).
    public static let wmbusMessageIndication: UInt8 = 0x03
    public static let dataRequest: UInt8 = 0x04
    public static let dataResponse: UInt8 = 0x05

    /// Module types in the device info (iM871A 33h, iM170A 36h).
    public static let moduleIM871A: UInt8 = 0x33
    public static let moduleIM170A: UInt8 = 0x36

    /// Longest message: header, 255 payload bytes, timestamp, RSSI, CRC.
    public static let maximumMessageLength = 4 + 255 + 4 + 1 + 2

    static func isDefined(endpoint: UInt8, messageID: UInt8) -> Bool {
        switch endpoint {
        case deviceManagement: return (1...lastDeviceManagementID).contains(messageID)
        case radioLink: return (1...5).contains(messageID)
        case radioLinkTest: return (1...7).contains(messageID)
        case hardwareTest: return (1...2).contains(messageID)
        default: return false
        }
    }

    static func name(endpoint: UInt8, messageID: UInt8) -> String {
        let id = Hex.encode([messageID])
        switch endpoint {
        case deviceManagement:
            let names: [UInt8: String] = [0x01: "PING_REQ", 0x02: "PING_RSP", 0x03: "SET_CONFIG_REQ", 0x04: "SET_CONFIG_RSP",
                                          0x05: "GET_CONFIG_REQ", 0x06: "GET_CONFIG_RSP", 0x07: "RESET_REQ", 0x08: "RESET_RSP",
                                          0x0F: "GET_DEVICEINFO_REQ", 0x10: "GET_DEVICEINFO_RSP",
                                          0x13: "GET_FWINFO_REQ", 0x14: "GET_FWINFO_RSP"]
            return "DEVMGMT " + (names[messageID] ?? "message \(id)h")
        case radioLink:
            let names: [UInt8: String] = [0x01: "WMBUSMSG_REQ", 0x02: "WMBUSMSG_RSP", 0x03: "WMBUSMSG_IND",
                                          0x04: "DATA_REQ", 0x05: "DATA_RSP"]
            return "RADIOLINK " + (names[messageID] ?? "message \(id)h")
        case radioLinkTest: return "RADIOLINKTEST message \(id)h"
        case hardwareTest: return "HWTEST message \(id)h"
        default: return "endpoint \(Hex.encode([endpoint]))h message \(id)h"
        }
    }

    // MARK: - CRC

    private static let crcTable: [UInt16] = (0..<256).map { i in
        var r = UInt16(i)
        for _ in 0..<8 { r = r & 1 != 0 ? (r >> 1) ^ 0x8408 : r >> 1 }
        return r
    }

    /// CRC16 of the HCI: CCITT polynomial 1021h processed least significant bit first (reflected,
    /// 8408h), initial value FFFFh, result inverted; the CRC-16/X-25 of the catalogue. Sent low byte first.
    public static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0xFFFF
        for b in bytes {
            crc = (crc >> 8) ^ crcTable[Int((crc ^ UInt16(b)) & 0xFF)]
        }
        return ~crc
    }

    // MARK: - RSSI

    /// dBm from the RSSI byte. The iM871A's radio is a Silicon Labs Si1002, whose RSSI register rises by
    /// about 2 counts per dB (Si1002 datasheet, figure "RSSI vs. input power": 45 ≈ −100 dBm, 205 ≈
    /// −20 dBm), so dBm = (raw − 245) / 2, saturating at 0 dBm.
    public static func rssiDBm(_ raw: UInt8) -> Double {
        min(0, (Double(raw) - 245) / 2)
    }

    /// The RSSI byte a module reports for `dBm` (the inverse of `rssiDBm`, for simulators).
    public static func rawRSSI(dBm: Double) -> UInt8 {
        let raw = (dBm * 2 + 245).rounded()
        return UInt8(max(0, min(245, raw.isNaN ? 0 : raw)))
    }

    // MARK: - Link modes

    /// The link mode byte of SET_CONFIG (S1 0, S1-m 1, S2 2, T1 3, T2 4, R2 5, C1 format A 6, C1 format B 7,
    /// C2 A 8, C2 B 9, combined C1/T1 0Ah on firmware 1.4 and later).
    public static func linkModeByte(_ mode: DongleLinkMode) -> UInt8 {
        switch mode {
        case .s1: return 0x00
        case .t1: return 0x03
        case .c1: return 0x06
        case .c1t1: return 0x0A
        }
    }

    public static func linkMode(byte: UInt8) -> DongleLinkMode? {
        switch byte {
        case 0x00, 0x01: return .s1
        case 0x03: return .t1
        case 0x06, 0x07: return .c1
        case 0x0A: return .c1t1
        default: return nil
        }
    }

    // MARK: - Encoding

    /// The bytes of a message. The flags come from which attachments are present.
    public static func encode(_ m: HCIMessage) -> [UInt8] {
        var control = m.endpoint & 0x0F
        if m.timestamp != nil { control |= timestampFlag }
        if m.rssi != nil { control |= rssiFlag }
        if m.hasCRC { control |= crcFlag }
        let payload = m.payload.prefix(255)
        var out: [UInt8] = [startOfFrame, control, m.messageID, UInt8(payload.count)]
        out.append(contentsOf: payload)
        if let t = m.timestamp {
            out.append(contentsOf: [UInt8(t & 0xFF), UInt8((t >> 8) & 0xFF), UInt8((t >> 16) & 0xFF), UInt8(t >> 24)])
        }
        if let r = m.rssi { out.append(r) }
        if m.hasCRC {
            let crc = crc16(out[1...])
            out.append(UInt8(crc & 0xFF))
            out.append(UInt8(crc >> 8))
        }
        return out
    }

    /// DEVMGMT_MSG_PING_REQ.
    public static func ping() -> [UInt8] {
        encode(HCIMessage(endpoint: deviceManagement, messageID: pingRequest))
    }

    /// DEVMGMT_MSG_GET_DEVICEINFO_REQ: module type, firmware version and unique id.
    public static func getDeviceInfo() -> [UInt8] {
        encode(HCIMessage(endpoint: deviceManagement, messageID: getDeviceInfoRequest))
    }

    /// DEVMGMT_MSG_GET_CONFIG_REQ.
    public static func getConfiguration() -> [UInt8] {
        encode(HCIMessage(endpoint: deviceManagement, messageID: getConfigRequest))
    }

    /// DEVMGMT_MSG_SET_CONFIG_REQ setting the link mode and the RSSI and timestamp attachments, in RAM
    /// only: the "save in NVM" flag is off, so a replug returns to the stored configuration and the
    /// session configures again (and the flash is not worn by every start).
    public static func setConfiguration(linkMode: DongleLinkMode, rssi: Bool = true, timestamp: Bool = true) -> [UInt8] {
        let payload: [UInt8] = [
            0x00,                       // NVM flag: 0 = RAM only
            0x02,                       // IIFlag 1: link mode present
            linkModeByte(linkMode),
            0x30,                       // IIFlag 2: auto RSSI (10h) and auto timestamp (20h) attachments present
            rssi ? 1 : 0,
            timestamp ? 1 : 0,
        ]
        return encode(HCIMessage(endpoint: deviceManagement, messageID: setConfigRequest, payload: payload))
    }

    /// The parts of a SET_CONFIG / GET_CONFIG parameter block this gateway uses.
    public struct Configuration: Hashable, Sendable {
        public var linkMode: DongleLinkMode?
        public var linkModeByte: UInt8?
        public var rssiAttached: Bool?
        public var timestampAttached: Bool?

        public init(linkMode: DongleLinkMode? = nil, linkModeByte: UInt8? = nil, rssiAttached: Bool? = nil, timestampAttached: Bool? = nil) {
            self.linkMode = linkMode
            self.linkModeByte = linkModeByte
            self.rssiAttached = rssiAttached
            self.timestampAttached = timestampAttached
        }

        /// Parses the parameter block (IIFlag 1, its fields, IIFlag 2, its fields) as GET_CONFIG_RSP
        /// returns it, or SET_CONFIG_REQ after its NVM flag.
        public static func parse(_ p: [UInt8]) throws(DongleError) -> Configuration {
            var i = 0
            func take(_ n: Int, _ what: String) throws(DongleError) -> ArraySlice<UInt8> {
                guard i + n <= p.count else {
                    throw DongleError(.malformedResponse, "HCI configuration ends before its \(what) (byte \(i))", offset: i)
                }
                defer { i += n }
                return p[i..<(i + n)]
            }
            var c = Configuration()
            let flag1 = try take(1, "IIFlag 1").first!
            // Field sizes in IIFlag 1 order: device mode, link mode, C-field, manufacturer, id, version, type, channel.
            let sizes1 = [1, 1, 1, 2, 4, 1, 1, 1]
            for bit in 0..<8 where flag1 & (1 << bit) != 0 {
                let field = try take(sizes1[bit], "field \(bit) of IIFlag 1")
                if bit == 1 {
                    c.linkModeByte = field.first!
                    c.linkMode = HCI.linkMode(byte: field.first!)
                }
            }
            guard i < p.count else { return c }
            let flag2 = try take(1, "IIFlag 2").first!
            for bit in 0..<8 where flag2 & (1 << bit) != 0 {
                let field = try take(1, "field \(bit) of IIFlag 2").first!
                if bit == 4 { c.rssiAttached = field != 0 }
                if bit == 5 { c.timestampAttached = field != 0 }
            }
            return c
        }
    }

    /// GET_DEVICEINFO_RSP: module type, device mode, firmware version, HCI version, 32-bit unique id.
    public struct DeviceInfo: Hashable, Sendable, CustomStringConvertible {
        public var moduleType: UInt8
        public var deviceMode: UInt8
        public var firmwareVersion: UInt8
        public var hciVersion: UInt8
        public var uniqueID: UInt32

        public init(moduleType: UInt8, deviceMode: UInt8, firmwareVersion: UInt8, hciVersion: UInt8, uniqueID: UInt32) {
            self.moduleType = moduleType
            self.deviceMode = deviceMode
            self.firmwareVersion = firmwareVersion
            self.hciVersion = hciVersion
            self.uniqueID = uniqueID
        }

        public static func parse(_ p: [UInt8]) throws(DongleError) -> DeviceInfo {
            guard p.count >= 8 else {
                throw DongleError(.malformedResponse, "HCI device info has \(p.count) bytes, expected 8 (type, mode, firmware, HCI version, id)", offset: p.count)
            }
            let id = UInt32(p[4]) | UInt32(p[5]) << 8 | UInt32(p[6]) << 16 | UInt32(p[7]) << 24
            return DeviceInfo(moduleType: p[0], deviceMode: p[1], firmwareVersion: p[2], hciVersion: p[3], uniqueID: id)
        }

        public var payload: [UInt8] {
            [moduleType, deviceMode, firmwareVersion, hciVersion,
             UInt8(uniqueID & 0xFF), UInt8((uniqueID >> 8) & 0xFF), UInt8((uniqueID >> 16) & 0xFF), UInt8(uniqueID >> 24)]
        }

        /// "iM871A", "iM170A" or "HCI module 41h".
        public var moduleName: String {
            switch moduleType {
            case HCI.moduleIM871A: return "iM871A"
            case HCI.moduleIM170A: return "iM170A"
            default: return "HCI module \(Hex.encode([moduleType]))h"
            }
        }

        /// Firmware 14h and later listen to C1 and T1 at once.
        public var supportsCombinedC1T1: Bool { firmwareVersion >= 0x14 }

        /// "1.5" for 15h.
        public var firmware: String { "\(firmwareVersion >> 4).\(firmwareVersion & 0x0F)" }

        public var description: String {
            "\(moduleName) firmware \(firmware), HCI \(hciVersion >> 4).\(hciVersion & 0x0F), id \(Hex.encode([UInt8(uniqueID >> 24), UInt8((uniqueID >> 16) & 0xFF), UInt8((uniqueID >> 8) & 0xFF), UInt8(uniqueID & 0xFF)]))"
        }
    }

    // MARK: - Decoding

    public enum DecodeResult: Hashable, Sendable {
        case message(HCIMessage, consumed: Int)
        case needMoreBytes(Int)
    }

    /// Decodes one message at the start of `bytes`. Pure and total: a prefix of a valid message asks for
    /// more bytes, anything that cannot be one throws, with the offset of the offending byte.
    public static func decode(_ bytes: ArraySlice<UInt8>) throws(DongleError) -> DecodeResult {
        let s = bytes.startIndex
        guard let first = bytes.first else { return .needMoreBytes(4) }
        guard first == startOfFrame else {
            throw DongleError(.noise, "HCI message must start with A5h, got \(Hex.encode([first]))h", offset: 0)
        }
        guard bytes.count >= 2 else { return .needMoreBytes(4 - bytes.count) }
        let control = bytes[s + 1]
        guard control & reservedFlag == 0 else {
            throw DongleError(.unknownMessage, "HCI control byte \(Hex.encode([control]))h sets the reserved flag 10h", offset: 1)
        }
        let endpoint = control & 0x0F
        guard (deviceManagement...hardwareTest).contains(endpoint) else {
            throw DongleError(.unknownMessage, "HCI endpoint \(Hex.encode([endpoint]))h is not defined (01h to 04h)", offset: 1)
        }
        guard bytes.count >= 3 else { return .needMoreBytes(4 - bytes.count) }
        let id = bytes[s + 2]
        guard isDefined(endpoint: endpoint, messageID: id) else {
            throw DongleError(.unknownMessage, "HCI message id \(Hex.encode([id]))h is not defined for endpoint \(Hex.encode([endpoint]))h", offset: 2)
        }
        guard bytes.count >= 4 else { return .needMoreBytes(4 - bytes.count) }
        let length = Int(bytes[s + 3])
        let hasTimestamp = control & timestampFlag != 0
        let hasRSSI = control & rssiFlag != 0
        let hasCRC = control & crcFlag != 0
        let total = 4 + length + (hasTimestamp ? 4 : 0) + (hasRSSI ? 1 : 0) + (hasCRC ? 2 : 0)
        guard bytes.count >= total else { return .needMoreBytes(total - bytes.count) }
        var i = s + 4 + length
        var timestamp: UInt32? = nil
        if hasTimestamp {
            timestamp = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            i += 4
        }
        var rssi: UInt8? = nil
        if hasRSSI {
            rssi = bytes[i]
            i += 1
        }
        if hasCRC {
            let sent = UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
            let computed = crc16(bytes[(s + 1)..<i])
            guard sent == computed else {
                throw DongleError(.checksumMismatch,
                                  "HCI CRC16 is \(Hex.encode([UInt8(sent >> 8), UInt8(sent & 0xFF)]))h, the message gives \(Hex.encode([UInt8(computed >> 8), UInt8(computed & 0xFF)]))h",
                                  offset: i - s)
            }
        }
        let message = HCIMessage(endpoint: endpoint, messageID: id, payload: Array(bytes[(s + 4)..<(s + 4 + length)]),
                                 timestamp: timestamp, rssi: rssi, hasCRC: hasCRC)
        return .message(message, consumed: total)
    }
}

/// Turns the byte stream of an HCI module into messages, resynchronising on A5h after garbage.
///
/// Garbage and broken messages are reported as `.skipped`, once the skipped run is known to be
/// complete, so the events are the same whatever the chunking.
public struct HCIFrameReader: DongleStreamDecoder {
    public enum Event: Hashable, Sendable {
        case message(HCIMessage)
        case skipped(bytes: [UInt8], reason: DongleError)
    }

    private var buffer = StreamBuffer()
    /// Longest garbage run reported as one event, so a noisy line cannot grow memory.
    public static let maximumSkipReport = 256

    public init() {}

    public var pendingByteCount: Int { buffer.available }

    public mutating func reset() { buffer.reset() }

    public mutating func append(_ bytes: some Sequence<UInt8>) { buffer.append(bytes) }

    public mutating func next() -> Event? {
        guard !buffer.isEmpty else { return nil }
        let window = buffer.slice(0..<min(buffer.available, HCI.maximumMessageLength))
        do {
            switch try HCI.decode(window[...]) {
            case .message(let m, let consumed):
                _ = buffer.consume(consumed)
                return .message(m)
            case .needMoreBytes:
                return nil
            }
        } catch {
            var end = 1
            while end < buffer.available, end < Self.maximumSkipReport, buffer[end] != HCI.startOfFrame { end += 1 }
            if end == buffer.available && end < Self.maximumSkipReport { return nil }
            let at = buffer.consumedTotal
            let skipped = buffer.consume(end)
            return .skipped(bytes: skipped, reason: DongleError(error.code, error.message, offset: at + (error.offset ?? 0)))
        }
    }

    public mutating func finish() -> Event? {
        guard !buffer.isEmpty else { return nil }
        let at = buffer.consumedTotal
        let rest = buffer.slice(0..<buffer.available)
        buffer.reset()
        let reason: DongleError
        do {
            switch try HCI.decode(rest[...]) {
            case .needMoreBytes(let n):
                reason = DongleError(.truncated, "the stream ended inside an HCI message: \(n) more bytes expected", offset: at + rest.count)
            case .message:
                reason = DongleError(.truncated, "undrained HCI message at the end of the stream", offset: at)
            }
        } catch {
            reason = DongleError(error.code, error.message, offset: at + (error.offset ?? 0))
        }
        return .skipped(bytes: rest, reason: reason)
    }
}
