import Logging
import ServiceLifecycle
import Synchronization

/// How the uploader paces, retries and reports. Durations are small in tests, generous in the field.
public struct UploaderConfiguration: Sendable {
    /// A batch holds at most this many readings and (uncompressed JSON) bytes.
    public var maxReadings = 1_000
    public var maxBytes = 512 * 1024
    /// Readings batches in flight at once (each leases up to `maxReadings` from the source).
    public var concurrency = 2
    public var retry = RetryPolicy()
    /// How long an idle worker waits before asking the source again (`readingsAvailable()` wakes it sooner).
    public var idlePoll: Duration = .seconds(5)
    /// Readings received within this window go ahead of the backlog (asked with `.fresh`); nil: off.
    public var freshWindow: Duration? = .seconds(3600)
    /// After a 401/403: retry this often, and at once when a credential file changes.
    public var unauthorizedRetry: Duration = .seconds(900)
    public var credentialPoll: Duration = .seconds(10)
    /// Files whose change ends an unauthorized pause (the token file, the client certificate and key).
    public var credentialFiles: [String] = []
    /// Registry sync period; nil: no registry sync.
    public var registryInterval: Duration? = .seconds(3600)
    /// Health telemetry period; nil: none.
    public var healthInterval: Duration? = .seconds(300)
    /// Alarms held in memory while the portal is unreachable; the oldest are dropped beyond this.
    public var maxQueuedAlarms = 1_000
    /// At shutdown, how long deliveries in flight may take before they are cancelled. A portal that takes
    /// a request and never answers would otherwise hold the shutdown for the whole request timeout, and
    /// systemd kills the daemon first (TimeoutStopSec). A cancelled batch stays leased and goes again
    /// after the restart under the same id, so the portal stores it once.
    public var shutdownGrace: Duration = .seconds(5)
    /// How the uploader waits (idle polls, backoff, Retry-After): real time unless a test injects a clock.
    public var sleeper: any UplinkSleeper = TaskSleeper()

    public init() {}
}

/// A device registry document from the portal, applied by the daemon.
public struct RegistryDocument: Sendable, Hashable {
    public var body: [UInt8]
    public var etag: String?
    public init(body: [UInt8], etag: String?) {
        self.body = body
        self.etag = etag
    }
}

/// Moves readings from an `UplinkBatchSource` to the portal through a `PortalTransport`, as a
/// ServiceLifecycle service.
///
/// - Batches are sized by count and bytes; a 413 splits one in halves down to a single reading.
/// - Transient failures (5xx, 429, timeouts, resets) retry the same batch (same id: idempotent) with
///   full-jitter exponential backoff, never shorter than the portal's Retry-After.
/// - A 400 naming readings rejects those at the source (quarantine) and reports them; the rest are
///   acknowledged. A 400 naming none of the batch's readings holds the batch (retried with backoff, an
///   alarm through `onBatchHeld`): a proxy or WAF can answer 400, and that must not delete readings.
/// - A 401/403 pauses uploading (state `.unauthorized`), keeps the lease, retries slowly and at once
///   when a credential file changes. The source keeps buffering meanwhile.
/// - Queued alarms go first, then alarm readings, then fresh readings, then the backlog.
/// - Graceful shutdown finishes the batches in flight (no new ones, no more retries) for up to
///   `shutdownGrace`, then cancels what is still in flight, shuts the transport down (the uploader owns
///   it) and returns; whatever is unacknowledged stays leased and is sent again after a restart.
public final class Uploader: Service, Sendable {
    public typealias ApplyRegistry = @Sendable (RegistryDocument) async throws -> Void
    public typealias HealthProvider = @Sendable () async -> HealthReport
    public typealias RejectedReadings = @Sendable (_ readingIDs: [String], _ reason: String) async -> Void
    /// A batch is held (`held` true, with the reason) or released again (`held` false).
    public typealias BatchHeld = @Sendable (_ reason: String, _ held: Bool) async -> Void

    private let transport: any PortalTransport
    private let source: any UplinkBatchSource
    private let configuration: UploaderConfiguration
    private let logger: Logger
    private let applyRegistry: ApplyRegistry?
    private let healthProvider: HealthProvider?
    private let onReadingsRejected: RejectedReadings?
    private let onBatchHeld: BatchHeld?

    private struct Shared {
        var status: UplinkStatus
        var draining = false
        var credentialGeneration = 0
        var alarms: [PortalAlarm] = []
        var learnedMaxBytes: Int
        var failureStreak = 0
        /// Consecutive 400s that named no reading (the batch is held meanwhile).
        var heldStreak = 0
    }
    private let shared: Mutex<Shared>
    /// Wakes idle workers: new readings, new alarms, new credentials, shutdown.
    private let work: Wakeup
    /// Wakes workers waiting out a backoff or a Retry-After: only shutdown and new credentials. New
    /// readings must not: they arrive every few seconds and would turn a 30 s Retry-After into 2 s.
    private let backoff: Wakeup
    /// Wakes the registry and health loops.
    private let periodic: Wakeup
    /// Wakes the shutdown deadline when the drain begins.
    private let stopping = Wakeup()

    public init(transport: any PortalTransport, source: any UplinkBatchSource,
                configuration: UploaderConfiguration = UploaderConfiguration(), logger: Logger,
                registryETag: String? = nil, applyRegistry: ApplyRegistry? = nil,
                healthProvider: HealthProvider? = nil, onReadingsRejected: RejectedReadings? = nil,
                onBatchHeld: BatchHeld? = nil) {
        self.transport = transport
        self.source = source
        self.configuration = configuration
        self.logger = logger
        self.applyRegistry = applyRegistry
        self.healthProvider = healthProvider
        self.onReadingsRejected = onReadingsRejected
        self.onBatchHeld = onBatchHeld
        var status = UplinkStatus(endpoint: transport.endpointDescription)
        status.registryETag = registryETag
        shared = Mutex(Shared(status: status, learnedMaxBytes: configuration.maxBytes))
        work = Wakeup(sleeper: configuration.sleeper)
        backoff = Wakeup(sleeper: configuration.sleeper)
        periodic = Wakeup(sleeper: configuration.sleeper)
    }

    // MARK: Public controls

    /// A snapshot for `gatewayd status`, metrics and health.
    public var status: UplinkStatus { shared.withLock { $0.status } }

    /// New readings were buffered: wake idle workers (never one waiting out a backoff or Retry-After).
    public func readingsAvailable() { work.signal() }

    /// Credentials were replaced (SIGHUP, a new token): end an unauthorized pause now.
    public func credentialsChanged() {
        shared.withLock { $0.credentialGeneration += 1 }
        work.signal()
        backoff.signal()
        periodic.signal()
    }

    /// Queues an alarm; it is sent ahead of every readings batch.
    public func raiseAlarm(_ alarm: PortalAlarm) {
        shared.withLock { s in
            s.alarms.append(alarm)
            if s.alarms.count > configuration.maxQueuedAlarms {
                let drop = s.alarms.count - configuration.maxQueuedAlarms
                s.alarms.removeFirst(drop)
                s.status.alarmsDropped += drop
            }
        }
        work.signal()
    }

    /// Sends a commissioning report once (the caller decides about retries).
    public func sendCommissioningReport(id: String, body: [UInt8]) async -> DeliveryOutcome {
        let outcome = await transport.deliver(.commissioningReport(id: id, body: body))
        record(outcome, what: "commissioning report") { $0.commissioningReportsSent += 1 }
        return outcome
    }

    /// Asks the portal for the registry now (also done at start and every `registryInterval`).
    @discardableResult
    public func syncRegistry() async -> Bool {
        let etag = shared.withLock { $0.status.registryETag }
        let fetched = await transport.fetchRegistry(ifNoneMatch: etag)
        let now = unixMilliseconds()
        switch fetched {
        case .notModified:
            shared.withLock { $0.status.registryCheckedAt = now; $0.status.registryError = nil }
            return true
        case .document(let body, let newETag):
            do {
                try await applyRegistry?(RegistryDocument(body: body, etag: newETag))
            } catch {
                logger.error("registry from the portal not applied, keeping the old one: \(error)")
                shared.withLock { $0.status.registryCheckedAt = now; $0.status.registryError = "not applied: \(error)" }
                return false
            }
            logger.info("applied a new device registry from the portal", metadata: ["etag": "\(newETag ?? "none")"])
            shared.withLock { s in
                s.status.registryETag = newETag
                s.status.registryCheckedAt = now
                s.status.registryUpdatedAt = now
                s.status.registryError = nil
                s.status.registryUpdates += 1
            }
            return true
        case .failed(let outcome):
            logger.warning("registry sync failed, keeping the old registry: \(outcome)")
            shared.withLock { $0.status.registryCheckedAt = now; $0.status.registryError = "\(outcome)" }
            if case .unauthorized(let why) = outcome { markUnauthorized(why) }
            return false
        }
    }

    // MARK: Service

    public func run() async throws {
        setState(.uploading)
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Bool.self) { group in
                var running = 0
                for index in 0..<max(1, configuration.concurrency) {
                    group.addTask { await self.worker(index); return false }
                    running += 1
                }
                if let interval = configuration.registryInterval, applyRegistry != nil {
                    group.addTask { await self.registryLoop(interval); return false }
                    running += 1
                }
                if let interval = configuration.healthInterval, healthProvider != nil {
                    group.addTask { await self.healthLoop(interval); return false }
                    running += 1
                }
                group.addTask { await self.shutdownDeadline(); return true }
                // `true` is the deadline: whatever is still in flight is cancelled. When every worker has
                // returned, the deadline is cancelled too.
                while let deadline = await group.next() {
                    if !deadline { running -= 1 }
                    if deadline || running == 0 { group.cancelAll() }
                }
            }
        } onGracefulShutdown: {
            self.beginDrain()
        }
        await transport.shutdown()
        setState(.stopped)
    }

    /// Returns `shutdownGrace` after the drain began (or when cancelled).
    private func shutdownDeadline() async {
        while !Task.isCancelled {
            let generation = stopping.generation
            if shared.withLock({ $0.draining }) { break }
            await stopping.wait(after: generation)
        }
        if Task.isCancelled { return }
        await configuration.sleeper.sleep(for: configuration.shutdownGrace)
        if !Task.isCancelled {
            logger.warning("uploads still in flight when the shutdown grace ended: cancelled; their readings stay buffered and go again after the restart",
                           metadata: ["grace": "\(configuration.shutdownGrace)"])
        }
    }

    private func beginDrain() {
        shared.withLock { s in
            s.draining = true
            s.status.state = .draining
        }
        work.signal()
        backoff.signal()
        periodic.signal()
        stopping.signal()
    }

    private var draining: Bool { shared.withLock { $0.draining } || Task.isCancelled }

    // MARK: Workers

    private func worker(_ index: Int) async {
        var rng = SystemRandomNumberGenerator()
        var sourceFailures = 0
        while true {
            if let alarms = popAlarms() {
                let delivered = await deliverAlarms(alarms, rng: &rng)
                if !delivered && draining { dropQueuedAlarms("portal unreachable") }
                continue
            }
            if draining { return }
            let batch: UplinkBatch?
            do {
                batch = try await nextBatch()
                sourceFailures = 0
            } catch {
                sourceFailures += 1
                logger.error("reading buffer failed to hand out a batch: \(error)")
                noteFailure("reading buffer: \(error)")
                await backoff.sleep(for: configuration.retry.delay(failures: sourceFailures, retryAfter: nil, using: &rng))
                continue
            }
            guard let batch else {
                setStateIfNot(.idle, unless: { if case .unauthorized = $0 { return true }; return $0 == .draining })
                await work.sleep(for: configuration.idlePoll)
                continue
            }
            await deliver(batch, rng: &rng)
        }
    }

    private func nextBatch() async throws -> UplinkBatch? {
        let maxBytes = shared.withLock { $0.learnedMaxBytes }
        var priorities: [UplinkBatchPriority] = [.alarms]
        if let window = configuration.freshWindow {
            priorities.append(.fresh(receivedSince: unixMilliseconds() - RetryPolicy.nanoseconds(window) / 1_000_000))
        }
        priorities.append(.backlog)
        for p in priorities {
            if let b = try await source.nextBatch(maxReadings: configuration.maxReadings, maxBytes: maxBytes, priority: p) {
                return b
            }
        }
        return nil
    }

    /// Sends one leased batch (and the halves it splits into) until every reading in it is acknowledged or
    /// quarantined, or shutdown abandons it (its lease then stays with the source). The decisions are
    /// `BatchDelivery`'s (a value state machine, tested on its own); this carries them out: the transport,
    /// the buffer, the status, and the waits on the injected sleeper.
    private func deliver(_ leased: UplinkBatch, rng: inout SystemRandomNumberGenerator) async {
        var delivery = BatchDelivery(leased, retry: configuration.retry)
        while let wire = delivery.next {
            if Task.isCancelled { return }
            // The credentials this attempt goes out with: a 401 waits for a change from these, so a fix
            // made while the request was in flight is not missed.
            let credentialStamps = configuration.credentialFiles.map(FileStamp.of)
            let outcome = await transport.deliver(.readings(wire))
            switch delivery.answer(outcome, jitter: Double.random(in: 0..<1, using: &rng)) {
            case .acknowledge(let ids):
                endHold()
                await acknowledge(leased.id, ids, rng: &rng)
                // A limit learned from a 413 grows back slowly, so a one-off refusal does not
                // shrink batches for good.
                shared.withLock { s in
                    s.learnedMaxBytes = min(configuration.maxBytes, s.learnedMaxBytes + max(1, s.learnedMaxBytes / 16))
                }
                noteSuccess { s in
                    s.batchesSent += 1
                    s.readingsSent += ids.count
                    s.bodyBytesSent += Int64(wire.body.count)
                }
            case .quarantine(let rejected, let reason, let accepted):
                endHold()
                await rejectReadings(leased.id, rejected, reason: reason, rng: &rng)
                if !accepted.isEmpty { await acknowledge(leased.id, accepted, rng: &rng) }
                // A lone reading refused as too large is not a delivery; a 400 naming some readings is.
                if case .rejectedReadings = outcome {
                    noteSuccess { s in
                        s.batchesSent += 1
                        s.readingsSent += accepted.count
                        s.bodyBytesSent += Int64(wire.body.count)
                    }
                }
            case .split(let size):
                shared.withLock { s in
                    s.status.splits += 1
                    s.learnedMaxBytes = min(s.learnedMaxBytes, max(1024, size / 2))
                }
                logger.notice("portal refused a batch as too large (413): split it", metadata: [
                    "batch": "\(wire.id)", "readings": "\(wire.readingIDs.count)", "bytes": "\(size)"])
            case .hold(let why, let delay):
                // A 400 that names none of this batch's readings is not the portal judging readings: a
                // proxy, a WAF or a portal bug can answer that. Deleting the batch would lose readings
                // for good, so it is held (same batch, slow backoff) and an alarm says why, once.
                let first = shared.withLock { s -> Bool in
                    s.status.batchesHeld += 1
                    defer { s.heldStreak += 1 }
                    return s.heldStreak == 0
                }
                noteFailure(why)
                if first {
                    logger.critical("\(why)", metadata: ["batch": "\(wire.id)", "readings": "\(wire.readingIDs.count)"])
                    await onBatchHeld?(why, true)
                }
                if draining { return }
                await backoff.sleep(for: delay)
                if draining { return }
                shared.withLock { $0.status.retries += 1 }
            case .pauseForCredentials(let reason):
                markUnauthorized(reason)
                await waitForCredentials(since: credentialStamps)
                if draining { return }
                shared.withLock { $0.status.retries += 1 }
            case .retry(let delay, let reason):
                noteFailure(reason)
                if draining { return }
                await backoff.sleep(for: delay)
                if draining { return }
                shared.withLock { $0.status.retries += 1 }
            }
        }
    }

    private func acknowledge(_ batchID: String, _ ids: [String], rng: inout SystemRandomNumberGenerator) async {
        for attempt in 1...5 {
            do {
                try await source.acknowledge(batchID: batchID, readingIDs: ids)
                return
            } catch {
                logger.error("could not mark \(ids.count) delivered readings in the buffer (attempt \(attempt)): \(error)")
                await backoff.sleep(for: configuration.retry.delay(failures: attempt, retryAfter: nil, using: &rng))
            }
        }
        // They stay leased and go again after a restart; the portal deduplicates them.
    }

    private func rejectReadings(_ batchID: String, _ ids: [String], reason: String, rng: inout SystemRandomNumberGenerator) async {
        logger.error("portal refused \(ids.count) readings for good; quarantined", metadata: [
            "reason": "\(reason)", "readings": "\(ids.prefix(10).joined(separator: ","))"])
        shared.withLock { $0.status.readingsRejected += ids.count }
        for attempt in 1...5 {
            do {
                try await source.reject(batchID: batchID, readingIDs: ids, reason: reason)
                break
            } catch {
                logger.error("could not quarantine \(ids.count) rejected readings (attempt \(attempt)): \(error)")
                await backoff.sleep(for: configuration.retry.delay(failures: attempt, retryAfter: nil, using: &rng))
            }
        }
        await onReadingsRejected?(ids, reason)
    }

    // MARK: Alarms

    private func popAlarms() -> [PortalAlarm]? {
        shared.withLock { s in
            guard !s.alarms.isEmpty else { return nil }
            let n = min(100, s.alarms.count)
            let out = Array(s.alarms.prefix(n))
            s.alarms.removeFirst(n)
            return out
        }
    }

    /// False when the alarms went back to the queue (transient failure, credentials).
    private func deliverAlarms(_ alarms: [PortalAlarm], rng: inout SystemRandomNumberGenerator) async -> Bool {
        let id = alarms.count == 1 ? alarms[0].id : "\(alarms[0].id)..\(alarms[alarms.count - 1].id)"
        let credentialStamps = configuration.credentialFiles.map(FileStamp.of)
        let outcome = await transport.deliver(.alarms(id: id, body: PortalAlarm.body(alarms)))
        switch outcome {
        case .accepted:
            noteSuccess { $0.alarmsSent += alarms.count }
        case .rejectedReadings(_, let reason):
            logger.error("portal refused \(alarms.count) alarms: \(reason)")
            shared.withLock { $0.status.alarmsDropped += alarms.count }
        case .tooLarge:
            if alarms.count > 1 {
                requeueAlarms(Array(alarms[(alarms.count / 2)...]))
                requeueAlarms(Array(alarms[..<(alarms.count / 2)]))
            } else {
                logger.error("portal refused an alarm as too large: \(alarms[0].id)")
                shared.withLock { $0.status.alarmsDropped += 1 }
            }
        case .unauthorized(let reason):
            requeueAlarms(alarms)
            markUnauthorized(reason)
            if !draining { await waitForCredentials(since: credentialStamps) }
            return false
        case .transient(let reason, let retryAfter):
            requeueAlarms(alarms)
            let streak = noteFailure(reason)
            if !draining {
                await backoff.sleep(for: configuration.retry.delay(failures: streak, retryAfter: retryAfter, using: &rng))
            }
            return false
        }
        return true
    }

    /// At shutdown after a failed try: alarms live in memory only, and a dead portal must not hold the process.
    private func dropQueuedAlarms(_ why: String) {
        let lost = shared.withLock { s -> Int in
            let n = s.alarms.count
            s.alarms.removeAll()
            s.status.alarmsDropped += n
            return n
        }
        if lost > 0 { logger.error("shutting down with \(lost) alarms undelivered (\(why))") }
    }

    private func requeueAlarms(_ alarms: [PortalAlarm]) {
        shared.withLock { s in
            s.alarms.insert(contentsOf: alarms, at: 0)
            if s.alarms.count > configuration.maxQueuedAlarms {
                let drop = s.alarms.count - configuration.maxQueuedAlarms
                s.alarms.removeFirst(drop)
                s.status.alarmsDropped += drop
            }
        }
    }

    // MARK: Unauthorized

    private func markUnauthorized(_ reason: String) {
        let first = shared.withLock { s -> Bool in
            s.status.authorizationFailures += 1
            s.status.lastError = "unauthorized: \(reason)"
            s.status.lastErrorAt = unixMilliseconds()
            if case .unauthorized = s.status.state { return false }
            if !s.draining { s.status.state = .unauthorized(reason: reason) }
            return true
        }
        if first {
            logger.critical("""
                the portal refused this gateway's credentials (\(reason)). Uploading is paused; readings keep \
                being buffered. Fix the token file or client certificate; uploads resume when it changes.
                """, metadata: ["endpoint": "\(transport.endpointDescription)"])
        }
    }

    /// Waits for the credential files to differ from `stamps` (what the refused request went out with),
    /// a credentials-changed call, the slow retry period, or shutdown.
    private func waitForCredentials(since stamps: [FileStamp?]) async {
        // Time is what the sleeper says it slept (real time in production, virtual time in tests).
        var waited = Duration.zero
        let generation = shared.withLock { $0.credentialGeneration }
        while !draining {
            if configuration.credentialFiles.map(FileStamp.of) != stamps {
                logger.notice("credentials changed on disk: retrying the portal now")
                return
            }
            if waited >= configuration.unauthorizedRetry { return }
            let step = min(configuration.credentialPoll, configuration.unauthorizedRetry - waited)
            await backoff.sleep(for: step)
            waited += step
            if shared.withLock({ $0.credentialGeneration }) != generation { return }
        }
    }

    // MARK: Periodic

    private func registryLoop(_ interval: Duration) async {
        var rng = SystemRandomNumberGenerator()
        var failures = 0
        while !draining {
            if await syncRegistry() {
                failures = 0
                await periodic.sleep(for: interval)
            } else {
                failures += 1
                await periodic.sleep(for: min(interval, configuration.retry.delay(failures: failures, retryAfter: nil, using: &rng)))
            }
        }
    }

    private func healthLoop(_ interval: Duration) async {
        guard let healthProvider else { return }
        while !draining {
            var report = await healthProvider()
            report.uplink = HealthReport.Uplink(status)
            if report.reportedAt == 0 { report.reportedAt = unixMilliseconds() }
            let outcome = await transport.deliver(.health(body: report.body))
            record(outcome, what: "health report") { $0.healthReportsSent += 1 }
            await periodic.sleep(for: interval)
        }
    }

    // MARK: Status

    private func record(_ outcome: DeliveryOutcome, what: String, onSuccess: (inout UplinkStatus) -> Void) {
        switch outcome {
        case .accepted: noteSuccess(onSuccess)
        case .unauthorized(let why): markUnauthorized(why)
        default:
            logger.warning("\(what) not delivered: \(outcome)")
            noteFailure("\(what): \(outcome)")
        }
    }

    private func noteSuccess(_ update: (inout UplinkStatus) -> Void) {
        let recovered = shared.withLock { s -> Int in
            update(&s.status)
            s.status.lastSuccessAt = unixMilliseconds()
            if !s.draining { s.status.state = .uploading }
            let streak = s.failureStreak
            s.failureStreak = 0
            return streak
        }
        if recovered > 0 { logger.info("portal reachable again after \(recovered) failed attempts") }
    }

    /// A held batch (400 naming no reading) finally went through: clear its alarm.
    private func endHold() {
        let wasHeld = shared.withLock { s -> Bool in
            defer { s.heldStreak = 0 }
            return s.heldStreak > 0
        }
        if wasHeld {
            logger.notice("the portal accepted readings again after a 400 that named none: hold ended")
            Task { await onBatchHeld?("", false) }
        }
    }

    @discardableResult
    private func noteFailure(_ reason: String) -> Int {
        let streak = shared.withLock { s -> Int in
            s.status.failures += 1
            s.status.lastError = reason
            s.status.lastErrorAt = unixMilliseconds()
            s.failureStreak += 1
            if !s.draining { s.status.state = .retrying(reason: reason) }
            return s.failureStreak
        }
        if streak == 1 { logger.warning("portal delivery failed, retrying with backoff: \(reason)") }
        return streak
    }

    private func setState(_ state: UplinkState) {
        shared.withLock { $0.status.state = state }
    }

    private func setStateIfNot(_ state: UplinkState, unless keep: (UplinkState) -> Bool) {
        shared.withLock { s in
            if !keep(s.status.state) && !s.draining { s.status.state = state }
        }
    }
}
