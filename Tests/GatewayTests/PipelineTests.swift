import Drivers
import Foundation
import Testing
@testable import Gateway

// BufferKind (ReadingBufferTests.swift): each rule runs against the in-memory twin and the SQLite buffer.
@Suite("reading pipeline")
struct PipelineTests {
    typealias F = PipelineFixtures
    let t0: Int64 = 1_780_000_000_000

    @Test("a wired corpus telegram of a registered meter becomes SI readings; set-day values are classed so", arguments: BufferKind.allCases)
    func wiredCorpusTelegram(kind: BufferKind) async throws {
        let buffer = try kind.make()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        let frame = try F.corpusFrame("kamstrup_multical_601")
        let outcome = try await pipeline.ingest(.wired(WiredInput(.frame(frame), line: "mbus-line-1", receivedAt: t0)))
        guard case .buffered(let device, let n, _) = outcome else { Issue.record("not buffered: \(outcome)"); return }
        #expect(device == "mbus:KAM:06855817")
        let readings = try await buffer.all()
        // n values, plus the set_day_captured proof of the meter's set-day value (issue 17).
        #expect(readings.filter { $0.readingClass != .alarm && $0.quantity != SetDayLedger.quantity }.count == n)
        #expect(readings.filter { $0.quantity == SetDayLedger.quantity }.count == 1)
        // Energy 0x0C 06 (kWh, BCD 9 digits in the corpus) in Wh, raw kept.
        let energy = try #require(readings.first { $0.quantity == "Energy" && $0.storage == 0 && $0.tariff == 0 })
        #expect(energy.unit == "Wh")
        #expect(energy.raw.hasSuffix("kWh"))
        #expect(energy.source == "mbus:mbus-line-1")
        #expect(energy.readingClass == .routine)
        #expect(energy.id != nil)
        // Storage 1 carries a date (42 6C): those values are the set-day values, timed by that date.
        let setDay = readings.filter { $0.storage == 1 }
        #expect(!setDay.isEmpty)
        #expect(setDay.allSatisfy { $0.readingClass == .setDay && $0.meterTime != nil })
        #expect(Set(setDay.map(\.meterTime)).count == 1)
        let c = await pipeline.counters()
        #expect(c.heard == 1 && c.decoded == 1 && c.buffered == 1 && c.bufferedReadings == n)
    }

    @Test("every decodable corpus telegram goes somewhere: buffered, unknown, rejected or failed, and the counters add up")
    func wholeCorpusIsAccountedFor() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try DeviceRegistry.load(path: F.root.appendingPathComponent("seeds/demo-building/registry.json").path),
                                       buffer: buffer)
        let dir = F.root.appendingPathComponent("Tests/DriversTests/Fixtures/mbus/frames")
        var inputs: [PipelineInput] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where name.hasSuffix(".hex") {
            guard let bytes = try? Hex.decode(String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) else { continue }
            inputs.append(.wired(WiredInput(.frame(bytes), line: "mbus-line-1", receivedAt: t0)))
        }
        let outcomes = try await pipeline.ingest(inputs)
        let c = await pipeline.counters()
        #expect(c.heard == inputs.count)
        #expect(c.decoded + c.failed == c.heard)
        #expect(c.unknown + c.rejected + c.buffered + c.deduplicated == c.decoded)
        // The demo building registers these corpus meters on line 1.
        let devices = Set(try await buffer.all().map(\.device))
        for key in ["mbus:KAM:06855817", "mbus:LUG:66660205", "mbus:ZRM:31425084", "mbus:SON:08420624"] { #expect(devices.contains(key), "\(key)") }
        #expect(!devices.contains { $0.contains("14839120") })  // kamstrup_382: not in the building
        #expect(outcomes.contains { if case .unknownDevice = $0 { return true } else { return false } })
        #expect(c.failed > 0)  // the error frames
    }

    @Test("a neighbour's meter is reported with identity and signal, never buffered")
    func strangersAreNotBuffered() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        let outcome = try await pipeline.ingest(F.radio("55555555", "TCH", litres: 1234, rssi: -95, at: t0))
        guard case .unknownDevice(let reason) = outcome else { Issue.record("\(outcome)"); return }
        #expect(reason.description == "TCH 55555555: no such device in the registry")
        _ = try await pipeline.ingest(F.radio("55555555", "TCH", litres: 1235, rssi: -88, at: t0 + 1000))
        _ = try await pipeline.ingest(F.radio("33333333", "QDS", litres: 9, at: t0 + 2000))
        #expect(try await buffer.all().isEmpty)
        let seen = await pipeline.unknownDevices.sightings()
        #expect(seen.first?.identification == "55555555")
        #expect(seen.first?.count == 2)
        #expect(seen.first?.bestRSSI == -88)
        #expect(seen.count == 2)
        #expect(await pipeline.counters().unknown == 3)
    }

    @Test("with uploadStrangers on, a neighbour's readings are buffered under a stranger key")
    func strangersWhenTheOperatorAllowsIt() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer, options: PipelineOptions(uploadStrangers: true))
        _ = try await pipeline.ingest(F.radio("55555555", "TCH", litres: 1234, at: t0))
        let readings = try await buffer.all()
        #expect(readings.map(\.device) == ["stranger:wmbus:TCH:55555555"])
        #expect(readings.first?.value == 1.234)
        #expect(await pipeline.unknownDevices.sightings().count == 1)
    }

    @Test("a replaced meter still heard is rejected with the replacement; the new one's readings are its own")
    func replacementKeepsReadingsApart() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        let old = try await pipeline.ingest(F.radio("11111111", litres: 500_000, at: t0))
        #expect(old == .rejected(.replaced(identification: "11111111", on: "2026-03-02", by: "wmbus:QDS:22222222")))
        // Same content from the new meter is not a duplicate of the old one's.
        let new = try await pipeline.ingest(F.radio("22222222", litres: 500_000, at: t0 + 10))
        guard case .buffered("wmbus:QDS:22222222", 1, _) = new else { Issue.record("\(new)"); return }
        let readings = try await buffer.all()
        #expect(readings.map(\.device) == ["wmbus:QDS:22222222"])
        #expect(readings[0].rssi == -70 && readings[0].source == "wmbus:im871a" && readings[0].value == 500)
        let c = await pipeline.counters()
        #expect(c.rejected == 1 && c.buffered == 1)
    }

    @Test("broken frames count as failed and are not buffered")
    func brokenFrames() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        var frame = F.wiredFrame("06855817", "KAM", litres: 1)
        frame[frame.count - 2] &+= 1  // checksum
        let outcome = try await pipeline.ingest(.wired(WiredInput(.frame(frame), line: "mbus-line-1", receivedAt: t0)))
        guard case .failed(let why) = outcome else { Issue.record("\(outcome)"); return }
        #expect(why.contains("checksum"))
        var radio = F.radioFrame("22222222", "QDS", litres: 1)
        radio[12] ^= 0xFF
        let r = try await pipeline.ingest(.wireless(WirelessInput(.frame(radio, format: .a, linkMode: nil), dongle: "d", rssi: nil, receivedAt: t0)))
        guard case .failed = r else { Issue.record("\(r)"); return }
        let c = await pipeline.counters()
        #expect(c.heard == 2 && c.failed == 2 && c.decoded == 0)
        #expect(try await buffer.all().isEmpty)
    }

    @Test("readings refused by the buffer are not taken as stored: the same telegram heard again is stored")
    func bufferFailureRollsBack() async throws {
        let buffer = FlakyBuffer(failures: 1)
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        // Status 0x04 (power low) raises an alarm with the values.
        await #expect(throws: BufferError.self) { try await pipeline.ingest(F.radio("22222222", litres: 42, status: 0x04, at: t0)) }
        #expect(await pipeline.activeAlarms().isEmpty)
        let again = try await pipeline.ingest(F.radio("22222222", litres: 42, status: 0x04, at: t0 + 1000))
        guard case .buffered(_, 1, let alarms) = again else { Issue.record("\(again)"); return }
        #expect(alarms.map(\.code) == ["status:power_low"])
        let c = await pipeline.counters()
        #expect(c.bufferFailures == 1 && c.buffered == 1 && c.deduplicated == 0)
    }

    @Test("a batch is stored in one append and its outcomes keep input order", arguments: BufferKind.allCases)
    func batchIngest(kind: BufferKind) async throws {
        let buffer = try kind.make()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        let outcomes = try await pipeline.ingest([
            F.radio("22222222", litres: 1, at: t0),
            F.radio("22222222", litres: 1, access: 8, repeated: true, at: t0 + 50),
            F.radio("44444444", litres: 1, at: t0 + 60),
            .wired(WiredInput(.frame(F.wiredFrame("06855817", "KAM", litres: 77)), line: "mbus-line-1", receivedAt: t0 + 70)),
        ])
        #expect(outcomes[1] == .duplicate(device: "wmbus:QDS:22222222"))
        if case .unknownDevice = outcomes[2] {} else { Issue.record("\(outcomes[2])") }
        let readings = try await buffer.all()
        #expect(readings.count == 2)
        #expect(Set(readings.compactMap(\.id)).count == 2)
        #expect(await buffer.statistics().pending == 2)
    }

    @Test("readings taken before the clock was synchronised are marked so")
    func clockNotSynchronised() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        await pipeline.setClockSynchronised(false)
        _ = try await pipeline.ingest(F.radio("22222222", litres: 3, at: 5_000))
        #expect(try await buffer.all().isEmpty)  // held back by the buffer
        #expect(await buffer.statistics().waitingForClock == 1)
    }

    @Test("a heat pump's registers become readings of its registry device; unknown units are unknown", arguments: BufferKind.allCases)
    func modbusReadings(kind: BufferKind) async throws {
        let buffer = try kind.make()
        let options = PipelineOptions(modbusNormaliser: ModbusNormaliser(setDayRegisters: ["kaisai-r290-monoblock": ["heat_produced"]]))
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer, options: options)
        let reading = try F.kaisaiReading()
        let outcome = try await pipeline.ingest(.modbus(ModbusInput(reading, line: "rs485-1", receivedAt: t0)))
        guard case .buffered("modbus:kaisai:unit1", let n, let alarms) = outcome else { Issue.record("\(outcome)"); return }
        #expect(n > 5)
        #expect(alarms.map(\.code) == ["fault:current_error:9"])
        let readings = try await buffer.all()
        let freq = try #require(readings.first { $0.quantity == "compressor_frequency" })
        #expect(freq.value == 29)
        #expect(freq.source == "modbus:rs485-1#1")
        #expect(readings.allSatisfy { $0.device == "modbus:kaisai:unit1" })
        let heat = try #require(readings.first { $0.quantity == "heat_produced" })
        #expect(heat.readingClass == .setDay && heat.unit == "Wh")
        let other = try await pipeline.ingest(.modbus(ModbusInput(try F.kaisaiReading(unit: 2), line: "rs485-1", receivedAt: t0)))
        #expect(other == .unknownDevice(.noModbusDevice(line: "rs485-1", unit: 2)))
        #expect(other.description.isEmpty == false)
    }
}


@Suite("reading pipeline: meter keys")
struct PipelineKeyTests {
    @Test("a key added while running (SIGHUP) opens the next telegram of a meter that had none")
    func keyAddedWhileRunning() async throws {
        let id = IdentificationNumber("12345678")!
        let registry = try DeviceRegistry(RegistryDocument(gateway: "gw", building: "b", devices: [
            RegisteredDevice(key: "wmbus:QDS:12345678", bus: .wirelessMBus, identification: "12345678", manufacturer: "QDS")]))
        let key = WMBusKey((0..<16).map { UInt8($0 * 7 + 3) })!
        let address = WMBusAddress(manufacturer: ManufacturerCode("QDS")!, identification: id, version: 0x34, deviceType: .heatCostAllocator)
        // Current HCA value (VIF 6E), 151 units.
        let records = try Hex.decode("0b6e970000")
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: registry, buffer: buffer)
        func telegram(_ access: UInt8) -> PipelineInput {
            .wireless(WirelessInput(.frame(ProfileTelegramEncoder.modeFive(address: address, accessNumber: access, records: records, key: key)!,
                                           format: .noCRC, linkMode: .t1), dongle: "d", rssi: -70, receivedAt: 1_780_000_000_000 + Int64(access)))
        }
        _ = try await pipeline.ingest(telegram(1))
        #expect(try await buffer.all().filter { $0.readingClass != .alarm }.isEmpty, "no key: nothing to store")
        var ring = WMBusKeyring()
        ring.keys[id] = key
        await pipeline.replaceKeyring(ring)
        let outcome = try await pipeline.ingest(telegram(2))
        guard case .buffered(let device, let n, _) = outcome else {
            Issue.record("not buffered after the key was added: \(outcome)")
            return
        }
        #expect(device == "wmbus:QDS:12345678" && n >= 1)
    }
}
