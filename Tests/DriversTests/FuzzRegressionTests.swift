import Foundation
import Testing
@testable import Drivers

/// Replays the inputs kept from fuzzing (Fixtures/fuzz-regressions) through the same paths as the libFuzzer
/// target in Fuzz/mbus-fuzz. A trap fails the whole run; the checks below hold the codecs to being total:
/// every input gives a value or a typed error, and the reader does not care how the bytes were chunked.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    static let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("fuzz-regressions")

    /// Every input file in the folder (seeds and crash reproducers), by name.
    static let inputs: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0 != "README.md" && !$0.hasPrefix(".") }.sorted()
    }()

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: folder.appendingPathComponent(name)))
    }

    @Test func folderHoldsInputs() {
        #expect(!Self.inputs.isEmpty, "Fixtures/fuzz-regressions has no inputs; keep at least the seed-*.bin files")
    }

    @Test(arguments: FuzzRegressionTests.inputs)
    func replay(_ name: String) throws {
        let input = try Self.bytes(name)
        let writer = TelegramJSONWriter()

        // Frame codec: a frame that re-encodes to its own bytes, a request for more bytes, or a typed error.
        switch Result(catching: { () throws(FrameError) in try FrameCodec.decode(input) }) {
        case .success(.frame(let frame, let consumed)):
            #expect(consumed >= 1 && consumed <= input.count)
            #expect(frame.encoded == Array(input.prefix(consumed)))
            // The reader hands the codec slices that do not start at index 0.
            #expect((try? FrameCodec.decode(([0xAA] + input)[1...])) == .frame(frame, consumed: consumed))
            check(Result { () throws(DecodeError) in try TelegramDecoder.decode(frame) }, writer)
        case .success(.needMoreBytes(let n)):
            #expect(n >= 1)
        case .failure(let error):
            #expect(!error.message.isEmpty)
        }

        check(Result { () throws(DecodeError) in try TelegramDecoder.decode(input) }, writer)

        if let ci = input.first {
            let rest = Array(input.dropFirst())
            check(Result { () throws(DecodeError) in
                try TelegramDecoder.decodeApplicationLayer(ci: ci, data: rest, errorOffsetBase: 7)
            }, writer)
        }

        for msb in [false, true] {
            let parsed = Result { () throws(DecodeError) in try RecordParser(mostSignificantByteFirst: msb).parse(input) }
            check(parsed.map { result in
                var t = Telegram(controlInformation: msb ? 0x76 : 0x78)
                t.records = result.records
                t.manufacturerData = result.manufacturerData
                t.moreRecordsFollow = result.moreRecordsFollow
                t.isMostSignificantByteFirst = msb
                return t
            }, writer)
        }

        // FrameReader: whole, split where the fuzz target splits, and byte by byte give the same events.
        let whole = Self.readerEvents([input[...]])
        let split = input.isEmpty ? 0 : Int(input[input.count - 1]) % (input.count + 1)
        #expect(Self.readerEvents([input[..<split], input[split...]]) == whole, "split at \(split)")
        #expect(Self.readerEvents(input.indices.map { input[$0...$0] }) == whole, "byte by byte")
        for case .frame(let frame) in whole {
            check(Result { () throws(DecodeError) in try TelegramDecoder.decode(frame) }, writer)
        }
    }

    /// A decoded telegram must give usable records and valid JSON; an error must say what went wrong.
    func check(_ outcome: Result<Telegram, DecodeError>, _ writer: TelegramJSONWriter) {
        switch outcome {
        case .success(let t):
            for r in t.records {
                _ = r.normalizedValue
                _ = r.rawUnit
                _ = r.annotations
                #expect(r.isValid == (r.problem == nil))
            }
            let line = writer.line(TelegramReport(t))
            #expect(!line.contains("json_encoding"), "the report could not be encoded")
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8))
            #expect(object is [String: Any], "not a JSON object: \(line)")
        case .failure(let error):
            #expect(!error.code.name.isEmpty)
            #expect(!error.message.isEmpty)
            #expect(error.offset >= 0, "\(error)")
            let line = writer.line(DecodeFailureReport(error))
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any])
        }
    }

    static func readerEvents(_ chunks: [ArraySlice<UInt8>]) -> [FrameReader.Event] {
        var reader = FrameReader()
        var events: [FrameReader.Event] = []
        for chunk in chunks {
            reader.append(chunk)
            while let e = reader.next() { events.append(e) }
        }
        if let e = reader.finish() { events.append(e) }
        #expect(reader.pendingByteCount == 0)
        return events
    }
}
