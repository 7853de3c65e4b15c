// libFuzzer entry point for the wireless M-Bus stack (link layer format A/B/no CRC, ELL, AFL, TPL with
// security modes 5 and 7, compact frames). Built only by `scripts/fuzz.sh wmbus-fuzz` (GATEWAYD_FUZZ=1,
// -sanitize=fuzzer,address, -parse-as-library).
//
// The codecs promise totality: any bytes give a telegram or a typed error, never a trap. Oracles: a frame
// re-encoded in format A and B decodes to the same payload, and JSON/analysis rendering never fails.
import Drivers

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    WMBusFuzz.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@_cdecl("wmbus_fuzz_main")
public func wmbusFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
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

enum WMBusFuzz {
    /// One key for every meter, so the decryption and MAC paths run too.
    static let keyring = WMBusKeyring(defaultKey: WMBusKey(hex: "000102030405060708090A0B0C0D0E0F"))

    static func run(_ bytes: [UInt8]) {
        // A fresh decoder per input keeps runs reproducible; the compact-frame cache is fed by the input
        // itself: the first half as a full frame, then the whole.
        var decoder = WirelessDecoder(keyring: keyring)
        for format in [nil, WMBusFrameFormat.a, .b, .noCRC] {
            render { () throws(DecodeError) in try decoder.decode(bytes, format: format) }
        }
        // The L-field rewritten to fit, so the layers behind the link layer see every input.
        if bytes.count >= 10 && bytes.count <= 256 {
            var fitted = bytes
            fitted[0] = UInt8(truncatingIfNeeded: bytes.count - 1)
            render { () throws(DecodeError) in try decoder.decode(fitted, format: .noCRC) }
            roundTrip(fitted)
        }
    }

    static func render(_ decode: () throws(DecodeError) -> WirelessTelegram) {
        do {
            let w = try decode()
            let line = WirelessReport.json(w)
            let analysis = WirelessReport.analysis(w)
            if line.isEmpty || (analysis.isEmpty && !w.fields.isEmpty) { fatalError("empty rendering") }
        } catch {
            _ = error.description
        }
    }

    static func roundTrip(_ fitted: [UInt8]) {
        guard let frame = try? WMBusFrameCodec.decode(fitted, format: .noCRC) else { return }
        for format in [WMBusFrameFormat.a, .b] {
            guard frame.payload.count + (format == .b ? 13 : 9) <= 255 else { continue }
            let encoded = WMBusFrameCodec.encode(control: frame.control, address: frame.address, payload: frame.payload, format: format)
            guard let back = try? WMBusFrameCodec.decode(encoded, format: format) else {
                fatalError("format \(format) frame of \(frame.payload.count) payload bytes does not decode")
            }
            guard back.payload == frame.payload else { fatalError("format \(format) round trip changes the payload") }
        }
    }
}
