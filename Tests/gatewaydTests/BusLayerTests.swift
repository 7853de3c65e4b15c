@testable import Agent
@testable import gatewayd_sim
import Drivers
import Foundation
import Gateway
import Logging
import Testing

/// The bus layer the daemon and commissioning share (issue 16 item 2): the same endpoint, the same
/// address for a meter, the same words when a bus cannot be reached.
@Suite("bus layer shared by the daemon and commissioning")
struct BusLayerTests {
    @Test("a wired meter's address follows its line's addressing; a meter that cannot be addressed says what to fix")
    func wiredAddressing() {
        func device(id: String?, primary: Int?) -> RegisteredDevice {
            var d = RegisteredDevice(key: "mbus:KAM:\(id ?? "x")", bus: .wiredMBus, identification: id, manufacturer: "KAM")
            d.primaryAddress = primary
            return d
        }
        // Primary lines never select, even for a meter whose identification is known.
        #expect(GatewayConfig.MBusLineConfig.Addressing.primary.address(of: device(id: "31425080", primary: 8)) == .success(.primary(8)))
        #expect(GatewayConfig.MBusLineConfig.Addressing.primary.address(of: device(id: "31425080", primary: nil)) == .failure(.noPrimaryAddress))
        #expect(GatewayConfig.MBusLineConfig.Addressing.primary.address(of: device(id: nil, primary: 300)) == .failure(.primaryOutOfRange(300)))
        // Secondary lines select by identification and manufacturer; without an identification, the primary address.
        guard case .success(.secondary(let mask)) = GatewayConfig.MBusLineConfig.Addressing.secondary.address(of: device(id: "31425080", primary: 8)) else {
            Issue.record("a meter with an identification is not selected on a secondary line")
            return
        }
        #expect(mask.identification == IdentificationNumber("31425080")?.rawValue)
        #expect(mask.manufacturer == ManufacturerCode("KAM")?.rawValue)
        #expect(GatewayConfig.MBusLineConfig.Addressing.secondary.address(of: device(id: nil, primary: 5)) == .success(.primary(5)))
        #expect(GatewayConfig.MBusLineConfig.Addressing.secondary.address(of: device(id: "not-a-number", primary: nil)) == .failure(.noAddress))
        #expect(WiredAddressProblem.noPrimaryAddress.description.contains("add its primary address"))
        #expect(WiredAddressProblem.noAddress.description.contains("identification"))
    }

    @Test("a demo bus whose simulator is not running: the daemon's status and the commissioning report say the same")
    func unavailableBusSameWords() async throws {
        let ws = try DaemonTests.workspace()
        let config = try GatewayConfig.load(path: ws.config).get()
        let registry = try DeviceRegistry.load(path: DaemonTests.seeds + "/registry.json")
        let nothingRunning = DemoBuilding()

        // The daemon: one runner per bus, each failing on the status board with the reason.
        let board = StatusBoard(gateway: config.gatewayID, building: config.building, demo: true)
        let pipeline = ReadingPipeline(registry: registry, buffer: MemoryReadingBuffer())
        let context = BusContext(pipeline: pipeline, scheduler: PollScheduler(gatewayID: config.gatewayID), board: board,
                                 demo: nothingRunning, logger: Logger(label: "test"))
        let runners = context.runners(for: config).map(\.runner)
        #expect(runners.count == 3)
        for runner in runners { await runner.run() }
        let status = await board.snapshot()
        for (component, bus) in [("mbus:mbus-line-1", "mbus-line-1"), ("wmbus:wmbus-1", "wmbus-1"), ("modbus:rs485-1", "rs485-1")] {
            let c = try #require(status.components.first { $0.name == component }, "no status component \(component)")
            #expect(c.health == .failed)
            #expect(c.detail == BusUnavailable.simulatorNotRunning(bus: bus).description)
        }

        // Commissioning the same configuration: every bus in the report with the same words, and every
        // wired meter not heard, with that reason.
        let run = CommissioningRun(config: config, registry: registry, keyring: config.keys, catalog: nil, demo: nothingRunning,
                                   options: CommissioningOptions(), listenSeconds: 1, full: false, blindScan: false, logger: Logger(label: "test"))
        let report = await run.run(stop: StopFlag()) { _, _, _ in }
        for bus in ["mbus-line-1", "wmbus-1", "rs485-1"] {
            let result = try #require(report.buses.first { $0.name == bus }, "no bus \(bus) in the report")
            #expect(result.state == BusUnavailable.simulatorNotRunning(bus: bus).description)
        }
        let wired = report.devices.filter { $0.key.hasPrefix("mbus:") }
        #expect(!wired.isEmpty)
        #expect(wired.allSatisfy { !$0.heard && $0.error == BusUnavailable.simulatorNotRunning(bus: "mbus-line-1").description })
    }

    @Test("commissioning reads a primary-addressed line by primary address, as the daemon will, and names a meter at the wrong address")
    func commissioningFollowsPrimaryAddressing() async throws {
        let ws = try DaemonTests.workspace()
        var config = try GatewayConfig.load(path: ws.config).get()
        config.buses.wmbus = []
        config.buses.modbus = []
        config.buses.mbus[0].addressing = .primary
        let buses = try await SimulatedBuses.start(config: config, logger: Logger(label: "test"))
        defer { buses.stop() }
        // The demo line's slaves 8 and 12 are the Minol (ZRM) allocators 31425080 and 31425084; the second
        // registry row files 31425083 under address 12, as a mistyped registry would.
        func meter(_ id: String, at primary: Int) -> RegisteredDevice {
            var d = RegisteredDevice(key: "mbus:ZRM:\(id)", bus: .wiredMBus, identification: id, manufacturer: "ZRM")
            d.line = "mbus-line-1"
            d.primaryAddress = primary
            return d
        }
        let registry = try DeviceRegistry(RegistryDocument(gateway: config.gatewayID, building: config.building,
                                                           devices: [meter("31425080", at: 8), meter("31425083", at: 12)]))
        let run = CommissioningRun(config: config, registry: registry, keyring: config.keys, catalog: nil,
                                   demo: DemoBuilding(endpoints: buses.endpoints), options: CommissioningOptions(),
                                   // The window is real time and the wrong meter is never heard, so the run
                                   // lasts all of it; 10 s once ended before address 12 was read on a loaded
                                   // CI machine (CI of 015b6a8). 30 s leaves room; the checks are unchanged.
                                   listenSeconds: 30, full: false, blindScan: false, logger: Logger(label: "test"))
        let report = await run.run(stop: StopFlag()) { _, _, _ in }
        let right = try #require(report.devices.first { $0.key == "mbus:ZRM:31425080" })
        let wrong = try #require(report.devices.first { $0.key == "mbus:ZRM:31425083" })
        #expect(right.heard)
        #expect(!wrong.heard)
        #expect(wrong.error == "primary address 12 answered as meter 31425084, not 31425083: two meters share the address, or the registry has the wrong one",
                "\(wrong.error ?? "no error")")
        #expect(report.buses.first { $0.name == "mbus-line-1" }?.state == "ok")
    }
}
