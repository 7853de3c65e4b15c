import Foundation

/// Why a file cannot be read back as a commissioning report.
public struct CommissioningReportError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension CommissioningReport {
    /// The record the portal stores: UTF-8 JSON, snake_case keys, sorted and indented so that two runs
    /// diff line by line.
    public func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        // The session keeps only finite numbers; this keeps a hand-built report from making encoding fail.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return Array(try encoder.encode(self))
        } catch {
            // Plain structs, strings and (made conforming) numbers: the encoder has nothing left to refuse.
            preconditionFailure("a commissioning report did not encode: \(error)")
        }
    }

    /// Reads what `json()` wrote. Refuses other formats by name, before their fields can fail to match.
    public static func decode(json: [UInt8]) throws(CommissioningReportError) -> CommissioningReport {
        struct Head: Decodable { var format: String? }
        let data = Data(json)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .custom { path in SnakeKey(camelCase: path.last?.stringValue ?? "") }
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let head: Head
        do { head = try decoder.decode(Head.self, from: data) } catch {
            throw CommissioningReportError("not a commissioning report: the file is not a JSON object (\(error))")
        }
        guard let format = head.format else {
            throw CommissioningReportError("not a commissioning report: it has no \"format\" field")
        }
        guard format == currentFormat else {
            throw CommissioningReportError("a \(format) report; this gatewayd reads \(currentFormat)")
        }
        do {
            return try decoder.decode(CommissioningReport.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw CommissioningReportError("not a complete commissioning report: \(jsonPath(context.codingPath + [key])) is missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
            let DecodingError.dataCorrupted(context) {
            throw CommissioningReportError("not a valid commissioning report: \(jsonPath(context.codingPath)): \(context.debugDescription)")
        } catch {
            throw CommissioningReportError("not a valid commissioning report: \(error)")
        }
    }

    /// "devices[3].rssi.median", as the JSON spells it.
    private static func jsonPath(_ path: [any CodingKey]) -> String {
        var out = ""
        for key in path {
            if let i = key.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + SnakeKey.snakeCase(key.stringValue) }
        }
        return out.isEmpty ? "the document" : out
    }
}

/// The inverse of `.convertToSnakeCase` for this model. Foundation's `.convertFromSnakeCase` cannot
/// restore an acronym ("best_rssi" becomes "bestRssi", never "bestRSSI"): the model avoids acronyms in
/// property names, and any that must stay are mapped here.
private struct SnakeKey: CodingKey {
    static let acronyms: [String: String] = [:]

    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }

    init(camelCase snake: String) {
        var out = ""
        var upper = false
        for (i, c) in snake.enumerated() {
            if c == "_", i > 0 {
                upper = true
            } else {
                out += upper ? c.uppercased() : String(c)
                upper = false
            }
        }
        stringValue = Self.acronyms[out] ?? out
    }

    /// For error messages: the key as the file has it.
    static func snakeCase(_ camel: String) -> String {
        var out = ""
        var afterUpper = false
        for c in camel {
            if c.isUppercase {
                if !out.isEmpty, !afterUpper { out += "_" }
                out += c.lowercased()
            } else {
                out.append(c)
            }
            afterUpper = c.isUppercase
        }
        return out
    }
}
