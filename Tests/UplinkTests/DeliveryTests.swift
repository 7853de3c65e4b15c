import Logging
import PortalFake
import Synchronization
import Testing
@testable import Uplink

/// Exactly once at the portal: the set of stored reading ids equals the set sent minus the ones the portal
/// refuses; every reading is acknowledged or rejected at the source exactly once; nothing stays leased;
/// the source never leased more than the uploader's window.
struct DeliveryCheck {
    var sent: Int
    var stored: Int
    var receipts: Int
    var duplicates: Int
    var rejected: Int
    var faults: Int
    var maxLeased: Int
    var retries: Int
    var splits: Int

    static func verify(fake: PortalFake, source: MemorySource, expected: Set<String>, bad: Set<String> = [],
                       uploader: Uploader, window: Int, label: String) async -> DeliveryCheck {
        let stored = fake.store.uniqueReadingIDs
        let acknowledged = await source.acknowledged
        let rejected = await source.rejected
        let errors = await source.protocolErrors
        let maxLeased = await source.maxLeased
        let outstanding = await source.outstandingLeases
        let status = uploader.status
        #expect(stored == expected.subtracting(bad), "stored ids differ: missing \(expected.subtracting(bad).subtracting(stored).count), extra \(stored.subtracting(expected).count)")
        #expect(acknowledged == expected.subtracting(bad))
        #expect(rejected == bad)
        #expect(stored.isDisjoint(with: bad))
        #expect(errors.isEmpty, "source protocol errors: \(errors.prefix(5))")
        #expect(outstanding == 0)
        #expect(maxLeased <= window, "leased \(maxLeased) readings at once; the window is \(window)")
        let check = DeliveryCheck(sent: expected.count, stored: stored.count, receipts: fake.store.readingReceipts,
                                  duplicates: fake.store.duplicateReceipts, rejected: rejected.count,
                                  faults: fake.faults.injectedTotal, maxLeased: maxLeased, retries: status.retries,
                                  splits: status.splits)
        print("[uplink delivery] \(label): sent \(check.sent), stored unique \(check.stored), receipts \(check.receipts) "
              + "(duplicates deduplicated \(check.duplicates)), rejected \(check.rejected), faults injected \(check.faults), "
              + "retries \(check.retries), splits \(check.splits), max leased \(check.maxLeased)")
        return check
    }
}

enum FaultCase: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case serverError, unavailableRetryAfter, tooManyRequests, timeoutBeforeStoring, timeoutAfterStoring
    case resetBeforeStoring, resetAfterStoring, slow, payloadTooLarge, sizeLimit, badReadings, unauthorized
    var testDescription: String { rawValue }

    var faults: [PortalFault] {
        switch self {
        case .serverError: return Array(repeating: .serverError, count: 6)
        case .unavailableRetryAfter: return Array(repeating: .unavailable(retryAfterSeconds: 1), count: 4)
        case .tooManyRequests: return Array(repeating: .tooManyRequests(retryAfterSeconds: 1), count: 4)
        case .timeoutBeforeStoring: return Array(repeating: .timeout(afterStoring: false), count: 3)
        case .timeoutAfterStoring: return Array(repeating: .timeout(afterStoring: true), count: 3)
        case .resetBeforeStoring: return Array(repeating: .connectionReset(afterStoring: false), count: 5)
        case .resetAfterStoring: return Array(repeating: .connectionReset(afterStoring: true), count: 5)
        case .slow: return Array(repeating: .slow(.milliseconds(100)), count: 5)
        case .payloadTooLarge: return Array(repeating: .payloadTooLarge, count: 5)
        case .sizeLimit, .badReadings: return []
        case .unauthorized: return Array(repeating: .unauthorized, count: 2)
        }
    }
}

@Suite("Uplink delivery through the portal fake", .serialized)
struct DeliveryTests {
    @Test("every reading exactly once under each fault", arguments: FaultCase.allCases)
    func underEachFault(_ fault: FaultCase) async throws {
        let fake = PortalFake(configuration: .init(token: "secret"))
        fake.update { $0.holdDuration = .seconds(3) }
        let bad: Set<String> = fault == .badReadings ? ["r7", "r1234", "r4999", "r2500"] : []
        if fault == .badReadings { fake.update { $0.rejectedReadingIDs = bad } }
        if fault == .sizeLimit { fake.update { $0.maxBodyBytes = 20_000 } }
        try await fake.start()
        defer { Task { await fake.stop() } }
        fake.faults.enqueue(fault.faults)
        let token = TokenFile("secret")
        defer { token.remove() }

        let n = 5_000
        let source = MemorySource(backlog: n)
        var config = testConfiguration()
        if fault == .unauthorized { config.unauthorizedRetry = .milliseconds(50) }
        let rejections = Mutex<[String]>([])
        let uploader = Uploader(transport: try transport(for: fake, token: token, timeout: .milliseconds(700)), source: source,
                                configuration: config, logger: quietLogger(),
                                onReadingsRejected: { ids, _ in rejections.withLock { $0 += ids } })
        let done = try await runUntil(uploader) { await source.drained }
        #expect(done, "uploader did not finish: \(String(describing: uploader.status))")
        let check = await DeliveryCheck.verify(fake: fake, source: source, expected: MemorySource.ids(0..<n), bad: bad,
                                               uploader: uploader, window: config.concurrency * config.maxReadings,
                                               label: fault.rawValue)
        #expect(fake.faults.pending == 0, "not every scheduled fault was hit")
        #expect(Set(rejections.withLock { $0 }) == bad, "the alarm callback names the rejected readings")
        switch fault {
        case .payloadTooLarge, .sizeLimit: #expect(check.splits > 0)
        case .timeoutAfterStoring, .resetAfterStoring: #expect(check.duplicates > 0, "answers were lost after storing, so resends arrive")
        case .badReadings, .slow: break
        default: #expect(check.retries > 0)
        }
        if fault == .unavailableRetryAfter { #expect(fake.store.statuses[503] == 4) }
        #expect(uploader.status.state == .stopped)
    }

    @Test("a random mix of every fault over 100,000 readings: exactly once, bounded window")
    func randomMix() async throws {
        let fake = PortalFake(configuration: .init(token: "secret"))
        fake.update {
            $0.holdDuration = .seconds(3)
            $0.maxBodyBytes = 150_000
            $0.rejectedReadingIDs = ["r17", "r40000", "r99999", "r65536"]
        }
        try await fake.start()
        defer { Task { await fake.stop() } }
        fake.faults.setRandom(seed: 0x5EED_7, probability: 0.2, faults: [
            .serverError, .unavailable(retryAfterSeconds: 1), .tooManyRequests(retryAfterSeconds: 1),
            .timeout(afterStoring: false), .timeout(afterStoring: true),
            .connectionReset(afterStoring: false), .connectionReset(afterStoring: true),
            .slow(.milliseconds(30)), .payloadTooLarge, .unauthorized,
        ])
        let token = TokenFile("secret")
        defer { token.remove() }
        let n = 100_000
        let source = MemorySource(backlog: n)
        var config = testConfiguration(maxReadings: 1_000)
        config.unauthorizedRetry = .milliseconds(30)
        let uploader = Uploader(transport: try transport(for: fake, token: token, timeout: .milliseconds(1_500)), source: source,
                                configuration: config, logger: quietLogger())
        let polls = Mutex(0)
        let done = try await runUntil(uploader, limit: 60_000) {
            if polls.withLock({ $0 += 1; return $0 % 500 == 0 }) {
                print("[uplink random mix] stored \(fake.store.readingCount), remaining \(await source.remaining), leases \(await source.outstandingLeases), \(uploader.status.state)")
            }
            return await source.drained
        }
        #expect(done, "uploader did not finish: \(String(describing: uploader.status))")
        let check = await DeliveryCheck.verify(fake: fake, source: source, expected: MemorySource.ids(0..<n),
                                               bad: ["r17", "r40000", "r99999", "r65536"], uploader: uploader,
                                               window: config.concurrency * config.maxReadings, label: "random mix, 100,000 readings")
        #expect(check.faults > 20)
        print("[uplink delivery] faults by kind: \(fake.faults.injected.map { "\($0.key): \($0.value)" }.sorted().joined(separator: ", "))")
    }

    @Test("401 stops uploading, says the credentials are wrong, keeps the lease, resumes when the token file changes")
    func unauthorizedThenTokenFixed() async throws {
        let fake = PortalFake(configuration: .init(token: "right"))
        try await fake.start()
        defer { Task { await fake.stop() } }
        let token = TokenFile("wrong")
        defer { token.remove() }
        let logs = CapturedLogs()
        let source = MemorySource(backlog: 2_000)
        var config = testConfiguration()
        config.credentialFiles = [token.path]
        let uploader = Uploader(transport: try transport(for: fake, token: token), source: source,
                                configuration: config, logger: logs.logger)
        let paused = Mutex(false)
        let done = try await runUntil(uploader) {
            if case .unauthorized = uploader.status.state, !paused.withLock({ $0 }) {
                paused.withLock { $0 = true }
                // Nothing reached the portal, nothing was lost: the leased batches wait.
                #expect(fake.store.readingCount == 0)
                #expect(await source.outstandingLeases > 0)
                #expect(uploader.status.state.description.contains("credentials"))
                token.write("right")
            }
            return await source.drained
        }
        #expect(done)
        #expect(paused.withLock { $0 }, "the uploader never reported unauthorized")
        #expect(logs.contains("refused this gateway's credentials"))
        #expect(uploader.status.authorizationFailures >= 1)
        _ = await DeliveryCheck.verify(fake: fake, source: source, expected: MemorySource.ids(0..<2_000), uploader: uploader,
                                       window: 1_000, label: "401 then token fixed")
        // Slow retry without a file change: with a long retry period nothing is re-sent.
        #expect(fake.store.statuses[401]! <= 2 * config.concurrency + 2)
    }

    @Test("queued alarms and alarm readings overtake a backlog; fresh readings go before old ones")
    func alarmsOvertakeBacklog() async throws {
        let fake = PortalFake(configuration: .init(token: "secret"))
        try await fake.start()
        defer { Task { await fake.stop() } }
        // Every readings request is slow, so the backlog takes a while.
        fake.faults.enqueue(Array(repeating: .slow(.milliseconds(40)), count: 200))
        let token = TokenFile("secret")
        defer { token.remove() }
        let n = 20_000
        let source = MemorySource(backlog: n)
        let config = testConfiguration(maxReadings: 250)
        let uploader = Uploader(transport: try transport(for: fake, token: token), source: source,
                                configuration: config, logger: quietLogger())
        let injectedAt = Mutex<Int?>(nil)
        let done = try await runUntil(uploader) {
            if injectedAt.withLock({ $0 }) == nil, fake.store.readingCount >= 1_000 {
                injectedAt.withLock { $0 = fake.store.readingCount }
                let now = unixMilliseconds()
                await source.addAlarm(UplinkReading(id: "alarm-1", device: "mbus:KAM:06855817", quantity: "Error flags", value: 4,
                                                    unit: "", receivedAt: now, readingClass: "alarm"))
                await source.addFresh(UplinkReading(id: "fresh-1", device: "mbus:KAM:06855817", quantity: "Energy", value: 1,
                                                    unit: "Wh", receivedAt: now))
                uploader.raiseAlarm(PortalAlarm(id: "leak-1", kind: "meter_alarm", device: "mbus:KAM:06855817", raisedAt: now,
                                                message: "leak"))
                uploader.readingsAvailable()
            }
            return await source.drained
        }
        #expect(done)
        let at = try #require(injectedAt.withLock { $0 })
        let alarmArrival = try #require(fake.store.arrival(of: "alarm-1"))
        let freshArrival = try #require(fake.store.arrival(of: "fresh-1"))
        // In flight when they were added: at most `concurrency` batches; then they go next.
        let bound = at + (config.concurrency + 1) * config.maxReadings
        #expect(alarmArrival <= bound, "alarm reading arrived \(alarmArrival)th; backlog was at \(at)")
        #expect(freshArrival <= bound + config.maxReadings, "fresh reading arrived \(freshArrival)th; backlog was at \(at)")
        #expect(alarmArrival < n - 5_000 && freshArrival < n - 5_000)
        #expect(fake.store.alarms.map(\.id) == ["leak-1"])
        print("[uplink pacing] backlog \(n): alarm added at \(at) arrived \(alarmArrival)th, fresh arrived \(freshArrival)th")
        var expected = MemorySource.ids(0..<n)
        expected.insert("alarm-1")
        expected.insert("fresh-1")
        _ = await DeliveryCheck.verify(fake: fake, source: source, expected: expected, uploader: uploader,
                                       window: config.concurrency * config.maxReadings, label: "alarms overtake backlog")
    }

    @Test("a source without priority support still delivers everything (the hint is optional)")
    func sourceWithoutPriority() async throws {
        let fake = PortalFake()
        try await fake.start()
        defer { Task { await fake.stop() } }
        let token = TokenFile("any")
        defer { token.remove() }
        let source = MemorySource(backlog: 3_000, supportsPriority: false)
        let uploader = Uploader(transport: try transport(for: fake, token: token), source: source,
                                configuration: testConfiguration(), logger: quietLogger())
        #expect(try await runUntil(uploader) { await source.drained })
        _ = await DeliveryCheck.verify(fake: fake, source: source, expected: MemorySource.ids(0..<3_000), uploader: uploader,
                                       window: 1_000, label: "no priority hint")
    }

    @Test("graceful shutdown finishes the batch in flight; what was not acknowledged goes after a restart")
    func gracefulDrain() async throws {
        let fake = PortalFake()
        try await fake.start()
        defer { Task { await fake.stop() } }
        let token = TokenFile("any")
        defer { token.remove() }
        fake.faults.enqueue(Array(repeating: .slow(.milliseconds(150)), count: 4))
        let source = MemorySource(backlog: 10_000)
        let config = testConfiguration(maxReadings: 500)
        let first = Uploader(transport: try transport(for: fake, token: token), source: source, configuration: config,
                             logger: quietLogger())
        // Stop as soon as the first batches are on the wire.
        _ = try await runUntil(first) { fake.store.requests[.readings, default: 0] >= 1 }
        #expect(first.status.state == .stopped)
        // Everything handed out was finished: acknowledged, none left leased, and the rest never leased.
        #expect(await source.outstandingLeases == 0)
        let afterFirst = fake.store.readingCount
        #expect(afterFirst > 0 && afterFirst < 10_000)
        #expect(await source.acknowledged.count == afterFirst)

        let second = Uploader(transport: try transport(for: fake, token: token), source: source, configuration: config,
                              logger: quietLogger())
        #expect(try await runUntil(second) { await source.drained })
        _ = await DeliveryCheck.verify(fake: fake, source: source, expected: MemorySource.ids(0..<10_000), uploader: second,
                                       window: 1_000, label: "drain and restart")
    }
}
