/// A nameplate serial pattern for one heat-pump profile, e.g. `NIBE-[0-9]{8}` or `KHP-R290-[0-9]{4}-[0-9]{3}`.
///
/// A deliberately small language, so a mismatch can be explained position by position: literal characters,
/// classes `[0-9]`, `[A-Z]`, `[A-Z0-9]` (ranges and single characters, no negation), `.` for any character,
/// each optionally followed by `{n}` or `{n,m}`; `\` escapes a literal. The whole serial must match.
public struct SerialPattern: Hashable, Sendable, CustomStringConvertible {
    struct Atom: Hashable, Sendable {
        enum Matcher: Hashable, Sendable {
            case literal(Character)
            case set([ClosedRange<Character>], text: String)
            case any
        }
        var matcher: Matcher
        var min: Int
        var max: Int

        func matches(_ c: Character) -> Bool {
            switch matcher {
            case .literal(let l): return c == l
            case .set(let ranges, _): return ranges.contains { $0.contains(c) }
            case .any: return true
            }
        }

        var expectation: String {
            switch matcher {
            case .literal(let l): return "'\(l)'"
            case .set(_, let text): return text
            case .any: return "any character"
            }
        }
    }

    public let text: String
    let atoms: [Atom]

    /// Parses a pattern; the error says where it is malformed.
    public init(_ text: String) throws(RegistryError) {
        self.text = text
        var atoms: [Atom] = []
        let chars = Array(text)
        var i = 0
        func fail(_ why: String) -> RegistryError { RegistryError(message: "serial pattern \(text): \(why) at character \(i + 1)") }
        while i < chars.count {
            let matcher: Atom.Matcher
            switch chars[i] {
            case "[":
                guard let close = chars[(i + 1)...].firstIndex(of: "]"), close > i + 1 else { throw fail("'[' without a closing ']'") }
                var ranges: [ClosedRange<Character>] = []
                var j = i + 1
                while j < close {
                    if j + 2 < close, chars[j + 1] == "-" {
                        guard chars[j] <= chars[j + 2] else { throw fail("range \(chars[j])-\(chars[j + 2]) runs backwards") }
                        ranges.append(chars[j]...chars[j + 2])
                        j += 3
                    } else {
                        ranges.append(chars[j]...chars[j])
                        j += 1
                    }
                }
                matcher = .set(ranges, text: Self.describe(String(chars[(i + 1)..<close])))
                i = close + 1
            case "\\":
                guard i + 1 < chars.count else { throw fail("'\\' at the end") }
                matcher = .literal(chars[i + 1])
                i += 2
            case ".":
                matcher = .any
                i += 1
            case "{", "}", "]":
                throw fail("'\(chars[i])' without something to repeat")
            default:
                matcher = .literal(chars[i])
                i += 1
            }
            var lo = 1, hi = 1
            if i < chars.count, chars[i] == "{" {
                guard let close = chars[i...].firstIndex(of: "}") else { throw fail("'{' without a closing '}'") }
                let parts = String(chars[(i + 1)..<close]).split(separator: ",", omittingEmptySubsequences: false)
                guard (1...2).contains(parts.count), let a = Int(parts[0]), let b = parts.count == 2 ? Int(parts[1]) : a,
                      a >= 0, b >= a, b > 0, b <= 64 else {
                    throw fail("a repeat must be {n} or {n,m} with 0 ≤ n ≤ m ≤ 64")
                }
                lo = a
                hi = b
                i = close + 1
            }
            atoms.append(Atom(matcher: matcher, min: lo, max: hi))
        }
        guard !atoms.isEmpty else { throw RegistryError(message: "serial pattern is empty") }
        self.atoms = atoms
    }

    static func describe(_ set: String) -> String {
        switch set {
        case "0-9": return "a digit"
        case "A-Z": return "a capital letter"
        case "A-Z0-9", "0-9A-Z": return "a capital letter or digit"
        case "0-9A-F", "A-F0-9": return "a hex digit"
        default: return "one of [\(set)]"
        }
    }

    public var description: String { text }

    public func matches(_ serial: String) -> Bool { mismatch(serial) == nil }

    /// Nil when `serial` matches; otherwise where and why it does not, for the technician.
    public func mismatch(_ serial: String) -> String? {
        let chars = Array(serial)
        var furthest = (position: -1, atom: 0)
        if match(chars, 0, 0, &furthest) { return nil }
        let p = furthest.position
        let want = atoms[min(furthest.atom, atoms.count - 1)].expectation
        if p >= chars.count {
            return "serial \(serial) is too short for the pattern \(text): after character \(chars.count) it expects \(want)"
        }
        if furthest.atom >= atoms.count {
            return "serial \(serial) is too long for the pattern \(text): character \(p + 1) ('\(chars[p])') is one too many"
        }
        return "serial \(serial) does not match the pattern \(text): character \(p + 1) is '\(chars[p])', expected \(want)"
    }

    /// Backtracking over the repeat counts; records the furthest position reached for the message.
    private func match(_ s: [Character], _ pos: Int, _ atomIndex: Int, _ furthest: inout (position: Int, atom: Int)) -> Bool {
        if pos > furthest.position || (pos == furthest.position && atomIndex > furthest.atom) { furthest = (pos, atomIndex) }
        if atomIndex == atoms.count { return pos == s.count }
        let a = atoms[atomIndex]
        var n = 0
        while n < a.max, pos + n < s.count, a.matches(s[pos + n]) { n += 1 }
        if n < a.min {
            if pos + n > furthest.position || (pos + n == furthest.position && atomIndex >= furthest.atom) { furthest = (pos + n, atomIndex) }
            return false
        }
        var k = n
        while k >= a.min {
            if match(s, pos + k, atomIndex + 1, &furthest) { return true }
            k -= 1
        }
        return false
    }
}
