import Foundation
import Testing
@testable import Drivers
@testable import Gateway

/// A wired meter answering with a long header is read by the profile of the same meter family.
@Suite("profiles on wired answers")
struct WiredProfileTests {
    static let catalog: ProfileCatalog = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return (try? ProfileCatalog.load(directory: url.appendingPathComponent("profiles/wmbus").path)) ?? ProfileCatalog()
    }()

    // Relay heat-cost allocator on the wire (wmbusmeters driver relhca.xmq test telegram, GPL-3.0-or-later; test vector only).
    static let frame = "682f2f6808687204010000ac484100b30000000c6e41648401046d9c021732426cff2c4c6e4164840142ec7e1f3c0fc101010c6d16"

    @Test("the pipeline normaliser gives the profile's named values for a wired answer, not the generic records")
    func normaliserReadsWiredAnswer() throws {
        let t = try TelegramDecoder.decode(try Hex.decode(Self.frame))
        let device = RegisteredDevice(key: "mbus:REL:00000104", bus: .wiredMBus, identification: "00000104", manufacturer: "REL", line: "line-1")
        let n = MeterProfileNormaliser(catalog: Self.catalog).normalise(NormaliserInput(telegram: t, device: device))
        let w = try #require(WirelessTelegram(wired: t))
        let profile = try #require(Self.catalog.evaluate(w))
        #expect(profile.profileID == "relay-hca")
        #expect(n.values.contains { $0.raw.contains("(profile relay-hca)") })
        #expect(n.values.map(\.quantity) == profile.values.compactMap { if case .number = $0.value { $0.name } else { nil } })
        // Without the profile the same answer gives the generic EN 13757-3 values.
        let generic = EN13757Normaliser().normalise(NormaliserInput(telegram: t, device: device))
        #expect(!generic.values.contains { $0.raw.contains("profile") })
    }
}
