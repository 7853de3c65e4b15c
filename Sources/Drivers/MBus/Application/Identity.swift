/// A manufacturer's FLAG association code: three letters packed into 15 bits (EN 13757-3, 6.3.3).
public struct ManufacturerCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Packs a three-letter code such as "KAM". Returns nil unless it is three letters A–Z (or '@').
    public init?(_ letters: String) {
        let u = Array(letters.utf8)
        guard u.count == 3 else { return nil }
        var raw: UInt16 = 0
        for c in u {
            let upper = c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") ? c - 32 : c
            guard upper >= 64, upper <= 90 else { return nil }
            raw = raw << 5 | UInt16(upper - 64)
        }
        rawValue = raw
    }

    /// The three letters. Codes outside A–Z (bit 15 set, or a letter value above 26) still print,
    /// so a technician sees what the meter sent.
    public var letters: String {
        let a = UInt8((rawValue >> 10) & 0x1F) + 64
        let b = UInt8((rawValue >> 5) & 0x1F) + 64
        let c = UInt8(rawValue & 0x1F) + 64
        return String(decoding: [a, b, c], as: UTF8.self)
    }

    /// True when all three letters are A–Z and bit 15 is clear, as the FLAG association assigns them.
    public var isValidFlagCode: Bool {
        guard rawValue & 0x8000 == 0 else { return false }
        for shift in [10, 5, 0] as [UInt16] {
            let v = (rawValue >> shift) & 0x1F
            if v < 1 || v > 26 { return false }
        }
        return true
    }

    public var description: String { letters }
}

/// The 8-digit identification number (serial) of a meter, sent as 4 BCD bytes, least significant first.
public struct IdentificationNumber: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The BCD digits as they are on the wire, e.g. 0x12345678 for "12345678".
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public init?(_ digits: String) {
        let u = Array(digits.utf8)
        guard u.count == 8 else { return nil }
        var raw: UInt32 = 0
        for c in u {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            raw = raw << 4 | UInt32(c - UInt8(ascii: "0"))
        }
        rawValue = raw
    }

    /// Eight characters; a nibble above 9 prints as a hex digit so a broken serial stays visible.
    public var digits: String {
        var out = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 {
            let nibble = UInt8((rawValue >> (28 - 4 * UInt32(i))) & 0xF)
            out[i] = nibble < 10 ? nibble + 48 : nibble + 55
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// True when every nibble is a decimal digit.
    public var isValidBCD: Bool {
        var v = rawValue
        for _ in 0..<8 {
            if v & 0xF > 9 { return false }
            v >>= 4
        }
        return true
    }

    public var description: String { digits }
}

/// Device type (medium) from the header (EN 13757-3:2018, Table 12; EN 13757-7 for 3xh).
public struct DeviceType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let other = DeviceType(rawValue: 0x00)
    public static let electricity = DeviceType(rawValue: 0x02)
    public static let gas = DeviceType(rawValue: 0x03)
    public static let heatOutlet = DeviceType(rawValue: 0x04)
    public static let warmWater = DeviceType(rawValue: 0x06)
    public static let water = DeviceType(rawValue: 0x07)
    public static let heatCostAllocator = DeviceType(rawValue: 0x08)
    public static let heatInlet = DeviceType(rawValue: 0x0C)
    public static let coldWater = DeviceType(rawValue: 0x16)

    /// The name a technician knows the device by.
    public var name: String {
        switch rawValue {
        case 0x00: return "Other"
        case 0x01: return "Oil"
        case 0x02: return "Electricity"
        case 0x03: return "Gas"
        case 0x04: return "Heat: Outlet"
        case 0x05: return "Steam"
        case 0x06: return "Warm water (30-90°C)"
        case 0x07: return "Water"
        case 0x08: return "Heat Cost Allocator"
        case 0x09: return "Compressed Air"
        case 0x0A: return "Cooling load meter: Outlet"
        case 0x0B: return "Cooling load meter: Inlet"
        case 0x0C: return "Heat: Inlet"
        case 0x0D: return "Heat / Cooling load meter"
        case 0x0E: return "Bus/System"
        case 0x0F: return "Unknown Medium"
        case 0x10: return "Irrigation water"
        case 0x11: return "Water data logger"
        case 0x12: return "Gas data logger"
        case 0x13: return "Gas converter"
        case 0x14: return "Calorific value"
        case 0x15: return "Hot water (>=90°C)"
        case 0x16: return "Cold water"
        case 0x17: return "Hot/Cold water"
        case 0x18: return "Pressure"
        case 0x19: return "A/D Converter"
        case 0x1A: return "Smoke detector"
        case 0x1B: return "Room sensor"
        case 0x1C: return "Gas detector"
        case 0x1D: return "Sensor"
        case 0x20: return "Breaker: Electricity"
        case 0x21: return "Valve: Gas or Water"
        case 0x22, 0x23, 0x24: return "Switching device"
        case 0x25: return "Customer unit (display)"
        case 0x28: return "Waste water"
        case 0x29: return "Garbage"
        case 0x2A: return "Carbon dioxide"
        case 0x2B: return "Environmental meter"
        case 0x30: return "Service tool"
        case 0x31: return "Communication controller"
        case 0x32: return "Unidirectional repeater"
        case 0x33: return "Bidirectional repeater"
        case 0x36: return "Radio converter (system side)"
        case 0x37: return "Radio converter (meter side)"
        case 0x38: return "Bus converter (meter side)"
        case 0xFF: return "Wildcard"
        default: return "Reserved (" + Hex.encode([rawValue]) + ")"
        }
    }

    public var description: String { name }
}

/// A secondary address pattern for selection: identification digits (F = any digit), manufacturer,
/// version and device type (FFh/FFFFh = any), as sent with CI 52h.
public struct SecondaryAddressMask: Hashable, Sendable, CustomStringConvertible {
    /// The identification number with wildcards: nibble Fh matches any digit.
    public var identification: UInt32
    public var manufacturer: UInt16
    public var version: UInt8
    public var deviceType: UInt8

    public init(identification: UInt32 = 0xFFFF_FFFF, manufacturer: UInt16 = 0xFFFF, version: UInt8 = 0xFF, deviceType: UInt8 = 0xFF) {
        self.identification = identification
        self.manufacturer = manufacturer
        self.version = version
        self.deviceType = deviceType
    }

    /// Parses the 16-character form libmbus and technicians use: 8 id digits (F wildcard),
    /// then manufacturer (4 hex), version (2 hex) and device type (2 hex), e.g. "12345678FFFFFFFF".
    public init?(_ text: String) {
        let u = Array(text.utf8)
        guard u.count == 16 else { return nil }
        guard let bytes = try? Hex.decode(text), bytes.count == 8 else { return nil }
        for b in bytes[0..<4] where b & 0xF > 9 && b & 0xF != 0xF || b >> 4 > 9 && b >> 4 != 0xF { return nil }
        identification = UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])
        manufacturer = UInt16(bytes[4]) << 8 | UInt16(bytes[5])
        version = bytes[6]
        deviceType = bytes[7]
    }

    /// Exactly one meter.
    public init(identification: IdentificationNumber, manufacturer: ManufacturerCode?, version: UInt8?, deviceType: DeviceType?) {
        self.init(identification: identification.rawValue, manufacturer: manufacturer?.rawValue ?? 0xFFFF,
                  version: version ?? 0xFF, deviceType: deviceType?.rawValue ?? 0xFF)
    }

    /// The 8 bytes after CI 52h, multi-byte fields least significant first.
    public var encoded: [UInt8] {
        [UInt8(truncatingIfNeeded: identification), UInt8(truncatingIfNeeded: identification >> 8),
         UInt8(truncatingIfNeeded: identification >> 16), UInt8(truncatingIfNeeded: identification >> 24),
         UInt8(truncatingIfNeeded: manufacturer), UInt8(truncatingIfNeeded: manufacturer >> 8),
         version, deviceType]
    }

    public var description: String {
        IdentificationNumber(rawValue: identification).digits
            + Hex.encode([UInt8(manufacturer >> 8), UInt8(manufacturer & 0xFF), version, deviceType])
    }
}
