import Drivers
import Foundation
import Testing
@testable import Gateway

@Suite("alarms")
struct AlarmTests {
    typealias F = PipelineFixtures
    let t0: Int64 = 1_780_000_000_000

    @Test("status byte bits map to EN 13757-3 conditions with priorities")
    func statusBits() {
        let all = AlarmConditions.status(MeterStatus(rawValue: 0xFE))
        let codes = Dictionary(uniqueKeysWithValues: all.map { ($0.code, $0.priority) })
        #expect(codes["status:application_error"] == .major)
        #expect(codes["status:power_low"] == .minor)
        #expect(codes["status:permanent_error"] == .critical)
        #expect(codes["status:temporary_error"] == .minor)
        #expect(codes["status:manufacturer_bit_5"] == .info && codes["status:manufacturer_bit_7"] == .info)
        #expect(AlarmConditions.status(MeterStatus(rawValue: 0x01)).map(\.code) == ["status:application_busy"])
        #expect(AlarmConditions.status(MeterStatus(rawValue: 0)).isEmpty)
    }

    @Test("raised once at onset, cleared once when it goes: no storm on every telegram", arguments: BufferKind.allCases)
    func onceAndCleared(kind: BufferKind) async throws {
        let buffer = try kind.make()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        var litres: Int64 = 100
        func send(_ status: UInt8) async throws -> [Alarm] {
            litres += 1  // new content every time, so dedup plays no part
            guard case .buffered(_, _, let a) = try await pipeline.ingest(F.radio("22222222", litres: litres, status: status, at: t0 + litres)) else { return [] }
            return a
        }
        #expect(try await send(0).isEmpty)
        let raised = try await send(0x0C)  // power low + permanent error
        #expect(Set(raised.map(\.code)) == ["status:power_low", "status:permanent_error"])
        #expect(raised.allSatisfy { $0.state == .raised })
        for _ in 0..<5 { #expect(try await send(0x0C).isEmpty) }
        let partly = try await send(0x08)
        #expect(partly.map(\.code) == ["status:power_low"] && partly[0].state == .cleared)
        let active = await pipeline.activeAlarms()
        #expect(active.map { $0.condition.code } == ["status:permanent_error"])
        #expect(try await send(0).map(\.state) == [.cleared])
        // In the buffer: class .alarm, readable back, and handed out before the routine values.
        let stored = try await buffer.all()
        let alarms = stored.compactMap(Alarm.init(reading:))
        #expect(alarms.count == 4)
        #expect(stored.prefix(4).allSatisfy { $0.readingClass == .alarm })
        #expect(alarms.contains { $0.code == "status:permanent_error" && $0.priority == .critical && $0.state == .raised && $0.device == "wmbus:QDS:22222222" })
        let c = await pipeline.counters()
        #expect(c.alarmsRaised == 2 && c.alarmsCleared == 2)
    }

    @Test("profile alarm flags: leak and battery raise, clear when the profile stops reporting them; no profile, no change")
    func profileFlags() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        func send(_ l: Int64, _ flags: Set<MeterAlarmFlag>?) async throws -> [Alarm] {
            guard case .buffered(_, _, let a) = try await pipeline.ingest(F.radio("22222222", litres: l, at: t0 + l, flags: flags)) else { return [] }
            return a
        }
        let raised = try await send(1, [.leak, .battery])
        #expect(raised.map(\.code) == ["flag:battery", "flag:leak"])
        #expect(raised.first { $0.code == "flag:leak" }?.priority == .critical)
        #expect(try await send(2, [.leak, .battery]).isEmpty)
        #expect(try await send(3, nil).isEmpty)  // telegram no profile evaluated: flags stay
        let cleared = try await send(4, [.battery])
        #expect(cleared.map(\.code) == ["flag:leak"] && cleared[0].state == .cleared)
        #expect(MeterAlarmFlag.allCases.allSatisfy { !$0.message.isEmpty })
        #expect(MeterAlarmFlag.removal.priority == .critical && MeterAlarmFlag.tamper.priority == .major)
    }

    @Test("heat-pump fault codes from the profile's fault register raise and clear")
    func heatPumpFaults() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        func send(_ code: UInt16, _ at: Int64) async throws -> [Alarm] {
            let r = try F.kaisaiReading(patch: [124: code])
            guard case .buffered(_, _, let a) = try await pipeline.ingest(.modbus(ModbusInput(r, line: "rs485-1", receivedAt: at))) else { return [] }
            return a
        }
        let e8 = try await send(9, t0)
        #expect(e8.map(\.code) == ["fault:current_error:9"])
        #expect(e8[0].message.contains("E8") && e8[0].priority == .major)
        #expect(try await send(9, t0 + 30_000).isEmpty)
        let changed = try await send(21, t0 + 60_000)  // E8 gone, P1 high pressure now
        #expect(Set(changed.map { "\($0.code) \($0.state)" }) == ["fault:current_error:21 raised", "fault:current_error:9 cleared"])
        #expect(try await send(0, t0 + 90_000).map(\.state) == [.cleared])
        #expect(await pipeline.activeAlarms().isEmpty)
    }

    @Test("line health alarms through report(): once while slow, cleared on recovery")
    func reportedConditions() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        let slow = [AlarmCondition(code: "line_slow", priority: .major, message: "slow")]
        #expect(try await pipeline.report(conditions: slow, device: "line:mbus-line-1", scope: "line", at: t0).count == 1)
        #expect(try await pipeline.report(conditions: slow, device: "line:mbus-line-1", scope: "line", at: t0 + 1).isEmpty)
        #expect(try await pipeline.report(conditions: [], device: "line:mbus-line-1", scope: "line", at: t0 + 2).map(\.state) == [.cleared])
        #expect(try await buffer.all().count == 2)
        #expect(await pipeline.drainAlarms().count == 2)
        #expect(await pipeline.drainAlarms().isEmpty)
    }

    @Test("an alarm survives the trip through a buffer reading")
    func roundTrip() {
        let a = Alarm(device: "d", code: "flag:leak", priority: .critical, state: .raised, message: "leak", at: 5, source: "wmbus:x")
        #expect(Alarm(reading: a.reading()) == a)
        #expect(Alarm(reading: Reading(device: "d", quantity: "Volume", value: 1, unit: "m^3", receivedAt: 1)) == nil)
    }
}
