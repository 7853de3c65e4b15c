import Drivers
import Foundation
import Testing
@testable import Gateway

/// Issue 17, item 3: proof that each device's set-day value was captured, one `set_day_captured` record per
/// device and period for the portal, kept in a ledger `gatewayd billing` reads.
@Suite("set-day ledger (billing-day proof)")
struct SetDayLedgerTests {
    typealias F = PipelineFixtures
    let t0: Int64 = 1_780_000_000_000

    static func setDay(_ device: String, _ value: Double, period: String, at: Int64) -> Reading {
        // Midnight at the start of `period` in UTC+1 (a set day in Central Europe): 23:00 UTC the day before.
        let parts = period.split(separator: "-").map { Int($0)! }
        var c = DateComponents()
        c.year = parts[0]; c.month = parts[1]; c.day = parts[2]; c.hour = 0
        c.timeZone = TimeZone(secondsFromGMT: 3600)
        let t = Int64(Calendar(identifier: .gregorian).date(from: c)!.timeIntervalSince1970)
        return Reading(device: device, quantity: "Volume", value: value, unit: "m3", meterTime: t, receivedAt: at, storage: 1, readingClass: .setDay)
    }

    @Test("periods: a local midnight rounds to its own date; hostile times give none")
    func periods() {
        #expect(SetDayLedger.period(meterTime: Self.setDay("d", 1, period: "2025-12-31", at: 0).meterTime!) == "2025-12-31")
        #expect(SetDayLedger.period(meterTime: 0) == "1970-01-01")
        #expect(SetDayLedger.period(meterTime: 951_782_400) == "2000-02-29")
        #expect(SetDayLedger.period(meterTime: Int64.max) == nil && SetDayLedger.period(meterTime: Int64.min) == nil)
    }

    @Test("one proof per device and period: a repeat or an older period adds none; a newer one does")
    func capturesOnce() {
        var ledger = SetDayLedger()
        let first = ledger.newCaptures(in: [Self.setDay("a", 10, period: "2025-12-31", at: t0), Self.setDay("a", 10, period: "2025-12-31", at: t0),
                                            Self.setDay("b", 20, period: "2025-12-31", at: t0)])
        #expect(first.map(\.reading.device) == ["a", "b"])
        #expect(first[0].reading.quantity == SetDayLedger.quantity && first[0].reading.readingClass == .setDay && first[0].reading.value == 10)
        #expect(first[0].reading.raw.contains("2025-12-31"))
        ledger.apply(first)
        #expect(ledger.newCaptures(in: [Self.setDay("a", 10, period: "2025-12-31", at: t0 + 1)]).isEmpty)
        #expect(ledger.newCaptures(in: [Self.setDay("a", 9, period: "2024-12-31", at: t0 + 1)]).isEmpty)
        let next = ledger.newCaptures(in: [Self.setDay("a", 30, period: "2026-12-31", at: t0 + 2)])
        #expect(next.map(\.capture.period) == ["2026-12-31"])
        // Routine readings and the proof records themselves never make a capture.
        var routine = Self.setDay("c", 1, period: "2025-12-31", at: t0)
        routine.readingClass = .routine
        #expect(ledger.newCaptures(in: [routine, first[0].reading]).isEmpty)
        #expect(ledger.missing(of: ["a", "b", "c"], due: "2025-12-31").map(\.device) == ["c"])
        #expect(ledger.missing(of: ["a", "b"], due: "2026-12-31").map(\.device) == ["a", "b"])
    }

    @Test("the ledger file: round trip, absent is empty, damaged is an error that says what to do")
    func file() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = SetDayLedgerFile(path: dir + "/set-days.json")
        #expect(try file.load().devices.isEmpty)
        var ledger = SetDayLedger()
        ledger.apply(ledger.newCaptures(in: [Self.setDay("a", 10, period: "2025-12-31", at: t0)]))
        // The lines' last set-day readouts travel with it (a missed one is caught up at the next start).
        ledger.readoutDone(line: "mbus-line-1", dueAt: t0)
        ledger.readoutDone(line: "mbus-line-1", dueAt: t0 - 1)  // older: ignored
        try file.save(ledger)
        #expect(try file.load() == ledger)
        #expect(try file.load().readouts?["mbus-line-1"] == t0)
        try Data("{\"devices\": 5".utf8).write(to: URL(fileURLWithPath: file.path))
        #expect(throws: SetDayLedgerFile.LedgerError.self) { try file.load() }
    }

    @Test("through the pipeline: a radio set-day value stores a set_day_captured record once, and the ledger file follows")
    func pipeline() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = SetDayLedgerFile(path: dir + "/set-days.json")
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer, ledgerFile: file)
        let day = MBusDateTime(year: 2025, month: 12, day: 31)
        func send(_ access: UInt8, _ at: Int64) async throws {
            let bytes = F.radioFrame("22222222", "QDS", litres: 1000 + Int64(access), access: access, setDay: (900, day))
            _ = try await pipeline.ingest(.wireless(WirelessInput(.frame(bytes, format: .a, linkMode: .t1), dongle: "im871a", rssi: -70, receivedAt: at)))
        }
        try await send(1, t0)
        try await send(2, t0 + 60_000)
        let proofs = try await buffer.all().filter { $0.quantity == SetDayLedger.quantity }
        #expect(proofs.count == 1 && proofs.first?.device == "wmbus:QDS:22222222" && proofs.first?.value == 0.9)
        #expect(try file.load().devices["wmbus:QDS:22222222"]?.period == "2025-12-31")
        #expect(await pipeline.setDayLedger().devices.count == 1)
    }
}
