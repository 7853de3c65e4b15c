import Foundation
import PipelineFuzzing
import Testing
@testable import Gateway

/// Replays every input `scripts/fuzz.sh pipeline-fuzz` kept (crashes it found, renamed, and hand-made
/// seeds for known attacks) through the whole readout path. The folder must exist and hold inputs: a
/// replay of nothing would pass without testing anything.
@Suite("pipeline fuzz regressions")
struct PipelineFuzzRegressionTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/pipeline-fuzz")

    static func inputs() throws -> [(name: String, bytes: [UInt8])] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasSuffix(".md") }.sorted()
        return try names.map { ($0, [UInt8](try Data(contentsOf: folder.appendingPathComponent($0)))) }
    }

    @Test("the kept inputs exist, reach the normalisers, and none traps")
    func replay() throws {
        let inputs = try Self.inputs()
        #expect(inputs.count >= 5, "Tests/GatewayTests/Fixtures/pipeline-fuzz holds \(inputs.count) inputs")
        #expect(!PipelineFuzzing.modbusProfiles.isEmpty && !PipelineFuzzing.meterProfiles.profiles.isEmpty, "the harness found no profiles")
        var buffered = 0
        for (_, bytes) in inputs {
            let out = PipelineFuzzing.run(bytes)
            buffered += out.counters.buffered
        }
        // The seeds are real telegrams of registered (made-up) devices: most must get all the way through.
        #expect(buffered >= 3)
    }

    @Test("the error-flags crash of issue 15 is among the kept inputs and now gives an error_flags alarm")
    func errorFlagsCrashKept() throws {
        let bytes = try #require(try Self.inputs().first { $0.name == "crash-error-flags-sign-bit" }?.bytes)
        let out = PipelineFuzzing.run(bytes)
        guard case .buffered(_, _, let alarms) = out.outcomes.first else { Issue.record("not buffered: \(out.outcomes)"); return }
        #expect(alarms.contains { $0.code == "error_flags" })
    }

    @Test("the kept input of the double count (once unsupported, now Diehl real data) counts once: decoded or failed, never both")
    func noKeyCountedOnce() throws {
        let bytes = try #require(try Self.inputs().first { $0.name == "crash-no-key-counted-twice" }?.bytes)
        // The kept input is a HYDRUS telegram in Diehl's real-data mode 24. It failed as "unsupported mode"
        // when the fuzzer found the double count; since DiehlRealData it decodes. The invariant is the point.
        let c = PipelineFuzzing.run(bytes).counters
        #expect(c.decoded + c.failed == c.heard, "\(c)")
        #expect(c.failed == 0 && c.decoded > 0, "\(c)")
    }
}
