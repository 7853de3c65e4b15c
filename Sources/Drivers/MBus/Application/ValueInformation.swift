/// How the data of a record is to be read, as far as the VIF decides it.
public enum ValueKind: UInt8, Hashable, Sendable {
    /// A number with a unit.
    case numeric
    /// A date (type G).
    case date
    /// A date and time (type F, I, or M in variable length).
    case dateTime
    /// A time of day (type J).
    case timeOfDay
    /// Daylight-saving rule (type K).
    case daylightSaving
    /// Listening window management (type L).
    case listeningWindow
    /// An identifier or code printed as a number (fabrication number, bus address, versions).
    case identifier
    /// Bit flags (error flags, digital inputs).
    case flags
}

/// What a VIF (with its extension table) says a value is: quantity, unit and scale.
///
/// `unit` is the normalised unit the value is converted to; `rawUnit` is the unit as sent
/// (before the power of ten), e.g. VIF 06h is quantity "Energy", raw unit "Wh", exponent 3.
public struct ValueDescriptor: Hashable, Sendable {
    public var quantity: String
    /// Normalised unit symbol: "Wh", "J", "m^3", "kg", "s", "W", "m^3/h", "kg/h", "C", "K", "bar", "V", "A", …
    public var unit: String
    /// Unit of the raw value before the power of ten ("Wh", "h", "m^3/min", "F", …).
    public var rawUnit: String
    /// Power of ten the VIF applies to the raw value.
    public var exponent: Int
    /// Factor from `rawUnit` to `unit` (hours to seconds: 3600).
    public var factor: Double
    /// Added after scaling, for unit conversions with an offset (°F to °C).
    public var offset: Double
    public var kind: ValueKind

    init(_ quantity: String, _ unit: String, exponent: Int = 0, rawUnit: String? = nil,
         factor: Double = 1, offset: Double = 0, kind: ValueKind = .numeric) {
        self.quantity = quantity
        self.unit = unit
        self.rawUnit = rawUnit ?? unit
        self.exponent = exponent
        self.factor = factor
        self.offset = offset
        self.kind = kind
    }

    static func reserved(_ table: String, _ code: UInt8) -> ValueDescriptor {
        ValueDescriptor("Reserved", "", rawUnit: "reserved VIF " + (table.isEmpty ? "" : table + " ") + Hex.encode([code]))
    }
}

/// The VIF code tables of EN 13757-3:2018: primary (Table 10), FBh (Table 14), FDh (Table 13),
/// combinable VIFE (Table 15) and its FCh extension (Table 16).
public enum VIFTable {
    static let timeUnits = ["s", "min", "h", "d"]
    static let timeFactors: [Double] = [1, 60, 3600, 86400]
    /// Durations counted in hours, days, months, years (FDh 68h–6Fh).
    static let longTimeUnits = ["h", "d", "month", "a"]
    static let longTimeFactors: [Double] = [3600, 86400, 1, 1]

    @inline(__always) static func time(_ quantity: String, _ nn: UInt8) -> ValueDescriptor {
        let i = Int(nn & 3)
        return ValueDescriptor(quantity, "s", rawUnit: timeUnits[i], factor: timeFactors[i])
    }

    @inline(__always) static func longTime(_ quantity: String, _ pp: UInt8) -> ValueDescriptor {
        let i = Int(pp & 3)
        // Months and years have no fixed length in seconds; they stay in their own unit.
        return ValueDescriptor(quantity, i < 2 ? "s" : longTimeUnits[i], rawUnit: longTimeUnits[i],
                               factor: longTimeFactors[i])
    }

    /// What a record's VIF says its value is. The fixed data structure's counters are the one exception
    /// (their unit field says it; see `DataRecord`).
    public static func descriptor(for vif: VIFCode) -> ValueDescriptor {
        if let i = tableIndex(vif) { return tabled[i].descriptor }
        switch vif {
        case .primary(let c): return primary(c)
        case .extensionFB(let c): return extensionFB(c)
        case .extensionFD(let c): return extensionFD(c)
        case .plainText(let text): return ValueDescriptor("Plain text", text)
        case .manufacturerSpecific: return ValueDescriptor("Manufacturer specific", "")
        case .any: return ValueDescriptor("Any VIF", "")
        }
    }

    static let extensionFBBase = 0x80, extensionFDBase = 0x100

    /// The descriptor and raw-unit text ("kWh", "1e-2 m^3") of a VIF together, as the JSON writer needs them.
    /// `plain` says that the three texts need no JSON escaping (true of every table entry; a plain-text
    /// VIF's unit is the meter's text and is escaped).
    static func descriptorAndRawUnit(for vif: VIFCode) -> (descriptor: ValueDescriptor, rawUnit: String, plain: Bool) {
        if let i = tableIndex(vif) { return tabled[i] }
        let d = descriptor(for: vif)
        return (d, DataRecord.rawUnit(d), false)
    }

    /// Where a table VIF's entry is in `tabled` and `kinds`: primary codes first, then FBh, then FDh.
    @inline(__always) static func tableIndex(_ vif: VIFCode) -> Int? {
        switch vif {
        case .primary(let c): return c < 0x80 ? Int(c) : nil
        case .extensionFB(let c): return c < 0x80 ? extensionFBBase + Int(c) : nil
        case .extensionFD(let c): return c < 0x80 ? extensionFDBase + Int(c) : nil
        default: return nil
        }
    }

    /// The three tables' descriptors with their raw-unit text, built once from the table functions: every
    /// record of every telegram asks for one, and building it (with "reserved VIF FB 7F" texts on the heap
    /// and the unit's prefix picked by string comparison) was about 5 % of `decode --json`.
    static let tabled: [(descriptor: ValueDescriptor, rawUnit: String, plain: Bool)] =
        ((0..<128).map { primary(UInt8($0)) } + (0..<128).map { extensionFB(UInt8($0)) } + (0..<128).map { extensionFD(UInt8($0)) })
            .map { d in
                let rawUnit = DataRecord.rawUnit(d)
                return (d, rawUnit, [d.quantity, d.unit, rawUnit].allSatisfy(JSONByteSink.needsNoEscaping))
            }

    /// The value kind of each table entry (indexed like `tabled`), so the parser learns how to read a
    /// value with an array lookup instead of building a descriptor per record.
    static let kinds: [ValueKind] = tabled.map(\.descriptor.kind)

    /// Primary VIF, code without the extension bit (00h–7Ah; 7Bh–7Fh are handled by the parser).
    public static func primary(_ code: UInt8) -> ValueDescriptor {
        let n = Int(code & 0x07)
        let nn = Int(code & 0x03)
        switch code {
        case 0x00...0x07: return ValueDescriptor("Energy", "Wh", exponent: n - 3)
        case 0x08...0x0F: return ValueDescriptor("Energy", "J", exponent: n)
        case 0x10...0x17: return ValueDescriptor("Volume", "m^3", exponent: n - 6)
        case 0x18...0x1F: return ValueDescriptor("Mass", "kg", exponent: n - 3)
        case 0x20...0x23: return time("On time", code)
        case 0x24...0x27: return time("Operating time", code)
        case 0x28...0x2F: return ValueDescriptor("Power", "W", exponent: n - 3)
        // J/h is converted to W so that all power readings share one unit.
        case 0x30...0x37: return ValueDescriptor("Power", "W", exponent: n, rawUnit: "J/h", factor: 1.0 / 3600)
        case 0x38...0x3F: return ValueDescriptor("Volume flow", "m^3/h", exponent: n - 6)
        case 0x40...0x47: return ValueDescriptor("Volume flow", "m^3/h", exponent: n - 7, rawUnit: "m^3/min", factor: 60)
        case 0x48...0x4F: return ValueDescriptor("Volume flow", "m^3/h", exponent: n - 9, rawUnit: "m^3/s", factor: 3600)
        case 0x50...0x57: return ValueDescriptor("Mass flow", "kg/h", exponent: n - 3)
        case 0x58...0x5B: return ValueDescriptor("Flow temperature", "C", exponent: nn - 3)
        case 0x5C...0x5F: return ValueDescriptor("Return temperature", "C", exponent: nn - 3)
        case 0x60...0x63: return ValueDescriptor("Temperature difference", "K", exponent: nn - 3)
        case 0x64...0x67: return ValueDescriptor("External temperature", "C", exponent: nn - 3)
        case 0x68...0x6B: return ValueDescriptor("Pressure", "bar", exponent: nn - 3)
        case 0x6C: return ValueDescriptor("Time point (date)", "", kind: .date)
        case 0x6D: return ValueDescriptor("Time point (date & time)", "", kind: .dateTime)
        case 0x6E: return ValueDescriptor("H.C.A.", "", rawUnit: "HCA units")
        case 0x6F: return ValueDescriptor("Reserved", "")
        case 0x70...0x73: return time("Averaging Duration", code)
        case 0x74...0x77: return time("Actuality Duration", code)
        case 0x78: return ValueDescriptor("Fabrication No", "", kind: .identifier)
        case 0x79: return ValueDescriptor("(Enhanced) Identification", "", kind: .identifier)
        case 0x7A: return ValueDescriptor("Bus Address", "", kind: .identifier)
        default: return .reserved("", code)
        }
    }

    /// First extension table, VIF FBh. `code` is the VIFE without its extension bit.
    public static func extensionFB(_ code: UInt8) -> ValueDescriptor {
        let n = Int(code & 0x01)
        let nn = Int(code & 0x03)
        let nnn = Int(code & 0x07)
        switch code {
        case 0x00...0x01: return ValueDescriptor("Energy", "Wh", exponent: n + 5, rawUnit: "Wh")          // 10^(n-1) MWh
        case 0x02...0x03: return ValueDescriptor("Reactive energy", "varh", exponent: n + 5)              // 10^(n-1) Mvarh
        case 0x08...0x09: return ValueDescriptor("Energy", "J", exponent: n + 8)                          // 10^(n-1) GJ
        case 0x0C...0x0F: return ValueDescriptor("Energy", "J", exponent: nn + 5, rawUnit: "cal", factor: 4.184) // 10^(nn-1) Mcal
        case 0x10...0x11: return ValueDescriptor("Volume", "m^3", exponent: n + 2)
        case 0x14...0x17: return ValueDescriptor("Reactive power", "var", exponent: nn)                    // 10^(nn-3) kvar
        case 0x18...0x19: return ValueDescriptor("Mass", "kg", exponent: n + 5, rawUnit: "kg")             // 10^(n+2) t
        case 0x1A...0x1B: return ValueDescriptor("Relative humidity", "%", exponent: n - 1)
        case 0x20: return ValueDescriptor("Volume", "m^3", rawUnit: "ft^3", factor: 0.028316846592)
        case 0x21: return ValueDescriptor("Volume", "m^3", exponent: -1, rawUnit: "ft^3", factor: 0.028316846592)
        case 0x22: return ValueDescriptor("Volume", "m^3", exponent: -1, rawUnit: "US gal", factor: 0.003785411784)
        case 0x23: return ValueDescriptor("Volume", "m^3", rawUnit: "US gal", factor: 0.003785411784)
        case 0x24: return ValueDescriptor("Volume flow", "m^3/h", exponent: -3, rawUnit: "US gal/min", factor: 0.003785411784 * 60)
        case 0x25: return ValueDescriptor("Volume flow", "m^3/h", rawUnit: "US gal/min", factor: 0.003785411784 * 60)
        case 0x26: return ValueDescriptor("Volume flow", "m^3/h", rawUnit: "US gal/h", factor: 0.003785411784)
        case 0x28...0x29: return ValueDescriptor("Power", "W", exponent: n + 5)                             // 10^(n-1) MW
        case 0x2A: return ValueDescriptor("Phase U-U", "deg", exponent: -1)
        case 0x2B: return ValueDescriptor("Phase U-I", "deg", exponent: -1)
        case 0x2C...0x2F: return ValueDescriptor("Frequency", "Hz", exponent: nn - 3)
        case 0x30...0x31: return ValueDescriptor("Power", "W", exponent: n + 8, rawUnit: "J/h", factor: 1.0 / 3600) // 10^(n-1) GJ/h
        case 0x34...0x37: return ValueDescriptor("Apparent power", "VA", exponent: nn)                     // 10^(nn-3) kVA
        // Fahrenheit is converted to Celsius (differences to kelvin) so one unit serves every meter.
        case 0x58...0x5B: return ValueDescriptor("Flow temperature", "C", exponent: nn - 3, rawUnit: "F", factor: 5.0 / 9, offset: -160.0 / 9)
        case 0x5C...0x5F: return ValueDescriptor("Return temperature", "C", exponent: nn - 3, rawUnit: "F", factor: 5.0 / 9, offset: -160.0 / 9)
        case 0x60...0x63: return ValueDescriptor("Temperature difference", "K", exponent: nn - 3, rawUnit: "F", factor: 5.0 / 9)
        case 0x64...0x67: return ValueDescriptor("External temperature", "C", exponent: nn - 3, rawUnit: "F", factor: 5.0 / 9, offset: -160.0 / 9)
        case 0x70...0x73: return ValueDescriptor("Cold / Warm Temperature Limit", "C", exponent: nn - 3, rawUnit: "F", factor: 5.0 / 9, offset: -160.0 / 9)
        case 0x74...0x77: return ValueDescriptor("Cold / Warm Temperature Limit", "C", exponent: nn - 3)
        case 0x78...0x7F: return ValueDescriptor("Cumulative count max power", "W", exponent: nnn - 3)
        default: return .reserved("FB", code)
        }
    }

    /// Second extension table, VIF FDh. `code` is the VIFE without its extension bit.
    public static func extensionFD(_ code: UInt8) -> ValueDescriptor {
        let nn = Int(code & 0x03)
        switch code {
        case 0x00...0x03: return ValueDescriptor("Credit", "", exponent: nn - 3, rawUnit: "currency units")
        case 0x04...0x07: return ValueDescriptor("Debit", "", exponent: nn - 3, rawUnit: "currency units")
        case 0x08: return ValueDescriptor("Access Number (transmission count)", "", kind: .identifier)
        case 0x09: return ValueDescriptor("Medium", "", kind: .identifier)
        case 0x0A: return ValueDescriptor("Manufacturer", "", kind: .identifier)
        case 0x0B: return ValueDescriptor("Parameter set identification", "", kind: .identifier)
        case 0x0C: return ValueDescriptor("Model / Version", "", kind: .identifier)
        case 0x0D: return ValueDescriptor("Hardware version", "", kind: .identifier)
        case 0x0E: return ValueDescriptor("Firmware version", "", kind: .identifier)
        case 0x0F: return ValueDescriptor("Software version", "", kind: .identifier)
        case 0x10: return ValueDescriptor("Customer location", "", kind: .identifier)
        case 0x11: return ValueDescriptor("Customer", "", kind: .identifier)
        case 0x12: return ValueDescriptor("Access Code User", "", kind: .identifier)
        case 0x13: return ValueDescriptor("Access Code Operator", "", kind: .identifier)
        case 0x14: return ValueDescriptor("Access Code System Operator", "", kind: .identifier)
        case 0x15: return ValueDescriptor("Access Code Developer", "", kind: .identifier)
        case 0x16: return ValueDescriptor("Password", "", kind: .identifier)
        case 0x17: return ValueDescriptor("Error flags", "", kind: .flags)
        case 0x18: return ValueDescriptor("Error mask", "", kind: .flags)
        case 0x19: return ValueDescriptor("Security key", "", kind: .identifier)
        case 0x1A: return ValueDescriptor("Digital Output", "", kind: .flags)
        case 0x1B: return ValueDescriptor("Digital Input", "", kind: .flags)
        case 0x1C: return ValueDescriptor("Baudrate", "Bd")
        case 0x1D: return ValueDescriptor("Response delay time", "bit times")
        case 0x1E: return ValueDescriptor("Retry", "")
        case 0x1F: return ValueDescriptor("Remote control", "", kind: .flags)
        case 0x20: return ValueDescriptor("First storage # for cyclic storage", "")
        case 0x21: return ValueDescriptor("Last storage # for cyclic storage", "")
        case 0x22: return ValueDescriptor("Size of storage block", "")
        case 0x23: return ValueDescriptor("Descriptor for tariff and subunit", "", kind: .identifier)
        case 0x24...0x27: return time("Storage interval", code)
        case 0x28: return ValueDescriptor("Storage interval", "month")
        case 0x29: return ValueDescriptor("Storage interval", "a")
        case 0x2A: return ValueDescriptor("Operator specific data", "", kind: .identifier)
        case 0x2B: return ValueDescriptor("Time point second", "s")
        case 0x2C...0x2F: return time("Duration since last readout", code)
        case 0x30: return ValueDescriptor("Start (date/time) of tariff", "", kind: .dateTime)
        case 0x31...0x33: return time("Duration of tariff", code)
        case 0x34...0x37: return time("Period of tariff", code)
        case 0x38: return ValueDescriptor("Period of tariff", "month")
        case 0x39: return ValueDescriptor("Period of tariff", "a")
        case 0x3A: return ValueDescriptor("Dimensionless", "")
        case 0x3B: return ValueDescriptor("Data container for wireless M-Bus protocol", "", kind: .identifier)
        case 0x40...0x4F: return ValueDescriptor("Voltage", "V", exponent: Int(code & 0x0F) - 9)
        case 0x50...0x5F: return ValueDescriptor("Current", "A", exponent: Int(code & 0x0F) - 12)
        case 0x60: return ValueDescriptor("Reset counter", "")
        case 0x61: return ValueDescriptor("Cumulation counter", "")
        case 0x62: return ValueDescriptor("Control signal", "", kind: .flags)
        case 0x63: return ValueDescriptor("Day of week", "")
        case 0x64: return ValueDescriptor("Week number", "")
        case 0x65: return ValueDescriptor("Time point of day change", "", kind: .identifier)
        case 0x66: return ValueDescriptor("State of parameter activation", "", kind: .flags)
        case 0x67: return ValueDescriptor("Special supplier information", "", kind: .identifier)
        case 0x68...0x6B: return longTime("Duration since last cumulation", code)
        case 0x6C...0x6F: return longTime("Operating time battery", code)
        case 0x70: return ValueDescriptor("Date and time of battery change", "", kind: .dateTime)
        case 0x71: return ValueDescriptor("RF level", "dBm")
        case 0x72: return ValueDescriptor("Daylight saving", "", kind: .daylightSaving)
        case 0x73: return ValueDescriptor("Listening window management", "", kind: .listeningWindow)
        case 0x74: return ValueDescriptor("Remaining battery life time", "s", rawUnit: "d", factor: 86400)
        case 0x75: return ValueDescriptor("Number of times the meter was stopped", "")
        case 0x76: return ValueDescriptor("Data container for manufacturer specific protocol", "", kind: .identifier)
        default: return .reserved("FD", code)
        }
    }
}

/// What one combinable (orthogonal) VIFE adds to a value (EN 13757-3:2018 Table 15 and 16).
public enum VIFEModifier: Hashable, Sendable {
    /// Scales the value by 10^n (E111 0nnn: 10^(nnn-6); 7Dh: 10^3).
    case multiplicativeCorrection(exponent: Int)
    /// Adds 10^(nn-3) units of the VIF (E111 10nn).
    case additiveCorrection(exponent: Int)
    /// Record error reported by the meter for this record (E001 0101 … E001 1100).
    case recordError(UInt8)
    /// Any other annotation; the text names it ("per hour", "upper limit value", "at phase L1", …).
    case annotation(String)
    /// E111 1111: manufacturer-specific VIFEs follow.
    case manufacturerSpecific
}

extension VIFTable {
    /// Combinable VIFE, code without the extension bit. `7Ch` (FC table escape) is handled by the parser.
    public static func combinable(_ code: UInt8) -> VIFEModifier {
        switch code {
        case 0x12: return .annotation("average value")
        case 0x13: return .annotation("inverse compact profile")
        case 0x14: return .annotation("relative deviation")
        case 0x15...0x1C: return .recordError(code)
        case 0x1D: return .annotation("standard conformant data content")
        case 0x1E: return .annotation("compact profile with register numbers")
        case 0x1F: return .annotation("compact profile")
        case 0x20: return .annotation("per second")
        case 0x21: return .annotation("per minute")
        case 0x22: return .annotation("per hour")
        case 0x23: return .annotation("per day")
        case 0x24: return .annotation("per week")
        case 0x25: return .annotation("per month")
        case 0x26: return .annotation("per year")
        case 0x27: return .annotation("per revolution / measurement")
        case 0x28: return .annotation("increment per input pulse on input channel 0")
        case 0x29: return .annotation("increment per input pulse on input channel 1")
        case 0x2A: return .annotation("increment per output pulse on output channel 0")
        case 0x2B: return .annotation("increment per output pulse on output channel 1")
        case 0x2C: return .annotation("per litre")
        case 0x2D: return .annotation("per m^3")
        case 0x2E: return .annotation("per kg")
        case 0x2F: return .annotation("per K")
        case 0x30: return .annotation("per kWh")
        case 0x31: return .annotation("per GJ")
        case 0x32: return .annotation("per kW")
        case 0x33: return .annotation("per (K*l)")
        case 0x34: return .annotation("per V")
        case 0x35: return .annotation("per A")
        case 0x36: return .annotation("multiplied by s")
        case 0x37: return .annotation("multiplied by s/V")
        case 0x38: return .annotation("multiplied by s/A")
        case 0x39: return .annotation("start date(/time) of")
        case 0x3A: return .annotation("uncorrected unit (at metering conditions)")
        case 0x3B: return .annotation("accumulation only if positive contributions (forward flow)")
        case 0x3C: return .annotation("accumulation of abs value only if negative contributions (backward flow)")
        case 0x3D: return .annotation("alternate non-metric unit system")
        case 0x3E: return .annotation("value at base conditions")
        case 0x3F: return .annotation("OBIS declaration")
        case 0x40: return .annotation("lower limit value")
        case 0x48: return .annotation("upper limit value")
        case 0x41: return .annotation("number of exceeds of lower limit")
        case 0x49: return .annotation("number of exceeds of upper limit")
        case 0x42, 0x43, 0x46, 0x47, 0x4A, 0x4B, 0x4E, 0x4F:
            let limit = code & 0x08 != 0 ? "upper" : "lower"
            let which = code & 0x04 != 0 ? "last" : "first"
            let edge = code & 0x01 != 0 ? "end" : "begin"
            return .annotation("date (/time) of \(edge) of \(which) \(limit) limit exceed")
        case 0x50...0x5F:
            let limit = code & 0x08 != 0 ? "upper" : "lower"
            let which = code & 0x04 != 0 ? "last" : "first"
            return .annotation("duration of \(which) \(limit) limit exceed (\(timeUnits[Int(code & 3)]))")
        case 0x60...0x67:
            let which = code & 0x04 != 0 ? "last" : "first"
            return .annotation("duration of \(which) (\(timeUnits[Int(code & 3)]))")
        case 0x68: return .annotation("value during lower limit exceed")
        case 0x6C: return .annotation("value during upper limit exceed")
        case 0x69: return .annotation("leakage values")
        case 0x6D: return .annotation("overflow values")
        case 0x6A, 0x6B, 0x6E, 0x6F:
            let which = code & 0x04 != 0 ? "last" : "first"
            let edge = code & 0x01 != 0 ? "end" : "begin"
            return .annotation("date (/time) of \(edge) of \(which)")
        case 0x70...0x77: return .multiplicativeCorrection(exponent: Int(code & 0x07) - 6)
        case 0x78...0x7B: return .additiveCorrection(exponent: Int(code & 0x03) - 3)
        case 0x7D: return .multiplicativeCorrection(exponent: 3)
        case 0x7E: return .annotation("future value")
        case 0x7F: return .manufacturerSpecific
        default: return .annotation("reserved VIFE " + Hex.encode([code]))
        }
    }

    /// Second-level combinable extension, after VIFE FCh.
    public static func combinableFC(_ code: UInt8) -> VIFEModifier {
        switch code {
        case 0x01: return .annotation("at phase L1")
        case 0x02: return .annotation("at phase L2")
        case 0x03: return .annotation("at phase L3")
        case 0x04: return .annotation("at neutral (N)")
        case 0x05: return .annotation("between phase L1 and L2")
        case 0x06: return .annotation("between phase L2 and L3")
        case 0x07: return .annotation("between phase L3 and L1")
        case 0x08: return .annotation("at quadrant Q1")
        case 0x09: return .annotation("at quadrant Q2")
        case 0x0A: return .annotation("at quadrant Q3")
        case 0x0B: return .annotation("at quadrant Q4")
        case 0x0C: return .annotation("delta between import and export")
        case 0x10: return .annotation("accumulation of absolute value for both positive and negative contribution")
        case 0x11: return .annotation("data presented with type C")
        case 0x12: return .annotation("data presented with type D")
        case 0x13: return .annotation("direction: from communication partner to meter")
        case 0x14: return .annotation("direction: from meter to communication partner")
        default: return .annotation("reserved VIFE FC " + Hex.encode([code]))
        }
    }

    /// Record error codes carried in a combinable VIFE (EN 13757-3:2018 Table 18).
    public static func recordErrorText(_ code: UInt8) -> String {
        switch code {
        case 0x15: return "no data available (undefined value)"
        case 0x16: return "data overflow"
        case 0x17: return "data underflow"
        case 0x18: return "data error"
        case 0x1C: return "premature end of record"
        default: return "record error " + Hex.encode([code])
        }
    }
}
