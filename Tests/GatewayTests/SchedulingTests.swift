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
}
