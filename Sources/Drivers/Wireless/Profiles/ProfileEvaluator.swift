/// A value a profile picked out of a telegram.
public enum ProfileValue: Hashable, Sendable, CustomStringConvertible {
    case number(Double)
    case date(MBusDateTime)
    case text(String)

    public var number: Double? { if case .number(let d) = self { return d } else { return nil } }

    public var description: String {
        switch self {
        // Whole numbers without ".0" (a technician reads "45 hca", not "45.0 hca").
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"
        case .date(let t): return t.description
        case .text(let s): return s
        }
    }
}

/// A named value with its unit ("total_m3", 20.015, "m3").
public struct NamedValue: Hashable, Sendable {
    public var name: String
    public var value: ProfileValue
    public var unit: String
}

/// A status or alarm bit that is set.
public struct ProfileAlarm: Hashable, Sendable {
    /// Stable code ("leak", "battery_low", …).
    public var flag: String
    public var severity: AlarmSeverity
    public var text: String
    /// "tpl_status" or the name of the value whose bits say it.
    public var source: String
}

/// What a meter profile made of one telegram.
public struct ProfileReading: Hashable, Sendable {
    public var profileID: String
    public var profileName: String
    public var category: String
    /// In profile order: record fields, then layout fields, then derived values.
    public var values: [NamedValue]
    public var alarms: [ProfileAlarm]
    /// The billing set day: its value and, where the meter sends it, its date.
    public var setDayValue: NamedValue?
    public var setDayDate: MBusDateTime?
    /// Layouts that did not fit the telegram (too short, a date that is no date), in words.
    public var problems: [String]

    public func value(_ name: String) -> ProfileValue? { values.first { $0.name == name }?.value }
    /// The highest severity among the alarms, nil when none is set.
    public var worstSeverity: AlarmSeverity? { alarms.map(\.severity).max() }
}

/// A profile prepared for evaluation: text keys parsed once at load time. A class: the catalog hands the
/// evaluator a reference per telegram instead of copying a struct of arrays (a retain per array).
final class CompiledProfile: Sendable {
    struct Match: Sendable {
        enum Annotation: Sendable { case none, any, contains(String) }
        var vif: VIFKey?
        var vifes: [UInt8]?
        var quantity: String?
        var storage: UInt64?
        var tariff: UInt32?
        var subunit: UInt16?
        var function: RecordFunction?
        var annotation: Annotation
        var occurrence: Int

        init(_ m: RecordMatch) {
            vif = m.vif.flatMap(VIFKey.init)
            vifes = m.vife.flatMap { try? Hex.decode($0) }.map { $0.map { $0 & 0x7F } }
            quantity = m.quantity
            storage = m.storage.map { UInt64(max(0, $0)) }
            tariff = m.tariff.map { UInt32(max(0, $0)) }
            subunit = m.subunit.map { UInt16(clamping: max(0, $0)) }
            function = m.function.flatMap { f in RecordFunction.allCases.first { $0.key == f } }
            switch m.annotation {
            case nil: annotation = .none
            case "any": annotation = .any
            case let s?: annotation = .contains(s)
            }
            occurrence = m.occurrence ?? 0
        }

        func matches(_ r: DataRecord) -> Bool {
            if let s = storage, r.storageNumber != s { return false }
            if let t = tariff, r.tariff != t { return false }
            if let u = subunit, r.subunit != u { return false }
            if let f = function, r.function != f { return false }
            if let v = vif, !v.matches(r.vif) { return false }
            if let e = vifes, !r.vifeCodes.starts(with: e) { return false }
            if let q = quantity, r.descriptor.quantity != q { return false }
            switch annotation {
            case .any: break
            case .none:
                for m in r.modifiers { if case .annotation = m { return false } }
            case .contains(let text):
                var found = false
                for m in r.modifiers { if case .annotation(let a) = m, Self.contains(a, text) { found = true } }
                if !found { return false }
            }
            return true
        }

        func find(in records: [DataRecord]) -> DataRecord? {
            records.withUnsafeBufferPointer { b in index(in: b).map { b[$0] } }
        }

        /// Where the matching record is; an index, so that finding one copies no record.
        func index(in records: UnsafeBufferPointer<DataRecord>) -> Int? {
            var seen = 0
            for i in records.indices where matches(records[i]) {
                if seen == occurrence { return i }
                seen += 1
            }
            return nil
        }

        /// Byte-wise substring test: annotations are ASCII text of the VIFE tables, and this avoids
        /// Foundation's locale-aware search on every record of every telegram.
        static func contains(_ text: String, _ part: String) -> Bool {
            let h = Array(text.utf8), n = Array(part.utf8)
            if n.isEmpty { return true }
            guard h.count >= n.count else { return false }
            for start in 0...(h.count - n.count) where h[start] == n[0] {
                var k = 1
                while k < n.count && h[start + k] == n[k] { k += 1 }
                if k == n.count { return true }
            }
            return false
        }
    }

    let id: String
    let name: String
    let category: String
    let derived: [DerivedField]
    let status: StatusSpec?
    let setDay: SetDaySpec?
    /// A record field with its parsed match and its name's slot. A class, as is `Layout`: iterating the
    /// profile per telegram then hands out references instead of copying tuples of strings and arrays.
    final class Record: Sendable {
        let field: RecordField
        let match: Match
        let slot: Int
        init(_ field: RecordField, _ match: Match, _ slot: Int) { self.field = field; self.match = match; self.slot = slot }
    }
    final class Layout: Sendable {
        let layout: ByteLayout
        let record: Match?
        let cis: Set<UInt8>?
        let fields: [LayoutField]
        let slots: [Int]
        init(_ layout: ByteLayout, _ record: Match?, _ cis: Set<UInt8>?, _ fields: [LayoutField], _ slots: [Int]) {
            self.layout = layout; self.record = record; self.cis = cis; self.fields = fields; self.slots = slots
        }
    }
    let records: [Record]
    let layouts: [Layout]
    /// How many distinct value names the records and layouts give: each name has a slot, so "is this
    /// name taken yet" is an array lookup per telegram, not a string hash.
    let slotCount: Int

    init(_ p: MeterProfile) {
        id = p.id
        name = p.name
        category = p.category
        derived = p.derived ?? []
        status = p.status
        setDay = p.setDay
        var slots: [String: Int] = [:]
        func slot(_ name: String) -> Int {
            if let s = slots[name] { return s }
            slots[name] = slots.count
            return slots.count - 1
        }
        records = (p.records ?? []).map { Record($0, Match($0.match), slot($0.name)) }
        layouts = (p.layouts ?? []).map { l in
            let fields = l.fields.flatMap(\.instances)
            return Layout(l, l.record.map(Match.init), l.ci.map { Set($0.map { UInt8(truncatingIfNeeded: $0.value) }) }, fields, fields.map { slot($0.name) })
        }
        slotCount = slots.count
    }
}

/// Turns a decoded telegram and its profile into a `ProfileReading`. Pure and total.
public enum ProfileEvaluator {
    public static func evaluate(_ w: WirelessTelegram, profile: MeterProfile) -> ProfileReading {
        evaluate(w, CompiledProfile(profile))
    }

    static func evaluate(_ w: WirelessTelegram, _ c: CompiledProfile) -> ProfileReading {
        var r = ProfileReading(profileID: c.id, profileName: c.name, category: c.category, values: [], alarms: [], problems: [])
        r.values.reserveCapacity(c.records.count + 8)
        // Names already taken: the first source of a name wins (a slot per name, not a scan of the values).
        var taken = [Bool](repeating: false, count: c.slotCount)
        w.telegram.records.withUnsafeBufferPointer { records in
            for e in c.records {
                guard !taken[e.slot], let i = e.match.index(in: records), let v = recordValue(records[i], e.field) else { continue }
                r.values.append(NamedValue(name: e.field.name, value: v, unit: e.field.unit))
                taken[e.slot] = true
            }
        }
        for e in c.layouts {
            let (layout, match, cis, fields, slots) = (e.layout, e.record, e.cis, e.fields, e.slots)
            guard var bytes = layoutBytes(w, layout, match, cis) else { continue }
            if let name = layout.codec, let codec = ProfileCodecs.named[name] {
                switch codec(bytes, CodecContext(w)) {
                case .bytes(let b): bytes = b[...]
                case .notApplicable: continue
                case .failure(let why):
                    r.problems.append("codec \(name): \(why)")
                    continue
                }
            }
            if let c = layout.when {
                let at = bytes.startIndex + c.offset
                guard c.offset >= 0, at < bytes.endIndex,
                      Int(bytes[at]) & (c.mask?.value ?? 0xFF) == c.match.value else { continue }
            }
            if let min = layout.minLength, bytes.count < min {
                r.problems.append("\(layout.source.rawValue): \(bytes.count) bytes, the layout needs \(min)")
                continue
            }
            for (f, slot) in zip(fields, slots) where !taken[slot] {
                switch LayoutInterpreter.read(f, bytes, dates: r.values) {
                case .value(let v):
                    if case .number(let d) = v, !d.isFinite { break }
                    r.values.append(NamedValue(name: f.name, value: v, unit: f.unit ?? ""))
                    taken[slot] = true
                case .absent: break
                case .problem(let text): r.problems.append("\(f.name): \(text)")
                }
            }
        }
        for d in c.derived {
            if let terms = d.sum {
                var sum = 0.0
                var complete = true
                for n in terms {
                    guard let v = r.value(n)?.number else { complete = false; break }
                    sum += v
                }
                if complete, sum.isFinite { r.values.append(NamedValue(name: d.name, value: .number(sum), unit: d.unit)) }
            } else if let m = d.monthsBefore, case .date(let base)? = r.value(m.date), m.when.map({ r.value($0) != nil }) ?? true {
                let t = m.months == 0 ? base : CompactProfile.step(base, .months(m.months), backwards: true)
                if var t {
                    t.hour = nil; t.minute = nil; t.second = nil
                    if m.endOfMonth == true { t.day = CompactProfile.daysIn(t.year, t.month) }
                    r.values.append(NamedValue(name: d.name, value: .date(t), unit: d.unit))
                }
            }
        }
        statusFlags(w, c.status, &r)
        if let s = c.setDay {
            r.setDayValue = r.values.first { $0.name == s.value }
            if let dn = s.date, case .date(let t)? = r.value(dn) { r.setDayDate = t }
        }
        return r
    }

    static func recordValue(_ rec: DataRecord, _ f: RecordField) -> ProfileValue? {
        switch f.unit {
        case "date", "datetime":
            // FFFF and 0000 are how meters say "no date yet" (month 15, month 0): no value, not a date.
            if case .dateTime(let t) = rec.value, (1...12).contains(t.month), (1...31).contains(t.day) { return .date(t) }
            return nil
        case "text":
            switch rec.value {
            case .text(let s), .timeText(let s): return .text(s)
            case .bytes(let b): return .text(Hex.encode(b))
            case .integer(let v), .bcd(let v): return .text(String(v))
            default: return nil
            }
        default:
            // A real record's NaN or infinity is how meters say "no value": no value, never a non-finite number.
            let d = rec.descriptor
            guard let n = rec.normalizedValue(d), let v = UnitConversion.convert(n, from: d.unit, to: f.unit, held: f.as), (v * (f.scale ?? 1)).isFinite else { return nil }
            return .number(v * (f.scale ?? 1))
        }
    }

    static func layoutBytes(_ w: WirelessTelegram, _ l: ByteLayout, _ match: CompiledProfile.Match?,
                            _ cis: Set<UInt8>?) -> ArraySlice<UInt8>? {
        switch l.source {
        case .manufacturerPayload:
            guard let p = w.manufacturerPayload else { return nil }
            if let cis, !cis.contains(w.telegram.controlInformation) { return nil }
            return p[...]
        case .manufacturerData:
            return w.telegram.manufacturerData.map { $0[...] }
        case .applicationPayload:
            guard let b = w.recordBytes else { return nil }
            if let cis, !cis.contains(w.telegram.controlInformation) { return nil }
            return b[...]
        case .compactValues:
            guard let c = w.compactFrame, !c.resolved, let s = l.signature, Int(c.formatSignature) == s.value else { return nil }
            return c.values[...]
        case .record:
            guard let match, let rec = match.find(in: w.telegram.records), let bytes = w.recordBytes else { return nil }
            return recordData(bytes, rec)
        }
    }

    /// The data bytes of a record as sent (after DIB, VIB and any LVAR byte).
    static func recordData(_ bytes: [UInt8], _ rec: DataRecord) -> ArraySlice<UInt8>? {
        guard rec.offset >= 0, rec.offset < bytes.count else { return nil }
        let d = bytes[...]
        guard let start = CompactFormat.headerEnd(d, rec.offset), start <= bytes.count else { return nil }
        if let size = rec.dataField.size {
            guard start + size <= bytes.count else { return nil }
            return d[start..<(start + size)]
        }
        guard rec.dataField == .variableLength, bytes[rec.offset] & 0x0F == 0x0D, start < bytes.count,
              let size = CompactFormat.dataSize(dif: bytes[rec.offset], d, start), size >= 1, start + size <= bytes.count else { return nil }
        return d[(start + 1)..<(start + size)]
    }

    /// EN 13757-7 Table 9 (TPL status): bits 1–0 application state, 2 power low, 3 permanent error,
    /// 4 temporary error; bits 7–5 belong to the maker and come from the profile.
    static let standardTPL: [StatusBit] = [
        StatusBit(mask: 0x03, match: 0x01, any: nil, flag: "application_busy", severity: .info, text: "application busy"),
        StatusBit(mask: 0x03, match: 0x02, any: nil, flag: "application_error", severity: .alarm, text: "application error"),
        StatusBit(mask: 0x03, match: 0x03, any: nil, flag: "abnormal_condition", severity: .alarm, text: "abnormal condition / alarm"),
        StatusBit(mask: 0x04, match: nil, any: nil, flag: "battery_low", severity: .warning, text: "power low"),
        StatusBit(mask: 0x08, match: nil, any: nil, flag: "permanent_error", severity: .alarm, text: "permanent error"),
        StatusBit(mask: 0x10, match: nil, any: nil, flag: "temporary_error", severity: .warning, text: "temporary error"),
    ]

    static func statusFlags(_ w: WirelessTelegram, _ spec: StatusSpec?, _ r: inout ProfileReading) {
        func apply(_ bits: [StatusBit], _ value: UInt64, _ source: String) {
            for b in bits {
                // Masks come from a profile file: bit patterns, never a trap on a negative number.
                let mask = UInt64(truncatingIfNeeded: b.mask.value)
                let want = UInt64(truncatingIfNeeded: (b.match ?? b.mask).value)
                let set = b.any == true ? value & mask != 0 : value & mask == want
                if set && !r.alarms.contains(where: { $0.flag == b.flag }) {
                    r.alarms.append(ProfileAlarm(flag: b.flag, severity: b.severity, text: b.text ?? b.flag, source: source))
                }
            }
        }
        if let st = w.tpl?.status {
            apply(standardTPL, UInt64(st), "tpl_status")
            if let extra = spec?.tpl { apply(extra, UInt64(st), "tpl_status") }
        }
        for s in spec?.values ?? [] {
            guard let v = r.value(s.value)?.number, v >= 0, v < 1.8e19 else { continue }
            apply(s.bits, UInt64(v), s.value)
        }
    }
}

/// Evaluates `LayoutField`s over bytes: the small interpreter behind manufacturer-specific layouts.
enum LayoutInterpreter {
    enum Outcome { case value(ProfileValue), absent, problem(String) }

    static func read(_ f: LayoutField, _ bytes: ArraySlice<UInt8>, dates: [NamedValue]) -> Outcome {
        let start = bytes.startIndex + f.offset
        guard f.offset >= 0, start + f.length <= bytes.endIndex else { return .absent }
        let b = bytes[start..<(start + f.length)]
        let big = f.byteOrder == .big
        func unsigned() -> UInt64 {
            var v: UInt64 = 0
            if big { for x in b { v = v << 8 | UInt64(x) } } else { for x in b.reversed() { v = v << 8 | UInt64(x) } }
            return v
        }
        func bitsOf(_ raw: UInt64) -> UInt64 {
            let shifted = raw >> UInt64(min(63, max(0, f.shift ?? 0)))
            guard let n = f.bits, n < 64 else { return shifted }
            return shifted & ((1 << UInt64(max(0, n))) - 1)
        }
        func scaled(_ raw0: Double) -> Outcome {
            var raw = raw0
            if let table = f.table {
                // Codes come as exact integers; a code the maker's table does not list is no value.
                guard raw == raw.rounded(), abs(raw) < 9e15, let v = table[String(Int64(raw))] else { return .absent }
                raw = v
            }
            let s = f.scale ?? 1
            // Divide by 1000 rather than multiply by 0.001: 46791 / 1000 is 46.791, 46791 * 0.001 is not.
            let inverse = (1 / s).rounded()
            let v = s < 1 && s > 0 && abs(inverse * s - 1) < 1e-12 ? raw / inverse : raw * s
            return .value(.number(v + (f.add ?? 0)))
        }
        switch f.encoding {
        case .uint:
            let raw = bitsOf(unsigned())
            if let inv = f.invalid, inv.contains(Int64(bitPattern: raw)) { return .absent }
            return scaled(Double(raw))
        case .int:
            let u = unsigned()
            let shift = UInt64(64 - 8 * f.length)
            let raw = Int64(bitPattern: u << shift) >> Int64(shift)
            if let inv = f.invalid, inv.contains(raw) { return .absent }
            return scaled(Double(raw))
        case .bcd:
            var v: Int64 = 0
            let ordered: [UInt8] = big ? Array(b) : b.reversed()
            for x in ordered {
                guard x >> 4 <= 9, x & 0x0F <= 9 else { return .problem("BCD \(Hex.encode(ordered)) has non-decimal digits") }
                v = v * 100 + Int64(x >> 4) * 10 + Int64(x & 0x0F)
            }
            if let inv = f.invalid, inv.contains(v) { return .absent }
            return scaled(Double(v))
        case .dateG:
            guard f.length == 2 else { return .problem("a type G date has 2 bytes") }
            let t = MBusDateTime.typeG(b[b.startIndex], b[b.startIndex + 1])
            return checked(t)
        case .dateTimeF:
            guard f.length == 4 else { return .problem("a type F date and time has 4 bytes") }
            let t = Array(b).withUnsafeBufferPointer { MBusDateTime.typeF($0) }
            return checked(t)
        case .dateBits:
            let raw = unsigned()
            func part(_ p: LayoutField.Bits?) -> Int? {
                guard let p else { return nil }
                // `add` comes from a profile file; a wrapped sum is refused by the date check that follows.
                return Int((raw >> UInt64(max(0, min(63, p.shift)))) & ((1 << UInt64(max(0, min(32, p.bits)))) - 1)) &+ (p.add ?? 0)
            }
            guard let day = part(f.day), let month = part(f.month) else { return .absent }
            var year: Int
            if let y = part(f.year) {
                year = y
            } else if let a = f.after, case .date(let ref)? = dates.first(where: { $0.name == a })?.value {
                year = (month, day) >= (ref.month, ref.day) ? ref.year : ref.year &+ 1
            } else {
                return .absent
            }
            if year < 100 { year += 2000 }
            return checked(MBusDateTime(year: year, month: month, day: day))
        case .hex:
            return .value(.text(Hex.encode(Array(b))))
        case .dateBCDDayMonthYear, .dateBCDYearMonthDay:
            guard f.length == 3 else { return .problem("a BCD date has 3 bytes") }
            var digits: [Int] = []
            for x in b {
                guard x >> 4 <= 9, x & 0x0F <= 9 else { return .absent }
                digits.append(Int(x >> 4) * 10 + Int(x & 0x0F))
            }
            let (d, m, y) = f.encoding == .dateBCDDayMonthYear ? (digits[0], digits[1], digits[2]) : (digits[2], digits[1], digits[0])
            return checked(MBusDateTime(year: 2000 + y, month: m, day: d))
        }
    }

    static func checked(_ t: MBusDateTime) -> Outcome {
        // All-ones dates (FFFF) are how meters say "no date yet".
        guard (1...12).contains(t.month), (1...31).contains(t.day) else { return .absent }
        // Years outside the calendar's four digits are garbage bits, and date arithmetic on them could overflow.
        guard (1...9999).contains(t.year) else { return .problem("year \(t.year) is not a calendar year") }
        return .value(.date(t))
    }
}
