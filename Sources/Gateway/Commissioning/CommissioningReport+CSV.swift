extension CommissioningReport {
    static let csvColumns = [
        "unit", "floor", "key", "kind", "bus", "line", "identification", "manufacturer", "heard", "telegrams",
        "rssi_best", "rssi_median", "rssi_worst", "decryption", "serial_match", "serial_detail",
        "reading_name", "reading_value", "reading_unit", "set_day_value", "set_day_unit", "profile", "error", "findings",
    ]

    /// One row per expected device, registry order, for spreadsheets (RFC 4180: CRLF line ends, a header
    /// row, fields quoted when they hold a comma, a quote or a line break). Codes rather than words for
    /// decryption and serial match, the same as in the JSON, so that filters survive a change of wording.
    public func csv() -> String {
        let codes = findingCodesByDevice()
        var out = Self.csvRow(Self.csvColumns)
        for d in devices {
            let fields: [String] = [
                d.unit ?? "", d.floor, d.key, d.kind, d.bus, d.line ?? "", d.identification ?? "", d.manufacturer ?? "",
                d.heard ? "yes" : "no", String(d.telegrams),
                d.rssi.map { ReportText.number($0.best) } ?? "", d.rssi.map { ReportText.number($0.median) } ?? "",
                d.rssi.map { ReportText.number($0.worst) } ?? "",
                d.decryption.rawValue, d.serialMatch.rawValue, d.serialDetail ?? "",
                d.reading?.name ?? "", d.reading.map { ReportText.number($0.value) } ?? "", d.reading?.unit ?? "",
                d.setDay.map { ReportText.number($0.value) } ?? "", d.setDay?.unit ?? "",
                d.profile ?? "", d.error ?? "", (codes[d.key] ?? []).joined(separator: ";"),
            ]
            out += Self.csvRow(fields)
        }
        return out
    }

    static func csvRow(_ fields: [String]) -> String {
        fields.map(csvField).joined(separator: ",") + "\r\n"
    }

    /// RFC 4180 section 2: a field with a comma, a double quote or a line break goes in double quotes, and
    /// its double quotes are doubled.
    static func csvField(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        var out = "\""
        for c in s.unicodeScalars {
            if c == "\"" { out += "\"\"" } else { out.unicodeScalars.append(c) }
        }
        return out + "\""
    }
}
