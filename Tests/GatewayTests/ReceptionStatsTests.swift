import Drivers
import Testing
@testable import Gateway

/// Issue 17, item 6: each receiver's picture of each meter (median RSSI, duplicates from a second dongle
/// included), and `signal_weaker` when a receiver's daily median falls 10 dB within a week.
@Suite("reception per receiver")
struct ReceptionStatsTests {
    typealias F = PipelineFixtures
    let day: Int64 = 86_400_000
    let t0: Int64 = 1_780_000_000_000

    @Test("medians per receiver; a 10 dB fall over a week fades, a recovery clears, 9 dB does not")
    func fade() {
        var s = ReceptionStats()
        var changes: [(ReceptionStats.Pair, ReceptionStats.Fade?)] = []
        func hear(_ receiver: String, _ rssi: Int16, dayNumber: Int64) {
            for k in 0..<4 {
                if let c = s.record(device: "m", receiver: receiver, rssi: rssi, at: t0 + dayNumber * day + Int64(k) * 3_600_000) { changes.append(c) }
            }
        }
        for d in 0..<8 { hear("a", -70, dayNumber: Int64(d)); hear("b", -60, dayNumber: Int64(d)) }
        #expect(s.median(device: "m", receiver: "a") == -70 && s.median(device: "m", receiver: "b") == -60)
        for d in 8..<16 { hear("a", -81, dayNumber: Int64(d)); hear("b", -69, dayNumber: Int64(d)) }
        // Receiver a: -70 → -81 (11 dB) fades once; receiver b: -60 → -69 (9 dB) never.
        let fades = changes.filter { $0.1 != nil }
        #expect(fades.count == 1 && fades[0].0.receiver == "a" && fades[0].1?.drop == 11)
        for d in 16..<26 { hear("a", -71, dayNumber: Int64(d)) }
        #expect(changes.last.map { $0.0.receiver == "a" && $0.1 == nil } == true, "recovered")
        #expect(s.snapshot().map(\.pair.receiver) == ["a", "b"])
        s.keep(only: [])
        #expect(s.snapshot().isEmpty)
    }

    @Test("through the pipeline: the duplicate from a second dongle counts for that dongle, and the fade is an info alarm")
    func pipeline() async throws {
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: MemoryReadingBuffer())
        func send(_ dongle: String, _ rssi: Int16, _ at: Int64, _ access: UInt8) async throws {
            let bytes = F.radioFrame("22222222", "QDS", litres: 5, access: access)
            _ = try await pipeline.ingest(.wireless(WirelessInput(.frame(bytes, format: .a, linkMode: .t1), dongle: dongle, rssi: rssi, receivedAt: at)))
        }
        var access: UInt8 = 0
        for d in 0..<9 {
            let weak: Int16 = d < 8 ? -70 : -85
            for k in 0..<3 {
                access &+= 1
                let at = t0 + Int64(d) * day + Int64(k) * 3_600_000
                try await send("im871a", weak, at, access)
                try await send("amber", -60, at + 500, access)  // the same telegram, heard again: deduplicated, but counted
            }
        }
        let snap = await pipeline.receptionSnapshot()
        #expect(snap.count == 2 && snap.first { $0.pair.receiver == "wmbus:amber" }?.median == -60)
        // Day 8 ends only with the next day's first telegram.
        try await send("im871a", -85, t0 + 9 * day, access &+ 1)
        let open = await pipeline.activeAlarms().filter { $0.condition.code == "signal_weaker" }
        #expect(open.count == 1 && open[0].condition.priority == .info && open[0].condition.message.contains("wmbus:im871a"), "\(open)")
        #expect(await pipeline.counters().deduplicated >= 27)
    }
}
