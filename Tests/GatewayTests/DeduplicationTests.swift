import Drivers
import Foundation
import Testing
@testable import Gateway

@Suite("deduplication")
struct DeduplicationTests {
    typealias F = PipelineFixtures
    let t0: Int64 = 1_780_000_000_000

    func pipeline(windowMs: Int64 = 60_000) throws -> (ReadingPipeline, MemoryReadingBuffer) {
        let buffer = MemoryReadingBuffer()
        let options = PipelineOptions(deduplication: .init(windowMilliseconds: windowMs))
        return (ReadingPipeline(registry: try F.registry(), buffer: buffer, options: options), buffer)
    }

    @Test("copies through repeaters and retransmissions are dropped: RSSI, access number, R bit, frame format")
    func repeatedCopiesAreDropped() async throws {
        let (p, buffer) = try pipeline()
        #expect(try await p.ingest(F.radio("22222222", litres: 1000, access: 7, rssi: -60, at: t0)) != .duplicate(device: "wmbus:QDS:22222222"))
        let copies: [PipelineInput] = [
            F.radio("22222222", litres: 1000, access: 7, rssi: -91, at: t0 + 20),                   // weaker path
            F.radio("22222222", litres: 1000, access: 7, repeated: true, rssi: -75, at: t0 + 300),  // through a repeater
            F.radio("22222222", litres: 1000, access: 8, format: .b, at: t0 + 16_000),              // next transmission, same values
        ]
        for c in copies { #expect(try await p.ingest(c) == .duplicate(device: "wmbus:QDS:22222222")) }
        #expect(try await buffer.all().count == 1)
        #expect(await p.counters().deduplicated == 3)
    }

    @Test("a reading that really changed is never dropped: value, status, set-day value")
    func changesAreKept() async throws {
        let (p, buffer) = try pipeline()
        _ = try await p.ingest(F.radio("22222222", litres: 1000, at: t0))
        let changed: [PipelineInput] = [
            F.radio("22222222", litres: 1001, access: 8, at: t0 + 10),               // one litre more
            F.radio("22222222", litres: 1001, access: 9, status: 0x10, at: t0 + 20), // same value, status changed
            F.radio("22222222", litres: 1001, access: 10, at: t0 + 30),              // status back to OK: must be heard
        ]
        var outcomes: [PipelineOutcome] = []
        for c in changed { outcomes.append(try await p.ingest(c)) }
        #expect(!outcomes.contains(.duplicate(device: "wmbus:QDS:22222222")), "\(outcomes)")
        #expect(try await buffer.all().filter { $0.readingClass != .alarm }.count == 4)
        #expect(await p.activeAlarms().isEmpty)  // the temporary error was cleared
    }

    @Test("a repeater's late copy of an older transmission is dropped even after a newer one")
    func lateRepeaterCopy() async throws {
        let (p, buffer) = try pipeline()
        _ = try await p.ingest(F.radio("22222222", litres: 1000, access: 7, at: t0))
        _ = try await p.ingest(F.radio("22222222", litres: 1002, access: 8, at: t0 + 16_000))
        #expect(try await p.ingest(F.radio("22222222", litres: 1000, access: 7, repeated: true, at: t0 + 16_400)) == .duplicate(device: "wmbus:QDS:22222222"))
        #expect(try await buffer.all().count == 2)
    }

    @Test("the window counts from the first copy: unchanged values give one reading per window")
    func windowExpiry() async throws {
        let (p, buffer) = try pipeline(windowMs: 60_000)
        var kept = 0
        // A meter sending the same values every 16 s for 5 minutes.
        for i in 0..<19 {
            if case .buffered = try await p.ingest(F.radio("22222222", litres: 5, access: UInt8(i), at: t0 + Int64(i) * 16_000)) { kept += 1 }
        }
        #expect(kept == 5)  // at 0, 64, 128, 192, 256 s
        #expect(try await buffer.all().count == 5)
    }

    @Test("wired polls on the same line are deduplicated by content too, and the same content from two devices is not")
    func perDevice() async throws {
        let (p, buffer) = try pipeline()
        let registry = try F.registry()
        _ = registry
        let a = try await p.ingest(.wired(WiredInput(.frame(F.wiredFrame("06855817", "KAM", litres: 9, access: 1)), line: "mbus-line-1", receivedAt: t0)))
        let b = try await p.ingest(.wired(WiredInput(.frame(F.wiredFrame("06855817", "KAM", litres: 9, access: 2)), line: "mbus-line-1", receivedAt: t0 + 5)))
        let c = try await p.ingest(F.radio("22222222", litres: 9, at: t0 + 6))
        if case .buffered = a {} else { Issue.record("\(a)") }
        #expect(b == .duplicate(device: "mbus:KAM:06855817"))
        if case .buffered = c {} else { Issue.record("\(c)") }
        #expect(try await buffer.all().count == 2)
    }

    @Test("memory is bounded: last N digests per device, at most M devices, expired first")
    func boundedMemory() {
        var d = Deduplicator(options: .init(windowMilliseconds: 1000, perDevice: 3, maxDevices: 10))
        for v in 0..<10 { let dup = d.isDuplicate(device: "a", digest: UInt64(v), at: 0); #expect(!dup) }
        #expect(d.trackedDigests == 3)
        let dup1 = d.isDuplicate(device: "a", digest: 9, at: 1)
        #expect(dup1)
        let dup2 = d.isDuplicate(device: "a", digest: 0, at: 1)
        #expect(!dup2)  // pushed out: seen as new (kept, never dropped)
        for i in 0..<50 { _ = d.isDuplicate(device: "dev\(i)", digest: 1, at: Int64(i) * 10) }
        #expect(d.trackedDevices <= 10)
        // All expired: pruning drops them.
        _ = d.isDuplicate(device: "late", digest: 1, at: 100_000)
        for i in 0..<5 { _ = d.isDuplicate(device: "later\(i)", digest: 1, at: 100_000) }
        #expect(d.trackedDevices <= 10)
        let dup3 = d.isDuplicate(device: "late", digest: 1, at: 100_500)
        #expect(dup3)
        let dup4 = d.isDuplicate(device: "late", digest: 1, at: 101_001)
        #expect(!dup4)
    }

    @Test("the digest ignores receive time, RSSI and source, and sees every value field")
    func digestContent() {
        let v = NormalisedValue(quantity: "Volume", value: 1.5, unit: "m^3", raw: "1500 l", meterTime: 100, storage: 0)
        let base = ContentDigest.of(NormalisedTelegram(values: [v], status: 0))
        #expect(base == ContentDigest.of(NormalisedTelegram(values: [v], status: 0)))
        var changed: [NormalisedTelegram] = []
        for mutate in [{ (x: inout NormalisedValue) in x.value = 1.5000001 }, { $0.storage = 1 }, { $0.tariff = 1 }, { $0.subunit = 1 },
                       { $0.meterTime = 101 }, { $0.quantity = "Energy" }, { $0.unit = "Wh" }, { $0.readingClass = .setDay }] {
            var w = v
            mutate(&w)
            changed.append(NormalisedTelegram(values: [w], status: 0))
        }
        changed.append(NormalisedTelegram(values: [v], status: 4))
        changed.append(NormalisedTelegram(values: [v], status: 0, alarmFlags: [.leak], evaluatesFlags: true))
        changed.append(NormalisedTelegram(values: [v, v], status: 0))
        for c in changed { #expect(ContentDigest.of(c) != base, "\(c)") }
    }
}
