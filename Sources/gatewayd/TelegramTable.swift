import Agent
import CLISupport
import Drivers

/// Renders a telegram as a table a technician can read at a glance.
enum TelegramTable {
    /// The table, its free-text lines escaped too (the cells already are, by `TextTable`).
    static func render(_ t: Telegram, label: String) -> String {
        TerminalText.lines(renderRaw(t, label: label))
    }

    private static func renderRaw(_ t: Telegram, label: String) -> String {
        var out = ""
        let h = t.header
        var link = "CI \(Hex.encode([t.controlInformation]))"
        if let a = t.primaryAddress { link = "primary address \(a), " + link }
        if let c = t.control { link = "\(c), " + link }
        out += "\(label): \(link)\n"
        if let err = t.applicationError {
            out += "  APPLICATION ERROR: \(err.message)\n"
            out += "  what to do: \((err.code ?? ApplicationErrorCode(rawValue: 0)).advice)\n"
            return out
        }
        var meter: [String] = []
        if let m = h.manufacturer { meter.append(m.letters) }
        if let id = h.identification { meter.append(id.digits) }
        if let v = h.version { meter.append("version \(v)") }
        if let d = h.deviceType { meter.append(d.name) }
        if !meter.isEmpty { out += "  meter:  " + meter.joined(separator: "  ") + "\n" }
        var state: [String] = []
        if let a = h.accessNumber { state.append("access number \(a)") }
        if let s = h.status { state.append("status \(Hex.encode([s.rawValue])) (\(s))") }
        if let sig = h.signature { state.append("signature \(Hex.encode([UInt8(sig >> 8), UInt8(sig & 0xFF)]))") }
        if !state.isEmpty { out += "  state:  " + state.joined(separator: ", ") + "\n" }

        var rows: [[String]] = []
        var problems: [String] = []
        for (i, r) in t.records.enumerated() {
            let report = RecordReport(r)
            var quantity = r.quantity
            if case .plainText(let text) = r.vif { quantity = "\"" + text + "\"" }
            for a in r.annotations where r.recordError == nil { quantity += " (" + a + ")" }
            if let p = r.problem {
                quantity = "! " + quantity
                problems.append("  ! record \(i): \(p)")
            }
            rows.append([
                String(i), r.function.key, String(r.storageNumber), String(r.tariff), String(r.subunit),
                quantity, text(report.value), r.unit, text(report.rawValue) + (r.rawUnit.isEmpty ? "" : " " + r.rawUnit),
            ])
        }
        out += TextTable.render(header: ["#", "function", "st", "ta", "su", "quantity", "value", "unit", "raw"], rows: rows, indent: "  ")
        for p in problems { out += p + "\n" }
        if let m = t.manufacturerData {
            out += "  manufacturer data (\(m.count) bytes): \(Hex.encode(m, separator: " "))\n"
        }
        if t.moreRecordsFollow {
            out += "  more records follow: read the meter again for the next telegram\n"
        }
        return out
    }

    static func text(_ v: ReportValue) -> String {
        switch v {
        case .integer(let i): return String(i)
        case .number(let d):
            if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
            return String(d)
        case .string(let s): return s
        case .null: return "-"
        }
    }
}
