import Drivers
import Foundation
@testable import Gateway

/// Shared inputs for the pipeline tests: a small registry, telegram builders and the wired corpus.
enum PipelineFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let document = RegistryDocument(
        gateway: "gw-0007", building: "7",
        devices: [
            RegisteredDevice(key: "mbus:KAM:06855817", bus: .wiredMBus, unit: "1.01", identification: "06855817", manufacturer: "KAM", line: "mbus-line-1"),
            RegisteredDevice(key: "wmbus:QDS:11111111", bus: .wirelessMBus, unit: "4.12", identification: "11111111", manufacturer: "QDS",
                             replacedOn: "2026-03-02", replacedBy: "wmbus:QDS:22222222"),
            RegisteredDevice(key: "wmbus:QDS:22222222", bus: .wirelessMBus, unit: "4.12", identification: "22222222", manufacturer: "QDS",
                             replaces: "wmbus:QDS:11111111"),
            RegisteredDevice(key: "modbus:kaisai:unit1", bus: .modbus, modbusUnit: 1, line: "rs485-1", profile: "kaisai-r290-monoblock",
                             serial: "KHP-R290-0007-001"),
            RegisteredDevice(key: "manual:HCA:4.12", bus: .manual, unit: "4.12"),
        ],
        elsewhere: [DeviceElsewhere(identification: "33333333", manufacturer: "QDS", building: "12")],
        serialPatterns: ["kaisai-r290-monoblock": "KHP-R290-[0-9]{4}-[0-9]{3}"])

    static func registry() throws -> DeviceRegistry { try DeviceRegistry(document) }

    static func header(_ id: String, _ m: String, type: DeviceType = .water, access: UInt8 = 1, status: UInt8 = 0) -> TelegramHeader {
        var h = TelegramHeader()
        h.identification = IdentificationNumber(id)
        h.manufacturer = ManufacturerCode(m)
        h.version = 1
        h.deviceType = type
        h.accessNumber = access
        h.status = MeterStatus(rawValue: status)
        h.signature = 0
        return h
    }

    /// Volume in litres (VIF 13h) and, optionally, a set-day value with its date (storage 1).
    static func records(litres: Int64, setDay: (litres: Int64, date: MBusDateTime)? = nil) -> [RecordEncoder.Spec] {
        var r: [RecordEncoder.Spec] = [.init(dataField: .int32, vif: .primary(0x13), value: .integer(litres))]
        if let s = setDay {
            r.append(.init(storageNumber: 1, dataField: .int32, vif: .primary(0x13), value: .integer(s.litres)))
            r.append(.init(storageNumber: 1, dataField: .int16, vif: .primary(0x6C), value: .dateTime(s.date)))
        }
        return r
    }

    /// A wired RSP_UD frame (CI 72h).
    static func wiredFrame(_ id: String, _ m: String, litres: Int64, access: UInt8 = 1, status: UInt8 = 0) -> [UInt8] {
        try! RecordEncoder.responseFrame(address: 5, header: header(id, m, access: access, status: status), records: records(litres: litres))
    }

    /// A wireless SND_NR frame: optional ELL (CI 8Ch, CC with the repeater bits) then a short TPL header
    /// (CI 7Ah) without encryption and the records. `repeated` sets the R bit a repeater sets.
    static func radioFrame(_ id: String, _ m: String, litres: Int64, access: UInt8 = 7, status: UInt8 = 0, repeated: Bool = false,
                           format: WMBusFrameFormat = .a, setDay: (litres: Int64, date: MBusDateTime)? = nil) -> [UInt8] {
        let cc: UInt8 = 0x20 | (repeated ? 0x02 : 0x00)  // S bit; R bit (0x02) set by a repeater
        var payload: [UInt8] = [0x8C, cc, access, 0x7A, access, status, 0x00, 0x00]
        for spec in records(litres: litres, setDay: setDay) { payload += try! RecordEncoder.encode(spec) }
        let address = WMBusAddress(manufacturer: ManufacturerCode(m)!, identification: IdentificationNumber(id)!, version: 1, deviceType: .water)
        return WMBusFrameCodec.encode(control: WMBusControlField(rawValue: 0x44), address: address, payload: payload, format: format)
    }

    static func radio(_ id: String, _ m: String = "QDS", litres: Int64, access: UInt8 = 7, status: UInt8 = 0, repeated: Bool = false,
                      format: WMBusFrameFormat = .a, rssi: Int16 = -70, at: Int64, flags: Set<MeterAlarmFlag>? = nil) -> PipelineInput {
        .wireless(WirelessInput(.frame(radioFrame(id, m, litres: litres, access: access, status: status, repeated: repeated, format: format),
                                       format: format, linkMode: .t1),
                                dongle: "im871a", rssi: rssi, receivedAt: at, alarmFlags: flags))
    }

    /// A frame of the libmbus corpus (Tests/DriversTests/Fixtures/mbus/frames).
    static func corpusFrame(_ name: String) throws -> [UInt8] {
        let text = try String(contentsOf: root.appendingPathComponent("Tests/DriversTests/Fixtures/mbus/frames/\(name).hex"), encoding: .utf8)
        return try Hex.decode(text)
    }

    static func kaisai() throws -> ModbusProfile {
        try ModbusProfile.load(path: root.appendingPathComponent("profiles/modbus/kaisai-r290-monoblock.json").path)
    }

    /// A reading of the Kaisai profile's own recorded register dump, with `patch` (address → word) applied.
    static func kaisaiReading(patch: [Int: UInt16] = [:], unit: Int = 1) throws -> ModbusReading {
        let profile = try kaisai()
        var words: [Int: UInt16] = [:]
        for block in profile.test?.dump["holding"] ?? [] {
            for (i, v) in block.values.enumerated() { words[block.address + i] = UInt16(truncatingIfNeeded: v) }
        }
        for (a, v) in patch { words[a] = v }
        let registers = profile.registers.filter { r in (r.address..<(r.address + r.words)).allSatisfy { words[$0] != nil } && r.kind == .holding }
        let requests = profile.plan(registers)
        let blocks: [[UInt16]?] = requests.map { req in
            let w = (req.address..<(req.address + req.count)).map { words[$0] }
            return w.contains(nil) ? nil : w.map { $0! }
        }
        return profile.decode(registers, requests: requests, words: blocks, unit: unit)
    }
}

/// A buffer that refuses the next `failures` appends with "disk full" and otherwise stores in memory.
actor FlakyBuffer: ReadingBuffer {
    let inner = MemoryReadingBuffer()
    var failures: Int
    init(failures: Int) { self.failures = failures }

    func append(_ readings: [Reading]) async throws(BufferError) -> [Int64] {
        if failures > 0 {
            failures -= 1
            throw BufferError(.diskFull, "injected: disk full")
        }
        return try await inner.append(readings)
    }
    func takeBatch(maxReadings: Int) async throws(BufferError) -> ReadingBatch? { try await inner.takeBatch(maxReadings: maxReadings) }
    func markDelivered(_ batchID: Int64) async throws(BufferError) { try await inner.markDelivered(batchID) }
    func release(_ batchID: Int64) async throws(BufferError) { try await inner.release(batchID) }
    func clockSynchronised(offsetMilliseconds: Int64) async throws(BufferError) { try await inner.clockSynchronised(offsetMilliseconds: offsetMilliseconds) }
    func statistics() async -> BufferStatistics { await inner.statistics() }
    func drainEvents() async -> [BufferEvent] { await inner.drainEvents() }
}

extension ReadingBuffer {
    /// Everything deliverable, leased and released again (the test reads what the uplink would get).
    func all() async throws -> [Reading] {
        guard let b = try await takeBatch(maxReadings: 1_000_000) else { return [] }
        try await release(b.id)
        return b.readings
    }
}
