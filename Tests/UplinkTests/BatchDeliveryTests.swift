import Logging
import PortalFake
import ServiceLifecycle
import Testing
@testable import Uplink

/// `BatchDelivery`: the uploader's decisions for one batch, driven answer by answer without a network or a
/// clock (issue 16 item 4).
@Suite("batch delivery state machine")
struct BatchDeliveryTests {
    static let retry = RetryPolicy(base: .seconds(1), cap: .seconds(300), maxRetryAfter: .seconds(3600))

    static func batch(_ n: Int, id: String = "b1") -> UplinkBatch {
        ReadingsBody.batch(id: id, readings: (0..<n).map(MemorySource.backlogReading))
    }

    @Test("200: acknowledged, done")
    func accepted() {
        var d = BatchDelivery(Self.batch(3), retry: Self.retry)
        #expect(d.answer(.accepted, jitter: 0.5) == .acknowledge(["r0", "r1", "r2"]))
        #expect(d.isDone && d.next == nil)
    }

    @Test("5xx: backoff doubles with each failure up to the cap; a success resets it; Retry-After is a floor")
    func transientBackoff() {
        var d = BatchDelivery(Self.batch(2), retry: Self.retry)
        // With jitter just below 1 the delay is the ceiling of full-jitter backoff: 2 s, 4 s, 8 s …
        var delays: [Duration] = []
        for _ in 0..<12 {
            guard case .retry(let delay, _) = d.answer(.transient(reason: "HTTP 500", retryAfter: nil), jitter: 0.999_999) else {
                Issue.record("a 500 must be retried")
                return
            }
            delays.append(delay)
        }
        #expect(zip(delays, delays.dropFirst()).allSatisfy { $0 <= $1 }, "\(delays)")
        #expect(delays.last! <= .seconds(300) && delays.last! > .seconds(290))
        #expect(d.failures == 12 && !d.isDone)
        // The portal's Retry-After is never cut short, whatever the jitter.
        guard case .retry(let floor, _) = d.answer(.transient(reason: "HTTP 503", retryAfter: .seconds(1_200)), jitter: 0) else {
            Issue.record("a 503 must be retried")
            return
        }
        #expect(floor >= .seconds(1_200))
        #expect(d.answer(.accepted, jitter: 0) == .acknowledge(["r0", "r1"]))
        #expect(d.failures == 0)
    }

    @Test("413: split in halves until the portal takes them; a single reading still too large is quarantined")
    func tooLarge() {
        var d = BatchDelivery(Self.batch(4), retry: Self.retry)
        #expect(d.answer(.tooLarge, jitter: 0) == .split(bytes: Self.batch(4).body.count))
        #expect(d.next?.readingIDs == ["r0", "r1"])
        #expect(d.answer(.accepted, jitter: 0) == .acknowledge(["r0", "r1"]))
        #expect(d.next?.readingIDs == ["r2", "r3"])
        guard case .split = d.answer(.tooLarge, jitter: 0) else {
            Issue.record("two readings split again")
            return
        }
        #expect(d.answer(.accepted, jitter: 0) == .acknowledge(["r2"]))
        #expect(d.answer(.tooLarge, jitter: 0) == .quarantine(rejected: ["r3"], reason: "too large for the portal (413) even alone", accepted: []))
        #expect(d.isDone)
    }

    @Test("400 naming readings: exactly those quarantined, the rest acknowledged; naming none: held, never deleted")
    func badRequest() {
        var d = BatchDelivery(Self.batch(3), retry: Self.retry)
        guard case .hold(_, let delay) = d.answer(.rejectedReadings(ids: ["x9"], reason: "proxy"), jitter: 0.999_999) else {
            Issue.record("a 400 naming no reading of the batch must hold it")
            return
        }
        #expect(delay > .zero && !d.isDone && d.next?.readingIDs == ["r0", "r1", "r2"])
        #expect(d.answer(.rejectedReadings(ids: ["r1", "x9"], reason: "unit unknown"), jitter: 0)
                == .quarantine(rejected: ["r1"], reason: "unit unknown", accepted: ["r0", "r2"]))
        #expect(d.isDone)
    }

    @Test("401: pause for credentials, then the same part again")
    func unauthorized() {
        var d = BatchDelivery(Self.batch(1), retry: Self.retry)
        #expect(d.answer(.unauthorized(reason: "HTTP 401"), jitter: 0) == .pauseForCredentials(reason: "HTTP 401"))
        #expect(d.next?.readingIDs == ["r0"] && d.failures == 0)
        #expect(d.answer(.accepted, jitter: 0) == .acknowledge(["r0"]))
    }

    @Test("any sequence of answers ends with every reading acknowledged or quarantined exactly once")
    func everyReadingSettlesOnce() {
        var rng = SplitMix64(seed: 7)
        for round in 0..<200 {
            let n = 1 + Int(rng.next() % 12)
            var d = BatchDelivery(Self.batch(n, id: "b\(round)"), retry: Self.retry)
            var settled: [String] = []
            var steps = 0
            while let part = d.next, steps < 500 {
                steps += 1
                let outcome: DeliveryOutcome
                switch rng.next() % 6 {
                case 0: outcome = .tooLarge
                case 1: outcome = .transient(reason: "reset", retryAfter: rng.next() % 2 == 0 ? nil : .seconds(5))
                case 2: outcome = .unauthorized(reason: "401")
                case 3: outcome = .rejectedReadings(ids: rng.next() % 2 == 0 ? ["nope"] : [part.readingIDs[Int(rng.next() % UInt64(part.readingIDs.count))]], reason: "bad")
                default: outcome = .accepted
                }
                switch d.answer(outcome, jitter: Double(rng.next() % 1000) / 1000) {
                case .acknowledge(let ids): settled += ids
                case .quarantine(let bad, _, let good):
                    settled.append(contentsOf: bad)
                    settled.append(contentsOf: good)
                case .retry(let delay, _), .hold(_, let delay): #expect(delay >= .zero)
                case .split, .pauseForCredentials: break
                }
            }
            #expect(d.isDone, "round \(round) did not finish in 500 answers")
            #expect(settled.sorted() == (0..<n).map { "r\($0)" }.sorted(), "round \(round)")
        }
    }
}

@Suite("uploader in virtual time: credentials")
struct UnauthorizedVirtualTimeTests {
    @Test("a 401 pauses uploading for the slow retry period of virtual time, then the same readings go out")
    func unauthorizedWaitsInVirtualTime() async throws {
        let sleeper = VirtualSleeper()
        var c = UploaderConfiguration()
        c.concurrency = 1
        c.maxReadings = 100
        c.retry = BatchDeliveryTests.retry
        c.idlePoll = .seconds(3600)
        c.registryInterval = nil
        c.healthInterval = nil
        c.freshWindow = nil
        c.unauthorizedRetry = .seconds(900)
        c.credentialPoll = .seconds(10)
        c.sleeper = sleeper
        let transport = ScriptedTransport([.unauthorized(reason: "HTTP 401")])
        let source = MemorySource(backlog: 5)
        let uploader = Uploader(transport: transport, source: source, configuration: c, logger: quietLogger())
        let group = ServiceGroup(configuration: .init(services: [uploader], gracefulShutdownSignals: [], cancellationSignals: [], logger: quietLogger()))
        let task = Task { try await group.run() }
        for _ in 0..<100_000 where transport.attempts < 1 { await Task.yield() }
        // 890 s of virtual time: still paused, polled for new credentials every 10 s.
        for _ in 0..<89 {
            for _ in 0..<200 where sleeper.pending.isEmpty { await Task.yield() }
            sleeper.advance(by: .seconds(10))
        }
        for _ in 0..<2_000 { await Task.yield() }
        #expect(transport.attempts == 1, "retried before the slow retry period")
        // The last 10 s: the pause ends and the readings go out and are acknowledged.
        for _ in 0..<20 where transport.attempts < 2 {
            for _ in 0..<200 where sleeper.pending.isEmpty { await Task.yield() }
            sleeper.advance(by: .seconds(10))
            for _ in 0..<2_000 where transport.attempts < 2 { await Task.yield() }
        }
        for _ in 0..<100_000 where await source.acknowledged.count < 5 { await Task.yield() }
        #expect(transport.attempts == 2)
        #expect(await source.acknowledged == MemorySource.ids(0..<5))
        await group.triggerGracefulShutdown()
        try await task.value
    }
}
