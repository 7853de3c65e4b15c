// libFuzzer entry point for the whole readout path (decode -> profile -> normaliser -> PipelineCore).
// Built only by `scripts/fuzz.sh pipeline-fuzz` (GATEWAYD_FUZZ=1, -sanitize=fuzzer,address,
// -parse-as-library). The harness is Fuzz/PipelineFuzzing, shared with the regression test.
import PipelineFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    PipelineFuzzing.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
