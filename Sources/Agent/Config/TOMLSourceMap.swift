/// The line on which each key of a TOML document is defined.
///
/// TOMLKit (toml++ underneath) reports positions only for syntax errors, not for the nodes of a parsed
/// document, so this scanner walks the text once more and records, for every key path, the line of its
/// header or `key =`. It runs only on documents toml++ has already accepted, so it is lenient: it never
/// fails, it only has to follow the structure.
///
/// Paths are written as the configuration errors write them: keys joined by `.`, array elements as
/// `[n]` from 0, keys that are not bare (`A-Za-z0-9_-`) in double quotes: `buses.mbus[1].baud`,
/// `buses.modbus[0].devices[2].unit`, `schedules.bus."line 1".interval`.
package struct TOMLSourceMap: Sendable {
    private(set) var lines: [String: Int] = [:]

    package init(text: String) {
        var scanner = Scanner(bytes: Array(text.utf8))
        scanner.scanDocument()
        lines = scanner.lines
    }

    package func line(of path: String) -> Int? { lines[path] }

    /// `parent.key`, quoting `key` when it is not a bare key.
    package static func path(_ parent: String, _ key: String) -> String {
        let bare = !key.isEmpty && key.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
        }
        var written = key
        if !bare {
            written = "\"" + key.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
        }
        return parent.isEmpty ? written : parent + "." + written
    }

    package static func path(_ parent: String, index: Int) -> String { parent + "[\(index)]" }

    private struct Scanner {
        package let bytes: [UInt8]
        package var i = 0
        package var line = 1
        package var lines: [String: Int] = [:]
        /// Element counts of arrays of tables, by resolved path (`buses.modbus[1].devices`).
        package var arrayCounts: [String: Int] = [:]

        package init(bytes: [UInt8]) { self.bytes = bytes }

        package var atEnd: Bool { i >= bytes.count }
        package var current: UInt8 { bytes[i] }
        package func peek(_ offset: Int) -> UInt8? { i + offset < bytes.count ? bytes[i + offset] : nil }

        package mutating func advance() {
            if bytes[i] == UInt8(ascii: "\n") { line += 1 }
            i += 1
        }

        package mutating func record(_ path: String, _ at: Int) {
            if lines[path] == nil { lines[path] = at }
        }

        package mutating func skipBlanks() {
            while !atEnd, current == UInt8(ascii: " ") || current == UInt8(ascii: "\t") { i += 1 }
        }

        package mutating func skipComment() {
            while !atEnd, current != UInt8(ascii: "\n") { i += 1 }
        }

        /// Blanks, newlines and comments: what may separate array elements.
        package mutating func skipTrivia() {
            while !atEnd {
                switch current {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"): advance()
                case UInt8(ascii: "#"): skipComment()
                default: return
                }
            }
        }

        package mutating func scanDocument() {
            var prefix = ""
            while !atEnd {
                skipTrivia()
                if atEnd { break }
                let startLine = line
                if current == UInt8(ascii: "[") {
                    let isArray = peek(1) == UInt8(ascii: "[")
                    i += isArray ? 2 : 1
                    let keys = scanKey()
                    skipBlanks()
                    if !atEnd, current == UInt8(ascii: "]") { i += 1 }
                    if isArray, !atEnd, current == UInt8(ascii: "]") { i += 1 }
                    prefix = resolveHeader(keys, isArray: isArray, line: startLine)
                } else {
                    let keys = scanKey()
                    var path = prefix
                    for key in keys {
                        path = TOMLSourceMap.path(path, key)
                        record(path, startLine)
                    }
                    skipBlanks()
                    if !atEnd, current == UInt8(ascii: "=") { i += 1 }
                    skipBlanks()
                    scanValue(path)
                }
                // Whatever is left on the line is a comment (toml++ accepted the document).
                skipBlanks()
                if !atEnd, current == UInt8(ascii: "#") { skipComment() }
                if !atEnd, current != UInt8(ascii: "\n"), current != UInt8(ascii: "\r") { skipComment() }
            }
        }

        /// The path a `[table]` or `[[array]]` header opens, with the current element of every array of
        /// tables on the way (`[[buses.modbus.devices]]` belongs to the last `[[buses.modbus]]`).
        package mutating func resolveHeader(_ keys: [String], isArray: Bool, line: Int) -> String {
            var path = ""
            for (n, key) in keys.enumerated() {
                path = TOMLSourceMap.path(path, key)
                let last = n == keys.count - 1
                if last && isArray {
                    let index = arrayCounts[path, default: 0]
                    arrayCounts[path] = index + 1
                    record(path, line)
                    path = TOMLSourceMap.path(path, index: index)
                } else if let count = arrayCounts[path], count > 0 {
                    path = TOMLSourceMap.path(path, index: count - 1)
                }
                record(path, line)
            }
            return path
        }

        /// A dotted key: bare, "basic" or 'literal' parts separated by dots.
        package mutating func scanKey() -> [String] {
            var keys: [String] = []
            while !atEnd {
                skipBlanks()
                if atEnd { break }
                switch current {
                case UInt8(ascii: "\""): keys.append(scanBasicString())
                case UInt8(ascii: "'"): keys.append(scanLiteralString())
                default:
                    let start = i
                    while !atEnd, isBareKeyByte(current) { i += 1 }
                    keys.append(String(decoding: bytes[start..<i], as: UTF8.self))
                }
                skipBlanks()
                if !atEnd, current == UInt8(ascii: ".") { i += 1 } else { break }
            }
            return keys
        }

        package func isBareKeyByte(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
        }

        /// A "basic" string on one line, unescaped (enough for keys).
        package mutating func scanBasicString() -> String {
            i += 1
            var out: [UInt8] = []
            while !atEnd, current != UInt8(ascii: "\"") {
                if current == UInt8(ascii: "\\"), let next = peek(1) {
                    switch next {
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    default: out.append(next)
                    }
                    i += 2
                } else {
                    out.append(current)
                    advance()
                }
            }
            if !atEnd { i += 1 }
            return String(decoding: out, as: UTF8.self)
        }

        package mutating func scanLiteralString() -> String {
            i += 1
            let start = i
            while !atEnd, current != UInt8(ascii: "'") { advance() }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if !atEnd { i += 1 }
            return text
        }

        package mutating func skipMultiline(_ quote: UInt8, escapes: Bool) {
            i += 3
            while !atEnd {
                if escapes, current == UInt8(ascii: "\\") {
                    i += 1
                    if !atEnd { advance() }
                    continue
                }
                if current == quote, peek(1) == quote, peek(2) == quote {
                    i += 3
                    // Up to two quotes may end the content right before the closing delimiter.
                    var extra = 0
                    while extra < 2, !atEnd, current == quote { i += 1; extra += 1 }
                    return
                }
                advance()
            }
        }

        /// Any value; records array elements and inline-table keys under `path`.
        package mutating func scanValue(_ path: String) {
            guard !atEnd else { return }
            let quote = current
            if quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") {
                if peek(1) == quote, peek(2) == quote {
                    skipMultiline(quote, escapes: quote == UInt8(ascii: "\""))
                } else if quote == UInt8(ascii: "\"") {
                    _ = scanBasicString()
                } else {
                    _ = scanLiteralString()
                }
            } else if quote == UInt8(ascii: "[") {
                i += 1
                var index = 0
                while true {
                    skipTrivia()
                    if atEnd { return }
                    if current == UInt8(ascii: "]") { i += 1; return }
                    if current == UInt8(ascii: ",") { i += 1; continue }
                    let element = TOMLSourceMap.path(path, index: index)
                    record(element, line)
                    scanValue(element)
                    index += 1
                }
            } else if quote == UInt8(ascii: "{") {
                i += 1
                while true {
                    skipTrivia()
                    if atEnd { return }
                    if current == UInt8(ascii: "}") { i += 1; return }
                    if current == UInt8(ascii: ",") { i += 1; continue }
                    let keyLine = line
                    let keys = scanKey()
                    var inner = path
                    for key in keys {
                        inner = TOMLSourceMap.path(inner, key)
                        record(inner, keyLine)
                    }
                    skipBlanks()
                    if !atEnd, current == UInt8(ascii: "=") { i += 1 }
                    skipTrivia()
                    scanValue(inner)
                }
            } else {
                // Number, boolean, date or time: up to the next delimiter.
                while !atEnd {
                    switch current {
                    case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: "\n"), UInt8(ascii: "#"):
                        return
                    default: i += 1
                    }
                }
            }
        }
    }
}
