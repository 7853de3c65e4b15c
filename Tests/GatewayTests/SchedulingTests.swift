import Foundation
import Synchronization
import Testing
@testable import Gateway

@Suite("poll scheduling")
struct SchedulingTests {
    let utc = TimeZone(identifier: "UTC")!
    let berlin = TimeZone(identifier: "Europe/Berlin")!
    let t0: Int64 = 1_780_000_000_000  // 2026-05-28T20:26:40Z
    let minute: Int64 = 60_000

    func plan(_ interval: Int64, setDay: SetDayRule? = nil, cap: Int64 = 3_600_000) -> LinePlan {
        LinePlan(line: "mbus-line-1", jobs: [PollJob(name: "meters", intervalMilliseconds: interval)], setDay: setDay, maxBackoffMilliseconds: cap)
    }

    @Test("jitter is deterministic per gateway, spreads a street of gateways, and stays inside the interval")
    func jitter() {
        let a1 = LineSchedule(plan: plan(15 * minute), gatewayID: "gw-0007", now: t0).next()!.at
        let a2 = LineSchedule(plan: plan(15 * minute), gatewayID: "gw-0007", now: t0).next()!.at
        #expect(a1 == a2)
        let street = (0..<50).map { LineSchedule(plan: plan(15 * minute), gatewayID: "gw-\($0)", now: t0).next()!.at }
        #expect(Set(street).count >= 45)
        #expect(street.allSatisfy { $0 >= t0 && $0 < t0 + 15 * minute })
        // Spread over the interval, not bunched: both halves are used.
        #expect(street.contains { $0 < t0 + 7 * minute } && street.contains { $0 >= t0 + 8 * minute })
    }

    @Test("routine polls follow the interval on the gateway's phase")
    func interval() {
        var s = LineSchedule(plan: plan(15 * minute), gatewayID: "gw-0007", now: t0)
        var times: [Int64] = []
        for _ in 0..<4 {
            let (kind, at) = s.next()!
            #expect(kind == .routine(job: "meters"))
            times.append(at)
            s.finished(kind, startedAt: at, endedAt: at + 20_000)
        }
        #expect(zip(times, times.dropFirst()).allSatisfy { $1 - $0 == 15 * minute })
        #expect(s.status.cycles == 4 && s.status.skippedTicks == 0 && !s.status.isSlow)
    }

    @Test("set-day readout on day 1 at 00:05 local time, once a month, spread by the jitter")
    func setDay() {
        let rule = SetDayRule(day: 1, hour: 0, minute: 5, timeZone: berlin, spreadMilliseconds: 20 * minute)
        // 2026-06-01T00:05 Europe/Berlin (CEST, +2) = 2026-05-31T22:05Z.
        let june = MeterClock.civilSeconds(year: 2026, month: 5, day: 31) * 1000 + (22 * 60 + 5) * minute
        #expect(rule.next(after: t0) == june)
        #expect(rule.next(after: june) == MeterClock.civilSeconds(year: 2026, month: 6, day: 30) * 1000 + (22 * 60 + 5) * minute)
        // December → January crosses the year (CET, +1).
        let dec = MeterClock.civilSeconds(year: 2026, month: 12, day: 15) * 1000
        #expect(rule.next(after: dec) == MeterClock.civilSeconds(year: 2026, month: 12, day: 31) * 1000 + (23 * 60 + 5) * minute)

        // A yearly set day: 1 January 00:05 only.
        let yearly = SetDayRule(month: 1, day: 1, hour: 0, minute: 5, timeZone: berlin)
        #expect(yearly.next(after: t0) == MeterClock.civilSeconds(year: 2026, month: 12, day: 31) * 1000 + (23 * 60 + 5) * minute)
        var s = LineSchedule(plan: plan(6 * 3_600_000, setDay: rule), gatewayID: "gw-0007", now: june - 30 * minute)
        var setDays: [Int64] = []
        var clock = june - 30 * minute
        while clock < june + 45 * 86_400_000 {
            let (kind, at) = s.next()!
            clock = at
            if case .setDay(let job, let due) = kind {
                #expect(job == "meters" && due == at)
                setDays.append(at)
            }
            s.finished(kind, startedAt: at, endedAt: at + minute)
        }
        #expect(setDays.count == 2)
        let spread = setDays[0] - june
        #expect(spread >= 0 && spread < 20 * minute)
        let other = LineSchedule(plan: plan(6 * 3_600_000, setDay: rule), gatewayID: "gw-0008", now: june - 30 * minute)
        #expect(other.status.nextSetDay != s.status.nextSetDay.map { _ in setDays[0] } || true)
        #expect(other.status.nextSetDay! >= june && other.status.nextSetDay! < june + 20 * minute)
    }

    @Test("a set day missed while the gateway was off is read out at the next start, once; none for a new installation or an old miss")
    func missedSetDay() {
        let rule = SetDayRule(day: 1, hour: 0, minute: 5, timeZone: utc, spreadMilliseconds: 0)
        let may1 = MeterClock.civilSeconds(year: 2026, month: 5, day: 1) * 1000 + 5 * minute
        let april1 = MeterClock.civilSeconds(year: 2026, month: 4, day: 1) * 1000 + 5 * minute
        #expect(rule.previous(atOrBefore: t0) == may1 && rule.previous(atOrBefore: may1) == may1 && rule.previous(atOrBefore: may1 - 1) == april1)
        // Off on 1 May (last readout: 1 April), back on 28 May: the May readout runs first, due 1 May.
        var s = LineSchedule(plan: plan(15 * minute, setDay: rule), gatewayID: "gw-0007", now: t0, lastSetDayReadout: april1)
        let (kind, at) = s.next()!
        #expect(kind == .setDay(job: "meters", dueAt: may1) && at <= t0)
        s.finished(kind, startedAt: t0, endedAt: t0 + minute)
        // Then routine polls, and the next set day as usual (1 June), not the May one again.
        let (after, _) = s.next()!
        #expect(after == .routine(job: "meters"))
        #expect(s.status.nextSetDay == MeterClock.civilSeconds(year: 2026, month: 6, day: 1) * 1000 + 5 * minute)
        // Already done, a new installation, or a miss more than 31 days old: nothing to catch up.
        #expect(LineSchedule(plan: plan(15 * minute, setDay: rule), gatewayID: "gw-0007", now: t0, lastSetDayReadout: may1).next()!.kind == .routine(job: "meters"))
        #expect(LineSchedule(plan: plan(15 * minute, setDay: rule), gatewayID: "gw-0007", now: t0).next()!.kind == .routine(job: "meters"))
        let july = MeterClock.civilSeconds(year: 2026, month: 7, day: 20) * 1000
        let yearly = SetDayRule(month: 5, day: 1, hour: 0, minute: 5, timeZone: utc, spreadMilliseconds: 0)
        #expect(LineSchedule(plan: plan(15 * minute, setDay: yearly), gatewayID: "gw-0007", now: july, lastSetDayReadout: april1).next()!.kind == .routine(job: "meters"))
    }

    @Test("a slow line backs off exponentially to the cap, never piles up, reports, and recovers")
    func backoff() {
        var s = LineSchedule(plan: plan(minute, cap: 8 * minute), gatewayID: "gw-0007", now: t0)
        var intervals: [Int64] = []
        var changes: [Bool] = []
        var last: Int64? = nil
        for _ in 0..<6 {
            let (kind, at) = s.next()!
            if let l = last { #expect(at >= l) }
            // Each cycle takes 10 minutes (meters not answering): far longer than the 60 s interval.
            changes.append(s.finished(kind, startedAt: at, endedAt: at + 10 * minute))
            #expect(s.next()!.at >= at + 10 * minute)  // never starts before the last one ended
            intervals.append(s.status.effectiveIntervals["meters"]!)
            last = at
        }
        #expect(intervals == [2, 4, 8, 8, 8, 8].map { $0 * minute })
        #expect(changes == [true, false, false, false, false, false])
        #expect(s.status.isSlow && s.status.skippedTicks > 0)
        #expect(s.conditions.map(\.code) == ["line_slow"])
        #expect(s.conditions[0].message.contains("mbus-line-1"))
        // A cycle that fits the backed-off interval but not its own keeps the interval (no needless doubling).
        var steady = LineSchedule(plan: plan(minute, cap: 8 * minute), gatewayID: "gw-0007", now: t0)
        for _ in 0..<4 {
            let (k, a) = steady.next()!
            steady.finished(k, startedAt: a, endedAt: a + 90_000)
        }
        #expect(steady.status.effectiveIntervals["meters"] == 2 * minute && steady.status.isSlow)
        // The line is quick again: back to its own interval, the alarm condition goes.
        let (kind, at) = s.next()!
        let recovered = s.finished(kind, startedAt: at, endedAt: at + 5_000)
        #expect(recovered)
        #expect(s.status.effectiveIntervals["meters"] == minute && s.conditions.isEmpty)
    }

    @Test("the runner on a virtual clock: one poll at a time per line, a second master for the line is refused")
    func runnerOnVirtualClock() async throws {
        let clock = VirtualClock(now: t0)
        let scheduler = PollScheduler(gatewayID: "gw-0007", clock: clock)
        let log = Mutex<[(start: Int64, end: Int64)]>([])
        let inFlight = Atomic<Int>(0)
        let overlap = Atomic<Bool>(false)
        let reports = Mutex<[[String]]>([])
        let p = LinePlan(line: "rs485-1", jobs: [PollJob(name: "fast", intervalMilliseconds: 30_000), PollJob(name: "energy", intervalMilliseconds: 90_000)],
                         maxBackoffMilliseconds: 240_000)
        let task = Task {
            try await scheduler.run(p, job: { _ in
                if inFlight.add(1, ordering: .sequentiallyConsistent).newValue > 1 { overlap.store(true, ordering: .sequentiallyConsistent) }
                let start = clock.now()
                // Every poll takes 40 s of (virtual) line time: longer than the fast job's interval.
                try? await clock.sleep(until: start + 40_000)
                log.withLock { $0.append((start, clock.now())) }
                inFlight.subtract(1, ordering: .sequentiallyConsistent)
            }, report: { _, conditions in reports.withLock { $0.append(conditions.map(\.code)) } })
        }
        // Drive virtual time: always jump to the next deadline once the scheduler sleeps.
        var steps = 0
        while log.withLock({ $0.count }) < 8 && steps < 10_000 {
            steps += 1
            if let next = clock.nextDeadline { clock.advance(to: next) } else { await Task.yield() }
        }
        await #expect(throws: SchedulerError.self) { try await scheduler.run(p, job: { _ in }) }
        #expect(await scheduler.status(line: "rs485-1")?.isSlow == true)
        task.cancel()
        try await task.value
        let runs = log.withLock { $0 }
        #expect(runs.count >= 8)
        let overlapped = overlap.load(ordering: .sequentiallyConsistent)
        #expect(!overlapped)
        #expect(zip(runs, runs.dropFirst()).allSatisfy { $1.start >= $0.end })
        #expect(reports.withLock { $0.first } == ["line_slow"])
        #expect(await scheduler.status(line: "rs485-1") == nil)  // released after cancellation
    }

    @Test("at start, a job the poll ledger shows overdue (or never polled) polls at once; one polled within its interval waits for its tick")
    func startFromLedger() {
        let interval = 15 * minute
        let grid = LineSchedule(plan: plan(interval), gatewayID: "gw-0007", now: t0).next()!.at
        #expect(grid > t0)  // this gateway's phase puts its tick after t0, so "at once" is visible
        func first(_ last: [String: Int64]?) -> Int64 {
            LineSchedule(plan: plan(interval), gatewayID: "gw-0007", now: t0, lastPolls: last).next()!.at
        }
        #expect(first(nil) == grid)                          // no memory of polls: the grid as before
        #expect(first([:]) == t0)                            // never polled: at once
        #expect(first(["meters": t0 - interval]) == t0)      // exactly one interval ago: due
        #expect(first(["meters": t0 - 3 * 86_400_000]) == t0) // after a long outage
        // A quick restart: not read twice within the interval; the first tick an interval after the last poll.
        func tick(atOrAfter t: Int64) -> Int64 { LineSchedule(plan: plan(interval), gatewayID: "gw-0007", now: t).next()!.at }
        for ago in [interval - 1, 10 * minute, minute, 0] {
            let at = first(["meters": t0 - ago])
            #expect(at == tick(atOrAfter: t0 - ago + interval))
            #expect(at >= t0 - ago + interval && at > t0)
        }
        #expect(first(["meters": t0 + 86_400_000]) == t0)    // the clock was set back: the record cannot be trusted
        #expect(first(["other-job": t0 - minute]) == t0)     // another job's record says nothing of this one

        // After the catch-up the job joins its grid, at least one interval after the catch-up started.
        var s = LineSchedule(plan: plan(interval), gatewayID: "gw-0007", now: t0, lastPolls: [:])
        let (kind, at) = s.next()!
        #expect(kind == .routine(job: "meters") && at == t0)
        s.finished(kind, startedAt: t0, endedAt: t0 + 40_000)
        let next = s.next()!.at
        #expect(next >= t0 + interval && next < t0 + 2 * interval)
        #expect((next - grid) % interval == 0)
        #expect(s.status.skippedTicks == 0)
    }

    @Test("the scheduler keeps its poll ledger on disk: a restart within the interval waits, one after it reads at once, a poll cut short does not count")
    func ledgerAcrossRestarts() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("polls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = PollLedgerFile(path: dir + "/polls.json")
        let interval = 15 * minute
        let p = plan(interval)
        let grid = LineSchedule(plan: p, gatewayID: "gw-0007", now: t0).next()!.at

        /// Runs the line until `polls` polls have started (each taking 30 s of virtual time, or cut by
        /// cancellation after `cutAfter` ms), then cancels; returns the start times.
        func run(from now: Int64, polls: Int, cutAfter: Int64? = nil) async throws -> [Int64] {
            let clock = VirtualClock(now: now)
            let scheduler = PollScheduler(gatewayID: "gw-0007", clock: clock, polls: try file.load(), pollsFile: file)
            let starts = Mutex<[Int64]>([])
            let done = Atomic<Int>(0)
            let task = Task {
                try await scheduler.run(p, job: { _ in
                    starts.withLock { $0.append(clock.now()) }
                    try? await clock.sleep(until: clock.now() + 30_000)
                    done.add(1, ordering: .sequentiallyConsistent)
                })
            }
            var steps = 0
            while starts.withLock({ $0.count }) < polls && steps < 10_000 {
                steps += 1
                if let next = clock.nextDeadline { clock.advance(to: next) } else { await Task.yield() }
            }
            if let cutAfter {
                while clock.nextDeadline == nil { await Task.yield() }
                clock.advance(to: clock.now() + cutAfter)
                task.cancel()
            } else {
                while done.load(ordering: .sequentiallyConsistent) < polls && steps < 20_000 {
                    steps += 1
                    if let next = clock.nextDeadline { clock.advance(to: next) } else { await Task.yield() }
                }
                // Cancel only once the scheduler has recorded the finished poll (a cancel before would cut it).
                let last = starts.withLock { $0.last }
                while await scheduler.pollLedger?.lastPolls(line: p.line)["meters"] != last && steps < 30_000 {
                    steps += 1
                    await Task.yield()
                }
                task.cancel()
            }
            try await task.value
            return starts.withLock { $0 }
        }

        // A new installation: the first poll at once, and the file remembers it.
        #expect(try await run(from: t0, polls: 1) == [t0])
        #expect(try file.load().lastPolls(line: "mbus-line-1") == ["meters": t0])
        // Restarted five minutes later: the meters were read, so the line waits for its tick.
        let second = try await run(from: t0 + 5 * minute, polls: 1)
        #expect(second.first.map { $0 >= t0 + interval && $0 < t0 + 2 * interval && ($0 - grid) % interval == 0 } == true)
        let secondStart = second[0]
        // A poll cut short by shutdown ten seconds in: not recorded.
        let cut = try await run(from: secondStart + interval + minute, polls: 1, cutAfter: 10_000)
        #expect(cut == [secondStart + interval + minute])
        #expect(try file.load().lastPolls(line: "mbus-line-1") == ["meters": secondStart])
        // So the next start, a minute later, reads at once again.
        #expect(try await run(from: secondStart + interval + 2 * minute, polls: 1) == [secondStart + interval + 2 * minute])
    }

    @Test("a damaged poll ledger is an error that names the file; a missing one is empty; the ledger keeps only configured lines")
    func pollLedgerFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("polls-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = PollLedgerFile(path: path)
        #expect(try file.load() == PollLedger())
        try Data("{\"lines\": 17".utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try file.load()
            Issue.record("a damaged ledger loaded")
        } catch {
            #expect(error.message.contains(path) && error.message.contains("move it aside"))
        }
        var ledger = PollLedger()
        ledger.polled(line: "mbus-line-1", job: "meters", startedAt: t0)
        ledger.polled(line: "old-line", job: "meters", startedAt: t0)
        ledger.keep(only: ["mbus-line-1"])
        try file.save(ledger)
        #expect(try file.load().lines == ["mbus-line-1": ["meters": t0]])
    }

    @Test("a line polled every minute writes the poll ledger at most every 15 minutes (SD cards), the first poll at once, and what is left when it stops")
    func pollLedgerWriteRate() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("polls-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = PollLedgerFile(path: path)
        let clock = VirtualClock(now: t0)
        let scheduler = PollScheduler(gatewayID: "gw-0007", clock: clock, polls: PollLedger(), pollsFile: file)
        let starts = Mutex<[Int64]>([])
        let task = Task {
            try await scheduler.run(plan(minute), job: { _ in starts.withLock { $0.append(clock.now()) } })
        }
        var steps = 0
        // 20 polls; the 20th has started when the 19th is recorded in memory.
        while starts.withLock({ $0.count }) < 20 && steps < 10_000 {
            steps += 1
            if let next = clock.nextDeadline { clock.advance(to: next) } else { await Task.yield() }
        }
        let s = starts.withLock { $0 }
        #expect(s.first == t0)
        let onDisk = try #require(try file.load().lastPolls(line: "mbus-line-1")["meters"])
        let inMemory = try #require(await scheduler.pollLedger?.lastPolls(line: "mbus-line-1")["meters"])
        // Saved at the first poll and once 15 minutes later, not after each of the 20.
        #expect(onDisk == s.first { $0 >= t0 + PollScheduler.pollsSaveInterval })
        #expect(inMemory > onDisk)
        // When the line stops (shutdown, reload), what the file lacks is written.
        task.cancel()
        try await task.value
        let last = try #require(await scheduler.pollLedger?.lastPolls(line: "mbus-line-1")["meters"])
        #expect(try file.load().lastPolls(line: "mbus-line-1")["meters"] == last)
    }
}
