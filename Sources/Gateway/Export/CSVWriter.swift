import Drivers

/// The one CSV writer for the files people open in a spreadsheet: the commissioning report and
/// `gatewayd buffer export`. RFC 4180 (CRLF line ends, a field quoted when it holds a comma, a double
/// quote or a line break, its quotes doubled), plus two rules for what the cells carry:
///
/// - Formula injection (OWASP "CSV Injection"): a cell beginning with `=`, `+`, `-`, `@`, a tab or a
///   carriage return is prefixed with a single quote, so Excel and LibreOffice show it as text instead
///   of running it. Meter strings, registry notes and device names are data from outside. A plain
///   number (`-12.5`, `+3`, `1e-3`) is left alone: it is the reason the file exists, and a spreadsheet
///   reads it as a number whatever its sign.
/// - Control characters other than tab, CR and LF are written as `\xHH` (`TerminalText.field`): the
///   same file is also `cat` on a terminal.
public enum CSVWriter {
    /// U+FEFF, which Excel needs to read a CSV file as UTF-8 instead of the Windows code page.
    public static let byteOrderMark = "\u{FEFF}"

    /// One cell, ready to join with commas.
    public static func cell(_ value: String) -> String {
        var s = TerminalText.field(value)
        if let first = s.unicodeScalars.first, formulaStarts.contains(first), !isPlainNumber(s) {
            s = "'" + s
        }
        guard s.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        var out = "\""
        for c in s.unicodeScalars {
            if c == "\"" { out += "\"\"" } else { out.unicodeScalars.append(c) }
        }
        return out + "\""
    }

    /// One record, CRLF-terminated.
    public static func record(_ fields: [String]) -> String {
        fields.map(cell).joined(separator: ",") + "\r\n"
    }

    /// A whole file: the header row, then the rows; with `byteOrderMark`, U+FEFF first.
    public static func document(header: [String], rows: [[String]], byteOrderMark bom: Bool = false) -> String {
        var out = bom ? byteOrderMark : ""
        out += record(header)
        for r in rows { out += record(r) }
        return out
    }

    /// The characters a spreadsheet takes as the start of a formula (OWASP's list).
    static let formulaStarts: Set<Unicode.Scalar> = ["=", "+", "-", "@", "\t", "\r"]

    /// `[+-]digits[.digits][e[+-]digits]` (or `.digits`): a number as gatewayd writes one, which a
    /// spreadsheet reads as that number and nothing else.
    static func isPlainNumber(_ s: String) -> Bool {
        var u = Array(s.utf8)[...]
        func digits() -> Int {
            let n = u.prefix { $0 >= 0x30 && $0 <= 0x39 }.count
            u = u.dropFirst(n)
            return n
        }
        if u.first == UInt8(ascii: "+") || u.first == UInt8(ascii: "-") { u = u.dropFirst() }
        var mantissa = digits()
        if u.first == UInt8(ascii: ".") {
            u = u.dropFirst()
            mantissa += digits()
        }
        guard mantissa > 0 else { return false }
        if u.first == UInt8(ascii: "e") || u.first == UInt8(ascii: "E") {
            u = u.dropFirst()
            if u.first == UInt8(ascii: "+") || u.first == UInt8(ascii: "-") { u = u.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return u.isEmpty
    }
}
