import Drivers
import Foundation
import Testing

/// Function code 11h (Report Server ID) against pymodbus over TCP. pymodbus answers with its device
/// identification joined by "-", or "Pymodbus" when none is configured, followed by the run indicator
/// status (FFh = ON): byte count, server id bytes, status.
@Suite("Modbus FC 11h Report Server ID against pymodbus", .serialized, .enabled(if: PeerEnvironment.pymodbusAvailable, Comment(rawValue: PeerEnvironment.missingPython)))
struct ServerIDTests {
    @Test("reportServerID returns the data bytes: server id, then the run indicator status")
    func reportServerID() async throws {
        let peer = try Peer(profile: Paths.profiles + "/generic-sg-ready.json")
        defer { peer.stop() }
        waitForPort(peer.port!)
        let line = try ModbusLine(endpoint: .tcp(host: "127.0.0.1", port: peer.port!), options: TCPPeerTests.options)
        let bytes = try await line.reportServerID(unit: 1)
        #expect(bytes == Array("Pymodbus".utf8) + [0xFF], "got \(bytes)")
        let stats = await line.statistics
        #expect(stats.requests == 1 && stats.responses == 1 && stats.exceptions == 0)
    }

    @Test("a profile that declares reportServerId gets the printable server id in its reading")
    func readingCarriesServerID() async throws {
        let path = Paths.profiles + "/generic-sg-ready.json"
        var profile = try loadProfile(path)
        profile.identity = try JSONDecoder().decode(IdentitySpec.self, from: Data(#"{"units": [{"role": "controller"}], "reportServerId": true}"#.utf8))
        let peer = try Peer(profile: path)
        defer { peer.stop() }
        waitForPort(peer.port!)
        let line = try ModbusLine(endpoint: .tcp(host: "127.0.0.1", port: peer.port!), options: TCPPeerTests.options)
        let reading = try await line.read(profile: profile, unit: 1)
        #expect(reading.serverID == "Pymodbus")
        #expect(differences(reading, profile) == [])
        #expect(await line.statistics.requests == profile.plan().count + 1)
    }
}
