#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A byte in a profile file: a JSON number (148) or a hex string ("0x94", "94h").
public struct ProfileByte: Codable, Hashable, Sendable, ExpressibleByIntegerLiteral {
    public var value: Int
    public init(_ value: Int) { self.value = value }
    public init(integerLiteral value: Int) { self.value = value }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int.self) {
            value = n
            return
        }
        let s = try c.decode(String.self)
        var t = Substring(s)
        if t.hasPrefix("0x") || t.hasPrefix("0X") { t = t.dropFirst(2) } else if t.hasSuffix("h") || t.hasSuffix("H") { t = t.dropLast() }
        guard let n = Int(t, radix: 16) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "\"\(s)\" is not a number or a hex byte such as \"0x94\"")
        }
        value = n
    }

    /// Bytes as profiles write them ("0x94"), anything else as a number.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if (0...255).contains(value) { try c.encode("0x" + Hex.encode([UInt8(value)])) } else { try c.encode(value) }
    }
}

/// Which meters a profile is for: the identity every wM-Bus telegram carries (EN 13757-4 address).
public struct ProfileDetection: Codable, Hashable, Sendable {
    /// FLAG association code, three letters ("TCH", "KAM").
    public var manufacturer: String
    /// Versions (A-field byte 7); absent means every version.
    public var versions: [ProfileByte]?
    /// Device types (A-field byte 8, EN 13757-7 Table 12); absent means every type.
    public var deviceTypes: [ProfileByte]?
}

/// Picks records out of the EN 13757-3 record list. Every given key must hold.
public struct RecordMatch: Codable, Hashable, Sendable {
    /// The quantity as `ValueDescriptor.quantity` names it: "Volume", "Energy", "H.C.A.", "Flow temperature",
    /// "Time point (date)", "Error flags", … (the VIF's meaning, independent of its power of ten).
    public var quantity: String?
    /// Exact VIF: "13" (primary, without the extension bit), "FD17", "FB1A", "7F" (manufacturer-specific).
    public var vif: String?
    /// The VIFEs the record's VIFE list starts with, hex: "5F" for Qundis' FF 5F record, "FF01" for a
    /// manufacturer VIFE followed by 01h (extension bits are ignored).
    public var vife: String?
    public var storage: Int?
    public var tariff: Int?
    public var subunit: Int?
    /// "instantaneous", "maximum", "minimum", "error_state".
    public var function: String?
    /// Absent: the record carries no annotating VIFE (so the total volume is not the backward-flow volume).
    /// "any": annotations do not matter. Otherwise a text the record's annotations must contain
    /// ("backward flow", "upper limit value").
    public var annotation: String?
    /// Which of several matching records, 0 first.
    public var occurrence: Int?
}

/// A named value taken from a record.
public struct RecordField: Codable, Hashable, Sendable {
    public var name: String
    /// Output unit: "m3", "l", "kWh", "MWh", "GJ", "MJ", "Wh", "kW", "W", "m3/h", "l/h", "C", "K", "hca", "h",
    /// "d", "y", "s", "bar", "V", "A", "" (a count); "date" / "datetime" for time points; "text" for
    /// identifiers and flags as text.
    public var unit: String
    public var match: RecordMatch
    /// Extra factor after unit conversion (for meters that send a wrong VIF scale).
    public var scale: Double?
    /// The unit the record really holds when the maker's VIF says another one of the same scale: iEM3000
    /// meters send reactive energy under the energy VIF with subunit 1 (`"as": "varh"`) and the mains
    /// frequency under a manufacturer VIFE without a unit (`"as": "Hz"`). The record's normalised number
    /// (J already turned into Wh) is read as the same number of this kind's base unit (varh, Hz), then
    /// converted to `unit`.
    public var `as`: String?
}

/// One value inside a manufacturer-specific byte layout.
public struct LayoutField: Codable, Hashable, Sendable {
    public enum Encoding: String, Codable, Hashable, Sendable {
        /// Unsigned integer, `byteOrder` (default little).
        case uint
        /// Two's complement integer.
        case int
        /// BCD digits, least significant byte first unless `byteOrder` is big.
        case bcd
        /// EN 13757-3 type G date (2 bytes).
        case dateG = "date_g"
        /// EN 13757-3 type F date and time (4 bytes).
        case dateTimeF = "date_time_f"
        /// A date packed into bit fields of an unsigned integer (`day`, `month`, `year`); without `year` the
        /// year is the first one that puts the date after the date named by `after`.
        case dateBits = "date_bits"
        /// Bytes as hex text.
        case hex
        /// Three BCD bytes day, month, year (two digits, 20yy).
        case dateBCDDayMonthYear = "date_bcd_dmy"
        /// Three BCD bytes year (two digits, 20yy), month, day.
        case dateBCDYearMonthDay = "date_bcd_ymd"
    }

    public struct Bits: Codable, Hashable, Sendable {
        public var shift: Int
        public var bits: Int
        /// Added to the extracted number (years: 2000).
        public var add: Int?
    }

    public var name: String
    /// Output unit as in `RecordField.unit` ("date" for dates).
    public var unit: String?
    /// From the start of the layout's bytes.
    public var offset: Int
    public var length: Int
    public var encoding: Encoding
    public var byteOrder: Endianness?
    /// For integers: (raw >> shift) & (2^bits − 1) before scaling.
    public var shift: Int?
    public var bits: Int?
    /// value = raw × scale + add.
    public var scale: Double?
    public var add: Double?
    /// Raw values that mean "no value" (e.g. 65535).
    public var invalid: [Int64]?
    /// A maker's code table: the raw integer (as decimal text) → the value; a code not in it gives no value.
    /// Applied before `scale` and `add`.
    public var table: [String: Double]?
    public var day: Bits?
    public var month: Bits?
    public var year: Bits?
    /// `date_bits` without a year: the date field this one follows.
    public var after: String?
    /// A series of like values (a monthly history): `count` fields, the i-th (0-based) read `i × stride`
    /// bytes and `i × bitStride` bits further on. The name's "{n}" becomes i + 1 ("month_{n}_hca"), or
    /// "_1", "_2", … is appended.
    public var `repeat`: Repeat?

    public struct Repeat: Codable, Hashable, Sendable {
        public var count: Int
        public var stride: Int?
        public var bitStride: Int?
    }

    /// The i-th field of a series: its name and where it sits.
    func instance(_ i: Int) -> LayoutField {
        guard let r = `repeat` else { return self }
        var f = self
        f.repeat = nil
        let n = String(i + 1)
        f.name = name.contains("{n}") ? name.replacing("{n}", with: n) : name + "_" + n
        let bitPosition = (shift ?? 0) + i * (r.bitStride ?? 0)
        f.offset = offset + i * (r.stride ?? 0) + bitPosition / 8
        if r.bitStride != nil {
            f.shift = bitPosition % 8
            // Enough bytes to hold shift + bits, at most 8.
            f.length = min(8, max(1, ((bitPosition % 8) + (bits ?? 8) + 7) / 8))
        }
        return f
    }

    /// Every field of a series (or this one).
    var instances: [LayoutField] {
        guard let r = `repeat` else { return [self] }
        return (0..<max(0, min(r.count, 512))).map(instance)
    }
}

/// A manufacturer-specific layout: where the bytes are and what they hold.
public struct ByteLayout: Codable, Hashable, Sendable {
    public enum Source: String, Codable, Hashable, Sendable {
        /// The application payload after a manufacturer CI (A0h–B7h), from the byte after the CI.
        case manufacturerPayload = "manufacturer_payload"
        /// The bytes after a 0Fh/1Fh DIF at the end of the records.
        case manufacturerData = "manufacturer_data"
        /// The data bytes (after any LVAR byte) of the record that `record` matches.
        case record
        /// The values of a compact frame (CI 79h) whose format is not known yet, after signature and CRC.
        case compactValues = "compact_values"
        /// The application data after the TPL header (decrypted), for meters that send their own layout under
        /// a standard CI 7Ah/72h header instead of records. `ci` limits which.
        case applicationPayload = "application_payload"
    }

    public var source: Source
    /// For `manufacturer_payload`: the CIs this layout applies to (all of A0h–B7h when absent).
    public var ci: [ProfileByte]?
    /// For `record`.
    public var record: RecordMatch?
    /// For `compact_values`: the format signature, as the frame sends it (little-endian value).
    public var signature: ProfileByte?
    /// A named codec (`ProfileCodecs`) that turns the source bytes into the bytes the fields read:
    /// descrambling, unpacking. Fields then count offsets in the codec's output.
    public var codec: String?
    /// The layout applies only when at least this many bytes are present.
    public var minLength: Int?
    /// The layout applies only when (byte at `offset` & `mask`) == `match`: a content code that says
    /// which values follow.
    public var when: LayoutCondition?
    public var fields: [LayoutField]
}

public struct LayoutCondition: Codable, Hashable, Sendable {
    public var offset: Int
    public var mask: ProfileByte?
    public var match: ProfileByte
}

/// A value computed from others: the sum of named values (current + previous period, Techem), or a date some
/// whole months before a date value (histories whose meter sends only the newest period's date).
public struct DerivedField: Codable, Hashable, Sendable {
    public var name: String
    public var unit: String
    /// The sum of these values; nothing when one is missing.
    public var sum: [String]?
    public var monthsBefore: MonthsBefore?

    /// `date` minus `months` months; a date on the last day of its month stays on the last day (31 Dec →
    /// 31 Oct → 29 Feb), as billing dates do. Only when the value `when` names is present (the history
    /// value this date belongs to), if given.
    /// With `endOfMonth`, the result is the last day of its month (a meter that keeps month-end values but
    /// sends only today's date).
    public struct MonthsBefore: Codable, Hashable, Sendable {
        public var date: String
        public var months: Int
        public var when: String?
        public var endOfMonth: Bool?

        public init(date: String, months: Int, when: String? = nil, endOfMonth: Bool? = nil) {
            self.date = date
            self.months = months
            self.when = when
            self.endOfMonth = endOfMonth
        }
    }

    public init(name: String, unit: String, sum: [String]? = nil, monthsBefore: MonthsBefore? = nil) {
        self.name = name
        self.unit = unit
        self.sum = sum
        self.monthsBefore = monthsBefore
    }
}

/// How bad a status flag is.
public enum AlarmSeverity: String, Codable, Hashable, Sendable, Comparable {
    case info, warning, alarm
    var rank: Int { self == .info ? 0 : self == .warning ? 1 : 2 }
    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

/// One meaning of some bits: set when (value & mask) == match (match defaults to mask).
public struct StatusBit: Codable, Hashable, Sendable {
    public var mask: ProfileByte
    public var match: ProfileByte?
    /// Stable code: "leak", "burst", "dry", "backflow", "tamper", "battery_low", "removal", "sensor_error", …
    /// Set when any bit of `mask` is set (error codes whose every non-zero value is a fault).
    public var any: Bool?
    public var flag: String
    public var severity: AlarmSeverity
    /// Words for technicians, as the maker names the condition.
    public var text: String?
}

/// Bits of a named value (from a record or a layout) and what they mean.
public struct StatusSource: Codable, Hashable, Sendable {
    public var value: String
    public var bits: [StatusBit]
}

public struct StatusSpec: Codable, Hashable, Sendable {
    /// Meanings of the TPL status byte beyond the standard bits 0–4 (bits 5–7 are the maker's).
    /// The standard bits (EN 13757-7 Table 9: application error, power low, permanent and temporary
    /// error) are always reported.
    public var tpl: [StatusBit]?
    public var values: [StatusSource]?
}

/// The billing set day: which named values hold the value on the set day and its date.
public struct SetDaySpec: Codable, Hashable, Sendable {
    public var value: String
    public var date: String?
}

/// A telegram the profile must decode, with its expected output: the test suite runs every one.
public struct ProfileTestCase: Codable, Hashable, Sendable {
    public var hex: String
    /// AES-128 key (32 hex digits) where the telegram is encrypted.
    public var key: String?
    /// Telegrams to feed first (full frames that compact frames refer to).
    public var preceding: [String]?
    /// "no_crc" (default), "a", "b".
    public var framing: String?
    /// Name → number (compared to 1e-6 relative) or text (dates as "2020-12-31").
    public var expected: [String: ExpectedValue]
    /// Flags expected (exactly these).
    public var alarms: [String]?
    /// Expected set-day date, when the profile has a set day.
    public var setDayDate: String?
    public var note: String?
}

/// A number or a text in `expected`.
public enum ExpectedValue: Codable, Hashable, Sendable {
    case number(Double)
    case text(String)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        self = .text(try c.decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let d): try c.encode(d)
        case .text(let s): try c.encode(s)
        }
    }
}

/// One wireless meter family as data (docs/wmbus-profiles.md).
public struct MeterProfile: Codable, Hashable, Sendable {
    public var id: String
    public var name: String
    public var manufacturer: String
    /// "water", "warm_water", "heat", "heat_cost_allocator", …
    public var category: String
    public var models: [String]?
    /// Public documents the facts come from.
    public var source: [String]
    public var detect: [ProfileDetection]
    public var records: [RecordField]?
    public var layouts: [ByteLayout]?
    public var derived: [DerivedField]?
    public var status: StatusSpec?
    public var setDay: SetDaySpec?
    /// Compact-frame formats the maker documents (the DIF/VIF list of the full frame, hex): compact frames
    /// (CI 79h, 7Bh, 73h) of these meters decode without waiting for a full frame.
    public var compactFormats: [String]?
    public var tests: [ProfileTestCase]

    public static func decode(_ data: Data, origin: String = "profile") throws(ProfileError) -> MeterProfile {
        let p: MeterProfile
        do {
            p = try JSONDecoder().decode(MeterProfile.self, from: data)
        } catch let e as DecodingError {
            throw ProfileError(origin: origin, message: Self.describe(e))
        } catch {
            throw ProfileError(origin: origin, message: "\(error)")
        }
        try p.validate(origin: origin)
        return p
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ c: [any CodingKey]) -> String { c.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined() }
        switch e {
        case .keyNotFound(let k, let ctx): return "missing \"\(k.stringValue)\" at \(path(ctx.codingPath).isEmpty ? "top level" : path(ctx.codingPath))"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
            return "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default: return "\(e)"
        }
    }

    /// Names unique, references resolvable, detection codes valid, byte ranges sane.
    public func validate(origin: String = "profile") throws(ProfileError) {
        func fail(_ m: String) -> ProfileError { ProfileError(origin: origin, message: "\(id): \(m)") }
        guard !source.isEmpty else { throw fail("cites no source") }
        guard !detect.isEmpty else { throw fail("has no detection entry") }
        for d in detect {
            guard let m = ManufacturerCode(d.manufacturer), m.isValidFlagCode else { throw fail("\"\(d.manufacturer)\" is not a FLAG code") }
            for v in (d.versions ?? []) + (d.deviceTypes ?? []) where !(0...255).contains(v.value) {
                throw fail("version or device type \(v.value) is not a byte")
            }
        }
        // A name may come from a record and from a layout (the same value in two telegram forms, the first
        // present wins), but not twice from one list.
        var names = Set<String>()
        var dates = Set<String>()
        var local = Set<String>()
        func add(_ n: String) throws(ProfileError) {
            guard !n.isEmpty, local.insert(n).inserted else { throw fail("value name \"\(n)\" is empty or used twice") }
            names.insert(n)
        }
        for r in records ?? [] {
            try add(r.name)
            if let v = r.match.vif, VIFKey(v) == nil { throw fail("\(r.name): \"\(v)\" is not a VIF such as \"13\", \"FD17\" or \"7F\"") }
            if let f = r.match.function, RecordFunction.allCases.first(where: { $0.key == f }) == nil { throw fail("\(r.name): unknown function \"\(f)\"") }
            guard UnitConversion.isKnown(r.unit) else { throw fail("\(r.name): unknown unit \"\(r.unit)\"") }
            if let held = r.as {
                guard let from = UnitConversion.table[held], let to = UnitConversion.table[r.unit], from.base == to.base else {
                    throw fail("\(r.name): \"as\": \"\(held)\" is not a unit of the same kind as \"\(r.unit)\"")
                }
            }
            if r.unit == "date" || r.unit == "datetime" { dates.insert(r.name) }
        }
        for l in layouts ?? [] {
            local = []
            if l.source == .record && l.record == nil { throw fail("a record layout names no record") }
            if l.source == .compactValues && l.signature == nil { throw fail("a compact_values layout names no signature") }
            if let c = l.codec, ProfileCodecs.named[c] == nil {
                throw fail("codec \"\(c)\" is not one of \(ProfileCodecs.named.keys.sorted().joined(separator: ", "))")
            }
            for series in l.fields {
                if let r = series.repeat {
                    guard (1...512).contains(r.count), (r.stride ?? 0) >= 0, (r.bitStride ?? 0) >= 0, r.stride != nil || r.bitStride != nil else {
                        throw fail("\(series.name): repeat needs a count of 1–512 and a stride or bitStride")
                    }
                }
            for f in series.instances {
                try add(f.name)
                guard f.offset >= 0, f.length >= 1, f.length <= 8 || f.encoding == .hex, f.length <= 64 else {
                    throw fail("\(f.name): offset \(f.offset), length \(f.length) out of range (1–8 bytes, hex up to 64)")
                }
                if let u = f.unit, !UnitConversion.isKnown(u) { throw fail("\(f.name): unknown unit \"\(u)\"") }
                if f.encoding == .dateBits {
                    guard f.day != nil, f.month != nil, f.year != nil || f.after != nil else { throw fail("\(f.name): date_bits needs day, month and year or after") }
                }
                if [.dateBits, .dateG, .dateTimeF, .dateBCDDayMonthYear, .dateBCDYearMonthDay].contains(f.encoding) { dates.insert(f.name) }
                if let t = f.table, t.keys.contains(where: { Int64($0) == nil }) || t.values.contains(where: { !$0.isFinite }) {
                    throw fail("\(f.name): table keys must be integers as text and values finite numbers")
                }
            }
            }
            for f in l.fields where f.after != nil && !dates.contains(f.after!) {
                throw fail("\(f.name): after names \"\(f.after!)\", which is no date before it")
            }
        }
        local = []
        for d in derived ?? [] {
            switch (d.sum, d.monthsBefore) {
            case (let sum?, nil):
                guard !sum.isEmpty else { throw fail("\(d.name) sums nothing") }
                for s in sum where !names.contains(s) { throw fail("\(d.name) sums unknown value \"\(s)\"") }
            case (nil, let m?):
                guard dates.contains(m.date) else { throw fail("\(d.name): monthsBefore names \"\(m.date)\", which is no date value") }
                guard (0...1200).contains(m.months) else { throw fail("\(d.name): monthsBefore \(m.months) months is out of range (0–1200)") }
                if let w = m.when, !names.contains(w) { throw fail("\(d.name): when names unknown value \"\(w)\"") }
                guard d.unit == "date" else { throw fail("\(d.name): a monthsBefore value has unit \"date\"") }
                dates.insert(d.name)
            default:
                throw fail("\(d.name): a derived value has either sum or monthsBefore")
            }
            try add(d.name)
        }
        for s in status?.values ?? [] where !names.contains(s.value) { throw fail("status reads unknown value \"\(s.value)\"") }
        if let s = setDay {
            guard names.contains(s.value) else { throw fail("set day names unknown value \"\(s.value)\"") }
            if let d = s.date, !dates.contains(d) { throw fail("set day date \"\(d)\" is not a date value") }
        }
        for f in compactFormats ?? [] {
            guard let b = try? Hex.decode(f), !b.isEmpty, b.count <= 255 else { throw fail("compact format \"\(f)\" is not a DIF/VIF list in hex") }
        }
        guard !tests.isEmpty else { throw fail("has no test telegram") }
        for (n, t) in tests.enumerated() {
            for k in t.expected.keys where !names.contains(k) { throw fail("test \(n) expects unknown value \"\(k)\"") }
        }
    }
}

/// A profile file that cannot be used, with the reason in words.
public struct ProfileError: Error, Hashable, Sendable, CustomStringConvertible {
    public var origin: String
    public var message: String
    public init(origin: String, message: String) {
        self.origin = origin
        self.message = message
    }
    public var description: String { "\(origin): \(message)" }
}

/// A VIF as written in profiles, parsed once at load time.
struct VIFKey: Hashable, Sendable {
    var code: VIFCode

    init?(_ text: String) {
        guard let b = try? Hex.decode(text), !b.isEmpty, b.count <= 2 else { return nil }
        if b.count == 1 {
            switch b[0] & 0x7F {
            case 0x7F: code = .manufacturerSpecific
            case 0x7B, 0x7C, 0x7D, 0x7E: return nil
            default: code = .primary(b[0] & 0x7F)
            }
        } else {
            switch b[0] {
            case 0xFB: code = .extensionFB(b[1] & 0x7F)
            case 0xFD: code = .extensionFD(b[1] & 0x7F)
            default: return nil
            }
        }
    }

    func matches(_ c: VIFCode) -> Bool {
        switch (code, c) {
        case (.manufacturerSpecific, .manufacturerSpecific): return true
        default: return code == c
        }
    }
}

/// Output units of profiles and their relation to the normalised units of `DataRecord`.
enum UnitConversion {
    /// Output unit → (normalised record unit, how many normalised units one output unit is).
    static let table: [String: (base: String, factor: Double)] = [
        "m3": ("m^3", 1), "l": ("m^3", 0.001),
        "Wh": ("Wh", 1), "kWh": ("Wh", 1000), "MWh": ("Wh", 1e6), "GJ": ("Wh", 1e9 / 3600), "MJ": ("Wh", 1e6 / 3600),
        "W": ("W", 1), "kW": ("W", 1000),
        "m3/h": ("m^3/h", 1), "l/h": ("m^3/h", 0.001),
        "C": ("C", 1), "K": ("K", 1),
        "s": ("s", 1), "min": ("s", 60), "h": ("s", 3600), "d": ("s", 86400), "y": ("s", 365.25 * 86400),
        "bar": ("bar", 1), "V": ("V", 1), "A": ("A", 1), "kg": ("kg", 1), "dBm": ("dBm", 1),
        "hca": ("", 1), "": ("", 1), "counter": ("", 1),
        "%": ("%", 1), "Hz": ("Hz", 1), "VA": ("VA", 1), "kVA": ("VA", 1000), "var": ("var", 1), "kvar": ("var", 1000),
        "varh": ("varh", 1), "kvarh": ("varh", 1000), "VAh": ("VAh", 1), "kVAh": ("VAh", 1000),
        "kg/h": ("kg/h", 1), "t": ("kg", 1000),
    ]
    static let special: Set<String> = ["date", "datetime", "text"]

    static func isKnown(_ unit: String) -> Bool { table[unit] != nil || special.contains(unit) }

    /// A record's normalised value in `unit`, or nil when the units do not fit together.
    /// `held`: the unit the record really holds (a profile's `as`), read from the normalised number.
    static func convert(_ value: Double, from recordUnit: String, to unit: String, held: String? = nil) -> Double? {
        guard let (base, factor) = table[unit] else { return nil }
        var v = value
        var u = recordUnit
        if u == "J" { v /= 3600; u = "Wh" }
        // The number stays; only the name of its unit was wrong (Wh read as varh, a bare number as Hz).
        if let held, let (heldBase, _) = table[held] { u = heldBase }
        // Temperature differences come in K; a profile may ask for them in °C.
        if u == "K" && base == "C" { u = "C" }
        guard u == base || base.isEmpty && (u.isEmpty || u == "HCA units") else { return nil }
        return v / factor
    }
}
