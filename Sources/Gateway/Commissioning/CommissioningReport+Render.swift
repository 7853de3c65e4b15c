/// What the renderings (JSON, CSV, HTML, terminal) share: per-floor counts, the findings per device,
/// and the words and number format every rendering uses for the same fact.
extension CommissioningReport {
    /// One floor's line of the terminal table and one HTML section's heading.
    struct FloorTally: Hashable, Sendable {
        var floor: String
        var expected = 0
        var heard = 0
        var missing = 0
        var wrongKey = 0
        var noKey = 0
        var weak = 0
        var serialMismatch = 0

        mutating func add(_ other: FloorTally) {
            expected += other.expected
            heard += other.heard
            missing += other.missing
            wrongKey += other.wrongKey
            noKey += other.noKey
            weak += other.weak
            serialMismatch += other.serialMismatch
        }
    }

    /// The devices the findings call weak. Taken from the findings rather than recomputed from the RSSI,
    /// so that a report without `weakSignalBelow` counts exactly what its summary counted.
    var weakDeviceKeys: Set<String> {
        Set(findings.filter { $0.code == "weak_signal" }.flatMap(\.devices))
    }

    /// Devices grouped by floor, floors in building order ("2" before "10", devices without a unit last).
    func devicesByFloor() -> [(floor: String, devices: [DeviceResult])] {
        var groups: [String: [DeviceResult]] = [:]
        for d in devices { groups[d.floor, default: []].append(d) }
        return CommissioningSession.sortFloors(Array(groups.keys)).map { ($0, groups[$0]!) }
    }

    func floorTallies() -> [FloorTally] {
        let weak = weakDeviceKeys
        return devicesByFloor().map { floor, devices in
            var t = FloorTally(floor: floor)
            for d in devices {
                t.expected += 1
                if d.heard { t.heard += 1 } else { t.missing += 1 }
                if d.decryption == .wrongKey { t.wrongKey += 1 }
                if d.decryption == .noKey { t.noKey += 1 }
                if weak.contains(d.key) { t.weak += 1 }
                if d.serialMatch == .mismatch { t.serialMismatch += 1 }
            }
            return t
        }
    }

    /// Finding codes per device key, in the findings' order, each code once.
    func findingCodesByDevice() -> [String: [String]] {
        var codes: [String: [String]] = [:]
        for f in findings {
            for key in f.devices where !(codes[key] ?? []).contains(f.code) { codes[key, default: []].append(f.code) }
        }
        return codes
    }

    /// Findings that need the installer before the building counts as commissioned.
    var actionCount: Int { findings.filter { $0.severity == .action }.count }
}

/// Words and numbers as every rendering writes them.
enum ReportText {
    /// Decimal notation with '.', no grouping and no exponent ("0.00001", "1234", "-101.5"): spreadsheets in
    /// any locale and people read it the same way.
    static func number(_ x: Double) -> String {
        guard x.isFinite else { return x.isNaN ? "NaN" : (x < 0 ? "-Infinity" : "Infinity") }
        if x == x.rounded(.towardZero), abs(x) < 1e18 { return String(Int64(x)) }
        // Swift's shortest round-trip form, with its exponent (if any) written out.
        let text = "\(x)"
        guard let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }), let exponent = Int(text[text.index(after: e)...]) else {
            return text
        }
        let negative = text.hasPrefix("-")
        let mantissa = text[(negative ? text.index(after: text.startIndex) : text.startIndex)..<e]
        let parts = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = String(parts[0])
        var digits = whole + (parts.count > 1 ? String(parts[1]) : "")
        var point = whole.count + exponent
        if point <= 0 {
            digits = String(repeating: "0", count: 1 - point) + digits
            point = 1
        }
        if digits.count < point { digits += String(repeating: "0", count: point - digits.count) }
        var result = String(digits.prefix(point))
        var fraction = String(digits.dropFirst(point))
        while fraction.hasSuffix("0") { fraction.removeLast() }
        while result.count > 1, result.hasPrefix("0") { result.removeFirst() }
        if !fraction.isEmpty { result += "." + fraction }
        return (negative ? "-" : "") + result
    }

    /// "12.345 m3"; the unit is left out when there is none.
    static func value(_ v: CommissioningReport.Value) -> String {
        v.unit.isEmpty ? number(v.value) : number(v.value) + " " + v.unit
    }

    static func decryption(_ d: CommissioningReport.Decryption) -> String {
        switch d {
        case .plain: return "plain"
        case .decrypted: return "decrypted"
        case .noKey: return "no key"
        case .wrongKey: return "wrong key"
        case .unsupported: return "unsupported mode"
        case .notApplicable: return "-"
        }
    }

    static func serialMatch(_ s: CommissioningReport.SerialMatch) -> String {
        switch s {
        case .match: return "match"
        case .mismatch: return "MISMATCH"
        case .unverified: return "unverified"
        case .notChecked: return "-"
        }
    }

    static func endReason(_ r: CommissioningReport.EndReason) -> String {
        switch r {
        case .allHeard: return "every expected device was heard"
        case .windowOver: return "the listening window was over"
        case .interrupted: return "interrupted"
        }
    }

    static func severity(_ s: CommissioningReport.Finding.Severity) -> String {
        switch s {
        case .action: return "action"
        case .warning: return "warning"
        case .info: return "info"
        }
    }

    /// "2026-11-21 10:15:00 UTC" from the report's ISO 8601 UTC; anything else is shown as it is.
    static func time(_ iso: String) -> String {
        guard iso.count == 20, iso.hasSuffix("Z"), iso.dropFirst(10).first == "T" else { return iso }
        return String(iso.prefix(10)) + " " + String(iso.dropFirst(11).prefix(8)) + " UTC"
    }

    /// "90 s", "15 min", "1 h 30 min".
    static func duration(seconds: Int) -> String {
        if seconds < 120 { return "\(seconds) s" }
        let minutes = seconds / 60
        if minutes < 60 { return seconds % 60 == 0 ? "\(minutes) min" : "\(minutes) min \(seconds % 60) s" }
        return minutes % 60 == 0 ? "\(minutes / 60) h" : "\(minutes / 60) h \(minutes % 60) min"
    }

    static func floorTitle(_ floor: String) -> String {
        floor == "-" ? "Without a unit" : "Floor \(floor)"
    }
}
