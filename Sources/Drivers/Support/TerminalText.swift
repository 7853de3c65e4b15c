/// Text from meters (plain-text VIFs, LVAR strings, manufacturer strings), registries and portals made
/// safe for a terminal and a log line: C0 and C1 control characters and DEL are written as `\xHH`.
///
/// A telegram is radio input anyone can send. Raw, an ESC or CSI in it would move the cursor, retitle
/// the window or hide lines on the technician's screen and in `journalctl`; a line break would forge a
/// log line. Every human-readable renderer passes its text through here; JSON output is escaped by its
/// encoder instead and does not.
public enum TerminalText {
    /// For one line (a table cell, a log message or metadata value): tab, LF and CR become a space, so
    /// columns and one-event-per-line stay intact; every other control character is escaped.
    public static func line(_ s: String) -> String {
        escape(s) { c in
            switch c {
            case 0x09, 0x0A, 0x0D: " "
            default: nil
            }
        }
    }

    /// For text of several lines a renderer built itself: LF stays, a tab becomes a space, every other
    /// control character (CR included: it would overwrite the line) is escaped.
    public static func lines(_ s: String) -> String {
        escape(s) { c in
            switch c {
            case 0x0A: "\n"
            case 0x09: " "
            default: nil
            }
        }
    }

    /// For a field of a format that quotes its own tabs and line breaks (CSV): those stay, every other
    /// control character is escaped.
    public static func field(_ s: String) -> String {
        escape(s) { c in
            switch c {
            case 0x09, 0x0A, 0x0D: String(UnicodeScalar(UInt8(c)))
            default: nil
            }
        }
    }

    /// C0 (00–1F), DEL (7F) and C1 (80–9F): the code points a terminal may act on.
    public static func isControl(_ c: Unicode.Scalar) -> Bool {
        c.value < 0x20 || (c.value >= 0x7F && c.value < 0xA0)
    }

    /// `kept` says what a control character becomes instead of its escape (nil: escape it).
    private static func escape(_ s: String, _ kept: (UInt32) -> String?) -> String {
        // Almost every string is clean: no copy for those.
        guard s.unicodeScalars.contains(where: isControl) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for c in s.unicodeScalars {
            guard isControl(c) else {
                out.unicodeScalars.append(c)
                continue
            }
            if let replacement = kept(c.value) {
                out += replacement
            } else {
                let digits = String(c.value, radix: 16, uppercase: true)
                out += "\\x" + (digits.count < 2 ? "0" : "") + digits
            }
        }
        return out
    }
}
