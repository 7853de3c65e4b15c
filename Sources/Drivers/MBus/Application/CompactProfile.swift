/// EN 13757-3 Annex F compact profiles: a history (monthly values, load profile) packed into one
/// variable-length record whose VIF carries the combinable VIFE 1Fh (compact profile), 1Eh (compact
/// profile with register numbers) or 13h (inverse compact profile).
///
/// The record's data: a spacing control byte (bits 7–6 increment mode: 00 absolute values, 01 increments,
/// 10 decrements, 11 signed differences; bits 5–4 spacing unit: seconds, minutes, hours, days/months;
/// bits 3–0 the elements' data field as a DIF's), a spacing value (1–250 units; 253 half a month and 254
/// one month with unit 11b, 254 a quarter with 10b and half a year with 01b; 0 not spaced in time), then the
/// elements. The base value and base time are the ordinary records with the profile record's VIF and
/// storage number, and a date at that storage number.
///
/// Each element becomes an ordinary record at storage number base + 1, base + 2, … (the youngest first)
/// with, where a base date is sent, a date record at the same storage number. This is how public decoders
/// (wmbusmeters' dvparser) number them, so profiles can name history values by storage number.
/// Elements are taken from the end for a compact profile and from the start for the inverse profile
/// and the profile with register numbers. All bits set means "no value" (and ends an incremental profile).
/// An inverse profile of increments, decrements or differences is turned into absolute values from the base
/// value. A reserved spacing or element type expands nothing: the record stays as sent.
public enum CompactProfile {
    enum Kind { case compact, withRegisters, inverse }

    static func kind(_ r: DataRecord) -> Kind? {
        kind(r.vifeCodes, manufacturerVIF: r.vif == .manufacturerSpecific)
    }

    /// The profile a record's combinable VIFEs announce, read by the same walk as its modifiers.
    static func kind(_ codes: VIFECodes, manufacturerVIF: Bool) -> Kind? {
        var walk = VIFEModifiers.Walk(codes: codes, stopped: manufacturerVIF)
        while let step = walk.next() {
            if !step.escaped, let k = kind(code: step.code) { return k }
        }
        return nil
    }

    /// Combinable VIFEs 13h, 1Eh and 1Fh (EN 13757-3 Table 15).
    static func kind(code: UInt8) -> Kind? {
        switch code {
        case 0x1F: return .compact
        case 0x1E: return .withRegisters
        case 0x13: return .inverse
        default: return nil
        }
    }

    static func isProfileCode(_ code: UInt8) -> Bool { kind(code: code) != nil }

    enum Spacing: Equatable {
        case none
        case seconds(Int)
        case months(Int)
        case halfMonth
    }

    static func spacing(control: UInt8, value: UInt8) -> Spacing? {
        let unit = (control >> 4) & 0x03
        switch value {
        case 0: return Spacing.none
        case 1...250:
            let factor = [1, 60, 3600, 86400][Int(unit)]
            return .seconds(Int(value) * factor)
        case 253: return unit == 3 ? .halfMonth : nil
        case 254:
            switch unit {
            case 1: return .months(6)
            case 2: return .months(3)
            case 3: return .months(1)
            default: return nil
            }
        default: return nil
        }
    }

    /// The records with every compact profile's elements appended as records of their own.
    public static func expand(_ records: [DataRecord]) -> [DataRecord] {
        guard records.contains(where: { kind($0) != nil }) else { return records }
        var out = records
        for r in records {
            guard let k = kind(r), case .bytes(let payload) = r.value else { continue }
            out += elements(of: r, form: k, payload: payload, among: records)
        }
        return out
    }

    static func elements(of r: DataRecord, form: Kind, payload: [UInt8], among records: [DataRecord]) -> [DataRecord] {
        guard payload.count >= 2 else { return [] }
        let control = payload[0]
        guard let spacing = spacing(control: control, value: payload[1]),
              let field = DataField(rawValue: control & 0x0F), let size = field.size, size > 0 else { return [] }
        let data = payload[2...]
        guard data.count % size == 0, data.count / size <= 512 else { return [] }
        let mode = control >> 6
        let incremental = mode != 0
        let binary = !field.isBCD && field != .real32
        // Annex F.2.4: binary elements of increments and decrements are unsigned, of absolute values and
        // signed differences two's complement.
        let unsignedElements = mode == 1 || mode == 2

        func same(_ o: DataRecord) -> Bool {
            o.storageNumber == r.storageNumber && o.tariff == r.tariff && o.subunit == r.subunit && kind(o) == nil
        }
        let base = records.first { same($0) && $0.vif == r.vif && $0.value.number != nil }
        var running: Int64? = base.flatMap { if case .integer(let v) = $0.value { v } else if case .bcd(let v) = $0.value { v } else { nil } }
        let baseDate = records.first { o in
            guard o.storageNumber == r.storageNumber, o.subunit == r.subunit, kind(o) == nil, case .dateTime = o.value else { return false }
            return o.descriptor.kind == .date || o.descriptor.kind == .dateTime
        }
        var date: MBusDateTime? = baseDate.flatMap { if case .dateTime(let t) = $0.value { t } else { nil } }

        var starts = Array(stride(from: data.startIndex, to: data.endIndex, by: size))
        if form == .compact { starts.reverse() }
        var out: [DataRecord] = []
        var index: UInt64 = 0
        for s in starts {
            let bytes = data[s..<(s + size)]
            if bytes.allSatisfy({ $0 == 0xFF }) {
                if incremental { break }
                continue
            }
            var value: RecordValue
            if field.isBCD {
                guard let v = bcd(bytes) else { if incremental { break } else { continue } }
                value = .bcd(v)
            } else if field == .real32 {
                let bits = bytes.reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                value = .real(Double(Float(bitPattern: bits)))
            } else {
                var u: UInt64 = 0
                for b in bytes.reversed() { u = u << 8 | UInt64(b) }
                let bitsCount = UInt64(8 * size)
                if unsignedElements || bitsCount == 64 {
                    value = .integer(Int64(bitPattern: u))
                } else {
                    let shift = 64 - bitsCount
                    let signed = Int64(bitPattern: u << shift) >> Int64(shift)
                    // The most negative number marks an illegal element in an incremental profile.
                    if incremental && signed == -(Int64(1) << (bitsCount - 1)) { break }
                    value = .integer(signed)
                }
            }
            if form == .inverse, incremental, binary || field.isBCD, let run = running {
                let delta: Int64 = switch value { case .integer(let v), .bcd(let v): v; default: 0 }
                let (absolute, overflow) = mode == 2 ? run.addingReportingOverflow(delta) : run.subtractingReportingOverflow(delta)
                if overflow { break }
                value = field.isBCD ? .bcd(absolute) : .integer(absolute)
                running = absolute
            }
            index += 1
            let storage = r.storageNumber.addingReportingOverflow(index)
            if storage.overflow { break }
            var element = r
            element.storageNumber = storage.partialValue
            element.dataField = field
            element.vifeCodes = r.vifeCodes.removingCompactProfileCodes(manufacturerVIF: r.vif == .manufacturerSpecific)
            element.value = value
            out.append(element)
            if let d = date, let b = baseDate, let next = step(d, spacing, backwards: form == .inverse) {
                var dr = b
                dr.storageNumber = storage.partialValue
                dr.offset = r.offset
                dr.value = .dateTime(next)
                out.append(dr)
                date = next
            }
        }
        return out
    }

    static func bcd(_ bytes: ArraySlice<UInt8>) -> Int64? {
        var v: Int64 = 0
        for b in bytes.reversed() {
            guard b >> 4 <= 9, b & 0x0F <= 9 else { return nil }
            v = v * 100 + Int64(b >> 4) * 10 + Int64(b & 0x0F)
        }
        return v
    }

    static func daysIn(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// The next (or, for an inverse profile, the previous) point in time. A date on the last day of its
    /// month stays on the last day (31 Oct → 30 Nov → 31 Dec), as billing dates do.
    static func step(_ t: MBusDateTime, _ s: Spacing, backwards: Bool) -> MBusDateTime? {
        guard (1...9999).contains(t.year), (1...12).contains(t.month), (1...31).contains(t.day) else { return nil }
        let sign = backwards ? -1 : 1
        var r = t
        switch s {
        case .none:
            return nil
        case .months(let n):
            let lastDay = t.day >= daysIn(t.year, t.month)
            var m = t.year * 12 + (t.month - 1) + sign * n
            if m < 12 { m = 12 }
            r.year = m / 12
            r.month = m % 12 + 1
            r.day = lastDay ? daysIn(r.year, r.month) : min(t.day, daysIn(r.year, r.month))
        case .halfMonth:
            if backwards {
                if t.day >= 16 { r.day = 1 } else { return step(MBusDateTime(year: t.year, month: t.month, day: 16, hour: t.hour, minute: t.minute, second: t.second), .months(1), backwards: true) }
            } else {
                if t.day <= 15 { r.day = 16 } else {
                    guard let n = step(MBusDateTime(year: t.year, month: t.month, day: 1, hour: t.hour, minute: t.minute, second: t.second), .months(1), backwards: false) else { return nil }
                    r = n
                }
            }
        case .seconds(let n):
            let days = CivilCalendar.days(year: t.year, month: t.month, day: t.day)
            let secondOfDay = (t.hour ?? 0) * 3600 + (t.minute ?? 0) * 60 + (t.second ?? 0)
            let total = days * 86400 + secondOfDay + sign * n
            let d = total >= 0 ? total / 86400 : (total - 86399) / 86400
            let rest = total - d * 86400
            let (y, m, dd) = CivilCalendar.date(days: d)
            guard (1...9999).contains(y) else { return nil }
            r.year = y; r.month = m; r.day = dd
            if t.hour != nil || rest != 0 {
                r.hour = rest / 3600
                r.minute = rest % 3600 / 60
                r.second = t.second == nil && rest % 60 == 0 ? nil : rest % 60
            }
        }
        return r
    }
}
