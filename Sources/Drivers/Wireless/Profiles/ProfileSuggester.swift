#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A starting profile for a meter no profile knows, built from the generic EN 13757-3 records of one of
/// its telegrams: detection from the address, one named value per record, the set day where the meter
/// sends a storage-1 value with a date, and the telegram itself as the first test. A technician renames
/// values, adds the maker's layouts and sources, and has a profile in minutes (`gatewayd profiles suggest`).
public enum ProfileSuggester {
    /// `hex`: the telegram as given (it becomes the profile's first test); `framing` "a" or "b" when it has CRCs.
    public static func suggest(_ w: WirelessTelegram, hex: String, framing: String? = nil) -> MeterProfile {
        let a = w.meterAddress
        let man = a.manufacturer.letters
        let category = category(a.deviceType.rawValue)
        var records: [RecordField] = []
        var used: [String: Int] = [:]
        var seen: [RecordMatchKey: Int] = [:]
        for r in w.telegram.records where r.problem == nil {
            guard let vif = vifText(r.vif), let unit = unit(for: r) else { continue }
            var m = RecordMatch()
            m.vif = vif
            if case .manufacturerSpecific = r.vif, let e = r.vifeCodes.first { m.vife = Hex.encode([e & 0x7F]) }
            if r.storageNumber != 0 { m.storage = Int(clamping: r.storageNumber) }
            if r.tariff != 0 { m.tariff = Int(clamping: r.tariff) }
            if r.subunit != 0 { m.subunit = Int(r.subunit) }
            if r.function != .instantaneous { m.function = r.function.key }
            let annotations = r.modifiers.compactMap { if case .annotation(let s) = $0 { s } else { nil } }
            if let first = annotations.first { m.annotation = first }
            let key = RecordMatchKey(m)
            let occurrence = seen[key, default: 0]
            seen[key] = occurrence + 1
            if occurrence > 0 { m.occurrence = occurrence }
            var name = baseName(r, annotations: annotations)
            if let suffix = unitSuffix(unit), !name.hasSuffix(suffix) { name += "_" + suffix }
            if let n = used[name] {
                used[name] = n + 1
                name += "_\(n + 1)"
            } else {
                used[name] = 1
            }
            records.append(RecordField(name: name, unit: unit, match: m, scale: nil))
        }
        let version = ProfileByte(Int(a.version))
        let type = ProfileByte(Int(a.deviceType.rawValue))
        var p = MeterProfile(
            id: "\(man.lowercased())-\(Hex.encode([a.deviceType.rawValue]).lowercased())-v\(Hex.encode([a.version]).lowercased())",
            name: "\(man) \(a.deviceType.name) version \(a.version) (suggested from one telegram: rename and cite)",
            manufacturer: man, category: category, models: nil,
            source: ["suggested by gatewayd profiles suggest from the generic EN 13757-3 records of one telegram: replace with the maker's documents"],
            detect: [ProfileDetection(manufacturer: man, versions: [version], deviceTypes: [type])],
            records: records.isEmpty ? nil : records, layouts: nil, derived: nil, status: nil, setDay: nil, tests: [])
        // The set day: a storage-1 value of the main quantity and the storage-1 date beside it.
        if let value = records.first(where: { $0.match.storage == 1 && $0.unit != "date" && $0.unit != "datetime" }) {
            let date = records.first { $0.match.storage == 1 && ($0.unit == "date" || $0.unit == "datetime") }
            p.setDay = SetDaySpec(value: value.name, date: date?.name)
        }
        if w.manufacturerPayload != nil {
            p.source.append("the telegram carries a manufacturer-specific payload (CI \(Hex.encode([w.telegram.controlInformation]))): add a layout with source manufacturer_payload")
        }
        let reading = ProfileEvaluator.evaluate(w, profile: p)
        var expected: [String: ExpectedValue] = [:]
        for v in reading.values {
            switch v.value {
            case .number(let d): expected[v.name] = .number(d)
            case .date(let t): expected[v.name] = .text(t.description)
            case .text(let s): expected[v.name] = .text(s)
            }
        }
        p.tests = [ProfileTestCase(hex: hex, key: nil, preceding: nil, framing: framing, expected: expected,
                                   alarms: reading.alarms.map(\.flag), setDayDate: reading.setDayDate?.description,
                                   note: "the telegram the profile was suggested from: check every expected value against the meter's display")]
        return p
    }

    /// Pretty JSON of a profile, keys in a stable order.
    public static func json(_ p: MeterProfile) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let d = try? e.encode(p) else { return "{}" }
        return String(decoding: d, as: UTF8.self)
    }

    struct RecordMatchKey: Hashable {
        var vif: String?, vife: String?, storage: Int?, tariff: Int?, subunit: Int?, function: String?, annotation: String?
        init(_ m: RecordMatch) {
            vif = m.vif; vife = m.vife; storage = m.storage; tariff = m.tariff; subunit = m.subunit
            function = m.function; annotation = m.annotation
        }
    }

    /// The profile text of a VIF ("13", "FD17", "7F"), nil for codes a profile cannot name.
    static func vifText(_ v: VIFCode) -> String? {
        switch v {
        case .primary(let c): return Hex.encode([c])
        case .extensionFD(let c): return "FD" + Hex.encode([c])
        case .extensionFB(let c): return "FB" + Hex.encode([c])
        case .manufacturerSpecific: return "7F"
        default: return nil
        }
    }

    /// The output unit for a record: the common one of its quantity.
    static func unit(for r: DataRecord) -> String? {
        if case .dateTime(let t) = r.value { return t.hour == nil ? "date" : "datetime" }
        switch r.unit {
        case "m^3": return "m3"
        case "Wh", "J": return "kWh"
        case "W": return "kW"
        case "m^3/h": return "m3/h"
        case "C": return "C"
        case "K": return "K"
        case "s": return r.quantity.hasPrefix("Remaining battery") ? "d" : "h"
        case "bar", "V", "A", "kg", "dBm", "%", "Hz", "VA", "var", "varh", "kg/h": return r.unit
        case "", "HCA units":
            switch r.value {
            case .integer, .bcd, .real: return r.quantity == "Error flags" ? "" : (r.quantity == "H.C.A." ? "hca" : "")
            case .text, .timeText, .bytes: return "text"
            default: return nil
            }
        default: return nil
        }
    }

    static func unitSuffix(_ unit: String) -> String? {
        switch unit {
        case "", "text", "date", "datetime": return nil
        case "m3/h": return "m3h"
        default: return unit.lowercased()
        }
    }

    static func baseName(_ r: DataRecord, annotations: [String]) -> String {
        var q = r.quantity.lowercased()
        switch q {
        case "h.c.a.": q = "hca"
        case "time point (date)", "time point (date & time)": q = "date"
        case "volume flow": q = "flow"
        default: break
        }
        var name = ""
        for ch in q.unicodeScalars {
            if ("a"..."z").contains(ch) || ("0"..."9").contains(ch) {
                name.unicodeScalars.append(ch)
            } else if !name.hasSuffix("_") && !name.isEmpty {
                name += "_"
            }
        }
        while name.hasSuffix("_") { name.removeLast() }
        if name.isEmpty { name = "value" }
        if r.storageNumber == 0 && r.tariff == 0 && (q == "volume" || q == "energy" || q == "hca") { name = "total_" + name }
        if annotations.contains(where: { $0.contains("backward") }) { name += "_backward" }
        switch r.function {
        case .maximum: name += "_max"
        case .minimum: name += "_min"
        case .valueDuringError: name += "_at_error"
        case .instantaneous: break
        }
        if r.tariff != 0 { name += "_tariff_\(r.tariff)" }
        if r.subunit != 0 { name += "_subunit_\(r.subunit)" }
        if r.storageNumber != 0 { name += "_storage_\(r.storageNumber)" }
        return name
    }

    /// EN 13757-7 Table 12 device types to profile categories.
    static func category(_ t: UInt8) -> String {
        switch t {
        case 0x02: return "electricity"
        case 0x03: return "gas"
        case 0x04, 0x0C: return "heat"
        case 0x0A, 0x0B, 0x0D: return "cooling"
        case 0x06: return "warm_water"
        case 0x07, 0x16, 0x15: return "water"
        case 0x08, 0x80: return "heat_cost_allocator"
        case 0x1A: return "smoke"
        case 0x1B: return "room_sensor"
        case 0x1D: return "door_window"
        case 0x31, 0x32, 0x33, 0x36, 0x37: return "radio"
        default: return "other"
        }
    }
}
