import Foundation
import Testing

/// The pymodbus and socat suites are disabled on a machine without them, so that a developer's
/// `swift test` works without them. Under CI (CI set, as .ci/run sets it) a missing peer is a failure.
@Suite("peers present under CI: pymodbus, socat")
struct PeersUnderCITests {
    @Test("CI has python3 with pymodbus and socat for the Modbus peer tests")
    func peers() {
        guard ProcessInfo.processInfo.environment["CI"] != nil else { return }
        #expect(PeerEnvironment.pymodbusAvailable, Comment(rawValue: PeerEnvironment.missingPython))
        #expect(PeerEnvironment.socatAvailable, Comment(rawValue: PeerEnvironment.missingSocat))
    }
}
