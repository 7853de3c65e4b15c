// libFuzzer entry point for the whole readout path (decode -> profile -> normaliser -> PipelineCore).
// Built only by `scripts/fuzz.sh pipeline-fuzz` (GATEWAYD_FUZZ=1, -sanitize=fuzzer,address,
// -parse-as-library). The harness is Fuzz/PipelineFuzzing, shared with the regression test.
import PipelineFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    PipelineFuzzing.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

// SwiftPM links every Swift executable with `--defsym main=<module>_main`, so the program starts here
// instead of in libFuzzer's main(). Hand over to libFuzzer's driver, as its main() would.
@_cdecl("pipeline_fuzz_main")
public func pipelineFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
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
