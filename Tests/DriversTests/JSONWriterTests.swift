import Foundation
import PropertyBased
import Testing
@testable import Drivers

/// The direct JSON writer must give the same JSON values as Foundation's JSONEncoder.
@Suite("decode JSON")
struct JSONWriterTests {
    static let direct = TelegramJSONWriter(engine: .direct)
    static let foundation = TelegramJSONWriter(engine: .foundation)

    static func parsed(_ bytes: [UInt8]) throws -> NSDictionary {
        try #require(JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) as? NSDictionary)
    }

    static func sameJSON(_ report: TelegramReport, _ label: String) throws {
        let a = try parsed(direct.encode(report))
        let b = try parsed(foundation.encode(report))
        #expect(a == b, "\(label):\n  direct:     \(direct.line(report))\n  foundation: \(foundation.line(report))")
    }

    @Test("same JSON as JSONEncoder for every corpus frame and failure")
    func corpus() throws {
        for e in Corpus.entries {
            guard let bytes = try? Hex.decode(e.hex) else { continue }
            do {
                try Self.sameJSON(TelegramReport(try TelegramDecoder.decode(bytes)), e.name)
            } catch let error as DecodeError {
                let f = DecodeFailureReport(error)
                #expect(try Self.parsed(Self.direct.encode(f)) == Self.parsed(Self.foundation.encode(f)), "\(e.name)")
            }
        }
    }

    /// The writer `gatewayd decode --json` uses writes records straight from the telegram; it must give
    /// the very bytes of the report path (which the tests above hold equal to JSONEncoder).
    static func sameBytes(_ t: Telegram, _ label: String) {
        let fromTelegram = direct.encode(t)
        let fromReport = direct.encode(TelegramReport(t))
        #expect(fromTelegram == fromReport, "\(label):\n  telegram: \(String(decoding: fromTelegram, as: UTF8.self))\n  report:   \(String(decoding: fromReport, as: UTF8.self))")
    }

    @Test("records written from the telegram: the same bytes as through the report, wired corpus and radio profiles' telegrams")
    func telegramPath() throws {
        var checked = 0
        for e in Corpus.entries {
            guard let bytes = try? Hex.decode(e.hex), let t = try? TelegramDecoder.decode(bytes) else { continue }
            Self.sameBytes(t, e.name)
            checked += 1
        }
        // Radio telegrams bring what the wired corpus lacks: compact profiles, dates with flags, texts, keys.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let catalog = try ProfileCatalog.load(directory: root.appendingPathComponent("profiles/wmbus").path)
        for p in catalog.profiles {
            for test in p.tests {
                guard let w = try? ProfileTestRunner.decode(test, formats: catalog.compactFormats) else { continue }
                Self.sameBytes(w.telegram, p.id)
                checked += 1
            }
        }
        #expect(checked > 400)
    }

    @Test("escapes, non-ASCII text, awkward numbers and every optional key")
    func awkward() throws {
        let bytes = try Hex.decode(Corpus.entries.first { $0.name == "kamstrup_multical_601" }!.hex)
        var report = TelegramReport(try TelegramDecoder.decode(bytes))
        var text = ""
        for c in 0..<0x80 { text.unicodeScalars.append(Unicode.Scalar(UInt8(c))) }
        text += "é€😀\u{2028}/"
        report.manufacturer = text
        report.statusFlags = ["power low", text]
        report.manufacturerData = "0102"
        report.applicationError = ApplicationErrorJSON(code: -3, message: text, advice: "retry")
        let doubles: [Double] = [0, -0.0, 1, 100, 0.1, 20.4, 1e-5, 2.5e-7, 1e15, 1e16, 1e22, 1.2345678901234568e20,
                                 .leastNonzeroMagnitude, .greatestFiniteMagnitude, .nan, .infinity, -.infinity]
        var records: [RecordReport] = []
        for (i, d) in doubles.enumerated() {
            var r = report.records[0]
            r.value = .number(d)
            r.rawValue = i % 2 == 0 ? .integer(Int64.min + Int64(i)) : .string(text)
            r.storage = UInt64.max - UInt64(i)
            r.annotations = i % 3 == 0 ? ["per hour", text] : nil
            r.recordError = i % 4 == 0 ? text : nil
            r.valid = i % 5 == 0 ? false : nil
            records.append(r)
        }
        report.records = records
        try Self.sameJSON(report, "edited report")
        report.records = []
        report.applicationError?.code = nil
        try Self.sameJSON(report, "edited report without records")
    }

    @Test("a byte that needs escaping at any place of a long text, where the writer checks eight bytes at a time")
    func escapeAtEveryPlace() throws {
        let bytes = try Hex.decode(Corpus.entries.first { $0.name == "kamstrup_multical_601" }!.hex)
        var report = TelegramReport(try TelegramDecoder.decode(bytes))
        report.records = []
        let specials: [String] = ["\u{0}", "\u{1F}", "\"", "\\", "\u{7F}", "é", "\n", " ", "!", "#", "[", "]"]
        for length in [1, 7, 8, 9, 15, 16, 17, 24, 31] {
            for place in 0..<length {
                for special in specials {
                    let text = String(repeating: "a", count: place) + special + String(repeating: "z", count: length - place - 1)
                    report.manufacturer = text
                    report.ci = text + text
                    try Self.sameJSON(report, "text with \(special.debugDescription) at \(place) of \(length)")
                }
            }
        }
    }

    @Test("keys come in the documented order")
    func keyOrder() throws {
        let bytes = try Hex.decode(Corpus.entries.first { $0.name == "ACW_Itron-BM-plus-m" }!.hex)
        let line = Self.direct.line(TelegramReport(try TelegramDecoder.decode(bytes)))
        #expect(line.hasPrefix(#"{"manufacturer":"ACW","id":"11490378","version":14,"medium":"Cold water""#))
        #expect(line.contains(#"{"quantity":"Volume","value":54.321,"unit":"m^3","raw_value":54321,"raw_unit":"l","storage":0"#))
    }

    @Test("same JSON for generated telegrams")
    func generated() async {
        await propertyCheck(count: 300, input: Gen.uint64().array(of: 0...10)) { seeds in
            var header = TelegramHeader()
            header.identification = IdentificationNumber(rawValue: 0x1234_5678)
            header.manufacturer = ManufacturerCode("ABC")
            let specs = seeds.map(RecordGen.spec)
            guard let frame = try? RecordEncoder.responseFrame(address: 1, header: header, records: specs) else { return }
            let t = try TelegramDecoder.decode(frame)
            try Self.sameJSON(TelegramReport(t), Hex.encode(frame))
            Self.sameBytes(t, Hex.encode(frame))
        }
    }
}
