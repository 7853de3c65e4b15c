import Logging
import ServiceLifecycle
import Synchronization
import Testing
@testable import Uplink

/// A clock the test moves: every uploader wait registers here and ends only when the test advances
/// past its deadline (or the wait is cancelled, which is recorded: a cancelled backoff is what the
/// Retry-After bug looked like).
final class VirtualSleeper: UplinkSleeper {
    private struct Sleeper {
        var deadline: Duration
        var length: Duration
        var continuation: CheckedContinuation<Void, Never>?
    }
    private struct State {
        var now: Duration = .zero
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
        var cancelled: [Duration] = []
    }
    private let state = Mutex(State())

    func sleep(for duration: Duration) async {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            s.sleepers[s.nextID] = Sleeper(deadline: s.now + duration, length: duration, continuation: nil)
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    guard s.sleepers[id] != nil, !Task.isCancelled else { return true }
                    s.sleepers[id]?.continuation = c
                    return false
                }
                if resumeNow {
                    state.withLock { _ = $0.sleepers.removeValue(forKey: id) }
                    c.resume()
                }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard let sleeper = s.sleepers.removeValue(forKey: id) else { return nil }
                s.cancelled.append(sleeper.length)
                return sleeper.continuation
            }
            c?.resume()
        }
    }

    /// Moves the clock and resumes every wait that is due.
    func advance(by d: Duration) {
        let due = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.now += d
            let ids = s.sleepers.filter { $0.value.deadline <= s.now && $0.value.continuation != nil }.map(\.key)
            return ids.compactMap { s.sleepers.removeValue(forKey: $0)?.continuation }
        }
        for c in due { c.resume() }
    }

    /// Waits (without wall-clock time) that are in progress, by length.
    var pending: [Duration] { state.withLock { $0.sleepers.values.filter { $0.continuation != nil }.map(\.length) } }
    /// Waits that were cut short, by length.
    var cancelled: [Duration] { state.withLock { $0.cancelled } }
}

/// A portal that answers from a script, one outcome per readings message, then accepts.
final class ScriptedTransport: PortalTransport {
    private let script: Mutex<[DeliveryOutcome]>
    private let delivered = Mutex<[[String]]>([])
    init(_ script: [DeliveryOutcome]) { self.script = Mutex(script) }
    var endpointDescription: String { "scripted" }
    func deliver(_ message: PortalMessage) async -> DeliveryOutcome {
        guard case .readings(let batch) = message else { return .accepted }
        delivered.withLock { $0.append(batch.readingIDs) }
        return script.withLock { $0.isEmpty ? .accepted : $0.removeFirst() }
    }
    func fetchRegistry(ifNoneMatch etag: String?) async -> RegistryFetch { .notModified }
    func shutdown() async {}
    /// Readings messages received so far.
    var attempts: Int { delivered.withLock { $0.count } }
}

/// A portal that takes every readings request and answers one only when the test releases it, or never
/// (until the request is cancelled).
final class SilentTransport: PortalTransport {
    private struct State {
        var attempts = 0
        var cancelled = 0
        var waiting: [Int: CheckedContinuation<DeliveryOutcome, Never>] = [:]
    }
    private let state = Mutex(State())
    var endpointDescription: String { "silent" }
    func deliver(_ message: PortalMessage) async -> DeliveryOutcome {
        guard case .readings = message else { return .accepted }
        let id = state.withLock { s -> Int in
            s.attempts += 1
            return s.attempts
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<DeliveryOutcome, Never>) in
                let now = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    s.waiting[id] = c
                    return false
                }
                if now { c.resume(returning: .transient(reason: "cancelled", retryAfter: nil)) }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<DeliveryOutcome, Never>? in
                s.cancelled += 1
                return s.waiting.removeValue(forKey: id)
            }
            c?.resume(returning: .transient(reason: "cancelled", retryAfter: nil))
        }
    }
    /// Answers every request in flight with `outcome`.
    func answerAll(_ outcome: DeliveryOutcome) {
        let all = state.withLock { s -> [CheckedContinuation<DeliveryOutcome, Never>] in
            defer { s.waiting.removeAll() }
            return Array(s.waiting.values)
        }
        for c in all { c.resume(returning: outcome) }
    }
    func fetchRegistry(ifNoneMatch etag: String?) async -> RegistryFetch { .notModified }
    func shutdown() async {}
    var attempts: Int { state.withLock { $0.attempts } }
    var inFlight: Int { state.withLock { $0.waiting.count } }
    var cancelled: Int { state.withLock { $0.cancelled } }
}

/// Lets the uploader's tasks run without letting any time pass: a bounded number of scheduler turns.
private func settle(until condition: () async -> Bool = { false }, turns: Int = 2_000) async {
    for _ in 0..<turns {
        if await condition() { return }
        await Task.yield()
    }
}

@Suite("uploader in virtual time")
struct VirtualTimeTests {
    func configuration(_ sleeper: VirtualSleeper) -> UploaderConfiguration {
        var c = UploaderConfiguration()
        c.concurrency = 1
        c.maxReadings = 100
        c.retry = RetryPolicy(base: .seconds(1), cap: .seconds(300), maxRetryAfter: .seconds(3600))
        c.idlePoll = .seconds(3600)
        c.registryInterval = nil
        c.healthInterval = nil
        c.freshWindow = nil
        c.sleeper = sleeper
        return c
    }

    @Test("a 503 with Retry-After: 30 is not retried before 30 s, however many readings arrive meanwhile")
    func retryAfterHolds() async throws {
        let sleeper = VirtualSleeper()
        let transport = ScriptedTransport([.transient(reason: "HTTP 503", retryAfter: .seconds(30))])
        let source = MemorySource(backlog: 10)
        let uploader = Uploader(transport: transport, source: source, configuration: configuration(sleeper), logger: quietLogger())
        let group = ServiceGroup(configuration: .init(services: [uploader], gracefulShutdownSignals: [], cancellationSignals: [], logger: quietLogger()))
        let task = Task { try await group.run() }

        // The first attempt fails; the worker waits at least the 30 s the portal asked for.
        await settle(until: { transport.attempts == 1 && sleeper.pending.contains { $0 >= .seconds(30) } }, turns: 100_000)
        #expect(transport.attempts == 1)
        #expect(sleeper.pending.contains { $0 >= .seconds(30) })

        // Housekeeping says "new readings" every 2 s for 28 s of virtual time.
        for _ in 0..<14 {
            uploader.readingsAvailable()
            await settle()
            sleeper.advance(by: .seconds(2))
            await settle()
        }
        #expect(transport.attempts == 1, "the backoff was cut short by new readings")
        #expect(sleeper.cancelled.allSatisfy { $0 < .seconds(30) }, "the Retry-After wait was cancelled")

        // Past the Retry-After the same readings go out and are accepted.
        sleeper.advance(by: .seconds(3_600))
        await settle(until: { await source.acknowledged.count == 10 }, turns: 100_000)
        #expect(transport.attempts == 2)
        #expect(await source.acknowledged == MemorySource.ids(0..<10))
        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test("a 400 that names no reading of the batch holds it (alarm raised and cleared), never deletes it")
    func unnamed400Holds() async throws {
        let sleeper = VirtualSleeper()
        let refusal = DeliveryOutcome.rejectedReadings(ids: ["not-in-this-batch"], reason: "Request blocked by WAF")
        let transport = ScriptedTransport([refusal, refusal, refusal])
        let source = MemorySource(backlog: 5)
        let events = Mutex<[(String, Bool)]>([])
        let uploader = Uploader(transport: transport, source: source, configuration: configuration(sleeper), logger: quietLogger(),
                                onBatchHeld: { reason, held in events.withLock { $0.append((reason, held)) } })
        let group = ServiceGroup(configuration: .init(services: [uploader], gracefulShutdownSignals: [], cancellationSignals: [], logger: quietLogger()))
        let task = Task { try await group.run() }

        for attempt in 1...3 {
            await settle(until: { transport.attempts == attempt && !sleeper.pending.isEmpty }, turns: 100_000)
            #expect(transport.attempts == attempt)
            #expect(await source.rejected.isEmpty, "readings were deleted on a 400 that named none of them")
            sleeper.advance(by: .seconds(600))
        }
        await settle(until: { await source.acknowledged.count == 5 }, turns: 100_000)
        await settle(until: { events.withLock { $0.count } == 2 }, turns: 100_000)
        #expect(await source.acknowledged == MemorySource.ids(0..<5))
        #expect(await source.rejected.isEmpty)
        #expect(uploader.status.batchesHeld == 3)
        let seen = events.withLock { $0 }
        #expect(seen.map(\.1) == [true, false], "one alarm edge when held, one when released")
        #expect(seen.first?.0.contains("WAF") == true)
        await group.triggerGracefulShutdown()
        try await task.value
    }

    @Test("a 400 naming some readings quarantines exactly those and acknowledges the rest")
    func named400Quarantines() async throws {
        let sleeper = VirtualSleeper()
        let transport = ScriptedTransport([.rejectedReadings(ids: ["r1", "r3"], reason: "unit unknown")])
        let source = MemorySource(backlog: 5)
        let uploader = Uploader(transport: transport, source: source, configuration: configuration(sleeper), logger: quietLogger())
        let group = ServiceGroup(configuration: .init(services: [uploader], gracefulShutdownSignals: [], cancellationSignals: [], logger: quietLogger()))
        let task = Task { try await group.run() }
        await settle(until: { await source.acknowledged.count == 3 }, turns: 100_000)
        #expect(await source.rejected == ["r1", "r3"])
        #expect(await source.acknowledged == ["r0", "r2", "r4"])
        #expect(uploader.status.batchesHeld == 0)
        await group.triggerGracefulShutdown()
        try await task.value
    }

    /// An uploader with a 5 s shutdown grace, 10 readings to send and a portal that answers only when told.
    func silentPortalRun() -> (VirtualSleeper, SilentTransport, MemorySource, Uploader, ServiceGroup) {
        let sleeper = VirtualSleeper()
        let transport = SilentTransport()
        let source = MemorySource(backlog: 10)
        var c = configuration(sleeper)
        c.shutdownGrace = .seconds(5)
        let uploader = Uploader(transport: transport, source: source, configuration: c, logger: quietLogger())
        let group = ServiceGroup(configuration: .init(services: [uploader], gracefulShutdownSignals: [], cancellationSignals: [], logger: quietLogger()))
        return (sleeper, transport, source, uploader, group)
    }

    @Test("shutdown waits the grace for a portal that never answers, then cancels: the batch stays leased, unacknowledged")
    func shutdownGraceCancelsSilentPortal() async throws {
        let (sleeper, transport, source, uploader, group) = silentPortalRun()
        let finished = Mutex(false)
        let task = Task {
            try await group.run()
            finished.withLock { $0 = true }
        }
        await settle(until: { transport.inFlight == 1 }, turns: 100_000)
        #expect(transport.inFlight == 1)

        await group.triggerGracefulShutdown()
        await settle(until: { sleeper.pending.contains(.seconds(5)) }, turns: 100_000)
        #expect(sleeper.pending.contains(.seconds(5)), "no shutdown grace is running")
        // Within the grace the request is left alone: the portal may still answer.
        sleeper.advance(by: .seconds(4))
        await settle()
        #expect(!finished.withLock { $0 }, "the uploader stopped before the grace ended")
        #expect(transport.cancelled == 0)
        // At the end of the grace it is cancelled and the uploader returns.
        sleeper.advance(by: .seconds(1))
        await settle(until: { finished.withLock { $0 } }, turns: 100_000)
        #expect(finished.withLock { $0 }, "the uploader still waits for a portal that never answers")
        if !finished.withLock({ $0 }) { transport.answerAll(.transient(reason: "test gave up", retryAfter: nil)) }
        try await task.value
        #expect(transport.cancelled == 1)
        #expect(transport.attempts == 1, "a new attempt was made during shutdown")
        #expect(await source.acknowledged.isEmpty)
        #expect(await source.leasedNow == 10, "the batch in flight must stay leased, to go again after a restart")
        #expect(uploader.status.state == .stopped)
    }

    @Test("a portal that answers within the grace has the batch in flight acknowledged at shutdown")
    func shutdownGraceLetsAnswerLand() async throws {
        let (sleeper, transport, source, uploader, group) = silentPortalRun()
        let task = Task { try await group.run() }
        await settle(until: { transport.inFlight == 1 }, turns: 100_000)
        await group.triggerGracefulShutdown()
        await settle(until: { sleeper.pending.contains(.seconds(5)) }, turns: 100_000)
        sleeper.advance(by: .seconds(3))
        await settle()
        transport.answerAll(.accepted)
        try await task.value
        #expect(await source.acknowledged == MemorySource.ids(0..<10))
        #expect(transport.cancelled == 0)
        #expect(transport.attempts == 1)
        #expect(sleeper.cancelled.contains(.seconds(5)), "the grace should end early once nothing is in flight")
        #expect(uploader.status.readingsSent == 10)
    }
}
