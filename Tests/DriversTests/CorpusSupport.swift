import Foundation
@testable import Drivers

/// The libmbus frame corpus copied into Fixtures/mbus, with its expected XML.
enum Corpus {
    struct Entry: Decodable {
        let name: String
        let category: String
        let hex: String
        let libmbus_outcome: String
        let libmbus_error: String?
        let expected_xml: String?
        let expected_norm_xml: String?
        let libmbus_head_matches_expected: Bool?
    }

    /// One `<DataRecord>` of libmbus's XML.
    struct ExpectedRecord {
        var function: String
        var storage: String?
        var tariff: String?
        var device: String?
        var unit: String
        var quantity: String?
        var value: String
    }

    static let root: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("mbus")

    static let entries: [Entry] = {
        let text = try! String(contentsOf: root.appendingPathComponent("index.jsonl"), encoding: .utf8)
        return text.split(separator: "\n").map { try! JSONDecoder().decode(Entry.self, from: Data($0.utf8)) }
    }()

    static func bytes(_ e: Entry) -> [UInt8] { try! Hex.decode(e.hex) }

    static func xml(_ relative: String) -> String {
        try! String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
    }

    static func element(_ name: String, in block: Substring) -> String? {
        guard let open = block.range(of: "<\(name)>") else { return nil }
        guard let close = block.range(of: "</\(name)>", range: open.upperBound..<block.endIndex) else { return nil }
        return unescape(String(block[open.upperBound..<close.lowerBound]))
    }

    static func unescape(_ s: String) -> String {
        s.replacingOccurrences(of: "&amp;", with: "&").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&quot;", with: "\"")
    }

    static func records(_ xml: String) -> [ExpectedRecord] {
        var out: [ExpectedRecord] = []
        var rest = xml[...]
        while let start = rest.range(of: "<DataRecord id=") {
            guard let end = rest.range(of: "</DataRecord>", range: start.upperBound..<rest.endIndex) else { break }
            let block = rest[start.upperBound..<end.lowerBound]
            out.append(ExpectedRecord(
                function: element("Function", in: block) ?? "",
                storage: element("StorageNumber", in: block),
                tariff: element("Tariff", in: block),
                device: element("Device", in: block),
                unit: element("Unit", in: block) ?? "",
                quantity: element("Quantity", in: block),
                value: element("Value", in: block) ?? ""))
            rest = rest[end.upperBound...]
        }
        return out
    }

    static func slaveError(_ xml: String) -> String? {
        element("Error", in: xml[...])
    }
}
