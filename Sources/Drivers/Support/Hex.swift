/// Hex text as technicians paste it: "68 1F 1F 68", "681F1F68", "0x68,0x1f" or with line breaks.
public enum Hex {
    /// A hex string that could not be read as bytes.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// Character offset of the first offending character in the input text.
        public let offset: Int
        public let reason: String
        public var description: String { "invalid hex at character \(offset): \(reason)" }
    }

    /// Parses hex digits, ignoring white space, commas, colons and `0x` prefixes.
    public static func decode(_ text: some StringProtocol) throws(ParseError) -> [UInt8] {
        try decode(utf8: Array(text.utf8))
    }

    /// The same for a `String`: the overload callers in other modules get without generic dispatch (the
    /// generic one walked its characters through runtime metadata, a tenth of `gatewayd decode`'s time).
    public static func decode(_ text: String) throws(ParseError) -> [UInt8] {
        try decode(utf8: Array(text.utf8))
    }

    public static func decode(utf8 text: [UInt8]) throws(ParseError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count / 2)
        var high: UInt8? = nil
        var previous: UInt8 = 0
        for offset in text.indices {
            let c = text[offset]
            let nibble: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = c &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = c &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = c &- UInt8(ascii: "A") &+ 10
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"),
                UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: "-"):
                // A separator in the middle of a byte ("6 8") is almost always a paste error.
                if high != nil { throw ParseError(offset: offset, reason: "separator inside a byte") }
                previous = c
                continue
            case UInt8(ascii: "x"), UInt8(ascii: "X"):
                // Accept the "0x" prefix: the '0' was taken as a high nibble, drop it.
                if high == 0, previous == UInt8(ascii: "0") {
                    high = nil
                    previous = c
                    continue
                }
                throw ParseError(offset: offset, reason: "unexpected 'x'")
            default:
                throw ParseError(offset: offset, reason: "not a hex digit")
            }
            previous = c
            if let h = high {
                bytes.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        if high != nil {
            throw ParseError(offset: text.count, reason: "odd number of hex digits")
        }
        return bytes
    }

    private static let digits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Upper-case hex with an optional separator between bytes.
    public static func encode(_ bytes: some Sequence<UInt8>, separator: String = "") -> String {
        var out: [UInt8] = []
        let sep = Array(separator.utf8)
        var first = true
        for b in bytes {
            if !first { out.append(contentsOf: sep) }
            first = false
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
