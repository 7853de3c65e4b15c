// libFuzzer entry point for the wired M-Bus decoder. Built only by scripts/fuzz.sh (GATEWAYD_FUZZ=1,
// -sanitize=fuzzer,address, -parse-as-library). There is no main.swift: mbus_fuzz_main below starts libFuzzer.
//
// The codecs promise to be total: any byte string gives a value or a typed error, never a trap. Beyond
// that, two cheap oracles turn silent bugs into crashes: a decoded frame re-encodes to the bytes it came
// from, and FrameReader gives the same events whether the bytes arrive whole, split or one at a time.
import Drivers

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    MBusFuzz.run(bytes)
    return 0
}

// SwiftPM links every Swift executable (tools version 5.5+) with `--defsym main=<module>_main`, so the
// program starts here instead of in libFuzzer's main(). Hand over to libFuzzer's driver, as its main() would.
@_cdecl("mbus_fuzz_main")
public func mbusFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzz)
}

/// `int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t))`, from libFuzzer.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

enum MBusFuzz {
    /// One JSON writer for the whole run: building a JSONEncoder per input would dominate exec/s.
    nonisolated(unsafe) static let writer = TelegramJSONWriter()

    /// Telegrams already reported for the current input: several paths often decode the same one, and
    /// JSON encoding is the slowest step, so each distinct telegram is encoded once per input.
    nonisolated(unsafe) static var reported: Set<Telegram> = []

    static func run(_ bytes: [UInt8]) {
        reported.removeAll(keepingCapacity: true)
        frameCodec(bytes)
        telegram { () throws(DecodeError) in try TelegramDecoder.decode(bytes) }
        if let ci = bytes.first {
            // Every CI path, including the ones a valid frame would never reach with this payload.
            let rest = Array(bytes.dropFirst())
            telegram { () throws(DecodeError) in
                try TelegramDecoder.decodeApplicationLayer(ci: ci, data: rest, errorOffsetBase: 7)
            }
        }
        for msb in [false, true] {
            records(bytes, msb: msb)
        }
        frameReader(bytes)
    }

    static func frameCodec(_ bytes: [UInt8]) {
        do {
            switch try FrameCodec.decode(bytes) {
            case .frame(let frame, let consumed):
                guard consumed >= 1, consumed <= bytes.count else {
                    fatalError("FrameCodec consumed \(consumed) of \(bytes.count) bytes")
                }
                guard frame.encoded == Array(bytes[..<consumed]) else {
                    fatalError("FrameCodec round trip differs: \(frame)")
                }
                // Slices must decode the same as arrays (the reader passes ArraySlice with a non-zero start).
                let padded = [0xAA] + bytes
                guard (try? FrameCodec.decode(padded[1...])) == .frame(frame, consumed: consumed) else {
                    fatalError("FrameCodec decodes an ArraySlice differently")
                }
                telegram { () throws(DecodeError) in try TelegramDecoder.decode(frame) }
            case .needMoreBytes(let n):
                guard n >= 1 else { fatalError("FrameCodec asks for \(n) more bytes") }
            }
        } catch {
            _ = error.description
        }
    }

    static func telegram(_ decode: () throws(DecodeError) -> Telegram) {
        do {
            let t = try decode()
            report(t)
        } catch {
            _ = writer.line(DecodeFailureReport(error))
        }
    }

    static func records(_ bytes: [UInt8], msb: Bool) {
        do {
            let result = try RecordParser(mostSignificantByteFirst: msb).parse(bytes)
            var t = Telegram(controlInformation: msb ? 0x76 : 0x78)
            t.records = result.records
            t.manufacturerData = result.manufacturerData
            t.moreRecordsFollow = result.moreRecordsFollow
            t.isMostSignificantByteFirst = msb
            report(t)
        } catch {
            _ = writer.line(DecodeFailureReport(error))
        }
    }

    /// Touches every derived property of every record, then encodes the telegram as JSON.
    static func report(_ t: Telegram) {
        guard reported.insert(t).inserted else { return }
        var sink = 0
        for r in t.records {
            if let v = r.normalizedValue, v.isNaN { sink &+= 1 }
            sink &+= r.rawUnit.utf8.count
            sink &+= r.annotations.count
            sink &+= r.isValid ? 1 : 0
            sink &+= r.problem?.utf8.count ?? 0
        }
        let line = writer.line(TelegramReport(t))
        if line.isEmpty || sink < 0 { fatalError("unreachable: empty JSON line") }
    }

    static func frameReader(_ bytes: [UInt8]) {
        let whole = readerEvents([bytes[...]])
        // Split point derived from the input, so libFuzzer can steer it.
        let split = bytes.isEmpty ? 0 : Int(bytes[bytes.count - 1]) % (bytes.count + 1)
        let halves = readerEvents([bytes[..<split], bytes[split...]])
        guard whole == halves else {
            fatalError("FrameReader events differ when the input is split at \(split)")
        }
        // Byte by byte costs O(n^2) on garbage runs; libFuzzer inputs here stay small.
        if bytes.count <= 512 {
            let single = readerEvents(bytes.indices.map { bytes[$0...$0] })
            guard whole == single else { fatalError("FrameReader events differ when fed byte by byte") }
        }
        for case .frame(let frame) in whole {
            telegram { () throws(DecodeError) in try TelegramDecoder.decode(frame) }
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
        guard reader.pendingByteCount == 0, reader.next() == nil else {
            fatalError("FrameReader holds bytes after finish()")
        }
        return events
    }
}
