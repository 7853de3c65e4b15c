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
            try Self.sameJSON(TelegramReport(try TelegramDecoder.decode(frame)), Hex.encode(frame))
        }
    }
}
