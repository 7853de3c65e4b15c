/// The function field of a DIF (bits 5–4).
public enum RecordFunction: UInt8, Hashable, Sendable, CustomStringConvertible, CaseIterable {
    case instantaneous = 0
    case maximum = 1
    case minimum = 2
    case valueDuringError = 3

    /// By raw value (DIF bits 5–4), for the parser: an index instead of a failable init per record.
    static let all: [RecordFunction] = allCases.sorted { $0.rawValue < $1.rawValue }

    public var description: String {
        switch self {
        case .instantaneous: return "Instantaneous value"
        case .maximum: return "Maximum value"
        case .minimum: return "Minimum value"
        case .valueDuringError: return "Value during error state"
        }
    }

    /// Short, stable name for JSON.
    public var key: String {
        switch self {
        case .instantaneous: return "instantaneous"
        case .maximum: return "maximum"
        case .minimum: return "minimum"
        case .valueDuringError: return "error_state"
        }
    }
}

/// The data field of a DIF (bits 3–0): how many bytes follow and how to read them.
public enum DataField: UInt8, Hashable, Sendable, CaseIterable {
    case noData = 0x0
    case int8 = 0x1
    case int16 = 0x2
    case int24 = 0x3
    case int32 = 0x4
    case real32 = 0x5
    case int48 = 0x6
    case int64 = 0x7
    case selectionForReadout = 0x8
    case bcd2 = 0x9
    case bcd4 = 0xA
    case bcd6 = 0xB
    case bcd8 = 0xC
    case variableLength = 0xD
    case bcd12 = 0xE
    case special = 0xF

    /// By raw value (DIF bits 3–0), for the parser.
    static let all: [DataField] = allCases.sorted { $0.rawValue < $1.rawValue }

    /// Fixed size in bytes; nil for variable length and special functions.
    public var size: Int? {
        switch self {
        case .noData, .selectionForReadout: return 0
        case .int8, .bcd2: return 1
        case .int16, .bcd4: return 2
        case .int24, .bcd6: return 3
        case .int32, .real32, .bcd8: return 4
        case .int48, .bcd12: return 6
        case .int64: return 8
        case .variableLength, .special: return nil
        }
    }

    public var isBCD: Bool {
        switch self {
        case .bcd2, .bcd4, .bcd6, .bcd8, .bcd12: return true
        default: return false
        }
    }
}

/// Which value information table the record's VIF comes from.
public enum VIFCode: Hashable, Sendable {
    /// Primary table (VIF 00h–7Ah), code without the extension bit.
    case primary(UInt8)
    /// First extension table (VIF FBh), VIFE code without the extension bit.
    case extensionFB(UInt8)
    /// Second extension table (VIF FDh), VIFE code without the extension bit.
    case extensionFD(UInt8)
    /// Plain-text VIF (7Ch/FCh): the unit as text.
    case plainText(String)
    /// Manufacturer-specific VIF (7Fh/FFh).
    case manufacturerSpecific
    /// "Any VIF" (7Eh/FEh), used in readout requests.
    case any
}

/// A record's value as sent, before any scaling.
public enum RecordValue: Hashable, Sendable {
    /// Data field 0 or 8: the record carries no value.
    case none
    /// Binary integer (type B, two's complement).
    case integer(Int64)
    /// BCD integer (type A), negative when the top nibble is Fh.
    case bcd(Int64)
    /// BCD with digits above 9, as meters send for "no value" displays (e.g. "----"), with the digits
    /// as sent (most significant first) and the number libmbus reads from them, for comparison only.
    case invalidBCD(digits: String, lenient: Int64)
    /// IEEE 754 single precision (type H).
    case real(Double)
    /// Text from a variable-length field, already put back in reading order.
    case text(String)
    /// Binary data that is not a number: manufacturer data, long binary fields. Wire order.
    case bytes([UInt8])
    /// Date or date-and-time (types G, F, I, M). Inline: MBusDateTime is 12 bytes, smaller than the
    /// largest other payload, so it costs a record no size and no allocation.
    case dateTime(MBusDateTime)
    /// Time of day (type J), daylight-saving rule (K), listening window (L), rendered as text.
    case timeText(String)

    /// The value as a number, where it is one.
    public var number: Double? {
        switch self {
        case .integer(let v), .bcd(let v): return Double(v)
        case .real(let v): return v
        case .invalidBCD(_, let lenient): return Double(lenient)
        default: return nil
        }
    }
}

/// One data record (DIB + VIB + data) of an EN 13757-3 variable data structure.
public struct DataRecord: Hashable, Sendable {
    /// Offset of the DIF within the application data (after the CI field and header).
    public var offset: Int
    public var function: RecordFunction
    public var storageNumber: UInt64
    public var tariff: UInt32
    public var subunit: UInt16
    public var dataField: DataField
    public var vif: VIFCode
    /// Combinable VIFEs, as sent (with extension bits cleared), FCh escapes included.
    public var vifeCodes: VIFECodes
    public var value: RecordValue
    /// Set only where the VIF does not say what the value is: the fixed data structure (CI 73h/7Bh),
    /// whose unit field does (EN 1434-3, Table 5). `noFixedUnit` for every other record, whose descriptor
    /// follows from its VIF. A code, not a boxed descriptor: a reference in every record cost a release
    /// for every record destroyed.
    var fixedUnitCode: UInt8 = DataRecord.noFixedUnit
    static let noFixedUnit: UInt8 = 0xFF

    /// The fixed data structure's descriptor, for its two counters.
    var fixedDescriptor: ValueDescriptor? {
        fixedUnitCode == Self.noFixedUnit ? nil : FixedDataDecoder.unit(fixedUnitCode)
    }

    /// What the VIFEs add (corrections, record errors, annotations), read from `vifeCodes` on each walk.
    public var modifiers: VIFEModifiers {
        if case .manufacturerSpecific = vif { return vifeCodes.modifiers(manufacturerVIF: true) }
        return vifeCodes.modifiers(manufacturerVIF: false)
    }

    /// Quantity, unit and scale. Computed from the VIF on each use (a switch over constant text) rather
    /// than stored: a stored descriptor made every record carry three strings that each copy of a record
    /// retained and released, about a fifth of the wired decoder's time.
    public var descriptor: ValueDescriptor { fixedDescriptor ?? VIFTable.descriptor(for: vif) }

    /// The physical quantity, e.g. "Energy", "Volume flow", "Flow temperature".
    public var quantity: String { descriptor.quantity }
    /// The normalised unit of `normalizedValue`.
    public var unit: String { descriptor.unit }

    /// Raw unit as sent, with the VIF's power of ten: "kWh", "1e-2 m^3", "h", "1e-1 C".
    public var rawUnit: String {
        fixedDescriptor.map { Self.rawUnit($0) } ?? VIFTable.descriptorAndRawUnit(for: vif).rawUnit
    }

    static func rawUnit(_ d: ValueDescriptor) -> String { UnitText.scaled(d.rawUnit, exponent: d.exponent) }

    /// The value in the normalised unit: power of ten, unit factor, VIFE corrections applied.
    /// Nil for dates, text and binary data.
    public var normalizedValue: Double? { normalizedValue(descriptor) }

    /// `normalizedValue` with the descriptor already at hand.
    func normalizedValue(_ descriptor: ValueDescriptor) -> Double? {
        guard let raw = value.number else { return nil }
        var exponent = descriptor.exponent
        for m in modifiers {
            switch m {
            case .multiplicativeCorrection(let e), .additiveCorrection(let e): exponent += e
            default: break
            }
        }
        // Divide for negative exponents: 204 / 10 is 20.4, while 204 * 0.1 is 20.400000000000002.
        let scaled = exponent >= 0 ? raw * power10(exponent) : raw / power10(-exponent)
        if descriptor.factor == 1 && descriptor.offset == 0 { return scaled }
        return scaled * descriptor.factor + descriptor.offset
    }

    /// False when the value cannot be trusted as a reading: BCD with non-decimal digits, or a record
    /// error VIFE. The number is still given (as libmbus gives it) so nothing is hidden.
    public var isValid: Bool {
        if case .invalidBCD = value { return false }
        if case .dateTime(let t) = value, t.isInvalid { return false }
        return recordError == nil
    }

    /// Why the value is not valid, in words, or nil.
    public var problem: String? {
        if case .invalidBCD(let digits, _) = value {
            return "BCD value \(digits) has non-decimal digits: the meter signals that it has no valid value"
        }
        if case .dateTime(let t) = value, t.isInvalid {
            return "the meter marks this time as invalid (IV bit): its clock is probably not set"
        }
        return recordError.map(VIFTable.recordErrorText)
    }

    /// The meter flagged this record with an error code in a VIFE.
    public var recordError: UInt8? {
        for m in modifiers { if case .recordError(let c) = m { return c } }
        return nil
    }

    /// Human text for the VIFE annotations ("per hour", "upper limit value", …).
    public var annotations: [String] {
        modifiers.compactMap {
            switch $0 {
            case .annotation(let s): return s
            case .recordError(let c): return VIFTable.recordErrorText(c)
            case .manufacturerSpecific: return "manufacturer-specific VIFE"
            case .multiplicativeCorrection(let e): return "multiplicative correction 1e\(e)"
            case .additiveCorrection(let e): return "additive correction constant 1e\(e)"
            }
        }
    }
}

private let powersOfTen: [Double] = (0...40).map { e in
    var v = 1.0
    for _ in 0..<e { v *= 10 }
    return v
}

/// Exact powers of ten (up to 1e22 a Double holds them exactly) for non-negative exponents.
@inline(__always) func power10(_ e: Int) -> Double {
    if e <= 40 { return powersOfTen[e] }
    var v = powersOfTen[40]
    for _ in 40..<e { v *= 10 }
    return v
}

enum UnitText {
    static func isPrefixable(_ unit: String) -> Bool {
        switch unit {
        case "Wh", "J", "W", "V", "A", "varh", "var", "VA", "Hz": return true
        default: return false
        }
    }

    /// Unit with a power of ten, the way a technician writes it: "kWh", "l", "1e-2 m^3".
    static func scaled(_ unit: String, exponent: Int) -> String {
        if exponent == 0 { return unit }
        if unit == "m^3" {
            if exponent == -3 { return "l" }
            if exponent == -6 { return "ml" }
        }
        if unit == "kg" {
            if exponent == -3 { return "g" }
            if exponent == 3 { return "t" }
        }
        if isPrefixable(unit) {
            switch exponent {
            case -3: return "m" + unit
            case 3: return "k" + unit
            case 6: return "M" + unit
            case 9: return "G" + unit
            default: break
            }
        }
        return unit.isEmpty ? "1e\(exponent)" : "1e\(exponent) " + unit
    }
}
