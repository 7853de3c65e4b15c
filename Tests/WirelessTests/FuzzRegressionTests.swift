import Foundation
import Testing
@testable import Drivers

/// Replays every input kept from `scripts/fuzz.sh wmbus-fuzz`: each must decode or fail with a typed error.
@Suite("wireless fuzz regressions")
struct FuzzRegressionTests {
    @Test("kept fuzz inputs decode or fail cleanly")
    func replay() throws {
        // A missing folder, or one holding nothing but its README, would make this pass without testing anything.
        let dir = try #require(Bundle.module.url(forResource: "fuzz-regressions", withExtension: nil, subdirectory: "Fixtures"),
                               "Tests/WirelessTests/Fixtures/fuzz-regressions is missing from the test bundle")
        let files = try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil).filter { $0.lastPathComponent != "README.md" }
        #expect(files.count >= 7, "Fixtures/fuzz-regressions holds \(files.count) inputs; keep at least the seed-*.bin files")
        var decoded = 0
        var refused = 0
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: file))
            var d = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")))
            for format in [nil, WMBusFrameFormat.a, .b, .noCRC] {
                do {
                    let w = try d.decode(bytes, format: format)
                    #expect(!WirelessReport.json(w).isEmpty)
                    _ = WirelessReport.analysis(w)
                    decoded += 1
                } catch {
                    #expect(!error.message.isEmpty, "\(file.lastPathComponent): an error without words")
                    refused += 1
                }
            }
        }
        // The seeds are bent real telegrams: some still decode (a wrong key is a finding, not a failure), most do not.
        #expect(decoded > 0 && refused > 0, "decoded \(decoded), refused \(refused)")
    }
}
