// libFuzzer entry point for the wM-Bus dongle stream codecs: IMST HCI (iM871A, iM170A), Amber CMD
// (AMB8465, AMB8665) with and without RSSI bytes, IMST's SLIP HCI (iU891A), culfw lines (CUL), rtl_wmbus
// text lines, and replay files. Built with
// GATEWAYD_FUZZ=1, -sanitize=fuzzer,address, -parse-as-library (see scripts/fuzz.sh).
//
// The codecs promise totality: any bytes give events or typed errors, never a trap. Oracles: the events
// are the same whether the input arrives in one piece or split where the input says; every byte is
// accounted for (messages plus skipped bytes equal the input); encoding a decoded message gives it back.
import Drivers

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    DongleFuzz.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@_cdecl("dongle_fuzz_main")
public func dongleFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzz)
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

enum DongleFuzz {
    static func run(_ bytes: [UInt8]) {
        // The first byte picks the split points, so the fuzzer explores chunkings too.
        let seed = Int(bytes.first ?? 0)
        hci(bytes, seed: seed)
        amber(bytes, seed: seed, rssi: true)
        amber(bytes, seed: seed, rssi: false)
        rtl(bytes, seed: seed)
        replay(bytes)
        iu891(bytes, seed: seed)
        cul(bytes, seed: seed)
    }

    /// iU891A SLIP: the same events in any chunking; a decoded message encodes to a frame that decodes to it.
    static func iu891(_ bytes: [UInt8], seed: Int) {
        let whole = feed(IU891FrameReader(), [bytes])
        let split = feed(IU891FrameReader(), chunks(bytes, seed: seed))
        guard whole == split else { fatalError("iU891A events depend on chunking") }
        for e in whole {
            guard case .message(let m) = e else { continue }
            var again = IU891FrameReader()
            again.append(IU891.encode(m))
            guard again.drain() == [.message(m)] else { fatalError("iU891A message \(m) does not round-trip") }
            _ = try? IU891.telegram(m.payload)
        }
        _ = try? IU891.DeviceInfo.parse(bytes)
        _ = try? IU891.configuration(bytes, linkMode: .c1t1)
    }

    /// culfw lines: the same lines in any chunking; every line through the telegram parser.
    static func cul(_ bytes: [UInt8], seed: Int) {
        let whole = feed(CULLineReader(), [bytes])
        let split = feed(CULLineReader(), chunks(bytes, seed: seed))
        guard whole == split else { fatalError("culfw lines depend on chunking") }
        for case .line(let line) in whole { _ = try? CUL.telegram(line: line) }
        _ = try? CUL.telegram(line: "b" + Hex.encode(bytes))
        _ = try? CUL.telegram(line: "bY" + Hex.encode(bytes))
    }

    static func chunks(_ bytes: [UInt8], seed: Int) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var i = 0
        var step = seed % 7 + 1
        while i < bytes.count {
            let n = min(step, bytes.count - i)
            out.append(Array(bytes[i..<(i + n)]))
            i += n
            step = (step * 5 + seed) % 13 + 1
        }
        return out
    }

    static func feed<D: DongleStreamDecoder>(_ decoder: D, _ pieces: [[UInt8]]) -> [D.Event] {
        var d = decoder
        var events: [D.Event] = []
        for p in pieces {
            d.append(p)
            events += d.drain()
        }
        if let last = d.finish() { events.append(last) }
        return events
    }

    static func hci(_ bytes: [UInt8], seed: Int) {
        let whole = feed(HCIFrameReader(), [bytes])
        let split = feed(HCIFrameReader(), chunks(bytes, seed: seed))
        guard whole == split else { fatalError("HCI events depend on chunking") }
        var accounted = 0
        for e in whole {
            switch e {
            case .message(let m):
                let encoded = HCI.encode(m)
                accounted += encoded.count
                guard case .message(let back, let n)? = try? HCI.decode(encoded[...]), back == m, n == encoded.count else {
                    fatalError("HCI message \(m) does not round-trip")
                }
            case .skipped(let skipped, let reason):
                accounted += skipped.count
                _ = reason.description
            }
        }
        guard accounted == bytes.count else { fatalError("HCI reader lost or invented bytes: \(accounted) of \(bytes.count)") }
        _ = HCI.rssiDBm(bytes.last ?? 0)
        _ = try? HCI.DeviceInfo.parse(bytes)
        _ = try? HCI.Configuration.parse(bytes)
    }

    static func amber(_ bytes: [UInt8], seed: Int, rssi: Bool) {
        let whole = feed(AmberFrameReader(rssiAppended: rssi), [bytes])
        let split = feed(AmberFrameReader(rssiAppended: rssi), chunks(bytes, seed: seed))
        guard whole == split else { fatalError("Amber events depend on chunking") }
        var accounted = 0
        for e in whole {
            switch e {
            case .command(let m):
                let encoded = Amber.encode(m)
                accounted += encoded.count
                var r = AmberFrameReader(rssiAppended: rssi)
                r.append(encoded)
                guard r.next() == .command(m) else { fatalError("Amber message \(m) does not round-trip") }
            case .telegram(let t, let r, let framed):
                accounted += framed ? t.count - 1 + 4 + (r == nil ? 0 : 1) : t.count + (r == nil ? 0 : 1)
                _ = try? WMBusFrameCodec.decode(t, format: .noCRC)
            case .skipped(let skipped, _):
                accounted += skipped.count
            }
        }
        guard accounted == bytes.count else { fatalError("Amber reader lost or invented bytes: \(accounted) of \(bytes.count)") }
    }

    static func rtl(_ bytes: [UInt8], seed: Int) {
        let whole = feed(RTLWMBusLineReader(), [bytes])
        let split = feed(RTLWMBusLineReader(), chunks(bytes, seed: seed))
        guard whole == split else { fatalError("rtl_wmbus events depend on chunking") }
        for case .line(let line) in whole { _ = line.receivedTelegram() }
    }

    static func replay(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let entries = try? ReplayFile.parse(text) {
            // What the format writes, it reads back.
            let again = try? ReplayFile.parse(entries.map(\.line).joined(separator: "\n"))
            guard again == entries else { fatalError("replay entries do not round-trip through their lines") }
        }
        _ = DongleTimestamp(text: text).map(\.description)
    }
}
