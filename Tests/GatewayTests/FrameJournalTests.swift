import Drivers
import Foundation
import Testing
@testable import Gateway

/// The support bundle's evidence (issue 17 item 4): what the frame journal keeps, and that a replay of it
/// through a fresh pipeline tells same from different.
@Suite("frame journal and replay")
struct FrameJournalTests {
    typealias F = PipelineFixtures
    let t0: Int64 = 1_780_000_000_000

    func pipeline(capacity: Int = 1000, perDevice: Int = 2, keyring: WMBusKeyring = WMBusKeyring()) throws -> ReadingPipeline {
        ReadingPipeline(registry: try F.registry(), buffer: MemoryReadingBuffer(), options: PipelineOptions(keyring: keyring),
                        journalCapacity: capacity)
    }

    @Test("registered devices' inputs are kept as received with their outcome; strangers never")
    func keepsRegisteredOnly() async throws {
        let p = try pipeline()
        let wired = F.wiredFrame("06855817", "KAM", litres: 1200)
        _ = try await p.ingest(.wired(WiredInput(.frame(wired), line: "mbus-line-1", receivedAt: t0)))
        _ = try await p.ingest(F.radio("22222222", litres: 500, at: t0 + 1))
        _ = try await p.ingest(F.radio("22222222", litres: 500, at: t0 + 2))  // a repeat
        let stranger = F.radioFrame("44444444", "QDS", litres: 999)
        _ = try await p.ingest(.wireless(WirelessInput(.frame(stranger, format: .a, linkMode: .t1), dongle: "im871a", rssi: -80, receivedAt: t0 + 3)))
        _ = try await p.ingest(.modbus(ModbusInput(try F.kaisaiReading(), line: "rs485-1", receivedAt: t0 + 4)))

        let snap = await p.journalSnapshot()
        #expect(snap.entries.map(\.device) == ["mbus:KAM:06855817", "wmbus:QDS:22222222", "wmbus:QDS:22222222", "modbus:kaisai:unit1"])
        #expect(snap.entries.map(\.outcome) == ["buffered", "buffered", "duplicate", "buffered"])
        #expect(snap.entries[0].frames == [Hex.encode(wired)])
        #expect(snap.entries[1].format == "a" && snap.entries[1].linkMode == "t1" && snap.entries[1].rssi == -70)
        #expect(snap.entries[3].modbus != nil && snap.entries[3].frames.isEmpty)
        #expect(snap.entries[1].digest != nil && snap.entries[2].digest == nil && snap.entries[2].readings == 0)
        // The stranger: identity only, its bytes nowhere.
        #expect(snap.strangers.map(\.identification) == ["44444444"])
        let text = String(decoding: try JSONEncoder().encode(snap), as: UTF8.self)
        #expect(!text.contains(Hex.encode(stranger)))
        #expect(!text.contains(Hex.encode(stranger.dropFirst(2).prefix(6))))  // not even its link address
    }

    @Test("a telegram that does not open is kept with its finding")
    func keepsFailures() async throws {
        let key = WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")!
        let p = try pipeline(keyring: WMBusKeyring(keys: [IdentificationNumber("22222222")!: key]))
        // A plain telegram from a meter that must encrypt: refused as a downgrade, and kept as evidence.
        _ = try await p.ingest(F.radio("22222222", litres: 500, at: t0))
        let e = try #require(await p.journalSnapshot().entries.first)
        #expect(e.device == "wmbus:QDS:22222222" && e.outcome == "rejected")
        #expect(e.detail.contains("clear"), "\(e.detail)")
    }

    @Test("bounded: a ring of the newest inputs plus each device's last ones")
    func bounded() throws {
        var j = FrameJournal(capacity: 3, perDevice: 1)
        func input(_ i: Int64) -> PipelineInput { F.radio("22222222", litres: i, at: t0 + i) }
        j.record(F.radio("22222222", litres: 1, at: t0), device: "wmbus:QDS:22222222", outcome: .buffered(device: "d", readings: 1, alarms: []), readings: 1, digest: 7)
        for i in 1...10 as ClosedRange<Int64> {
            j.record(input(i), device: "mbus:KAM:06855817", outcome: .duplicate(device: "mbus:KAM:06855817"), readings: 0, digest: nil)
        }
        // The ring holds the newest three; the QDS meter's last input stays although the ring moved on.
        #expect(j.entries.map(\.seq) == [0, 8, 9, 10])
        #expect(j.entries.first?.device == "wmbus:QDS:22222222")
        j.keep(only: ["mbus:KAM:06855817"])
        #expect(j.entries.map(\.seq) == [8, 9, 10])
        var none = FrameJournal(capacity: 0, perDevice: 0)
        none.record(input(1), device: "x", outcome: .duplicate(device: "x"), readings: 0, digest: nil)
        #expect(none.entries.isEmpty && none.recorded == 0)
    }

    @Test("the fingerprint is the values' content: another receiver or signal gives the same, another value not")
    func fingerprint() async throws {
        func first(_ input: PipelineInput) async throws -> FrameJournal.Entry? {
            let p = try pipeline()
            _ = try await p.ingest(input)
            return await p.journalSnapshot().entries.first
        }
        let a = try #require(await first(F.radio("22222222", litres: 500, rssi: -70, at: t0)))
        let frame = F.radioFrame("22222222", "QDS", litres: 500, repeated: true, format: .b)
        let elsewhere = try #require(await first(.wireless(WirelessInput(.frame(frame, format: .b, linkMode: .c1), dongle: "other",
                                                                          rssi: -95, receivedAt: t0 + 60_000))))
        let other = try #require(await first(F.radio("22222222", litres: 501, at: t0)))
        #expect(a.digest != nil && a.readings == 1)
        #expect(a.digest == elsewhere.digest)
        #expect(a.digest != other.digest)
    }

    @Test("replayed with the same registry and keys, every telegram comes out the same")
    func replaySame() async throws {
        let p = try pipeline()
        _ = try await p.ingest(.wired(WiredInput(.frame(F.wiredFrame("06855817", "KAM", litres: 1200)), line: "mbus-line-1", receivedAt: t0)))
        for i in 0..<6 as Range<Int64> {
            // Values change every other telegram: stored, repeat, stored, repeat…
            _ = try await p.ingest(F.radio("22222222", litres: 500 + i / 2, access: UInt8(i), at: t0 + i * 1000))
        }
        _ = try await p.ingest(.modbus(ModbusInput(try F.kaisaiReading(), line: "rs485-1", receivedAt: t0 + 9000)))
        let snap = await p.journalSnapshot()
        let report = await JournalReplay.run(snap, registry: try F.registry(), options: PipelineOptions())
        #expect(report.entries.count == 8)
        #expect(report.same == 8, "\(report.entries.filter { $0.verdict != .same })")
        #expect(report.entries.filter { $0.gateway.outcome == "duplicate" }.count == 3)
    }

    @Test("replay tells what differs: other values, another outcome, a repeat it cannot judge, damaged bytes")
    func replayDiffers() async throws {
        let p = try pipeline(capacity: 3, perDevice: 0)
        for i in 0..<5 as Range<Int64> { _ = try await p.ingest(F.radio("22222222", litres: 500, access: UInt8(i), at: t0 + i)) }
        var snap = await p.journalSnapshot()
        // The ring kept the last three repeats: what they repeated is older than the journal.
        #expect(snap.entries.map(\.outcome) == ["duplicate", "duplicate", "duplicate"])
        var report = await JournalReplay.run(snap, registry: try F.registry(), options: PipelineOptions())
        #expect(report.notComparable == 3)

        let q = try pipeline()
        _ = try await q.ingest(F.radio("22222222", litres: 500, at: t0))
        _ = try await q.ingest(F.radio("22222222", litres: 501, at: t0 + 1))
        snap = await q.journalSnapshot()
        // Tampered evidence: other values in the first telegram, garbage in the second.
        snap.entries[0].frames = [Hex.encode(F.radioFrame("22222222", "QDS", litres: 499))]
        snap.entries[1].frames = ["zz"]
        report = await JournalReplay.run(snap, registry: try F.registry(), options: PipelineOptions())
        #expect(report.entries.map(\.verdict) == [.differs, .notReplayable])

        // A desk with a registry that does not know the meter: another outcome.
        snap = await q.journalSnapshot()
        var doc = F.document
        doc.devices.removeAll { $0.key == "wmbus:QDS:22222222" }
        doc.devices = doc.devices.map { var d = $0; if d.key == "wmbus:QDS:11111111" { d.replacedBy = nil }; return d }
        report = await JournalReplay.run(snap, registry: try DeviceRegistry(doc), options: PipelineOptions())
        #expect(report.differs == 2)
        #expect(report.entries.allSatisfy { $0.replay?.outcome == "unknown" })
    }

    @Test("wired readouts of several frames replay as the line assembled them")
    func wiredMultiFrame() async throws {
        let p = try pipeline()
        let frames = [F.wiredFrame("06855817", "KAM", litres: 1200), F.wiredFrame("06855817", "KAM", litres: 1300)]
        let readout = Readout(address: .primary(5), frames: frames, telegrams: try frames.map { try TelegramDecoder.decode($0) }, truncated: false)
        _ = try await p.ingest(.wired(WiredInput(.telegram(readout.assembled), line: "mbus-line-1", receivedAt: t0, frames: frames)))
        var snap = await p.journalSnapshot()
        #expect(snap.entries.first?.frames.count == 2)
        #expect(snap.entries.first?.readings == 2)
        var report = await JournalReplay.run(snap, registry: try F.registry(), options: PipelineOptions())
        #expect(report.same == 1)
        // Without its second frame the readout is another one: the comparison sees records, not just headers.
        snap.entries[0].frames.removeLast()
        report = await JournalReplay.run(snap, registry: try F.registry(), options: PipelineOptions())
        #expect(report.differs == 1)
    }

    /// A bundle comes from elsewhere: its journal is hostile input. Any bytes, any Modbus values, any order:
    /// the replay gives a verdict for every entry and never traps.
    @Test("a hostile journal: every entry gets a verdict, nothing traps", arguments: [0x5eed_b0d1e, 1, 2, 3, 4, 5, 6, 7] as [UInt64])
    func hostileJournal(seed: UInt64) async throws {
        var rng = SeededRandom(seed: seed)
        let base = try F.kaisaiReading()
        let devices = ["mbus:KAM:06855817", "wmbus:QDS:22222222", "modbus:kaisai:unit1", "nowhere", ""]
        var entries: [FrameJournal.Entry] = []
        for i in 0..<600 {
            let bus = [FrameJournal.Entry.Bus.mbus, .wmbus, .modbus].randomElement(using: &rng)!
            var frames: [String] = []
            for _ in 0..<Int.random(in: 0...3, using: &rng) {
                var bytes = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                // Often a valid start, so decoding goes deep: a real telegram with some bytes flipped.
                if Bool.random(using: &rng) {
                    bytes = bus == .mbus ? F.wiredFrame("06855817", "KAM", litres: Int64(i)) : F.radioFrame("22222222", "QDS", litres: Int64(i))
                    for _ in 0..<Int.random(in: 0...4, using: &rng) where !bytes.isEmpty {
                        bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    }
                }
                frames.append(Int.random(in: 0..<20, using: &rng) == 0 ? "not hex" : Hex.encode(bytes))
            }
            var modbus: ModbusReading?
            if bus == .modbus && Bool.random(using: &rng) {
                var r = base
                r.unit = [1, 2, -1, Int.max].randomElement(using: &rng)!
                r.values = r.values.map { v in
                    var v = v
                    v.value = [.number(.greatestFiniteMagnitude), .number(-1e308), .number(Double(Int.random(in: -99...99, using: &rng))),
                               .text("\u{1B}[2J"), .flags(["x"]), .notAvailable].randomElement(using: &rng)!
                    return v
                }
                modbus = r
            }
            entries.append(FrameJournal.Entry(
                seq: Int64.random(in: -5...700, using: &rng), receivedAt: Int64.random(in: Int64.min...Int64.max, using: &rng),
                device: devices.randomElement(using: &rng)!, bus: bus, source: "x", rssi: Int16.random(in: .min ... .max, using: &rng),
                frames: frames, format: ["a", "b", "no_crc", "zz", nil].randomElement(using: &rng)!,
                linkMode: ["t1", "c1", "s1", "?", nil].randomElement(using: &rng)!, modbus: modbus,
                outcome: ["buffered", "duplicate", "failed", "garbage"].randomElement(using: &rng)!, detail: "",
                readings: Int.random(in: -1...50, using: &rng), digest: Bool.random(using: &rng) ? "0123456789abcdef" : nil))
        }
        let snap = FrameJournalSnapshot(capacity: 1000, recorded: 600, entries: entries, strangers: [])
        let report = await JournalReplay.run(snap, registry: try F.registry(), options: PipelineOptions())
        #expect(report.entries.count == entries.count)
        #expect(report.notReplayable > 0 && report.differs > 0)
    }
}

