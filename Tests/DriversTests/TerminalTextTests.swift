import Testing
import Drivers

@Suite("Terminal text")
struct TerminalTextTests {
    @Test("C0, DEL and C1 become \\xHH; printable text and non-control Unicode stay")
    func controlsEscaped() {
        #expect(TerminalText.line("\u{1B}[2Jm³ °C") == "\\x1B[2Jm³ °C")
        #expect(TerminalText.line("a\u{7F}b\u{9B}31mc\u{0}") == "a\\x7Fb\\x9B31mc\\x00")
        #expect(TerminalText.line("one\ntwo\r\tthree") == "one two  three")
        #expect(TerminalText.lines("one\ntwo\rthree\u{7}") == "one\ntwo\\x0Dthree\\x07")
        #expect(TerminalText.field("a\tb\r\nc\u{1B}") == "a\tb\r\nc\\x1B")
        let clean = "Energy 6042 kWh"
        #expect(TerminalText.line(clean) == clean)
        // Nothing escaped is left that a terminal acts on.
        let hostile = String(decoding: (0...0xFF).map { UInt8($0) }, as: UTF8.self) + "\u{85}\u{90}\u{9D}"
        #expect(!TerminalText.lines(hostile).unicodeScalars.contains { TerminalText.isControl($0) && $0 != "\n" })
    }
}
