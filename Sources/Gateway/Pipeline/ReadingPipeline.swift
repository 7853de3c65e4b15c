import Drivers

/// Sources → decode → identify → validate → normalise → deduplicate → buffer.
///
/// One actor per gateway. Inputs are processed strictly in arrival order, one batch at a time (a gate holds
/// later callers while a batch waits for its commit), so dedup and alarm state always match what the buffer
/// holds. A reading counts as buffered only after the buffer's transaction committed.
///
///     let pipeline = ReadingPipeline(registry: registry, buffer: buffer)
///     let outcome = try await pipeline.ingest(.wireless(WirelessInput(.frame(bytes, format: nil, linkMode: .t1),
///                                                                    dongle: "im871a", rssi: -71, receivedAt: now)))
///     let counters = await pipeline.counters()
public actor ReadingPipeline {
    private var core: PipelineCore
    public nonisolated let buffer: any ReadingBuffer
    public nonisolated let unknownDevices: UnknownDevices
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var recentAlarms: [Alarm] = []
    private var recentRefusals: [(device: String, refusal: ValueRefusal)] = []
    /// Most alarm edges kept for `drainAlarms`; older ones are in the buffer anyway.
    public let alarmBacklog = 1024

    /// Proof of each device's set-day capture (`SetDayLedger`), saved to `ledgerFile` when it changes.
    private var ledger: SetDayLedger
    private let ledgerFile: SetDayLedgerFile?
    private var ledgerProblems: [String] = []
    /// The last raw inputs of registered devices and their outcomes, for support bundles.
    private var journal: FrameJournal

    public init(registry: DeviceRegistry, buffer: any ReadingBuffer, options: PipelineOptions = PipelineOptions(),
                unknownDevices: UnknownDevices = UnknownDevices(), startedAt: Int64 = 0,
                ledger: SetDayLedger = SetDayLedger(), ledgerFile: SetDayLedgerFile? = nil, journalCapacity: Int = 1000) {
        journal = FrameJournal(capacity: journalCapacity)
        core = PipelineCore(registry: registry, options: options, startedAt: startedAt)
        self.ledger = ledger
        self.ledgerFile = ledgerFile
        self.buffer = buffer
        self.unknownDevices = unknownDevices
    }

    /// Runs one input through every step and stores its readings (one transaction).
    public func ingest(_ input: PipelineInput) async throws(BufferError) -> PipelineOutcome {
        try await ingest([input])[0]
    }

    /// Runs a batch of inputs through the steps and stores all their readings in one transaction: the way
    /// to keep up with a busy radio channel. On a buffer error nothing of the batch counts as stored.
    public func ingest(_ inputs: [PipelineInput]) async throws(BufferError) -> [PipelineOutcome] {
        await enter()
        defer { leave() }
        var staged: [PipelineCore.Staged] = []
        staged.reserveCapacity(inputs.count)
        var readings: [Reading] = []
        for input in inputs {
            let s = core.process(input)
            readings += s.readings
            staged.append(s)
        }
        for s in staged { if let seen = s.sighting { await unknownDevices.record(seen.header, rssi: seen.rssi) } }
        // A set-day value of a new period: its proof record goes to the portal in the same transaction.
        let captures = ledger.newCaptures(in: readings)
        readings += captures.map(\.reading)
        let outcomes: [PipelineOutcome]
        do {
            outcomes = try await store(staged, readings)
        } catch {
            // The evidence of a disk that refused readings is worth keeping too.
            for (input, s) in zip(inputs, staged) {
                journal.record(input, device: s.device, outcome: .failed("not stored, the buffer refused it: \(error)"), readings: 0, digest: nil)
            }
            throw error
        }
        for (input, s) in zip(inputs, staged) {
            let values = if case .buffered(_, let n, _) = s.outcome { n } else { 0 }
            journal.record(input, device: s.device, outcome: s.outcome, readings: values, digest: s.contentDigest)
        }
        if !captures.isEmpty {
            ledger.apply(captures)
            if let ledgerFile {
                do { try ledgerFile.save(ledger) } catch {
                    // The proof records are stored and uploaded; only the local copy for `gatewayd billing` lags.
                    ledgerProblems.append("\(error)")
                    if ledgerProblems.count > 16 { ledgerProblems.removeFirst() }
                }
            }
        }
        return outcomes
    }

    /// When `line`'s last set-day readout was due (Unix ms), as the ledger remembers it across restarts.
    public func lastSetDayReadout(line: String) -> Int64? { ledger.readouts?[line] }

    /// A line's set-day readout due at `dueAt` has run: remembered (and saved) so a restart does not repeat it.
    public func setDayReadoutDone(line: String, dueAt: Int64) {
        ledger.readoutDone(line: line, dueAt: dueAt)
        if let ledgerFile {
            do { try ledgerFile.save(ledger) } catch { ledgerProblems.append("\(error)") }
        }
    }

    /// The set-day captures so far (for status and `gatewayd billing`).
    public func setDayLedger() -> SetDayLedger { ledger }

    /// Problems saving the ledger since the last call (for the log).
    public func drainLedgerProblems() -> [String] {
        defer { ledgerProblems.removeAll() }
        return ledgerProblems
    }

    /// Stores alarm conditions of something that is not a meter (a line that is slow, the buffer evicting):
    /// raised once at onset, cleared when `conditions` no longer holds them.
    @discardableResult
    public func report(conditions: [AlarmCondition], device: String, scope: String, at: Int64, source: String = "gateway")
        async throws(BufferError) -> [Alarm] {
        await enter()
        defer { leave() }
        let s = core.stage(conditions: conditions, device: device, scope: scope, at: at, source: source)
        guard !s.readings.isEmpty else { return [] }
        _ = try await store([s], s.readings)
        return s.alarms
    }

    private func store(_ staged: [PipelineCore.Staged], _ readings: [Reading]) async throws(BufferError) -> [PipelineOutcome] {
        if !readings.isEmpty {
            do {
                _ = try await buffer.append(readings)
            } catch {
                for s in staged.reversed() {
                    core.rollback(s)
                    core.committed(s, stored: false)
                }
                throw error
            }
        }
        for s in staged {
            core.committed(s, stored: true)
            recentAlarms += s.alarms
            if case .buffered(let device, _, _) = s.outcome { recentRefusals += s.refusals.map { (device, $0) } }
        }
        if recentAlarms.count > alarmBacklog { recentAlarms.removeFirst(recentAlarms.count - alarmBacklog) }
        if recentRefusals.count > alarmBacklog { recentRefusals.removeFirst(recentRefusals.count - alarmBacklog) }
        return staged.map(\.outcome)
    }

    public func counters() -> PipelineCounters { core.counters }

    /// Registered radio meters neither heard since the start nor reported silent (see `PipelineCore`).
    public func radioMetersAwaited() -> [String] { core.radioMetersAwaited() }

    /// How many inputs the frame journal has recorded (the next entry's sequence number).
    public func journalRecorded() -> Int64 { journal.recorded }

    /// Journal entries recorded from sequence number `seq` on (those still kept).
    public func journalEntries(after seq: Int64) -> [FrameJournal.Entry] {
        guard journal.recorded > seq else { return [] }
        return journal.entries(from: seq)
    }

    /// The frame journal and the strangers heard (identity and signal only), for a support bundle.
    public func journalSnapshot() async -> FrameJournalSnapshot {
        let strangers = await unknownDevices.sightings().map {
            FrameJournalSnapshot.Stranger(identification: $0.identification, manufacturer: $0.manufacturer, deviceType: $0.deviceType,
                                          count: $0.count, lastRssi: $0.lastRSSI)
        }
        return FrameJournalSnapshot(capacity: journal.capacity, recorded: journal.recorded, entries: journal.entries, strangers: strangers)
    }

    /// Raises `not_heard` for registered radio meters silent longer than the policy allows and clears it for
    /// those heard again; the alarms are stored like any other (one transaction). Call it periodically.
    @discardableResult
    public func checkSilence(now: Int64) async throws(BufferError) -> SilenceWatch.Change {
        await enter()
        defer { leave() }
        let (change, staged) = core.checkSilence(now: now)
        let readings = staged.flatMap(\.readings)
        guard !readings.isEmpty else { return change }
        do {
            _ = try await store(staged, readings)
        } catch {
            core.undoSilence(change)
            throw error
        }
        return change
    }

    /// Median RSSI of recent receptions per registered radio meter and receiver (source "wmbus:DONGLE").
    public func receptionSnapshot() -> [(pair: ReceptionStats.Pair, median: Double, samples: Int)] { core.reception.snapshot() }

    /// When a registered radio meter was last heard (Unix milliseconds), nil if not since the start.
    public func lastHeard(_ device: String) -> Int64? { core.presence.lastHeard(device) }

    /// Registered radio meters silent now (not heard for longer than the policy allows), sorted.
    public func silentMeters() -> [String] { core.presence.silent.sorted() }

    /// Conditions active now, highest priority first.
    public func activeAlarms() -> [(device: String, condition: AlarmCondition)] { core.alarms.activeAlarms }

    /// Values refused alone since the last call, by device (for the log; the count is in `counters()`).
    public func drainRefusals() -> [(device: String, refusal: ValueRefusal)] {
        defer { recentRefusals.removeAll() }
        return recentRefusals
    }

    /// Alarm edges stored since the last call (for the log and the health report).
    public func drainAlarms() -> [Alarm] {
        defer { recentAlarms.removeAll() }
        return recentAlarms
    }

    /// A new registry (from the portal): identification uses it from the next input on.
    public func replaceRegistry(_ registry: DeviceRegistry) {
        core.replaceRegistry(registry)
        journal.keep(only: Set(registry.devices.map(\.key)))
    }

    public func replaceKeyring(_ keyring: WMBusKeyring) { core.replaceKeyring(keyring) }
    public var registry: DeviceRegistry { core.registry }

    /// Readings from now on carry this (boards without RTC boot in 1970; see the buffer's clock rule).
    public func setClockSynchronised(_ synchronised: Bool) { core.clockSynchronised = synchronised }

    // A FIFO gate across the buffer's await: the actor alone would let a second batch interleave.
    private func enter() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func leave() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }
}
