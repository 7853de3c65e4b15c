/// How the bytes of a wireless M-Bus frame are laid out on the air (EN 13757-4, 5.5 and 5.6).
public enum WMBusFrameFormat: String, Hashable, Sendable, CaseIterable {
    /// Format A: a 10-byte first block and 16-byte blocks, each followed by its CRC; L excludes CRCs.
    case a
    /// Format B: one CRC after the first 126 bytes and one at the end; L includes the CRCs.
    case b
    /// The dongle checked and removed the CRCs; L counts the bytes that follow it.
    case noCRC = "no_crc"
}

/// The radio link mode a telegram was received in. Metadata from the receiver: the bytes do not say it.
public enum WMBusLinkMode: String, Hashable, Sendable, CaseIterable {
    case s1, t1, c1
}

/// The C-field of a wireless M-Bus frame (EN 13757-4, Table 29 / EN 13757-7).
public struct WMBusControlField: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The function in the field's own words (SND-NR, RSP-UD, …).
    public var name: String {
        switch rawValue {
        case 0x00: return "ACK"
        case 0x06: return "CNF-IR"
        case 0x08, 0x18, 0x28, 0x38: return "RSP-UD"
        case 0x40: return "SND-NKE"
        case 0x43, 0x53, 0x63, 0x73: return "SND-UD"
        case 0x44: return "SND-NR"
        case 0x46: return "SND-IR"
        case 0x47: return "ACC-NR"
        case 0x48: return "ACC-DMD"
        case 0x5A, 0x7A: return "REQ-UD1"
        case 0x5B, 0x7B: return "REQ-UD2"
        default: return "C " + Hex.encode([rawValue])
        }
    }

    /// Meters send SND-NR, SND-IR, ACC-NR, ACC-DMD and RSP-UD; the others come from the other side.
    public var isFromMeter: Bool {
        switch rawValue {
        case 0x44, 0x46, 0x47, 0x48, 0x08, 0x18, 0x28, 0x38, 0x00: return true
        default: return false
        }
    }

    public var description: String { name }
}

/// The link-layer address block: M-field and A-field (EN 13757-4, 5.5.2). For a meter the A-field is
/// its identification number, version and device type; for a radio adapter it is the adapter's own.
public struct WMBusAddress: Hashable, Sendable, CustomStringConvertible {
    public var manufacturer: ManufacturerCode
    public var identification: IdentificationNumber
    public var version: UInt8
    public var deviceType: DeviceType

    public init(manufacturer: ManufacturerCode, identification: IdentificationNumber, version: UInt8, deviceType: DeviceType) {
        self.manufacturer = manufacturer
        self.identification = identification
        self.version = version
        self.deviceType = deviceType
    }

    /// Reads M (2 bytes) and A (6 bytes) in wire order from `bytes[at...]`, which must hold 8 bytes.
    init(_ bytes: [UInt8], at i: Int) {
        manufacturer = ManufacturerCode(rawValue: UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8)
        identification = IdentificationNumber(rawValue: UInt32(bytes[i + 2]) | UInt32(bytes[i + 3]) << 8
            | UInt32(bytes[i + 4]) << 16 | UInt32(bytes[i + 5]) << 24)
        version = bytes[i + 6]
        deviceType = DeviceType(rawValue: bytes[i + 7])
    }

    /// M and A in wire order, as the IVs and counter blocks of EN 13757-7 take them.
    public var wireBytes: [UInt8] {
        let id = identification.rawValue
        return [UInt8(manufacturer.rawValue & 0xFF), UInt8(manufacturer.rawValue >> 8),
                UInt8(id & 0xFF), UInt8((id >> 8) & 0xFF), UInt8((id >> 16) & 0xFF), UInt8(id >> 24),
                version, deviceType.rawValue]
    }

    public var description: String { "\(manufacturer) \(identification) v\(version) \(deviceType)" }
}

/// A wireless M-Bus frame with its CRCs checked and removed.
public struct WMBusFrame: Hashable, Sendable {
    public var format: WMBusFrameFormat
    public var control: WMBusControlField
    public var address: WMBusAddress
    /// CI field and everything after it, CRCs removed.
    public var payload: [UInt8]
    /// For each payload byte, its offset in the received bytes, so errors can point at the input.
    /// Empty when payload offsets equal `payloadStart + index` (no CRCs inside the payload).
    var payloadOffsets: [Int]
    /// Offset of the first payload byte in the received bytes.
    public var payloadStart: Int
    /// Given by the receiver, never derived from the bytes.
    public var linkMode: WMBusLinkMode?
    /// M and A exactly as received (IVs and counter blocks use these, whatever `address` makes of them).
    public var addressBytes: [UInt8] = []
    /// The A-field was read in Diehl's order (version, type, id) rather than EN 13757-4's (id, version, type).
    public var diehlAddressOrder = false

    /// Offset in the received bytes of payload byte `index` (clamped to the end).
    public func inputOffset(ofPayloadIndex index: Int) -> Int {
        if payloadOffsets.isEmpty { return payloadStart + index }
        if index < payloadOffsets.count { return payloadOffsets[max(index, 0)] }
        return (payloadOffsets.last ?? payloadStart) + 1 + (index - payloadOffsets.count)
    }
}

extension DecodeError.Code {
    /// A data-link block's CRC (EN 13757-4) does not match.
    public static let crcMismatch = DecodeError.Code(name: "crc_mismatch")
}

/// Parses EN 13757-4 frames, format A, format B, or already stripped of CRCs. Pure and total.
public enum WMBusFrameCodec {
    /// Minimum L: C (1), M (2), A (6).
    static let minimumLength = 9

    /// Total bytes of a format A frame with this L-field.
    public static func formatALength(l: Int) -> Int {
        let rest = l - 9
        return l + 1 + 2 * (1 + (rest + 15) / 16)
    }

    /// Decodes one frame. With `format` nil, the layout is recognised: a format A length whose CRCs
    /// check is format A, L + 1 bytes whose format B CRCs check is format B, other L + 1 byte inputs
    /// are taken as already stripped of CRCs (as most dongles deliver them).
    public static func decode(_ bytes: [UInt8], format: WMBusFrameFormat? = nil,
                              linkMode: WMBusLinkMode? = nil) throws(DecodeError) -> WMBusFrame {
        guard let first = bytes.first else {
            throw DecodeError(code: .truncatedFrame, offset: 0, message: "no bytes: a wireless M-Bus frame starts with its L-field")
        }
        let l = Int(first)
        guard l >= minimumLength else {
            throw DecodeError(code: .invalidLength, offset: 0,
                              message: "L-field \(l) is too small: C, M and A alone take 9 bytes")
        }
        var frame: WMBusFrame
        switch format {
        case .a?: frame = try decodeA(bytes)
        case .b?: frame = try decodeB(bytes)
        case .noCRC?: frame = try decodeStripped(bytes)
        case nil:
            if bytes.count == formatALength(l: l), bytes.count != l + 1 {
                frame = try decodeA(bytes)
            } else if bytes.count == l + 1 {
                if l >= 11, let b = try? decodeB(bytes) { frame = b } else { frame = try decodeStripped(bytes) }
            } else if bytes.count < l + 1 {
                throw DecodeError(code: .truncatedFrame, offset: bytes.count,
                                  message: "L-field \(l) announces \(l + 1) bytes (without CRCs) or \(formatALength(l: l)) (format A), the input has \(bytes.count)")
            } else {
                throw DecodeError(code: .invalidLength, offset: l + 1,
                                  message: "L-field \(l) announces \(l + 1) bytes (without CRCs) or \(formatALength(l: l)) (format A), the input has \(bytes.count)")
            }
        }
        frame.linkMode = linkMode
        interpretAddress(&frame, bytes)
        return frame
    }

    static func header(_ bytes: [UInt8]) -> (WMBusControlField, WMBusAddress) {
        (WMBusControlField(rawValue: bytes[1]), WMBusAddress(bytes, at: 2))
    }

    /// Diehl group meters (DME, HYD, SAP) in some configurations send the A-field as version, device
    /// type, identification number. Recognised when the standard reading gives a reserved device type
    /// and Diehl's reading a defined one.
    static func interpretAddress(_ frame: inout WMBusFrame, _ bytes: [UInt8]) {
        frame.addressBytes = Array(bytes[2..<10])
        let m = frame.address.manufacturer.letters
        guard m == "DME" || m == "HYD" || m == "SAP" else { return }
        let standardType = DeviceType(rawValue: bytes[9])
        let diehlType = DeviceType(rawValue: bytes[5])
        guard standardType.name.hasPrefix("Reserved"), !diehlType.name.hasPrefix("Reserved") else { return }
        frame.address.version = bytes[4]
        frame.address.deviceType = diehlType
        frame.address.identification = IdentificationNumber(rawValue: UInt32(bytes[6]) | UInt32(bytes[7]) << 8
            | UInt32(bytes[8]) << 16 | UInt32(bytes[9]) << 24)
        frame.diehlAddressOrder = true
    }

    static func decodeStripped(_ bytes: [UInt8]) throws(DecodeError) -> WMBusFrame {
        let l = Int(bytes[0])
        guard bytes.count >= l + 1 else {
            throw DecodeError(code: .truncatedFrame, offset: bytes.count,
                              message: "L-field \(l) announces \(l + 1) bytes, the input has \(bytes.count)")
        }
        guard bytes.count == l + 1 else {
            throw DecodeError(code: .invalidLength, offset: l + 1,
                              message: "\(bytes.count - l - 1) bytes follow the \(l + 1) bytes the L-field announces")
        }
        let (c, a) = header(bytes)
        return WMBusFrame(format: .noCRC, control: c, address: a, payload: Array(bytes[10...]), payloadOffsets: [],
                          payloadStart: 10, linkMode: nil)
    }

    static func decodeA(_ bytes: [UInt8]) throws(DecodeError) -> WMBusFrame {
        let l = Int(bytes[0])
        let total = formatALength(l: l)
        guard bytes.count >= total else {
            throw DecodeError(code: .truncatedFrame, offset: bytes.count,
                              message: "format A frame with L-field \(l) has \(total) bytes, the input has \(bytes.count)")
        }
        guard bytes.count == total else {
            throw DecodeError(code: .invalidLength, offset: total, message: "\(bytes.count - total) bytes follow the format A frame")
        }
        try checkCRC(bytes, 0..<10, block: 1)
        var payload: [UInt8] = []
        var offsets: [Int] = []
        payload.reserveCapacity(l - 9)
        offsets.reserveCapacity(l - 9)
        var remaining = l - 9
        var i = 12
        var block = 2
        while remaining > 0 {
            let n = min(16, remaining)
            try checkCRC(bytes, i..<(i + n), block: block)
            payload.append(contentsOf: bytes[i..<(i + n)])
            offsets.append(contentsOf: i..<(i + n))
            i += n + 2
            remaining -= n
            block += 1
        }
        let (c, a) = header(bytes)
        return WMBusFrame(format: .a, control: c, address: a, payload: payload, payloadOffsets: offsets, payloadStart: 12, linkMode: nil)
    }

    static func decodeB(_ bytes: [UInt8]) throws(DecodeError) -> WMBusFrame {
        let l = Int(bytes[0])
        guard l >= 11 else {
            throw DecodeError(code: .invalidLength, offset: 0, message: "format B needs L of at least 11 (C, M, A and a CRC), it is \(l)")
        }
        guard bytes.count >= l + 1 else {
            throw DecodeError(code: .truncatedFrame, offset: bytes.count,
                              message: "format B frame with L-field \(l) has \(l + 1) bytes, the input has \(bytes.count)")
        }
        guard bytes.count == l + 1 else {
            throw DecodeError(code: .invalidLength, offset: l + 1, message: "\(bytes.count - l - 1) bytes follow the format B frame")
        }
        // Blocks 1 and 2 end at byte 126 at the latest; block 3 carries the rest and its own CRC.
        let end2 = min(l - 1, 126)
        try checkCRC(bytes, 0..<end2, block: 2)
        var payload = Array(bytes[10..<end2])
        var offsets = Array(10..<end2)
        if l - 1 > 126 {
            guard l - 1 >= 128 else {
                throw DecodeError(code: .invalidLength, offset: 0, message: "L-field \(l) leaves no room for format B block 3 and its CRC")
            }
            try checkCRC(bytes, 128..<(l - 1), block: 3)
            payload.append(contentsOf: bytes[128..<(l - 1)])
            offsets.append(contentsOf: 128..<(l - 1))
        }
        let (c, a) = header(bytes)
        return WMBusFrame(format: .b, control: c, address: a, payload: payload, payloadOffsets: offsets, payloadStart: 10, linkMode: nil)
    }

    /// Checks the CRC that follows `range` (big-endian on the air).
    static func checkCRC(_ bytes: [UInt8], _ range: Range<Int>, block: Int) throws(DecodeError) {
        let sent = UInt16(bytes[range.upperBound]) << 8 | UInt16(bytes[range.upperBound + 1])
        let computed = WMBusCRC.compute(bytes, range)
        guard sent == computed else {
            throw DecodeError(code: .crcMismatch, offset: range.upperBound,
                              message: "block \(block) CRC is \(hex16(sent)), the block's bytes give \(hex16(computed))")
        }
    }

    static func hex16(_ v: UInt16) -> String { Hex.encode([UInt8(v >> 8), UInt8(v & 0xFF)]) }

    /// Encodes a frame in format A or B with CRCs (for simulators and tests). `payload` starts at the CI.
    public static func encode(control: WMBusControlField, address: WMBusAddress, payload: [UInt8], format: WMBusFrameFormat) -> [UInt8] {
        let head = [control.rawValue] + address.wireBytes
        switch format {
        case .noCRC:
            return [UInt8(truncatingIfNeeded: 9 + payload.count)] + head + payload
        case .a:
            var out = [UInt8(truncatingIfNeeded: 9 + payload.count)] + head
            appendCRC(&out, from: 0)
            var i = 0
            while i < payload.count {
                let n = min(16, payload.count - i)
                let start = out.count
                out.append(contentsOf: payload[i..<(i + n)])
                appendCRC(&out, from: start)
                i += n
            }
            return out
        case .b:
            let crcs = 9 + payload.count + 2 > 127 ? 4 : 2
            var out = [UInt8(truncatingIfNeeded: 9 + payload.count + crcs)] + head
            let first = min(payload.count, 116)
            out.append(contentsOf: payload[0..<first])
            appendCRC(&out, from: 0)
            if first < payload.count {
                let start = out.count
                out.append(contentsOf: payload[first...])
                appendCRC(&out, from: start)
            }
            return out
        }
    }

    private static func appendCRC(_ out: inout [UInt8], from start: Int) {
        let crc = WMBusCRC.compute(out[start...])
        out.append(UInt8(crc >> 8))
        out.append(UInt8(crc & 0xFF))
    }
}
