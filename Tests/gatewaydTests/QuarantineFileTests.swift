@testable import Agent
import CLISupport
import Foundation
import Gateway
import Logging
import Synchronization
import Testing
@testable import gatewayd

/// Readings the portal refuses for good leave the buffer only once the quarantine file holds all of
/// them, fsynced; a quarantine that cannot be written keeps them in the buffer.
@Suite("quarantine of refused readings")
struct QuarantineFileTests {
    let logger = Logger(label: "quarantine-test") { _ in SwiftLogNoOpLogHandler() }

    func readings(_ n: Int) -> [Reading] {
        (0..<n).map { i in
            Reading(device: "wmbus:KAM:\(7000 + i)", quantity: "Volume", value: Double(i) + 0.25, unit: "m^3",
                    raw: "0C13\(i)", meterTime: 1_790_000_000 + Int64(i), receivedAt: 1_790_000_000_000 + Int64(i),
                    storage: 3, tariff: 1, subunit: 2, source: "wmbus:im871a", rssi: -71, status: 0x14,
                    readingClass: .setDay)
        }
    }

    func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("quarantine-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("every field of a refused reading is kept, the rest of the batch is delivered")
    func fullReadingKept() async throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let buffer = MemoryReadingBuffer()
        _ = try await buffer.append(readings(4))
        let source = BufferUplinkSource(buffer: buffer, quarantine: { refused, reason in
            try await Quarantine.file(refused, reason: reason, directory: dir, logger: logger)
        })
        let batch = try #require(try await source.nextBatch(maxReadings: 10, maxBytes: 1 << 20))
        try await source.reject(batchID: batch.id, readingIDs: [batch.readingIDs[1]], reason: "unit \"m^3\" unknown")
        try await source.acknowledge(batchID: batch.id, readingIDs: batch.readingIDs.filter { $0 != batch.readingIDs[1] })

        let lines = try String(contentsOfFile: dir + "/quarantine.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(object["reason"] as? String == "unit \"m^3\" unknown")
        #expect(object["quarantined_at"] is NSNumber)
        let r = try #require(object["reading"] as? [String: Any])
        #expect(r["id"] as? String == batch.readingIDs[1])
        #expect(r["device"] as? String == "wmbus:KAM:7001")
        #expect(r["raw"] as? String == "0C131")
        #expect((r["meter_time"] as? NSNumber)?.int64Value == 1_790_000_001)
        #expect((r["storage"] as? NSNumber)?.intValue == 3)
        #expect((r["tariff"] as? NSNumber)?.intValue == 1)
        #expect((r["subunit"] as? NSNumber)?.intValue == 2)
        #expect((r["status"] as? NSNumber)?.intValue == 0x14)
        #expect((r["rssi"] as? NSNumber)?.intValue == -71)
        #expect(r["class"] as? String == "set_day")
        #expect(r["source"] as? String == "wmbus:im871a")
        let s = await buffer.statistics()
        #expect(s.pending == 0 && s.leased == 0)
    }

    @Test("a quarantine file that cannot be written keeps the readings in the buffer")
    func failedWriteKeepsReadings() async throws {
        let buffer = MemoryReadingBuffer()
        _ = try await buffer.append(readings(3))
        let missing = "/nonexistent-\(UUID().uuidString)/state"
        let source = BufferUplinkSource(buffer: buffer, quarantine: { refused, reason in
            try await Quarantine.file(refused, reason: reason, directory: missing, logger: logger)
        })
        let batch = try #require(try await source.nextBatch(maxReadings: 10, maxBytes: 1 << 20))
        await #expect(throws: (any Error).self) {
            try await source.reject(batchID: batch.id, readingIDs: batch.readingIDs, reason: "refused")
        }
        let s = await buffer.statistics()
        #expect(s.leased == 3, "the refused readings were deleted although the quarantine file was not written")
        #expect(s.delivered == 0)
    }
}

@Suite("clock synchronisation policy")
struct ClockWatchTests {
    func state(_ synced: Bool, rtc: Bool, step: Int64 = 0) -> ClockState {
        ClockState(synchronised: synced, hasRTC: rtc, wallMinusBootMilliseconds: 1_000 + step)
    }

    @Test("auto: a board without RTC holds readings until NTP, then releases them shifted by the clock's step")
    func autoWithoutRTC() {
        var w = ClockWatch(policy: .auto)
        guard case .hold = w.observe(state(false, rtc: false)) else { Issue.record("not held"); return }
        #expect(w.observe(state(false, rtc: false)) == .none)
        #expect(w.observe(state(true, rtc: false, step: 1_790_000_000_000)) == .release(offsetMilliseconds: 1_790_000_000_000))
        // NTP losing its peers later does not hold readings again.
        #expect(w.observe(state(false, rtc: false)) == .none)
        #expect(!w.holding)
    }

    @Test("auto trusts an RTC; required waits for NTP even with one; off never holds")
    func policies() {
        var auto = ClockWatch(policy: .auto)
        #expect(auto.observe(state(false, rtc: true)) == .none)
        var required = ClockWatch(policy: .required)
        guard case .hold = required.observe(state(false, rtc: true)) else { Issue.record("not held"); return }
        var off = ClockWatch(policy: .off)
        #expect(off.observe(state(false, rtc: false)) == .none)
    }

    @Test("a failed release keeps holding with the same step")
    func failedRelease() {
        var w = ClockWatch(policy: .required)
        _ = w.observe(state(false, rtc: false))
        #expect(w.observe(state(true, rtc: false, step: 500)) == .release(offsetMilliseconds: 500))
        w.releaseFailed()
        #expect(w.observe(state(true, rtc: false, step: 500)) == .release(offsetMilliseconds: 500))
    }
}

/// The daemon's housekeeping round, in process: buffer events become alarms stored as readings (so they
/// reach the portal like any reading), and the clock gate holds and releases readings.
@Suite("housekeeping: buffer alarms and the clock gate")
struct HousekeepingGateTests {
    final class FixedProbe: ClockProbe {
        let state: Mutex<ClockState>
        init(_ initial: ClockState) { state = Mutex(initial) }
        func read() -> ClockState { state.withLock { $0 } }
    }

    func housekeeping(_ buffer: any ReadingBuffer, _ pipeline: ReadingPipeline, clock: GatewayConfig.Buffer.ClockSyncPolicy = .off,
                      probe: any ClockProbe = KernelClockProbe()) -> Housekeeping {
        Housekeeping(pipeline: pipeline, buffer: buffer, board: StatusBoard(gateway: "gw-1", building: "B1", demo: false),
                     metrics: GatewayMetrics(), notifier: SystemdNotifier(environment: [:]), uplink: nil,
                     scheduler: PollScheduler(gatewayID: "gw-1"), stopAfter: nil, stopAfterCycles: nil,
                     logger: Logger(label: "hk") { _ in SwiftLogNoOpLogHandler() }, clockSync: clock, clockProbe: probe)
    }

    @Test("a quarantined buffer at start raises buffer_quarantined as an alarm reading, to go to the portal")
    func quarantineAlarm() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hk-\(UUID().uuidString).sqlite").path
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: path))
        let buffer = try Daemon.openBuffer(GatewayConfig.Buffer(path: path, maxReadings: 10_000, maxBytes: nil))
        let pipeline = ReadingPipeline(registry: try DeviceRegistry(RegistryDocument(gateway: "gw-1", building: "B1", devices: [])), buffer: buffer)
        await housekeeping(buffer, pipeline).round()
        let batch = try #require(try await buffer.takeBatch(maxReadings: 10))
        let alarm = try #require(batch.readings.first { $0.quantity == "alarm:buffer_quarantined" })
        #expect(alarm.readingClass == .alarm)
        #expect(alarm.status == 3, "critical")
        #expect(alarm.value == 1)
    }

    @Test("with an unsynchronised clock, readings are held; when it syncs they go out shifted by the step")
    func clockGate() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try DeviceRegistry(RegistryDocument(gateway: "gw-1", building: "B1", devices: [])), buffer: buffer)
        let probe = FixedProbe(ClockState(synchronised: false, hasRTC: false, wallMinusBootMilliseconds: 0))
        let hk = housekeeping(buffer, pipeline, clock: .auto, probe: probe)
        await hk.checkClock()
        _ = try await pipeline.report(conditions: [AlarmCondition(code: "test", priority: .info, message: "m")],
                                      device: "gateway", scope: "t", at: 10_000)
        #expect(try await buffer.takeBatch(maxReadings: 10) == nil, "a reading stamped by an unsynchronised clock went out")
        probe.state.withLock { $0 = ClockState(synchronised: true, hasRTC: false, wallMinusBootMilliseconds: 1_790_000_000_000) }
        await hk.checkClock()
        let batch = try #require(try await buffer.takeBatch(maxReadings: 10))
        #expect(batch.readings.map(\.receivedAt) == [1_790_000_010_000])
    }
}
