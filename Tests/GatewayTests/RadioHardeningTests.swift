@testable import Drivers
import Foundation
import Testing
@testable import Gateway

/// Issue 15, "Radio input": telegrams built as an attacker or a faulty meter would send them. Each test
/// failed on the code before the fix (a trap, a forged reading filed, a refused batch, an unbounded table).
@Suite("radio input hardening")
struct RadioHardeningTests {
    typealias F = PipelineFixtures
    let t0: Int64 = 1_780_000_000_000
    static let key = WMBusKey(hex: "0102030405060708090A0B0C0D0E0F10")!

    // MARK: 1. no conversion of a telegram's numbers traps

    /// A wired frame of the registered Kamstrup with one error-flags record (DIF `dif`, VIF FD 17) and `data`.
    func errorFlagsFrame(dif: UInt8, data: [UInt8]) throws -> [UInt8] {
        var h = F.header("06855817", "KAM")
        h.accessNumber = 3
        let volume = try RecordEncoder.encode(.init(dataField: .int32, vif: .primary(0x13), value: .integer(1234)))
        // The records after the header are hand-made, so that any bytes can follow the VIF.
        let id = h.identification!.rawValue, man = h.manufacturer!.rawValue
        var user: [UInt8] = [UInt8(id & 0xFF), UInt8(id >> 8 & 0xFF), UInt8(id >> 16 & 0xFF), UInt8(id >> 24),
                             UInt8(man & 0xFF), UInt8(man >> 8), 1, DeviceType.heatOutlet.rawValue, 3, 0, 0, 0]
        user += volume + [dif, 0xFD, 0x17] + data
        return FrameCodec.encode(.long(LongFrame(control: .rspUD, address: 5, controlInformation: ControlInformation.variableDataLongHeader,
                                                 userData: user)))
    }

    @Test("an error-flags record with bit 7 set is the bit pattern 0x80, not a trap", arguments: [
        (UInt8(0x01), [UInt8(0x80)], "0x80"),                    // int8 -128
        (UInt8(0x02), [UInt8(0x00), 0x80], "0x8000"),            // int16 with the sign bit
        (UInt8(0x07), [UInt8](repeating: 0xFF, count: 8), "0xFFFFFFFFFFFFFFFF"),  // int64 -1
    ])
    func errorFlagsSignBit(dif: UInt8, data: [UInt8], shown: String) async throws {
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: MemoryReadingBuffer())
        let outcome = try await pipeline.ingest(.wired(WiredInput(.frame(try errorFlagsFrame(dif: dif, data: data)), line: "mbus-line-1", receivedAt: t0)))
        guard case .buffered(_, let n, let alarms) = outcome else { Issue.record("not buffered: \(outcome)"); return }
        #expect(n == 1)  // the volume
        let flags = try #require(alarms.first { $0.code == "error_flags" })
        #expect(flags.message.contains(shown), "\(flags.message)")
    }

    @Test("an error-flags record holding a real (NaN, infinity, 3.4e38) is refused and counted, the telegram's other values stored",
          arguments: [Float.nan, .infinity, -.infinity, 3.4e38, -1.5])
    func errorFlagsReal(value: Float) async throws {
        let bits = value.bitPattern
        let data: [UInt8] = [UInt8(bits & 0xFF), UInt8(bits >> 8 & 0xFF), UInt8(bits >> 16 & 0xFF), UInt8(bits >> 24)]
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: MemoryReadingBuffer())
        let outcome = try await pipeline.ingest(.wired(WiredInput(.frame(try errorFlagsFrame(dif: 0x05, data: data)), line: "mbus-line-1", receivedAt: t0)))
        guard case .buffered(_, let n, _) = outcome else { Issue.record("not buffered: \(outcome)"); return }
        #expect(n == 1)
        #expect(await pipeline.counters().refusedValues == 1)
        let refusals = await pipeline.drainRefusals()
        #expect(refusals.count == 1 && refusals[0].refusal.reason.contains("not an integer"))
    }

    @Test("Modbus enum and fault registers holding values no Int64 takes give text and a named alarm, not a trap",
          arguments: [Double.greatestFiniteMagnitude, 9.223372036854775807e18, -1e300, 0.5])
    func modbusCodesOutOfRange(number: Double) throws {
        let enumRegister = try register(#"{"name": "mode", "kind": "holding", "address": 0, "type": "f64", "enum": {"1": "heating"}}"#)
        if case .text(let t) = RegisterDecoder.decode(words(number), enumRegister) {
            #expect(t.hasPrefix("unknown ("))
        } else {
            Issue.record("enum register not decoded as text")
        }
        let faultRegister = try register(#"{"name": "error", "kind": "holding", "address": 0, "type": "f64", "faults": {"3": "sensor"}}"#)
        let value = RegisterDecoder.decode(words(number), faultRegister)
        let alarms = RegisterDecoder.alarms(value, faultRegister)
        #expect(alarms.count == 1)
        #expect(alarms.first?.code == "error:invalid")
    }

    func register(_ json: String) throws -> RegisterDefinition {
        try JSONDecoder().decode(RegisterDefinition.self, from: Data(json.utf8))
    }

    func words(_ d: Double) -> [UInt16] {
        let b = d.bitPattern
        return [UInt16(b >> 48 & 0xFFFF), UInt16(b >> 32 & 0xFFFF), UInt16(b >> 16 & 0xFFFF), UInt16(b & 0xFFFF)]
    }

    @Test("checked conversions: NaN, infinities and the edges of Int64 and UInt64 give nil, never a trap")
    func checkedConversions() {
        #expect(CheckedNumber.int64(.nan) == nil)
        #expect(CheckedNumber.int64(.infinity) == nil)
        #expect(CheckedNumber.int64(9.223372036854775807e18) == nil)  // rounds to 2^63
        #expect(CheckedNumber.int64(-9.223372036854775808e18) == Int64.min)
        #expect(CheckedNumber.int64(-12.7) == -12)
        #expect(CheckedNumber.uint64(-0.5) == 0)
        #expect(CheckedNumber.uint64(-1) == nil)
        #expect(CheckedNumber.uint64(1.8446744073709552e19) == nil)
        #expect(CheckedNumber.exactInt64(0.5) == nil)
        #expect(CheckedNumber.int(.infinity, clampedTo: 0...10) == 10)
        #expect(RecordValue.integer(-1).bitPattern(bytes: 1) == 0xFF)
        #expect(RecordValue.real(1).bitPattern(bytes: 4) == nil)
    }

    // MARK: 2. forged and downgraded telegrams

    static let keyedDocument = RegistryDocument(
        gateway: "gw-0007", building: "7",
        devices: [
            RegisteredDevice(key: "mbus:KAM:06855817", bus: .wiredMBus, identification: "06855817", manufacturer: "KAM", line: "mbus-line-1"),
            RegisteredDevice(key: "wmbus:QDS:44440001", bus: .wirelessMBus, identification: "44440001", manufacturer: "QDS", keyReference: "hca-4401"),
            RegisteredDevice(key: "wmbus:QDS:44440002", bus: .wirelessMBus, identification: "44440002", manufacturer: "QDS"),
            RegisteredDevice(key: "wmbus:QDS:44440003", bus: .wirelessMBus, identification: "44440003", manufacturer: "QDS"),
            RegisteredDevice(key: "modbus:kaisai:unit1", bus: .modbus, identification: "55550001", manufacturer: "KAI", modbusUnit: 1, line: "rs485-1"),
        ])

    func keyedPipeline(buffer: any ReadingBuffer = MemoryReadingBuffer()) throws -> ReadingPipeline {
        // 44440001: the registry names a key; 44440002: the key file holds one; 44440003: neither (plain is fine).
        let keyring = WMBusKeyring(keys: [IdentificationNumber("44440001")!: Self.key, IdentificationNumber("44440002")!: Self.key])
        return ReadingPipeline(registry: try DeviceRegistry(Self.keyedDocument), buffer: buffer, options: PipelineOptions(keyring: keyring))
    }

    func address(_ id: String, _ m: String = "QDS") -> WMBusAddress {
        WMBusAddress(manufacturer: ManufacturerCode(m)!, identification: IdentificationNumber(id)!, version: 1, deviceType: .water)
    }

    func encrypted(_ id: String, litres: Int64, access: UInt8) -> [UInt8] {
        let records = F.records(litres: litres).flatMap { try! RecordEncoder.encode($0) }
        return ProfileTelegramEncoder.modeFive(address: address(id), accessNumber: access, records: records, key: Self.key)!
    }

    /// Announces security mode 5 with its block count, but the "cipher text" is the plain 2F2F records.
    func announcedButPlain(_ id: String, litres: Int64, access: UInt8) -> [UInt8] {
        var plain: [UInt8] = [0x2F, 0x2F] + F.records(litres: litres).flatMap { try! RecordEncoder.encode($0) }
        while plain.count % 16 != 0 { plain.append(0x2F) }
        let payload: [UInt8] = [0x7A, access, 0x00, UInt8((plain.count / 16) << 4), 0x05] + plain
        return WMBusFrameCodec.encode(control: WMBusControlField(rawValue: 0x44), address: address(id), payload: payload, format: .noCRC)
    }

    func radio(_ bytes: [UInt8], at: Int64) -> PipelineInput {
        .wireless(WirelessInput(.frame(bytes, format: .noCRC, linkMode: .t1), dongle: "im871a", rssi: -70, receivedAt: at))
    }

    @Test("a meter with a known key that sends in the clear is refused, counted and raises security_downgrade",
          arguments: ["44440001", "44440002"])
    func plaintextFromKeyedMeter(id: String) async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = try keyedPipeline(buffer: buffer)
        let plain = F.radioFrame(id, "QDS", litres: 999_999, access: 4, format: .noCRC)
        let outcome = try await pipeline.ingest(radio(plain, at: t0))
        guard case .rejected(.securityDowngrade(let device, let found)) = outcome else { Issue.record("accepted: \(outcome)"); return }
        #expect(device == "wmbus:QDS:\(id)")
        #expect(found.contains("in the clear"))
        let c = await pipeline.counters()
        #expect(c.securityDowngrades == 1 && c.rejected == 1 && c.bufferedReadings == 0)
        let stored = try await buffer.all()
        #expect(!stored.contains { $0.readingClass != .alarm }, "a forged value was stored")
        let alarm = try #require(stored.compactMap(Alarm.init(reading:)).first)
        #expect(alarm.code == "security_downgrade" && alarm.state == .raised && alarm.priority == .critical)
        #expect(await pipeline.activeAlarms().contains { $0.condition.code == "security_downgrade" })

        // The genuine meter, encrypted: stored, and the alarm clears.
        let genuine = try await pipeline.ingest(radio(encrypted(id, litres: 1234, access: 5), at: t0 + 60_000))
        guard case .buffered(_, 1, let edges) = genuine else { Issue.record("genuine telegram not stored: \(genuine)"); return }
        #expect(edges.contains { $0.code == "security_downgrade" && $0.state == .cleared })
        #expect(await pipeline.activeAlarms().isEmpty)
    }

    @Test("a telegram that announces mode 5 but carries plain data is refused for a meter with a key")
    func announcedButPlainIsRefused() async throws {
        let pipeline = try keyedPipeline()
        let outcome = try await pipeline.ingest(radio(announcedButPlain("44440002", litres: 5, access: 6), at: t0))
        guard case .rejected(.securityDowngrade(_, let found)) = outcome else { Issue.record("accepted: \(outcome)"); return }
        #expect(found.contains("announces security mode 5"))
    }

    @Test("a Diehl meter registered with its own key, whose telegram opens only with a published default key, is refused as a downgrade")
    func diehlDefaultKeyIsDowngradeForKeyedMeter() async throws {
        // The wmbus corpus's SHARKY (#324): Diehl real data, scrambled with the second default key.
        let sharky = try Hex.decode("534424232004256092687A370045752235854DEEEA5939FAD81C25FEEF5A23C38FB9168493C563F08DB10BAF87F660FBA91296BA2397E8F4220B86D3A192FB51E0BFCF24DCE72118E0C75A9E89F43BDFE370824B")
        func pipeline(keyReference: String?) throws -> ReadingPipeline {
            let document = RegistryDocument(gateway: "gw-0007", building: "7", devices: [
                RegisteredDevice(key: "wmbus:HYD:68926025", bus: .wirelessMBus, identification: "68926025", manufacturer: "HYD", keyReference: keyReference),
            ])
            return ReadingPipeline(registry: try DeviceRegistry(document), buffer: MemoryReadingBuffer(), options: PipelineOptions(keyring: WMBusKeyring()))
        }
        let keyed = try await pipeline(keyReference: "sharky-1").ingest(radio(sharky, at: t0))
        guard case .rejected(.securityDowngrade(_, let found)) = keyed else { Issue.record("accepted: \(keyed)"); return }
        #expect(found.contains("published default key"))
        // Registered without a key: the default key is how the meter is read.
        let open = try await pipeline(keyReference: nil).ingest(radio(sharky, at: t0))
        guard case .buffered = open else { Issue.record("refused: \(open)"); return }
    }

    @Test("an encrypted telegram whose key is missing counts as failed only, not decoded and failed")
    func noKeyCountedOnce() async throws {
        let pipeline = try keyedPipeline()
        // 44440003 has no key anywhere; its telegram is encrypted with one.
        let outcome = try await pipeline.ingest(radio(encrypted("44440003", litres: 9, access: 3), at: t0))
        guard case .failed = outcome else { Issue.record("not failed: \(outcome)"); return }
        let c = await pipeline.counters()
        #expect(c.heard == 1 && c.failed == 1 && c.decoded == 0, "\(c)")
    }

    @Test("a meter without a key may send in the clear")
    func plainMeterStillAccepted() async throws {
        let pipeline = try keyedPipeline()
        let outcome = try await pipeline.ingest(radio(F.radioFrame("44440003", "QDS", litres: 10, format: .noCRC), at: t0))
        guard case .buffered(_, 1, _) = outcome else { Issue.record("refused: \(outcome)"); return }
        #expect(await pipeline.counters().securityDowngrades == 0)
    }

    @Test("a radio telegram never files under a device registered on a wired line or a Modbus bus", arguments: [
        ("06855817", "KAM", "mbus:KAM:06855817"), ("55550001", "KAI", "modbus:kaisai:unit1"),
    ])
    func busKindIsIdentity(id: String, m: String, key: String) async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = try keyedPipeline(buffer: buffer)
        let outcome = try await pipeline.ingest(radio(F.radioFrame(id, m, litres: 1, format: .noCRC), at: t0))
        guard case .rejected(.wrongBus(let device, let registered, let heard)) = outcome else { Issue.record("not refused: \(outcome)"); return }
        #expect(device == key && registered != .wirelessMBus && heard == .wirelessMBus)
        #expect(try await buffer.all().isEmpty)
        // And the other way round: the wired frame of a radio meter's id is refused on the line.
        let wired = try await pipeline.ingest(.wired(WiredInput(.frame(F.wiredFrame("44440003", "QDS", litres: 7)), line: "mbus-line-1", receivedAt: t0)))
        guard case .rejected(.wrongBus) = wired else { Issue.record("wired frame filed under a radio meter: \(wired)"); return }
    }

    @Test("a registry entry without manufacturer matches no manufacturer, and says so as a warning")
    func noManufacturerIsStrict() async throws {
        let document = RegistryDocument(gateway: "gw", building: "7", devices: [
            RegisteredDevice(key: "wmbus:?:12345678", bus: .wirelessMBus, identification: "12345678"),
        ])
        let registry = try DeviceRegistry(document)
        #expect(registry.warnings.count == 1 && registry.warnings[0].contains("wmbus:?:12345678"))
        let pipeline = ReadingPipeline(registry: registry, buffer: MemoryReadingBuffer())
        for m in ["QDS", "TCH"] {
            let outcome = try await pipeline.ingest(radio(F.radioFrame("12345678", m, litres: 1, format: .noCRC), at: t0))
            guard case .rejected(.registryEntryWithoutManufacturer(let d, let heard)) = outcome else { Issue.record("matched: \(outcome)"); return }
            #expect(d == "wmbus:?:12345678" && heard == m)
        }
        // The demo building's registry has no such entry.
        let demo = try DeviceRegistry.load(path: F.root.appendingPathComponent("seeds/demo-building/registry.json").path)
        #expect(demo.warnings.isEmpty)
    }

    // MARK: 3. one non-finite value never refuses its batch

    /// A normaliser that passes the generic values through and adds a NaN and an infinity for one device.
    struct PoisoningNormaliser: ReadingNormaliser {
        func normalise(_ input: NormaliserInput) -> NormalisedTelegram {
            var n = EN13757Normaliser().normalise(input)
            if input.device.identification == "22222222" {
                n.values.append(NormalisedValue(quantity: "Volume", value: .nan, unit: "m^3", raw: "NaN"))
                n.values.append(NormalisedValue(quantity: "Power", value: .infinity, unit: "W", raw: "inf"))
            }
            return n
        }
    }

    @Test("a NaN or infinite value is refused alone: its telegram's other values and the rest of the batch are stored (SQLite)")
    func nonFiniteValueDoesNotPoisonBatch() async throws {
        let path = TempDir.file("nan.sqlite")
        let buffer = try SQLiteReadingBuffer(path: path)
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer, options: PipelineOptions(normaliser: PoisoningNormaliser()))
        let outcomes = try await pipeline.ingest([
            .wired(WiredInput(.frame(F.wiredFrame("06855817", "KAM", litres: 100)), line: "mbus-line-1", receivedAt: t0)),
            F.radio("22222222", litres: 200, at: t0),
        ])
        #expect(outcomes.allSatisfy { if case .buffered = $0 { true } else { false } }, "\(outcomes)")
        let stored = try await buffer.all()
        #expect(stored.count == 2)
        #expect(stored.allSatisfy { $0.value.isFinite })
        #expect(Set(stored.map(\.device)) == ["mbus:KAM:06855817", "wmbus:QDS:22222222"])
        #expect(await pipeline.counters().refusedValues == 2)
        #expect(await pipeline.drainRefusals().map(\.refusal.quantity).sorted() == ["Power", "Volume"])
    }

    @Test("a Modbus value whose scale overflows to infinity is refused alone")
    func modbusOverflowRefused() async throws {
        let buffer = MemoryReadingBuffer()
        var reading = try F.kaisaiReading()
        let before = reading.values.count
        reading.values.append(ModbusReadingValue(name: "energy_huge", label: "Energy", value: .number(1e308), unit: "GWh", raw: [0xFFFF]))
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        let outcome = try await pipeline.ingest(.modbus(ModbusInput(reading, line: "rs485-1", receivedAt: t0)))
        guard case .buffered(_, let n, _) = outcome else { Issue.record("not stored: \(outcome)"); return }
        #expect(n > 0 && n <= before)
        #expect(await pipeline.counters().refusedValues == 1)
        #expect(try await buffer.all().allSatisfy { $0.value.isFinite })
    }

    // MARK: 4. the unknown-device table is bounded

    @Test("a flood of invented ids keeps the unknown-device table within its bound; evictions are counted; a steady neighbour stays")
    func unknownDevicesBounded() async throws {
        let table = UnknownDevices(capacity: 64)
        let neighbour = F.header("87654321", "KAM")
        for i in 0..<10_000 {
            if i % 10 == 0 { await table.record(neighbour, rssi: -80) }
            await table.record(F.header(String(format: "%08d", i), "QDS"), rssi: -90)
        }
        let count = await table.count
        #expect(count <= 64)
        #expect(await table.evicted == 10_001 - count)
        #expect(await table.sightings().first?.identification == "87654321")
    }

    @Test("the pipeline's stranger table is bounded too (forged ids through ingest)")
    func pipelineStrangersBounded() async throws {
        let strangers = UnknownDevices(capacity: 32)
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: MemoryReadingBuffer(), unknownDevices: strangers)
        let inputs = (0..<500).map { F.radio(String(format: "9%07d", $0), litres: 1, at: t0) }
        _ = try await pipeline.ingest(inputs)
        #expect(await strangers.count <= 32)
        #expect(await strangers.evicted >= 468)
        #expect(await pipeline.counters().unknown == 500)
    }
}
