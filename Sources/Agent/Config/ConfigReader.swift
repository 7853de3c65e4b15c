/// Reads one TOML table into typed values, reporting wrong types, bad values and unknown keys to a
/// `ProblemSink`. Every key a section understands is read through one of these methods, which is also
/// how `finish()` knows the full list of keys for "did you mean".
package struct TableReader {
    package let table: ConfigTable
    package let sink: ProblemSink
    private(set) var known: [String] = []

    package init(_ table: ConfigTable, _ sink: ProblemSink) {
        self.table = table
        self.sink = sink
    }

    package var origin: ConfigOrigin { table.origin }

    package func field(_ key: String) -> String { TOMLSourceMap.path(table.origin.path, key) }

    /// The node for `key`, noting `key` as known.
    package mutating func node(_ key: String) -> ConfigNode? {
        if !known.contains(key) { known.append(key) }
        return table.entries[key]
    }

    package func has(_ key: String) -> Bool { table.entries[key] != nil }

    /// Reports a key that must be given, at the table's own line.
    package func missing(_ key: String, _ expected: String) {
        sink.add(table.origin, "missing; \(expected)", field: field(key))
    }

    package func wrongType(_ node: ConfigNode, expected: String) {
        sink.add(node.origin, "expected \(expected), got \(node.value.kindName) (\(node.value.shown))")
    }

    package mutating func string(_ key: String, required: String? = nil) -> (String, ConfigOrigin)? {
        guard let node = node(key) else {
            if let required { missing(key, required) }
            return nil
        }
        guard case .string(let s) = node.value else {
            wrongType(node, expected: "a string")
            return nil
        }
        return (s, node.origin)
    }

    package mutating func nonEmptyString(_ key: String, required: String? = nil) -> (String, ConfigOrigin)? {
        guard let (s, origin) = string(key, required: required) else { return nil }
        if s.configTrimmed.isEmpty {
            sink.add(origin, "is empty; \(required ?? "give a value or leave the key out")")
            return nil
        }
        return (s, origin)
    }

    package mutating func bool(_ key: String) -> Bool? {
        guard let node = node(key) else { return nil }
        guard case .bool(let b) = node.value else {
            wrongType(node, expected: "true or false")
            return nil
        }
        return b
    }

    package mutating func integer(_ key: String, in range: ClosedRange<Int>, unit: String = "", required: String? = nil) -> (Int, ConfigOrigin)? {
        guard let node = node(key) else {
            if let required { missing(key, required) }
            return nil
        }
        guard case .integer(let n) = node.value else {
            if case .string(let s) = node.value, Int(s) != nil {
                sink.add(node.origin, "expected an integer, got a string (\"\(s)\"); write it without quotes")
            } else {
                wrongType(node, expected: "an integer")
            }
            return nil
        }
        guard range.contains(n) else {
            sink.add(node.origin, "\(n) is out of range; expected \(range.lowerBound) to \(range.upperBound)\(unit)")
            return nil
        }
        return (n, node.origin)
    }

    /// One of the cases of `E`, by raw value: `"im871a"`.
    package mutating func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ what: String, required: String? = nil)
        -> (E, ConfigOrigin)? where E.RawValue == String {
        guard let (s, origin) = string(key, required: required) else { return nil }
        if let value = E(rawValue: s) { return (value, origin) }
        if let value = E(rawValue: s.lowercased()) {
            sink.add(origin, "\"\(s)\" must be written in lower case: \"\(value.rawValue)\"")
            return nil
        }
        let names = E.allCases.map(\.rawValue)
        var message = "\"\(s)\" is not \(what); expected one of \(names.joined(separator: ", "))"
        if let guess = closestMatch(s, in: names) { message += " (did you mean \"\(guess)\"?)" }
        sink.add(origin, message)
        return nil
    }

    /// A duration written with a unit: "500ms", "30s", "15m", "2h", "1d", or combined ("1h30m").
    package mutating func duration(_ key: String, in range: ClosedRange<Duration>, required: String? = nil) -> (Duration, ConfigOrigin)? {
        guard let node = node(key) else {
            if let required { missing(key, required) }
            return nil
        }
        let text: String
        switch node.value {
        case .string(let s): text = s
        case .integer(let n):
            sink.add(node.origin, "\(n) has no unit; write a duration such as \"\(n)s\" or \"\(n)ms\"")
            return nil
        default:
            wrongType(node, expected: "a duration such as \"30s\"")
            return nil
        }
        guard let d = DurationText.parse(text) else {
            sink.add(node.origin, "\"\(text)\" is not a duration; write a number with a unit (ms, s, m, h, d), e.g. \"30s\" or \"1h30m\"")
            return nil
        }
        guard range.contains(d) else {
            sink.add(node.origin, "\(DurationText.format(d)) is out of range; expected \(DurationText.format(range.lowerBound)) to \(DurationText.format(range.upperBound))")
            return nil
        }
        return (d, node.origin)
    }

    /// An array of strings.
    package mutating func strings(_ key: String) -> [(String, ConfigOrigin)]? {
        guard let node = node(key) else { return nil }
        guard case .array(let elements) = node.value else {
            wrongType(node, expected: "an array of strings")
            return nil
        }
        var out: [(String, ConfigOrigin)] = []
        for element in elements {
            guard case .string(let s) = element.value else {
                wrongType(element, expected: "a string")
                continue
            }
            out.append((s, element.origin))
        }
        return out
    }

    /// A sub-table (`[uplink.auth]` or an inline `auth = { … }`).
    package mutating func table(_ key: String) -> ConfigTable? {
        guard let node = node(key) else { return nil }
        guard case .table(let t) = node.value else {
            wrongType(node, expected: "a table ([\(field(key))])")
            return nil
        }
        return t
    }

    /// An array of tables (`[[buses.mbus]]` blocks, or an array of inline tables).
    package mutating func tables(_ key: String) -> [ConfigTable] {
        guard let node = node(key) else { return [] }
        switch node.value {
        case .array(let elements):
            var out: [ConfigTable] = []
            for element in elements {
                if case .table(let t) = element.value { out.append(t) } else { wrongType(element, expected: "a table") }
            }
            return out
        case .table:
            sink.add(node.origin, "expected an array of tables; write [[\(field(key))]] (double brackets) for each entry")
            return []
        default:
            wrongType(node, expected: "an array of tables ([[\(field(key))]])")
            return []
        }
    }

    package static let topLevelKeys: Set<String> = ["gateway_id", "building", "keys_file", "profiles_dir", "demo", "buses", "schedules",
                                            "buffer", "uplink", "registry", "metrics", "status", "alarms"]

    /// Reports every key of the table no reader method asked for.
    package func finish() {
        for key in table.orderedKeys(fileOrder: sink.fileOrder) where !known.contains(key) {
            let node = table.entries[key]!
            var message = "unknown key"
            if !table.origin.path.isEmpty, Self.topLevelKeys.contains(key) {
                // `schedules.interval = …` written after a [[buses.mbus]] header lands inside that bus.
                message += " here; \(key) belongs at the top level: put it before the first [table] header, or in its own [\(key)] table"
            } else if let guess = closestMatch(key, in: known) {
                message += "; did you mean \"\(guess)\"?"
            } else if !known.isEmpty {
                message += "; expected one of \(known.joined(separator: ", "))"
            }
            sink.add(node.origin, message)
        }
    }
}

/// Durations as people write them in configuration files.
package enum DurationText {
    package static func parse(_ text: String) -> Duration? {
        let bytes = Array(text.configTrimmed.utf8)
        guard !bytes.isEmpty else { return nil }
        var total = Duration.zero
        var i = 0
        while i < bytes.count {
            var number = 0
            var digits = 0
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                number = number * 10 + Int(bytes[i] - 0x30)
                digits += 1
                i += 1
                if number > 1_000_000_000 { return nil }
            }
            guard digits > 0 else { return nil }
            var unit: [UInt8] = []
            while i < bytes.count, !(bytes[i] >= 0x30 && bytes[i] <= 0x39) {
                unit.append(bytes[i])
                i += 1
            }
            switch String(decoding: unit, as: UTF8.self) {
            case "ms": total += .milliseconds(number)
            case "s": total += .seconds(number)
            case "m", "min": total += .seconds(number * 60)
            case "h": total += .seconds(number * 3600)
            case "d": total += .seconds(number * 86400)
            default: return nil
            }
        }
        return total
    }

    /// The shortest exact form: "1h30m", "500ms", "0s".
    package static func format(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        if ms == 0 { return "0s" }
        if ms % 1000 != 0 { return "\(ms)ms" }
        var s = ms / 1000
        var out = ""
        for (size, unit) in [(Int64(86400), "d"), (3600, "h"), (60, "m"), (1, "s")] where s >= size {
            out += "\(s / size)\(unit)"
            s %= size
        }
        return out
    }
}
