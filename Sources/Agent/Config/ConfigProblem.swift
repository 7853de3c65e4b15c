/// One thing wrong with a configuration: where it is (file, line), which field, and what is expected.
///
/// Printed as `gatewayd.toml:14: buses.mbus[1].baud: 2401 is not a standard M-Bus baud rate; expected
/// one of 300, 600, …`. `line` is nil only when the problem is the file itself (missing, unreadable).
package struct ConfigProblem: Hashable, Sendable, Codable, CustomStringConvertible {
    package var file: String
    package var line: Int?
    package var field: String
    package var message: String

    package var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        return field.isEmpty ? "\(place): \(message)" : "\(place): \(field): \(message)"
    }
}

/// The problems of a configuration that did not load, and the files that were read.
package struct ConfigProblems: Error, Hashable, Sendable, CustomStringConvertible {
    package var problems: [ConfigProblem]
    package var files: [String]

    package var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Where a value came from: the file (as the loader was given it, or resolved against the main file's
/// directory for drop-ins), the line, and its path inside that file (`buses.mbus[1].baud`).
package struct ConfigOrigin: Hashable, Sendable {
    package var file: String
    package var line: Int
    package var path: String
}

/// Collects problems while a configuration is read; the order of the output is fixed by `sorted`.
package final class ProblemSink {
    private(set) var problems: [ConfigProblem] = []
    /// Files in the order they were read (main file first, then drop-ins), to sort problems by file.
    package var fileOrder: [String] = []

    package func add(_ origin: ConfigOrigin, _ message: String, field: String? = nil) {
        problems.append(ConfigProblem(file: origin.file, line: origin.line, field: field ?? origin.path, message: message))
    }

    package func add(_ problem: ConfigProblem) { problems.append(problem) }

    /// By file (in reading order), line, field, then message; duplicates dropped.
    package var sorted: [ConfigProblem] {
        func rank(_ file: String) -> Int { fileOrder.firstIndex(of: file) ?? fileOrder.count }
        var seen = Set<ConfigProblem>()
        return problems.filter { seen.insert($0).inserted }.sorted {
            let a = (rank($0.file), $0.file, $0.line ?? 0, $0.field, $0.message)
            let b = (rank($1.file), $1.file, $1.line ?? 0, $1.field, $1.message)
            return a < b
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
package func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.lowercased().utf8), y = Array(b.lowercased().utf8)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var previous = Array(0...y.count)
    var row = [Int](repeating: 0, count: y.count + 1)
    for i in 1...x.count {
        row[0] = i
        for j in 1...y.count {
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        swap(&previous, &row)
    }
    return previous[y.count]
}

/// The closest candidate within a small edit distance, if any.
package func closestMatch(_ word: String, in candidates: [String]) -> String? {
    let limit = max(1, min(3, word.count / 3))
    let scored = candidates.map { ($0, editDistance(word, $0)) }.filter { $0.1 <= limit }
    if let best = scored.min(by: { ($0.1, $0.0) < ($1.1, $1.0) }) { return best.0 }
    // "baudrate" for "baud", "port_name" for "port": one contains the other.
    let w = word.lowercased()
    return candidates.filter { c in
        let l = c.lowercased()
        return min(l.count, w.count) >= 4 && (w.contains(l) || l.contains(w))
    }.min { ($0.count, $0) < ($1.count, $1) }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    package var configTrimmed: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
