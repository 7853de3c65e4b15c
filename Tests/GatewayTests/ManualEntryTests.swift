import Foundation
import Testing
@testable import Gateway

@Suite("manual readings")
struct ManualEntryTests {
    typealias F = PipelineFixtures
    let utc = TimeZone(identifier: "UTC")!
    let now: Int64 = 1_780_000_000_000  // 2026-05-28

    func check(_ r: ManualEntryRequest) throws(ManualEntryError) -> ManualReading {
        try ManualEntryPolicy.check(r, registry: try! F.registry(), now: now, timeZone: utc)
    }

    func code(_ r: ManualEntryRequest) -> ManualEntryError.Code? {
        do { _ = try check(r); return nil } catch { return error.code }
    }

    @Test("a device without bus or radio takes a reading, converted to SI with the raw value kept")
    func accepted() throws {
        let m = try check(ManualEntryRequest(device: "manual:HCA:4.12", value: 6042, unit: "kWh", date: "2026-05-01"))
        #expect(m.device == "manual:HCA:4.12")
        #expect(m.value.quantity == "Energy" && m.value.value == 6_042_000 && m.value.unit == "Wh")
        #expect(m.value.raw == "6042 kWh")
        #expect(m.value.meterTime == MeterClock.civilSeconds(year: 2026, month: 5, day: 1))
        #expect(m.source == "manual")
        let bare = try check(ManualEntryRequest(device: "manual:HCA:4.12", value: 312))
        #expect(bare.value.unit == "" && bare.value.meterTime == now / 1000)
    }

    @Test("devices read automatically are refused unless forced with a reason, which is kept")
    func automaticDevices() throws {
        for key in ["mbus:KAM:06855817", "wmbus:QDS:22222222", "modbus:kaisai:unit1"] {
            #expect(code(ManualEntryRequest(device: key, value: 1)) == .readAutomatically)
            #expect(code(ManualEntryRequest(device: key, value: 1, force: true)) == .reasonRequired)
            #expect(code(ManualEntryRequest(device: key, value: 1, force: true, reason: "  ")) == .reasonRequired)
        }
        do { _ = try check(ManualEntryRequest(device: "wmbus:QDS:22222222", value: 1)) } catch {
            #expect(error.message.contains("read automatically over wireless M-Bus") && error.message.contains("--force --reason"))
        }
        let forced = try check(ManualEntryRequest(device: "06855817", value: 12.5, unit: "m3", force: true, reason: "M-Bus line cut by builders"))
        #expect(forced.device == "mbus:KAM:06855817")
        #expect(forced.source == "manual (forced: M-Bus line cut by builders)")
        #expect(forced.value.raw == "12.5 m3; forced: M-Bus line cut by builders")
        #expect(forced.value.unit == "m^3" && forced.value.value == 12.5)
    }

    @Test("unknown and replaced devices, bad units, dates and values are refused with what to do")
    func refusals() {
        #expect(code(ManualEntryRequest(device: "mbus:XYZ:99999999", value: 1)) == .noSuchDevice)
        do { _ = try check(ManualEntryRequest(device: "nope", value: 1)) } catch { #expect(error.message.contains("no such device in the registry")) }
        #expect(code(ManualEntryRequest(device: "wmbus:QDS:11111111", value: 1, force: true, reason: "x")) == .replaced)
        #expect(code(ManualEntryRequest(device: "manual:HCA:4.12", value: 1, unit: "furlongs")) == .unknownUnit)
        #expect(code(ManualEntryRequest(device: "manual:HCA:4.12", value: 1, date: "2026-02-30")) == .invalidDate)
        #expect(code(ManualEntryRequest(device: "manual:HCA:4.12", value: 1, date: "31.05.2026")) == .invalidDate)
        #expect(code(ManualEntryRequest(device: "manual:HCA:4.12", value: 1, date: "2027-01-01")) == .invalidDate)
        #expect(code(ManualEntryRequest(device: "manual:HCA:4.12", value: .nan)) == .invalidValue)
    }

    @Test("a manual reading goes through the pipeline into the buffer, without deduplication", arguments: BufferKind.allCases)
    func buffered(kind: BufferKind) async throws {
        let buffer = try kind.make()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer)
        let m = try check(ManualEntryRequest(device: "manual:HCA:4.12", value: 312, unit: "HCA"))
        _ = try await pipeline.ingest(.manual(m))
        _ = try await pipeline.ingest(.manual(m))  // a technician entering it twice means it
        let all = try await buffer.all()
        // Beside the two entries, one set_day_captured proof for the period (issue 17): the second entry is of the same period.
        #expect(all.filter { $0.quantity == SetDayLedger.quantity }.count == 1)
        let stored = all.filter { $0.quantity != SetDayLedger.quantity }
        #expect(stored.count == 2)
        #expect(stored.allSatisfy { $0.source == "manual" && $0.quantity == "H.C.A." && $0.readingClass == .setDay })
        let c = await pipeline.counters()
        #expect(c.manual == 2 && c.heard == 0 && c.buffered == 2)
    }
}
