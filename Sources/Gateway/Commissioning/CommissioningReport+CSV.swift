extension CommissioningReport {
    static let csvColumns = [
        "unit", "floor", "key", "kind", "bus", "line", "identification", "manufacturer", "heard", "telegrams",
        "rssi_best", "rssi_median", "rssi_worst", "decryption", "serial_match", "serial_detail",
        "reading_name", "reading_value", "reading_unit", "set_day_value", "set_day_unit", "profile", "error", "findings",
    ]

    /// One row per expected device, registry order, for spreadsheets, written by `CSVWriter` (RFC 4180,
    /// formula-looking cells defused). Codes rather than words for decryption and serial match, the same
    /// as in the JSON, so that filters survive a change of wording. `byteOrderMark` for Excel.
    public func csv(byteOrderMark: Bool = false) -> String {
        let codes = findingCodesByDevice()
        var rows: [[String]] = []
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
            rows.append(fields)
        }
        return CSVWriter.document(header: Self.csvColumns, rows: rows, byteOrderMark: byteOrderMark)
    }
}
