/// A CMD message of Amber's (Würth Elektronik eiSos) wM-Bus modules AMB8465 and AMB8665 (USB stick):
/// `FFh`, command, payload length, payload, XOR of all bytes before it. 9600 baud, 8N1 by default.
public struct AmberMessage: Hashable, Sendable, CustomStringConvertible {
    public var command: UInt8
    public var payload: [UInt8]

    public init(command: UInt8, payload: [UInt8] = []) {
        self.command = command
        self.payload = payload
    }

    /// Responses carry the request's command with 80h set.
    public var isResponse: Bool { command & 0x80 != 0 }

    public var name: String { Amber.name(command) }

    public var description: String { "\(name) [\(Hex.encode(payload, separator: " "))]" }
}

/// Constants, encoders and conversions of Amber's CMD protocol (AMB8465 manual, "UART interface").
public enum Amber {
    public static let startOfFrame: UInt8 = 0xFF

    public static let dataRequest: UInt8 = 0x00
    public static let dataRetryRequest: UInt8 = 0x02
    /// A received telegram, C-field first; the L-field is the payload length (minus the RSSI byte).
    public static let dataIndication: UInt8 = 0x03
    public static let setModeRequest: UInt8 = 0x04
    public static let resetRequest: UInt8 = 0x05
    public static let setChannelRequest: UInt8 = 0x06
    public static let setRequest: UInt8 = 0x09
    public static let getRequest: UInt8 = 0x0A
    public static let serialNumberRequest: UInt8 = 0x0B
    public static let firmwareVersionRequest: UInt8 = 0x0C
    public static let rssiRequest: UInt8 = 0x0D
    public static let setUARTSpeedRequest: UInt8 = 0x10
    public static let factoryResetRequest: UInt8 = 0x11
    public static let responseFlag: UInt8 = 0x80

    /// Non-volatile parameter positions (AMB8465 manual, "UserSettings").
    public static let parameterCommandOutputEnable: UInt8 = 5
    public static let parameterRSSIEnable: UInt8 = 69
    public static let parameterModePreselect: UInt8 = 70

    static let requests: Set<UInt8> = [0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x10, 0x11,
                                       0x30, 0x31, 0x50, 0x51, 0x52]

    /// Whether `command` is defined: a request, its response (80h set), or the data indication.
    public static func isCommand(_ command: UInt8) -> Bool {
        command == dataIndication || requests.contains(command & 0x7F)
    }

    /// C-fields of telegrams a meter sends (SND-NR, SND-IR, ACC-NR, ACC-DMD, RSP-UD). They never equal a
    /// command byte, which is what lets the reader tell raw telegrams from CMD messages.
    static let meterControlFields: Set<UInt8> = [0x44, 0x46, 0x47, 0x48, 0x08, 0x18, 0x28, 0x38]

    static func name(_ command: UInt8) -> String {
        let names: [UInt8: String] = [0x00: "CMD_DATA_REQ", 0x02: "CMD_DATARETRY_REQ", 0x03: "CMD_DATA_IND",
                                      0x04: "CMD_SET_MODE_REQ", 0x05: "CMD_RESET_REQ", 0x06: "CMD_SET_CHANNEL_REQ",
                                      0x09: "CMD_SET_REQ", 0x0A: "CMD_GET_REQ", 0x0B: "CMD_SERIALNO_REQ",
                                      0x0C: "CMD_FWV_REQ", 0x0D: "CMD_RSSI_REQ", 0x10: "CMD_SETUARTSPEED_REQ",
                                      0x11: "CMD_FACTORYRESET_REQ"]
        if command != dataIndication, command & 0x80 != 0, let base = names[command & 0x7F] {
            return base.replacingSuffix("_REQ", with: "_CNF")
        }
        return names[command] ?? "command \(Hex.encode([command]))h"
    }

    /// XOR of all bytes, start byte included.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt8 {
        bytes.reduce(0, ^)
    }

    public static func encode(_ m: AmberMessage) -> [UInt8] {
        var out: [UInt8] = [startOfFrame, m.command, UInt8(min(m.payload.count, 255))]
        out.append(contentsOf: m.payload.prefix(255))
        out.append(checksum(out))
        return out
    }

    /// Set mode byte (Mode Preselect): S1 03h (S2, receives S1 and S1-m), T1 08h (T2 other, receives
    /// T1 and T2), C1 0Eh (C2 other, receives C1 and C2), C1 and T1 together 09h.
    public static func modeByte(_ mode: DongleLinkMode) -> UInt8 {
        switch mode {
        case .s1: return 0x03
        case .t1: return 0x08
        case .c1: return 0x0E
        case .c1t1: return 0x09
        }
    }

    public static func linkMode(byte: UInt8) -> DongleLinkMode? {
        switch byte {
        case 0x01, 0x02, 0x03: return .s1
        case 0x05, 0x06, 0x07, 0x08: return .t1
        case 0x0D, 0x0E: return .c1
        case 0x09: return .c1t1
        default: return nil
        }
    }

    /// dBm from the RSSI byte: a two's-complement value in half dB, offset by 74 dB (AMB8465 manual,
    /// "RSSI": dBm = RSSI/2 − 74 with RSSI read as a signed byte).
    public static func rssiDBm(_ raw: UInt8) -> Double {
        Double(Int8(bitPattern: raw)) / 2 - 74
    }

    /// The RSSI byte the module reports for `dBm` (inverse of `rssiDBm`, for simulators).
    public static func rawRSSI(dBm: Double) -> UInt8 {
        let v = ((dBm + 74) * 2).rounded()
        return UInt8(bitPattern: Int8(max(-128, min(127, v.isNaN ? 0 : v))))
    }

    public static func setMode(_ mode: DongleLinkMode) -> [UInt8] {
        encode(AmberMessage(command: setModeRequest, payload: [modeByte(mode)]))
    }

    public static func querySerialNumber() -> [UInt8] { encode(AmberMessage(command: serialNumberRequest)) }
    public static func queryFirmwareVersion() -> [UInt8] { encode(AmberMessage(command: firmwareVersionRequest)) }
    public static func reset() -> [UInt8] { encode(AmberMessage(command: resetRequest)) }

    /// CMD_GET_REQ: `count` bytes of the non-volatile parameters from `position`.
    public static func get(position: UInt8, count: UInt8) -> [UInt8] {
        encode(AmberMessage(command: getRequest, payload: [position, count]))
    }

    /// CMD_SET_REQ: writes parameters to flash; they take effect after CMD_RESET_REQ.
    public static func set(position: UInt8, values: [UInt8]) -> [UInt8] {
        encode(AmberMessage(command: setRequest, payload: [position, UInt8(min(values.count, 250))] + values.prefix(250)))
    }

    /// The 4-byte serial number of CMD_SERIALNO_CNF, as hex.
    public static func serialNumber(_ m: AmberMessage) throws(DongleError) -> String {
        guard m.command == serialNumberRequest | responseFlag, m.payload.count >= 4 else {
            throw DongleError(.malformedResponse, "\(m.name) with \(m.payload.count) bytes is not a serial number (CMD_SERIALNO_CNF, 4 bytes)")
        }
        return Hex.encode(m.payload.prefix(4))
    }

    /// "1.2.3" from CMD_FWV_CNF.
    public static func firmwareVersion(_ m: AmberMessage) throws(DongleError) -> String {
        guard m.command == firmwareVersionRequest | responseFlag, m.payload.count >= 3 else {
            throw DongleError(.malformedResponse, "\(m.name) with \(m.payload.count) bytes is not a firmware version (CMD_FWV_CNF, 3 bytes)")
        }
        return m.payload.prefix(3).map(String.init).joined(separator: ".")
    }

    /// The parameter bytes of CMD_GET_CNF (position, count, values).
    public static func parameters(_ m: AmberMessage) throws(DongleError) -> (position: UInt8, values: [UInt8]) {
        guard m.command == getRequest | responseFlag, m.payload.count >= 2, m.payload.count - 2 >= Int(m.payload[1]) else {
            throw DongleError(.malformedResponse, "\(m.name) [\(Hex.encode(m.payload))] is not a parameter read-out (CMD_GET_CNF: position, count, values)")
        }
        return (m.payload[0], Array(m.payload[2..<(2 + Int(m.payload[1]))]))
    }
}

extension String {
    fileprivate func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self
    }
}

/// Turns the byte stream of an Amber module into CMD messages and received telegrams.
///
/// **The framing clash.** With CMD output enabled a telegram arrives as `FF 03 len C … [RSSI] cs`; with
/// it disabled (transparent mode) as the raw telegram `L C … [RSSI]`, and confirmations of commands
/// still come as `FF 8x …` between them. A raw telegram can start with FFh (L = 255) and its bytes can
/// contain FFh. The rule: at a message boundary, the *second* byte decides. A CMD message has a
/// command there (03h or a request id, with or without 80h); a raw telegram has a meter's C-field
/// (44h, 46h, 47h, 48h, 08h, 18h, 28h, 38h). The two sets are disjoint, so `FF 44 …` is a 256-byte raw
/// telegram and `FF 84 …` a confirmation, without guessing. A CMD message must then pass its XOR
/// checksum; a raw telegram (no checksum survives the dongle) must have L ≥ 9 and an M-field of
/// three letters A–Z. Anything else is skipped up to the next byte pair that could start either.
public struct AmberFrameReader: DongleStreamDecoder {
    public enum Event: Hashable, Sendable {
        /// A confirmation (or, to a simulator, a request).
        case command(AmberMessage)
        /// A received telegram, L-field first, without its RSSI byte; `framed` when it came as CMD_DATA_IND.
        case telegram(bytes: [UInt8], rssi: UInt8?, framed: Bool)
        case skipped(bytes: [UInt8], reason: DongleError)
    }

    private var buffer = StreamBuffer()
    /// Whether telegrams carry a trailing RSSI byte (parameter RSSI_Enable, position 69).
    public var rssiAppended: Bool
    public static let maximumSkipReport = 256

    public init(rssiAppended: Bool = true) {
        self.rssiAppended = rssiAppended
    }

    public var pendingByteCount: Int { buffer.available }
    public mutating func reset() { buffer.reset() }
    public mutating func append(_ bytes: some Sequence<UInt8>) { buffer.append(bytes) }

    private enum Attempt {
        case event(Event, consumed: Int)
        case needMore
        case invalid(DongleError)
    }

    private func attempt() -> Attempt {
        let n = buffer.available
        guard n >= 2 else { return .needMore }
        let b0 = buffer[0], b1 = buffer[1]
        if b0 == Amber.startOfFrame && Amber.isCommand(b1) {
            guard n >= 3 else { return .needMore }
            let length = Int(buffer[2])
            let total = 4 + length
            guard n >= total else { return .needMore }
            let sent = buffer[total - 1]
            let computed = Amber.checksum(buffer.slice(0..<(total - 1)))
            guard sent == computed else {
                return .invalid(DongleError(.checksumMismatch,
                                            "Amber \(Amber.name(b1)) checksum is \(Hex.encode([sent]))h, the message gives \(Hex.encode([computed]))h",
                                            offset: total - 1))
            }
            let payload = buffer.slice(3..<(3 + length))
            if b1 == Amber.dataIndication {
                let rssiLength = rssiAppended ? 1 : 0
                guard length - rssiLength >= 9 else {
                    return .invalid(DongleError(.invalidLength, "CMD_DATA_IND of \(length) bytes cannot hold C, M and A\(rssiAppended ? " and the RSSI byte" : "")", offset: 2))
                }
                let data = Array(payload.prefix(length - rssiLength))
                return .event(.telegram(bytes: [UInt8(data.count)] + data, rssi: rssiAppended ? payload.last : nil, framed: true), consumed: total)
            }
            return .event(.command(AmberMessage(command: b1, payload: payload)), consumed: total)
        }
        if Amber.meterControlFields.contains(b1) {
            let l = Int(b0)
            guard l >= 9 else {
                return .invalid(DongleError(.invalidLength, "raw telegram L-field \(l) is too small: C, M and A alone take 9 bytes", offset: 0))
            }
            guard n >= 4 else { return .needMore }
            let m = UInt16(buffer[2]) | UInt16(buffer[3]) << 8
            guard Self.isManufacturer(m) else {
                return .invalid(DongleError(.noise, "M-field \(Hex.encode([buffer[2], buffer[3]])) is not three letters: not a telegram", offset: 2))
            }
            let total = l + 1 + (rssiAppended ? 1 : 0)
            guard n >= total else { return .needMore }
            return .event(.telegram(bytes: buffer.slice(0..<(l + 1)), rssi: rssiAppended ? buffer[l + 1] : nil, framed: false), consumed: total)
        }
        return .invalid(DongleError(.noise, "\(Hex.encode([b0, b1])) starts neither a CMD message (FFh and a command) nor a telegram (L and a meter's C-field)", offset: 0))
    }

    /// Three letters A–Z in 5 bits each, top bit clear (EN 13757-3 FLAG code).
    static func isManufacturer(_ m: UInt16) -> Bool {
        guard m & 0x8000 == 0 else { return false }
        return [(m >> 10) & 0x1F, (m >> 5) & 0x1F, m & 0x1F].allSatisfy { (1...26).contains($0) }
    }

    /// Whether a message could start at `i` (the pair test only; `attempt` checks the rest).
    private func couldStart(at i: Int) -> Bool? {
        guard i + 1 < buffer.available else { return nil }
        let b0 = buffer[i], b1 = buffer[i + 1]
        return (b0 == Amber.startOfFrame && Amber.isCommand(b1)) || (b0 >= 9 && Amber.meterControlFields.contains(b1))
    }

    public mutating func next() -> Event? {
        switch attempt() {
        case .event(let e, let consumed):
            _ = buffer.consume(consumed)
            return e
        case .needMore:
            return nil
        case .invalid(let error):
            var end = 1
            while end < Self.maximumSkipReport {
                guard let possible = couldStart(at: end) else { break }
                if possible { break }
                end += 1
            }
            // Incomplete run: wait, unless it is already as long as one report may be.
            if end < Self.maximumSkipReport && couldStart(at: end) == nil { return nil }
            let at = buffer.consumedTotal
            let skipped = buffer.consume(end)
            return .skipped(bytes: skipped, reason: DongleError(error.code, error.message, offset: at + (error.offset ?? 0)))
        }
    }

    public mutating func finish() -> Event? {
        guard !buffer.isEmpty else { return nil }
        let at = buffer.consumedTotal
        let reason: DongleError
        switch attempt() {
        case .needMore:
            reason = DongleError(.truncated, "the stream ended inside an Amber message or telegram", offset: at + buffer.available)
        case .invalid(let e):
            reason = DongleError(e.code, e.message, offset: at + (e.offset ?? 0))
        case .event:
            reason = DongleError(.truncated, "undrained Amber message at the end of the stream", offset: at)
        }
        let rest = buffer.slice(0..<buffer.available)
        buffer.reset()
        return .skipped(bytes: rest, reason: reason)
    }
}
