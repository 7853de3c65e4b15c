import Foundation
import Gateway
import Logging
import ServiceLifecycle
import Synchronization
import Uplink

/// The daemon's main loop: every few seconds it gathers the parts' counters into the status board and
/// the metrics, forwards new alarms to the uplink, tells systemd it is ready and alive, and ends a demo
/// run when asked to.
package final class Housekeeping: Service, Sendable {
    package let pipeline: ReadingPipeline
    package let buffer: any ReadingBuffer
    package let board: StatusBoard
    package let metrics: GatewayMetrics
    package let notifier: SystemdNotifier
    package let uplink: UplinkWiring?
    package let scheduler: PollScheduler
    package let stopAfter: Duration?
    package let stopAfterCycles: Int?
    package let logger: Logger
    /// The pause between rounds while something happens (telegrams, readings, alarms, uploads).
    package let period: Duration
    /// The longest pause when nothing has changed for a while (see `RoundPacing`, which keeps it ≥ `period`).
    package let idlePeriod: Duration
    private let group = Mutex<ServiceGroup?>(nil)
    /// When each open alarm was first seen open, for the status table.
    private let alarmSince = Mutex<[String: Date]>([:])
    /// Set by the loop on every round; the watchdog pings only while the loop goes round.
    private let lastRound = Atomic<Int64>(0)
    /// The pipeline's buffered total at the last round.
    private let lastBuffered = Atomic<Int>(0)
    private let clockProbe: any ClockProbe
    private let clock: Mutex<ClockWatch>
    /// When silence and signal were last looked at (Unix ms).
    private let lastPresence = Atomic<Int64>(0)
    /// Where the support evidence is saved, and when it last was (Unix ms).
    package let evidencePath: String?
    private let lastEvidence = Atomic<Int64>(0)
    /// Readings held back by an earlier run are looked at once, in the first round.
    private let leftoversChecked = Atomic<Bool>(false)
    /// When the start-up code's pages are handed back to the kernel (`StartupPages`); nil: never.
    private let releaseStartupPagesAt: ContinuousClock.Instant?
    private let startupPagesReleased = Atomic<Bool>(false)

    package init(pipeline: ReadingPipeline, buffer: any ReadingBuffer, board: StatusBoard, metrics: GatewayMetrics,
         notifier: SystemdNotifier, uplink: UplinkWiring?, scheduler: PollScheduler, stopAfter: Duration?,
         stopAfterCycles: Int?, logger: Logger, period: Duration = .seconds(2), idlePeriod: Duration = .seconds(30),
         clockSync: GatewayConfig.Buffer.ClockSyncPolicy = .auto, clockProbe: any ClockProbe = KernelClockProbe(),
         evidencePath: String? = nil, releaseStartupPagesAfter: Duration? = nil) {
        self.evidencePath = evidencePath
        releaseStartupPagesAt = releaseStartupPagesAfter.map { ContinuousClock.now + $0 }
        self.clockProbe = clockProbe
        clock = Mutex(ClockWatch(policy: clockSync))
        self.pipeline = pipeline
        self.buffer = buffer
        self.board = board
        self.metrics = metrics
        self.notifier = notifier
        self.uplink = uplink
        self.scheduler = scheduler
        self.stopAfter = stopAfter
        self.stopAfterCycles = stopAfterCycles
        self.logger = logger
        self.period = period
        self.idlePeriod = idlePeriod
    }

    /// The group to shut down when a demo run has done what it was asked to.
    package func attach(_ g: ServiceGroup) { group.withLock { $0 = g } }

    package func run() async throws {
        // Ping only while the main loop goes round: a wedged daemon gets restarted by systemd. (Returns at
        // once when systemd asked for no watchdog.)
        let watchdog = Task { [self] in
            await notifier.runWatchdog(isHealthy: { [self] in
                unixMilliseconds() - lastRound.load(ordering: .relaxed) < 60_000
            }, onError: { [logger] error in logger.warning("systemd watchdog ping failed", metadata: ["error": "\(error)"]) })
        }
        await cancelWhenGracefulShutdown { [self] in await loop() }
        watchdog.cancel()
        // Last word before the group stops the rest: counters as they are now.
        await round()
        try? notifier.stopping(status: "draining")
    }

    private func loop() async {
        let started = ContinuousClock.now
        var ready = false
        var pacing = RoundPacing(busy: period, idle: idlePeriod)
        while !Task.isCancelled {
            lastRound.store(unixMilliseconds(), ordering: .relaxed)
            let activity = await round()
            if !ready, await busesUp() || ContinuousClock.now - started > .seconds(30) {
                ready = true
                try? notifier.ready(status: "reading buses")
                logger.notice("gatewayd ready")
            }
            if await finished(since: started), let g = group.withLock({ $0 }) {
                logger.notice("demo run complete: stopping")
                await g.triggerGracefulShutdown()
            }
            // Until ready, and in a demo or test run that stops by itself, every `period`.
            try? await Task.sleep(for: ready && stopAfter == nil && stopAfterCycles == nil
                                  ? pacing.pause(after: activity) : period)
        }
    }

    /// Looks at the clock: at start (before any bus runs) and every round. While the clock cannot be
    /// trusted, the pipeline stamps readings as unsynchronised and the buffer holds them back; when it
    /// can, they are shifted by the step the clock made and released.
    package func checkClock() async {
        let state = clockProbe.read()
        let step = clock.withLock { $0.observe(state) }
        switch step {
        case .none:
            break
        case .hold(let reason):
            await pipeline.setClockSynchronised(false)
            logger.warning("holding readings back until the clock can be trusted: \(reason). Check NTP (`timedatectl`) or fit an RTC; set [buffer] clock_sync = \"off\" only if the clock is kept right some other way")
            await board.update("clock", kind: "clock", health: .degraded, detail: "waiting for synchronisation: \(reason)")
        case .release(let offset):
            do {
                try await buffer.clockSynchronised(offsetMilliseconds: offset)
                await pipeline.setClockSynchronised(true)
                uplink?.uploader.readingsAvailable()
                logger.notice("the clock is synchronised: held readings released", metadata: ["shifted_ms": "\(offset)"])
                await board.update("clock", kind: "clock", health: .healthy, detail: "synchronised")
            } catch {
                // Stay holding: the next round tries again.
                clock.withLock { $0.releaseFailed() }
                logger.error("cannot release readings held for the clock: \(error)")
            }
        }
        if !leftoversChecked.exchange(true, ordering: .relaxed), !clock.withLock({ $0.holding }) {
            let s = await buffer.statistics()
            if s.waitingForClock > 0, let newest = s.newestWaitingReceivedAt {
                let offset = max(0, unixMilliseconds() - newest)
                do {
                    try await buffer.clockSynchronised(offsetMilliseconds: offset)
                    uplink?.uploader.readingsAvailable()
                    logger.warning("released \(s.waitingForClock) readings an earlier run held back for the clock; their receive times are estimates (shifted so the newest is now)", metadata: ["shifted_ms": "\(offset)"])
                } catch {
                    leftoversChecked.store(false, ordering: .relaxed)
                    logger.error("cannot release readings held for the clock: \(error)")
                }
            }
        }
    }

    /// One round of gathering.
    /// not_heard / no_answer raised or cleared, the status component `presence`, the silent-device gauge,
    /// and the median signal per meter and receiver (status `reception`, gauge per pair).
    private func presence(now: Int64) async {
        do { try await pipeline.checkSilence(now: now) } catch {
            logger.warning("silence alarms could not be stored; the next check tries again", metadata: ["error": "\(error)"])
        }
        let reception = await pipeline.receptionSnapshot()
        for r in reception {
            metrics.set(.rssiMedian, labels: [("device", r.pair.device), ("receiver", r.pair.receiver)], to: r.median)
        }
        await board.setReception(reception.map { .init(device: $0.pair.device, receiver: $0.pair.receiver, medianRssi: $0.median, samples: $0.samples) })
        let silent = await pipeline.silentMeters()
        metrics.set(.metersNotHeard, to: Double(silent.count))
        let watched = await pipeline.registry.devices.filter { $0.bus != .manual && $0.replacedBy == nil }.count
        guard watched > 0 else { return }
        // A silent meter is the meter's problem (an alarm on it), not the gateway's: the component stays healthy.
        await board.update("presence", kind: "devices heard", health: .healthy,
                           detail: silent.isEmpty ? "all \(watched) registered devices heard or answering"
                               : "\(silent.count) of \(watched) silent: \(silent.prefix(3).joined(separator: ", "))\(silent.count > 3 ? ", …" : "")",
                           counters: ["silent": silent.count])
    }

    /// One round of gathering; returns what it saw, for `RoundPacing` to tell a quiet daemon from a busy one.
    @discardableResult
    package func round() async -> RoundActivity {
        await checkClock()
        let c = await pipeline.counters()
        for (outcome, value) in [("heard", c.heard), ("decoded", c.decoded), ("failed", c.failed), ("unknown", c.unknown),
                                 ("rejected", c.rejected), ("deduplicated", c.deduplicated), ("buffered", c.buffered)] {
            metrics.observe(.telegrams, labels: [("outcome", outcome)], cumulative: value)
        }
        metrics.observe(.alarmsRaised, cumulative: c.alarmsRaised)
        metrics.observe(.valuesRefused, cumulative: c.refusedValues)
        metrics.observe(.securityDowngrades, cumulative: c.securityDowngrades)
        for (kind, n) in c.keyFindings { metrics.observe(.keyFindings, labels: [("kind", kind)], cumulative: n) }
        metrics.set(.strangers, to: Double(await pipeline.unknownDevices.count))
        metrics.observe(.strangersEvicted, cumulative: await pipeline.unknownDevices.evicted)

        let s = await buffer.statistics()
        let now = unixMilliseconds()
        let age = s.oldestPendingReceivedAt.map { Double(max(0, now - $0)) / 1000 }
        await board.setBuffer(.init(pending: s.pending, leased: s.leased, waitingForClock: s.waitingForClock,
                                    oldestPendingAgeSeconds: age, evicted: s.evicted, delivered: s.delivered))
        metrics.set(.bufferDepth, to: Double(s.pending + s.leased))
        metrics.set(.bufferOldestAge, to: age ?? 0)
        metrics.observe(.bufferEvicted, cumulative: s.evicted)
        metrics.set(.bufferWaitingForClock, to: Double(s.waitingForClock))
        for event in await buffer.drainEvents() {
            logger.warning("reading buffer", metadata: ["event": "\(event)"])
            _ = try? await pipeline.report(
                conditions: [bufferCondition(event)], device: "gateway", scope: "buffer", at: now)
        }

        // Silent devices and each receiver's signal: every 10 s, not every round. The silence check walks
        // every registered device and the signal table sets a gauge per meter and receiver (thousands in
        // a large building); the shortest silence deadline is 10 s anyway. Alarm edges still leave this round.
        if now - lastPresence.load(ordering: .relaxed) >= 10_000 {
            lastPresence.store(now, ordering: .relaxed)
            await presence(now: now)
        }

        // The support bundle's picture for when the daemon is down: every 15 minutes (a small file, renamed
        // into place), so an SD card is not worn by it.
        if let evidencePath, now - lastEvidence.load(ordering: .relaxed) >= 900_000 {
            lastEvidence.store(now, ordering: .relaxed)
            await Daemon.saveEvidence(pipeline: pipeline, board: board, bufferPath: evidencePath, logger: logger)
        }

        if let at = releaseStartupPagesAt, ContinuousClock.now >= at, !startupPagesReleased.load(ordering: .relaxed) {
            startupPagesReleased.store(true, ordering: .relaxed)
            let report = StartupPages.release()
            if let problem = report.problem {
                logger.info("start-up code stays resident", metadata: ["reason": "\(problem)"])
            } else {
                logger.info("start-up code handed back to the kernel", metadata: ["mappings": "\(report.mappings)", "bytes": "\(report.bytes)"])
            }
        }
        for problem in await pipeline.drainLedgerProblems() {
            logger.warning("set-day ledger not saved (the proof records did reach the buffer)", metadata: ["error": "\(problem)"])
        }
        for problem in await scheduler.drainPollProblems() {
            logger.warning("poll ledger not saved", metadata: ["error": "\(problem)"])
        }
        for (device, refusal) in await pipeline.drainRefusals() {
            logger.warning("value refused", metadata: ["device": "\(device)", "value": "\(refusal)"])
        }
        let alarms = await pipeline.drainAlarms()
        for alarm in alarms {
            logger.notice("alarm", metadata: ["device": "\(alarm.device)", "alarm": "\(alarm)"])
            uplink?.uploader.raiseAlarm(alarm.portalAlarm)
        }
        let open = await pipeline.activeAlarms()
        let since = alarmSince.withLock { seen -> [String: Date] in
            let keys = Set(open.map { $0.device + "|" + $0.condition.code })
            seen = seen.filter { keys.contains($0.key) }
            for k in keys where seen[k] == nil { seen[k] = Date() }
            return seen
        }
        await board.setAlarms(open.map {
            DaemonStatus.OpenAlarm(device: $0.device, kind: $0.condition.code, priority: "\($0.condition.priority)",
                                   since: since[$0.device + "|" + $0.condition.code] ?? Date(), detail: $0.condition.message)
        }.sorted { ($0.priority, $0.device) < ($1.priority, $1.device) })
        metrics.set(.alarmsOpen, to: Double(open.count))

        if let uplink {
            let u = uplink.uploader.status
            await board.setUplink(.init(
                endpoint: u.endpoint, state: u.state.name,
                lastSuccess: u.lastSuccessAt.map { Date(timeIntervalSince1970: Double($0) / 1000) },
                lastError: u.lastError, readingsSent: u.readingsSent))
            await board.update("uplink", kind: "uplink", health: u.state.health, detail: u.state.description,
                               counters: ["batches": u.batchesSent, "readings": u.readingsSent, "retries": u.retries,
                                          "failures": u.failures, "alarms": u.alarmsSent])
            metrics.observe(.uploadBatches, cumulative: u.batchesSent)
            metrics.observe(.uploadReadings, cumulative: u.readingsSent)
            metrics.observe(.uploadRetries, cumulative: u.retries)
            metrics.observe(.uploadFailures, cumulative: u.failures)
            metrics.observe(.uploadHeld, cumulative: u.batchesHeld)
            // Only when something new was buffered since the last round (`buffered` is a running total).
            // The uploader wakes idle workers only; backoff and Retry-After are never cut short.
            let previous = lastBuffered.exchange(c.buffered, ordering: .relaxed)
            if c.buffered > previous { uplink.uploader.readingsAvailable() }
        }
        let u = uplink?.uploader.status
        let activity = RoundActivity(
            telegrams: c.heard + c.failed + c.rejected, buffered: c.buffered, alarmsRaised: c.alarmsRaised, openAlarms: open.count,
            pending: s.pending, leased: s.leased, delivered: s.delivered, waitingForClock: s.waitingForClock,
            uploadBatches: u?.batchesSent ?? 0, uploadFailures: u?.failures ?? 0, uploadRetries: u?.retries ?? 0,
            alarmsSent: u?.alarmsSent ?? 0, uplinkState: u?.state.name ?? "")
        let snapshot = await board.snapshot()
        for component in snapshot.components where component.kind.contains("line") {
            metrics.observe(.busRequests, labels: [("bus", component.name)], cumulative: component.counters["requests"] ?? 0)
            metrics.observe(.busTimeouts, labels: [("bus", component.name)], cumulative: component.counters["timeouts"] ?? 0)
            metrics.observe(.busRetries, labels: [("bus", component.name)], cumulative: component.counters["retries"] ?? 0)
        }
        // Per heat pump on a fair Modbus line (issue 18): reads, unanswered reads, probes, skipped slots, health.
        for component in snapshot.components where component.kind == "heat pump" {
            let labels = [("device", component.name)]
            metrics.observe(.modbusDeviceReads, labels: labels, cumulative: component.counters["reads"] ?? 0)
            metrics.observe(.modbusDeviceNoAnswer, labels: labels, cumulative: component.counters["no_answer"] ?? 0)
            metrics.observe(.modbusDeviceProbes, labels: labels, cumulative: component.counters["probes"] ?? 0)
            metrics.observe(.modbusDeviceSkipped, labels: labels, cumulative: component.counters["skipped"] ?? 0)
            metrics.set(.modbusDeviceHealthy, labels: labels, to: component.health == .healthy ? 1 : 0)
        }
        return activity
    }

    private func busesUp() async -> Bool {
        let components = await board.snapshot().components
        return !components.isEmpty && !components.contains { $0.health == .starting }
    }

    /// A demo/test run is done when its time is up, or when every line finished its cycles, every
    /// registered radio meter has been heard or reported silent, and everything buffered has been delivered.
    private func finished(since started: ContinuousClock.Instant) async -> Bool {
        if let stopAfter, ContinuousClock.now - started >= stopAfter { return true }
        guard let stopAfterCycles else { return false }
        let lines = await scheduler.lines
        guard !lines.isEmpty else { return false }
        for line in lines {
            guard let status = await scheduler.status(line: line), status.cycles >= stopAfterCycles else { return false }
        }
        guard await pipeline.radioMetersAwaited().isEmpty else { return false }
        let s = await buffer.statistics()
        return s.pending == 0 && s.leased == 0
    }

    private func bufferCondition(_ event: BufferEvent) -> AlarmCondition {
        switch event {
        case .evicted: AlarmCondition(code: "buffer_eviction", priority: .major, message: event.description)
        case .quarantined: AlarmCondition(code: "buffer_quarantined", priority: .critical, message: event.description)
        case .rejected: AlarmCondition(code: "buffer_full", priority: .critical, message: event.description)
        }
    }
}

extension UplinkState {
    package var health: Health {
        switch self {
        case .starting: .starting
        case .idle, .uploading: .healthy
        case .retrying: .degraded
        case .unauthorized: .failed
        case .draining, .stopped: .stopped
        }
    }
}

extension Alarm {
    /// The alarm as the portal's alarm message: id from device, code, edge and time, so a resend is
    /// recognised.
    package var portalAlarm: PortalAlarm {
        PortalAlarm(id: "\(device)|\(code)|\(state.rawValue)|\(at)", kind: code + (state == .cleared ? "_cleared" : ""),
                    severity: "\(priority)", device: device, raisedAt: at, message: message)
    }
}

/// What a housekeeping round saw: counters that move when the daemon has something to do.
package struct RoundActivity: Equatable, Sendable {
    package var telegrams = 0
    package var buffered = 0
    package var alarmsRaised = 0
    package var openAlarms = 0
    package var pending = 0
    package var leased = 0
    package var delivered = 0
    package var waitingForClock = 0
    package var uploadBatches = 0
    package var uploadFailures = 0
    package var uploadRetries = 0
    package var alarmsSent = 0
    package var uplinkState = ""
}

/// The pause between housekeeping rounds: `busy` while anything moves, doubling for every round that
/// saw nothing new, up to `idle`. A round costs a dozen thread wake-ups (the buffer's thread, the pool);
/// every 2 s that was most of an idle daemon's wake-ups. The first change after a quiet spell is seen
/// at most `idle` late; then rounds are `busy` again.
package struct RoundPacing: Sendable {
    package let busy: Duration
    package let idle: Duration
    private var last: RoundActivity?
    private var pause: Duration

    package init(busy: Duration, idle: Duration) {
        self.busy = busy
        self.idle = max(busy, idle)
        pause = busy
    }

    package mutating func pause(after activity: RoundActivity) -> Duration {
        defer { last = activity }
        guard let last, last == activity else {
            pause = busy
            return pause
        }
        pause = min(idle, pause * 2)
        return pause
    }
}
