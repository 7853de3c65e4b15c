import Drivers

extension CommissioningReport {
    /// Finding lines shown before "… and N more": a screenful, so the totals stay in view.
    static let terminalFindingLines = 30

    /// What `gatewayd commission` prints at the end: the verdict and totals, the findings most urgent first,
    /// then one line per floor. Plain text with aligned columns; control characters from the report are
    /// escaped (`TerminalText`) so that an id or a note cannot move the cursor or recolour the terminal.
    public func terminalSummary() -> String {
        var lines: [String] = []
        lines.append("Commissioning of building \(building), gateway \(gateway)")
        lines.append("\(ReportText.time(startedAt)) to \(ReportText.time(finishedAt)), window \(ReportText.duration(seconds: listenSeconds)), "
                     + "ended: \(ReportText.endReason(endedBecause))")
        let actions = actionCount
        lines.append(actions == 0 ? "COMMISSIONED: no finding needs action"
                                  : "NOT COMMISSIONED: \(actions) finding\(actions == 1 ? " needs" : "s need") action")
        lines.append("")
        let s = summary
        lines.append("expected \(s.expected)   heard \(s.heard)   missing \(s.missing)   wrong key \(s.wrongKey)   no key \(s.noKey)")
        lines.append("weak signal \(s.weakSignal)   serial mismatch \(s.serialMismatch)   unknown nearby \(s.unknownNearby)   telegrams \(s.telegrams)")
        lines.append("")

        if findings.isEmpty {
            lines.append("No findings.")
        } else {
            lines.append("Findings, most urgent first:")
            let ordered = findings.enumerated().sorted { ($0.element.severity, $0.offset) < ($1.element.severity, $1.offset) }.map(\.element)
            let limit = Self.terminalFindingLines
            let shown = ordered.count > limit ? ordered.prefix(limit - 1) : ordered.prefix(limit)
            for f in shown {
                let label = ReportText.severity(f.severity).uppercased()
                lines.append("  " + label + String(repeating: " ", count: max(1, 9 - label.count)) + f.message)
            }
            if shown.count < ordered.count {
                lines.append("  … and \(ordered.count - shown.count) more (all in the HTML and CSV reports)")
            }
        }

        let tallies = floorTallies()
        if !tallies.isEmpty {
            lines.append("")
            // Upper-case headers like every gatewayd table (docs/cli.md); numbers right-aligned for totals.
            var rows = [["FLOOR", "EXPECTED", "HEARD", "MISSING", "WRONG KEY", "NO KEY", "WEAK", "MISMATCH"]]
            var total = FloorTally(floor: "total")
            for t in tallies {
                rows.append(Self.row(t))
                total.add(t)
            }
            if tallies.count > 1 { rows.append(Self.row(total)) }
            lines += Self.aligned(rows)
        }
        return lines.map(TerminalText.line).joined(separator: "\n") + "\n"
    }

    private static func row(_ t: FloorTally) -> [String] {
        // Escaped before the widths are measured, so a control character in a floor name keeps the columns.
        [TerminalText.line(t.floor), "\(t.expected)", "\(t.heard)", "\(t.missing)", "\(t.wrongKey)", "\(t.noKey)", "\(t.weak)", "\(t.serialMismatch)"]
    }

    /// First column left-aligned, numbers right-aligned, two spaces between columns.
    static func aligned(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for r in rows { for (i, cell) in r.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { r in
            r.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
    }
}
