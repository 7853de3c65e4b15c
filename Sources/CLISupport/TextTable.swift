import Drivers

/// The one table style of every gatewayd command: an upper-case header row, columns two spaces apart
/// and left-aligned, "-" for an empty cell, no trailing spaces. Plain text, so `grep` and `awk` work on it.
/// Cells are escaped (`TerminalText.line`) before the widths are measured: a meter's plain-text unit
/// cannot drive the terminal or break the columns.
package enum TextTable {
    package static func render(header: [String], rows: [[String]], indent: String = "") -> String {
        let all = [header.map { $0.uppercased() }] + rows.map { row in row.map { $0.isEmpty ? "-" : TerminalText.line($0) } }
        let columns = all.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for r in all { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for r in all {
            var line = indent
            for (i, c) in r.enumerated() {
                line += c
                if i < r.count - 1 { line += String(repeating: " ", count: widths[i] - c.count + 2) }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }
}
