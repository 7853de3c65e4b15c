import TOMLKit

/// A parsed TOML value that remembers where it was written, so that merged drop-ins still report the
/// file and line each value came from.
package indirect enum ConfigValue: Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case date(year: Int, month: Int, day: Int)
    case time(hour: Int, minute: Int, second: Int)
    case dateTime(String)
    case array([ConfigNode])
    case table(ConfigTable)

    /// "a string", "an integer", … for "expected X, got Y" messages.
    package var kindName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a number with a fraction"
        case .bool: return "true or false"
        case .date: return "a date"
        case .time: return "a time"
        case .dateTime: return "a date and time"
        case .array: return "an array"
        case .table: return "a table"
        }
    }

    /// The value as written back in a message (strings quoted).
    package var shown: String {
        switch self {
        case .string(let s): return "\"\(s)\""
        case .integer(let n): return String(n)
        case .float(let d): return String(d)
        case .bool(let b): return String(b)
        case .date(let y, let m, let d): return "\(y)-\(pad(m))-\(pad(d))"
        case .time(let h, let m, let s): return "\(pad(h)):\(pad(m)):\(pad(s))"
        case .dateTime(let s): return s
        case .array: return "an array"
        case .table: return "a table"
        }
    }

    private func pad(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }
}

package struct ConfigNode: Sendable {
    package var value: ConfigValue
    package var origin: ConfigOrigin
}

package struct ConfigTable: Sendable {
    package var entries: [String: ConfigNode] = [:]
    package var origin: ConfigOrigin

    /// Keys in the order they were written (by file, then line), so problems come out in reading order.
    package func orderedKeys(fileOrder: [String]) -> [String] {
        func rank(_ key: String) -> (Int, Int, String) {
            let o = entries[key]!.origin
            return (fileOrder.firstIndex(of: o.file) ?? fileOrder.count, o.line, key)
        }
        return entries.keys.sorted { rank($0) < rank($1) }
    }
}

package enum ConfigTree {
    /// Converts a TOMLKit table into located nodes, taking lines from `map`. A path the scanner did not
    /// see (it should not happen) falls back to its parent's line.
    package static func build(_ table: TOMLTable, file: String, map: TOMLSourceMap) -> ConfigTable {
        buildTable(table, file: file, path: "", line: 1, map: map)
    }

    private static func buildTable(_ table: TOMLTable, file: String, path: String, line: Int, map: TOMLSourceMap) -> ConfigTable {
        var out = ConfigTable(origin: ConfigOrigin(file: file, line: line, path: path))
        for key in table.keys {
            guard let value = table[key] else { continue }
            let childPath = TOMLSourceMap.path(path, key)
            let childLine = map.line(of: childPath) ?? line
            out.entries[key] = buildNode(value, file: file, path: childPath, line: childLine, map: map)
        }
        return out
    }

    private static func buildNode(_ value: TOMLValueConvertible, file: String, path: String, line: Int,
                                  map: TOMLSourceMap) -> ConfigNode {
        let origin = ConfigOrigin(file: file, line: line, path: path)
        switch value.type {
        case .table:
            return ConfigNode(value: .table(buildTable(value.table!, file: file, path: path, line: line, map: map)), origin: origin)
        case .array:
            let array = value.array!
            var elements: [ConfigNode] = []
            for index in 0..<array.count {
                let elementPath = TOMLSourceMap.path(path, index: index)
                let elementLine = map.line(of: elementPath) ?? line
                elements.append(buildNode(array[index], file: file, path: elementPath, line: elementLine, map: map))
            }
            return ConfigNode(value: .array(elements), origin: origin)
        case .string: return ConfigNode(value: .string(value.string ?? ""), origin: origin)
        case .int: return ConfigNode(value: .integer(value.int ?? 0), origin: origin)
        case .double: return ConfigNode(value: .float(value.double ?? 0), origin: origin)
        case .bool: return ConfigNode(value: .bool(value.bool ?? false), origin: origin)
        case .date:
            let d = value.date!
            return ConfigNode(value: .date(year: d.year, month: d.month, day: d.day), origin: origin)
        case .time:
            let t = value.time!
            return ConfigNode(value: .time(hour: t.hour, minute: t.minute, second: t.second), origin: origin)
        case .dateTime:
            return ConfigNode(value: .dateTime(value.dateTime.map { "\($0.debugDescription)" } ?? ""), origin: origin)
        }
    }

    /// Arrays of tables that drop-ins merge by `name` instead of replacing.
    package static let namedArrays: Set<String> = ["buses.mbus", "buses.wmbus", "buses.modbus"]

    /// Applies a drop-in on top of `base`: tables merge key by key, later values replace earlier ones,
    /// and the bus arrays merge by name (an entry whose name already exists replaces that entry whole,
    /// a new name is appended).
    package static func merge(_ overlay: ConfigTable, into base: inout ConfigTable, path: String = "") {
        for (key, node) in overlay.entries {
            let keyPath = TOMLSourceMap.path(path, key)
            guard let existing = base.entries[key] else {
                base.entries[key] = node
                continue
            }
            switch (existing.value, node.value) {
            case (.table(var b), .table(let o)):
                merge(o, into: &b, path: keyPath)
                base.entries[key] = ConfigNode(value: .table(b), origin: existing.origin)
            case (.array(var b), .array(let o)) where namedArrays.contains(keyPath):
                for element in o {
                    if let name = elementName(element), let at = b.firstIndex(where: { elementName($0) == name }) {
                        b[at] = element
                    } else {
                        b.append(element)
                    }
                }
                base.entries[key] = ConfigNode(value: .array(b), origin: existing.origin)
            default:
                base.entries[key] = node
            }
        }
    }

    private static func elementName(_ node: ConfigNode) -> String? {
        guard case .table(let t) = node.value, case .string(let name)? = t.entries["name"]?.value else { return nil }
        return name
    }
}
