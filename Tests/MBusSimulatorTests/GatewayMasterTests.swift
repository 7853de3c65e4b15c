import Drivers
import Testing
@testable import MBusSimulator

/// The gateway's own master (`Drivers.MBusLine` over `SerialPort`) against the demo building's line:
/// the simulator is only useful if the real master can read it the way it reads a real line.
@Suite("Gateway master against the simulated demo line")
struct GatewayMasterTests {
    static func demoLine() throws -> (MBusBusSimulator, MBusLine) {
        let population = try SlavePopulation(contentsOfFile: PopulationFileTests.seedPath)
        let bus = try MBusBusSimulator(slaves: population.slaves, baudRate: 38400)
        try bus.start()
        let options = MBusLineOptions(serial: SerialSettings(baudRate: 38400), lockDirectory: "/tmp")
        do {
            return (bus, try MBusLine(endpoint: .serial(path: bus.devicePath), options: options))
        } catch {
            bus.stop()
            throw error
        }
    }

    @Test("Primary and secondary readouts, a multi-telegram meter, a slow meter and a dead one")
    func readouts() async throws {
        let (bus, line) = try Self.demoLine()
        defer { bus.stop() }

        let multi = try await line.read(.primary(3))
        #expect(multi.telegrams.map(\.moreRecordsFollow) == [true, true, false])

        let batchMeter = try await line.read(.secondary(try #require(SecondaryAddressMask("31425082FFFFFFFF"))))
        #expect(batchMeter.telegrams.first?.header.identification == IdentificationNumber("31425082"))
        #expect(batchMeter.telegrams.first?.primaryAddress == 10)

        let slow = try await line.read(.primary(19))
        #expect(slow.telegrams.count == 1)

        await #expect(throws: MBusError.self) { try await line.read(.primary(21)) }
        #expect(bus.counters.responsesSent(primaryAddress: 21) == 0)
        await line.close()
    }

    @Test("A primary scan finds the 20 live meters; a registry check finds the batch and misses the dead meter")
    func scans() async throws {
        let (bus, line) = try Self.demoLine()
        defer { bus.stop() }
        let primary = try await line.scanPrimary(addresses: 0...22)
        #expect(primary.found.compactMap(\.primaryAddress) == Array(1...20))
        #expect(primary.collisions.isEmpty)
        #expect(primary.found.first { $0.primaryAddress == 3 }?.secondaryAddress?.description == "084206244DEE0D04")

        let batch = (0...4).map { ExpectedMeter(identification: IdentificationNumber("3142508\($0)")!) }
        let dead = ExpectedMeter(identification: IdentificationNumber("00623702")!, manufacturer: ManufacturerCode("EMH"))
        let report = try await line.verify(batch + [dead])
        #expect(report.found.compactMap { $0.secondaryAddress?.identification.digits } == (0...4).map { "3142508\($0)" })
        #expect(report.missing.map(\.identification) == [dead.identification])
        await line.close()
    }
}
