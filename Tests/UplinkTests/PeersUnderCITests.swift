import Foundation
import Testing

/// The MQTT suites are disabled on a machine without mosquitto, so that a developer's `swift test` works
/// without it. Under CI (CI set, as .ci/run sets it) a missing broker is a failure: a suite that silently
/// did not run would look like a suite that passed.
@Suite("peers present under CI: mosquitto")
struct PeersUnderCITests {
    @Test("CI has the mosquitto broker and openssl the MQTT tests need")
    func broker() {
        guard ProcessInfo.processInfo.environment["CI"] != nil else { return }
        #expect(MQTTTestEnvironment.brokerAvailable, Comment(rawValue: MQTTTestEnvironment.missingBroker))
        #expect(MQTTTestEnvironment.openssl != nil, "openssl is missing: the MQTT TLS tests need it (scripts/install-deps.sh)")
    }
}
