import Drivers
import Foundation
import Testing
@testable import Gateway

@Suite("device registry")
struct RegistryTests {
    static let document = RegistryDocument(
        gateway: "gw-0007", building: "7",
        devices: [
            RegisteredDevice(key: "mbus:KAM:06855817", bus: .wiredMBus, unit: "1.01", identification: "06855817", manufacturer: "KAM"),
            RegisteredDevice(key: "wmbus:QDS:11111111", bus: .wirelessMBus, unit: "4.12", identification: "11111111", manufacturer: "QDS",
                             replacedOn: "2026-03-02", replacedBy: "wmbus:QDS:22222222"),
            RegisteredDevice(key: "wmbus:QDS:22222222", bus: .wirelessMBus, unit: "4.12", identification: "22222222", manufacturer: "QDS",
                             replaces: "wmbus:QDS:11111111"),
        ],
        elsewhere: [DeviceElsewhere(identification: "33333333", manufacturer: "QDS", building: "12")])

    func header(_ id: UInt32, _ m: String) -> TelegramHeader {
        var h = TelegramHeader()
        h.identification = IdentificationNumber(rawValue: id)
        h.manufacturer = ManufacturerCode(m)
        h.deviceType = .heatCostAllocator
        return h
    }

    func reason(_ r: Result<RegisteredDevice, RejectionReason>) -> String? {
        if case .failure(let e) = r { return e.description }
        return nil
    }

    @Test func acceptsRegisteredDevices() throws {
        let registry = try DeviceRegistry(Self.document)
        #expect(try registry.identify(header(0x0685_5817, "KAM"), bus: .wiredMBus).get().key == "mbus:KAM:06855817")
        #expect(try registry.identify(header(0x2222_2222, "QDS"), bus: .wirelessMBus).get().unit == "4.12")
    }

    @Test func rejectsWithPreciseReasons() throws {
        let registry = try DeviceRegistry(Self.document)
        #expect(reason(registry.identify(header(0x4444_4444, "QDS"), bus: .wirelessMBus)) == "QDS 44444444: no such device in the registry")
        #expect(reason(registry.identify(header(0x3333_3333, "QDS"), bus: .wirelessMBus)) == "33333333: serial belongs to building 12, this gateway serves 7")
        #expect(reason(registry.identify(header(0x1111_1111, "QDS"), bus: .wirelessMBus)) == "11111111: replaced on 2026-03-02 by wmbus:QDS:22222222")
        #expect(reason(registry.identify(header(0x0685_5817, "ZRM"), bus: .wiredMBus))?.contains("registry says manufacturer KAM") == true)
        #expect(reason(registry.identify(header(0x0500_02E5, "KAM"), bus: .wirelessMBus))?.contains("not 8 decimal digits") == true)
    }

    @Test func refusesBrokenDocuments() {
        var twice = Self.document
        twice.devices.append(twice.devices[0])
        #expect(throws: RegistryError.self) { try DeviceRegistry(twice) }
        var badID = Self.document
        badID.devices[0].identification = "1234"
        #expect(throws: RegistryError.self) { try DeviceRegistry(badID) }
        #expect(throws: RegistryError.self) { try DeviceRegistry.load(path: "/nonexistent/registry.json") }
    }

    @Test func unknownDevicesKeepIdentityAndSignalOnly() async {
        let unknown = UnknownDevices()
        await unknown.record(header(0x5555_5555, "TCH"), rssi: -95)
        await unknown.record(header(0x5555_5555, "TCH"), rssi: -80)
        await unknown.record(header(0x6666_6666, "QDS"), rssi: nil)
        let s = await unknown.sightings()
        #expect(s.first?.identification == "55555555")
        #expect(s.first?.count == 2)
        #expect(s.first?.bestRSSI == -80)
        #expect(s.count == 2)
    }

    @Test func loadsTheDemoRegistryFromDisk() throws {
        let path = NSTemporaryDirectory() + "registry-\(UUID().uuidString).json"
        let encoder = JSONEncoder()
        try encoder.encode(Self.document).write(to: URL(fileURLWithPath: path))
        let registry = try DeviceRegistry.load(path: path)
        #expect(registry.devices.count == 3)
        #expect(registry.building == "7")
    }
}

@Suite("demo registry seed")
struct DemoRegistryTests {
    @Test func theDemoBuildingsRegistryLoads() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("seeds/demo-building/registry.json").path
        let registry = try DeviceRegistry.load(path: path)
        #expect(registry.devices.count == 32)
        var h = TelegramHeader()
        h.identification = IdentificationNumber("31425083")
        h.manufacturer = ManufacturerCode("ZRM")
        #expect((try? registry.identify(h, bus: .wiredMBus).get())?.key == "mbus:ZRM:31425083")
        #expect(registry.devices.filter { $0.bus == .wirelessMBus }.count == 10)
        // The silent allocator of the demo carries its transmit interval (seconds), which not_heard waits 3 of.
        #expect(registry.device(key: "wmbus:QDS:90919294")?.transmitInterval == 10)
    }
}
