import Drivers
import Testing
@testable import Gateway

/// Issue 17, item 1: a registered radio meter that falls silent raises `not_heard` after three of its
/// intervals (registered or learned), never before the minimum, and clears when heard again. All on a
/// virtual clock: the times are arguments.
@Suite("silent devices: not_heard (radio), no_answer (wired, Modbus)")
struct SilenceWatchTests {
    typealias F = PipelineFixtures
    static let minute: Int64 = 60_000
    let t0: Int64 = 1_780_000_000_000

    @Test("the interval is learned from the gaps (median, duplicates under 2 s ignored); silent after 3 of them")
    func learned() {
        var w = SilenceWatch(policy: .init(intervals: 3, minimum: 10 * Self.minute), startedAt: t0)
        w.watch(["a": nil])
        // Every 8 minutes, each telegram also heard by a second dongle 300 ms later, one 30-minute outlier.
        for at in [0, 8, 16, 24, 54, 62].map({ t0 + $0 * Self.minute }) {
            w.heard("a", at: at)
            w.heard("a", at: at + 300)
        }
        #expect(w.interval(of: "a")?.milliseconds == 8 * Self.minute && w.interval(of: "a")?.source == "learned")
        let last = t0 + 62 * Self.minute
        #expect(w.check(now: last + 24 * Self.minute).isEmpty)  // exactly 3 intervals: not yet
        let c = w.check(now: last + 24 * Self.minute + 1)
        #expect(c.silenced.map(\.device) == ["a"] && c.silenced[0].interval == 8 * Self.minute && !c.silenced[0].neverHeard)
        #expect(w.check(now: last + 30 * Self.minute).isEmpty)  // raised once
        w.heard("a", at: last + 31 * Self.minute)
        #expect(w.check(now: last + 31 * Self.minute).heardAgain == ["a"])
        #expect(w.silent.isEmpty)
    }

    @Test("the registry's interval wins; the minimum holds for fast meters; never heard counts from the start")
    func registryMinimumAndNeverHeard() {
        var w = SilenceWatch(policy: .init(intervals: 3, minimum: 60 * Self.minute), startedAt: t0)
        w.watch(["fast": 2 * Self.minute, "slow": 4 * 60 * Self.minute, "new": nil])
        w.heard("fast", at: t0)
        w.heard("slow", at: t0)
        // fast: 3 × 2 min = 6 min, but not before the 60-minute minimum.
        #expect(w.check(now: t0 + 59 * Self.minute).isEmpty)
        let first = w.check(now: t0 + 61 * Self.minute)
        #expect(first.silenced.map(\.device) == ["fast", "new"])
        #expect(first.silenced.first { $0.device == "new" }?.neverHeard == true)
        #expect(first.silenced.first { $0.device == "fast" }?.intervalSource == "registry")
        // slow: 3 × 4 h.
        #expect(w.check(now: t0 + 12 * 60 * Self.minute).isEmpty)
        #expect(w.check(now: t0 + 12 * 60 * Self.minute + 1).silenced.map(\.device) == ["slow"])
        // A meter taken out of the registry is forgotten, and no longer silent.
        w.watch(["slow": 4 * 60 * Self.minute])
        #expect(w.silent == ["slow"])
        w.heard("gone", at: t0)
        #expect(w.lastHeard("gone") == nil)
    }

    @Test("hostile times: out of order, far future, huge intervals never trap")
    func hostile() {
        var w = SilenceWatch(policy: .init(intervals: 1_000_000, minimum: 0), startedAt: t0)
        w.watch(["a": Int64.max / 2])
        w.heard("a", at: Int64.max - 5)
        w.heard("a", at: 0)  // older than the last: ignored
        #expect(w.lastHeard("a") == Int64.max - 5)
        _ = w.check(now: Int64.min)
        _ = w.check(now: Int64.max)
        #expect(SilenceWatch.words(-5) == "0 s" && SilenceWatch.words(7_200_000) == "2 h" && SilenceWatch.words(90_000) == "90 s")
    }

    @Test("through the pipeline: not_heard stored once as an alarm, cleared when the meter is heard again")
    func pipeline() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer,
                                       options: PipelineOptions(silence: .init(intervals: 3, minimum: 5 * Self.minute)), startedAt: t0)
        _ = try await pipeline.ingest(F.radio("22222222", litres: 10, at: t0))
        _ = try await pipeline.ingest(F.radio("22222222", litres: 11, access: 8, at: t0 + 2 * Self.minute))
        let outcome = try await pipeline.ingest(F.radio("22222222", litres: 12, access: 9, at: t0 + 4 * Self.minute))
        #expect(await pipeline.lastHeard("wmbus:QDS:22222222") == t0 + 4 * Self.minute, "\(outcome)")
        // Learned interval 2 min; minimum 5 min: silent 6 min after the last telegram.
        // (The registry's wired meter and heat pump, never read here, fall silent at the 5-minute minimum.)
        let radio = "wmbus:QDS:22222222"
        #expect(try await pipeline.checkSilence(now: t0 + 10 * Self.minute).silenced.allSatisfy { $0.device != radio })
        let change = try await pipeline.checkSilence(now: t0 + 10 * Self.minute + 1)
        #expect(change.silenced.map(\.device) == [radio])
        #expect(await pipeline.silentMeters().contains(radio))
        let open = await pipeline.activeAlarms()
        #expect(open.contains { $0.device == "wmbus:QDS:22222222" && $0.condition.code == "not_heard" && $0.condition.message.contains("2 min") })
        #expect(try await pipeline.checkSilence(now: t0 + 20 * Self.minute).isEmpty)
        _ = try await pipeline.ingest(F.radio("22222222", litres: 13, access: 10, at: t0 + 21 * Self.minute))
        #expect(try await pipeline.checkSilence(now: t0 + 21 * Self.minute).heardAgain == [radio])
        #expect(await pipeline.activeAlarms().allSatisfy { $0.condition.code != "not_heard" })
        #expect(await pipeline.activeAlarms().filter { $0.condition.code == "no_answer" }.count == 2)
        let alarms = try await buffer.all().filter { $0.readingClass == .alarm && $0.quantity == "alarm:not_heard" }
        #expect(alarms.count == 2, "raised and cleared: \(alarms.map(\.quantity))")
    }

    @Test("a run that stops after its first cycles waits for each registered radio meter: heard, or reported silent")
    func radioMetersAwaited() async throws {
        let pipeline = ReadingPipeline(registry: try PipelineKeyForensicsTests.registry(), buffer: MemoryReadingBuffer(),
                                       options: PipelineOptions(silence: .init(intervals: 3, minimum: 5 * Self.minute)), startedAt: t0)
        #expect(await pipeline.radioMetersAwaited() == ["wmbus:QDS:41000001", "wmbus:QDS:41000002"])
        // Heard, even though its telegram does not open (no key): accounted for.
        _ = try await pipeline.ingest(PipelineKeyForensicsTests.input(1, at: t0 + Self.minute))
        #expect(await pipeline.radioMetersAwaited() == ["wmbus:QDS:41000002"])
        // Not yet silent before the minimum; reported silent after it.
        _ = try await pipeline.checkSilence(now: t0 + 4 * Self.minute)
        #expect(await pipeline.radioMetersAwaited() == ["wmbus:QDS:41000002"])
        _ = try await pipeline.checkSilence(now: t0 + 5 * Self.minute + 1)
        #expect(await pipeline.radioMetersAwaited().isEmpty)
        // Wired meters and heat pumps are not awaited here (their lines' cycles are).
        let mixed = ReadingPipeline(registry: try F.registry(), buffer: MemoryReadingBuffer(), startedAt: t0)
        #expect(await mixed.radioMetersAwaited() == ["wmbus:QDS:22222222"])
    }

    @Test("wired meters and heat pumps follow the same model: no_answer after 3 readout intervals of their line, cleared on the next answer")
    func polledDevices() async throws {
        let buffer = MemoryReadingBuffer()
        let options = PipelineOptions(silence: .init(intervals: 3, minimum: 0),
                                      lineIntervals: ["mbus-line-1": 2 * Self.minute, "rs485-1": Self.minute])
        let pipeline = ReadingPipeline(registry: try F.registry(), buffer: buffer, options: options, startedAt: t0)
        _ = try await pipeline.ingest(.wired(WiredInput(.frame(F.wiredFrame("06855817", "KAM", litres: 5)), line: "mbus-line-1", receivedAt: t0)))
        _ = try await pipeline.ingest(.modbus(ModbusInput(try F.kaisaiReading(), line: "rs485-1", receivedAt: t0)))
        // (The registry's radio meter, never heard and without an interval, is silent at once with no minimum.)
        #expect(try await pipeline.checkSilence(now: t0 + 3 * Self.minute + 1).silenced.map(\.device) == ["modbus:kaisai:unit1", "wmbus:QDS:22222222"])
        #expect(try await pipeline.checkSilence(now: t0 + 6 * Self.minute + 1).silenced.map(\.device) == ["mbus:KAM:06855817"])
        let open = await pipeline.activeAlarms().filter { $0.condition.code == "no_answer" }
        #expect(Set(open.map(\.device)) == ["mbus:KAM:06855817", "modbus:kaisai:unit1"])
        #expect(open.first { $0.device == "modbus:kaisai:unit1" }?.condition.message.contains("readout interval of 60 s") == true)
        _ = try await pipeline.ingest(.wired(WiredInput(.frame(F.wiredFrame("06855817", "KAM", litres: 6, access: 2)), line: "mbus-line-1",
                                                        receivedAt: t0 + 7 * Self.minute)))
        #expect(try await pipeline.checkSilence(now: t0 + 7 * Self.minute).heardAgain == ["mbus:KAM:06855817"])
        // The manual device is never watched: nobody expects it to send.
        #expect(await pipeline.silentMeters() == ["modbus:kaisai:unit1", "wmbus:QDS:22222222"])
    }
}

/// Issue 17, item 2 in the daemon's pipeline: a telegram that does not open raises `decryption:KIND` on
/// its registered meter with advice, counted by kind; a telegram that opens clears it.
@Suite("key forensics in the pipeline")
struct PipelineKeyForensicsTests {
    static let a = IdentificationNumber("41000001")!
    static let b = IdentificationNumber("41000002")!
    static let keyA = WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")!
    static let keyB = WMBusKey(hex: "F0E0D0C0B0A090807060504030201000")!
    let t0: Int64 = 1_780_000_000_000

    static func registry() throws -> DeviceRegistry {
        try DeviceRegistry(RegistryDocument(gateway: "gw", building: "1", devices: [
            RegisteredDevice(key: "wmbus:QDS:41000001", bus: .wirelessMBus, identification: "41000001", manufacturer: "QDS"),
            RegisteredDevice(key: "wmbus:QDS:41000002", bus: .wirelessMBus, identification: "41000002", manufacturer: "QDS"),
        ]))
    }

    static func input(_ access: UInt8, at: Int64) -> PipelineInput {
        let address = WMBusAddress(manufacturer: ManufacturerCode("QDS")!, identification: a, version: 0x37, deviceType: .water)
        let bytes = ProfileTelegramEncoder.modeFive(address: address, accessNumber: access, records: [0x0C, 0x13, 0x45, 0x23, 0x01, 0x00], key: keyA)!
        return .wireless(WirelessInput(.frame(bytes, format: .noCRC, linkMode: .t1), dongle: "im871a", rssi: -70, receivedAt: at))
    }

    @Test("swapped keys: alarm on the meter naming the other one, counted; the right key clears it")
    func swappedThenFixed() async throws {
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: try Self.registry(), buffer: buffer,
                                       options: PipelineOptions(keyring: WMBusKeyring(keys: [Self.a: Self.keyB, Self.b: Self.keyA])))
        let outcome = try await pipeline.ingest(Self.input(1, at: t0))
        guard case .failed(let why) = outcome else { Issue.record("\(outcome)"); return }
        #expect(why.contains("41000002") && why.contains("swapped"))
        let open = await pipeline.activeAlarms()
        #expect(open.map(\.condition.code) == ["decryption:key_of_another_meter"] && open.first?.device == "wmbus:QDS:41000001")
        #expect(await pipeline.counters().keyFindings == ["key_of_another_meter": 1])
        #expect(await pipeline.lastHeard("wmbus:QDS:41000001") == t0, "a telegram that does not open still says the meter is alive")
        // Within the hour the other keys are not tried again, but the finding stays: the same words, no
        // alarm edge (it once flapped to a plain wrong key on every telegram in between).
        let again = try await pipeline.ingest(Self.input(2, at: t0 + 60_000))
        guard case .failed(let whyAgain) = again else { Issue.record("\(again)"); return }
        #expect(whyAgain.contains("the key filed under 41000002"), "\(whyAgain)")
        #expect(await pipeline.counters().keyFindings == ["key_of_another_meter": 2])
        #expect(await pipeline.activeAlarms().map(\.condition.code) == ["decryption:key_of_another_meter"])
        await pipeline.replaceKeyring(WMBusKeyring(keys: [Self.a: Self.keyA, Self.b: Self.keyB]))
        guard case .buffered = try await pipeline.ingest(Self.input(3, at: t0 + 120_000)) else { Issue.record("not buffered with the right key"); return }
        #expect(await pipeline.activeAlarms().isEmpty)
    }
}
