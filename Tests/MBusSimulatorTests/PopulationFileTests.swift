#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Drivers
import Testing
@testable import MBusSimulator

@Suite("Slave population files")
struct PopulationFileTests {
    static let seedPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("seeds/demo-building/mbus-slaves.json").path

    @Test("The demo building's line: 20 answering slaves, a five-meter batch, a multi-telegram, a slow and a dead slave")
    func demoBuilding() throws {
        let population = try SlavePopulation(contentsOfFile: Self.seedPath)
        #expect(population.baudRate == 2400)
        #expect(population.slaves.map(\.primaryAddress) == Array(1...21))
        #expect(population.slaves.filter { $0.behaviour == .dead }.map(\.primaryAddress) == [21])
        #expect(population.slaves.filter { $0.behaviour == .slow }.count == 1)

        let batch = population.slaves.compactMap { $0.secondaryAddress?.identification.digits }.filter { $0.hasPrefix("3142508") }
        #expect(batch == ["31425080", "31425081", "31425082", "31425083", "31425084"])
        let secondaries = population.slaves.compactMap(\.secondaryAddress)
        #expect(Set(secondaries).count == secondaries.count, "every meter can be selected on its own")

        let multi = try #require(population.slaves.first { $0.frames.count > 1 })
        #expect(multi.frames.count == 3)
        #expect(try multi.frames.map { try TelegramDecoder.decode($0).moreRecordsFollow } == [true, true, false])
        for slave in population.slaves {
            for frame in slave.frames {
                let telegram = try TelegramDecoder.decode(frame)
                #expect(telegram.primaryAddress == slave.primaryAddress)
                if slave.frames.count == 1 { #expect(!telegram.moreRecordsFollow, "\(slave.name)") }
            }
        }
        // The simulator accepts it: every delay fits the window at 2400 baud.
        let bus = try MBusBusSimulator(population: population)
        bus.stop()
    }

    @Test("A wildcard readout of the demo batch: one clean E5, then a valid-looking telegram that no single meter sent")
    func demoBatchCollides() throws {
        let population = try SlavePopulation(contentsOfFile: Self.seedPath)
        let bus = try MBusBusSimulator(slaves: population.slaves, baudRate: 38400)
        try bus.start()
        defer { bus.stop() }
        let master = try TestMaster(path: bus.devicePath)
        master.send(.selectSecondary(try #require(SecondaryAddressMask("3142508FFFFFFFFF"))))
        #expect(master.frames(1) == [.ack])
        #expect(bus.selectedPrimaryAddresses == [8, 9, 10, 11, 12])
        master.send(.reqUD2(address: LinkAddress.networkLayer, frameCountBit: true))
        let received = master.read(timeout: .seconds(2)) { $0.count >= 245 }
        // The five telegrams differ only in A (8...12), the id's last digit (0...4) and the checksum
        // (one more per step): their AND is exactly meter 31425080's telegram, checksum and all. This
        // is why a master must not trust a readout after a wildcard select.
        let batch = population.slaves.filter { (8...12).contains($0.primaryAddress) }
        #expect(received.bytes == batch[0].frames[0])
        #expect(bus.counters.collisions == 8)
        #expect(bus.counters.responsesSent == 10)
    }

    @Test("Overrides, behaviours and delays from JSON; bad entries are refused with a reason")
    func jsonFields() throws {
        let json = """
            { "comment": "two meters", "baudRate": 9600, "slaves": [
              { "primary": 3, "id": "00000042", "manufacturer": "ABC", "responseDelayMs": 20.5, "frames": ["\(Meters.gwf)"] },
              { "name": "spare", "primary": 4, "behaviour": "slow", "frames": ["\(Meters.gwf)", "\(Meters.gwf)"] } ] }
            """
        let population = try SlavePopulation(json: Data(json.utf8))
        #expect(population.baudRate == 9600)
        let first = population.slaves[0]
        #expect(first.secondaryAddress?.identification == IdentificationNumber("00000042"))
        #expect(first.secondaryAddress?.manufacturer == ManufacturerCode("ABC"))
        #expect(first.responseDelay == .microseconds(20_500))
        #expect(first.behaviour == .normal)
        #expect(population.slaves[1].behaviour == .slow)
        #expect(population.slaves[1].name == "spare")

        for bad in [#"{ "slaves": [ { "primary": 1 } ] }"#,
                    #"{ "slaves": [ { "primary": 1, "behaviour": "sleepy", "frames": [] } ] }"#,
                    #"{ "slaves": [ { "primary": 300, "frames": ["E5"] } ] }"#,
                    #"{ "slaves": [ { "primary": 1, "id": "12AB5678", "frames": ["E5"] } ] }"#,
                    #"{ "slaves": [ { "primary": 1, "frames": ["68 1B"] } ] }"#] {
            #expect(throws: SimulatorError.self) { try SlavePopulation(json: Data(bad.utf8)) }
        }
    }
}
