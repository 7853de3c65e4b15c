import Foundation
import Testing
@testable import Drivers

/// Replays every input kept from `scripts/fuzz.sh wmbus-fuzz`: each must decode or fail with a typed error.
@Suite("wireless fuzz regressions")
struct FuzzRegressionTests {
    @Test("kept fuzz inputs decode or fail cleanly")
    func replay() throws {
        guard let dir = Bundle.module.url(forResource: "fuzz-regressions", withExtension: nil, subdirectory: "Fixtures") else { return }
        let files = try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
        for file in files where file.lastPathComponent != "README.md" {
            let bytes = [UInt8](try Data(contentsOf: file))
            var d = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")))
            for format in [nil, WMBusFrameFormat.a, .b, .noCRC] {
                if let w = try? d.decode(bytes, format: format) {
                    #expect(!WirelessReport.json(w).isEmpty)
                    _ = WirelessReport.analysis(w)
                }
            }
        }
    }
}
