import Foundation

/// One thing polled on a line at its own interval (a meter group, a Modbus profile's poll group).
public struct PollJob: Hashable, Sendable {
    public var name: String
    public var intervalMilliseconds: Int64

    public init(name: String, intervalMilliseconds: Int64) {
        self.name = name
        self.intervalMilliseconds = max(1, intervalMilliseconds)
    }
}

/// A monthly set-day (billing) readout: e.g. day 1 at 00:05 local time, spread over `spreadMilliseconds`
/// by the gateway's jitter so a street of gateways does not read out in the same second.
public struct SetDayRule: Hashable, Sendable {
    /// 1–12 for a yearly set day (e.g. 12 with day 31 is not possible: days stop at 28; use month 1, day 1);
    /// nil for every month.
    public var month: Int?
    public var day: Int
    public var hour: Int
    public var minute: Int
    public var timeZone: TimeZone
    public var spreadMilliseconds: Int64

    public init(month: Int? = nil, day: Int = 1, hour: Int = 0, minute: Int = 5, timeZone: TimeZone = .current,
                spreadMilliseconds: Int64 = 20 * 60_000) {
        self.month = month.map { min(max($0, 1), 12) }
        self.day = min(max(day, 1), 28)  // every month has day 28
        self.hour = min(max(hour, 0), 23)
        self.minute = min(max(minute, 0), 59)
        self.timeZone = timeZone
        self.spreadMilliseconds = max(0, spreadMilliseconds)
    }

    /// The first moment of this rule strictly after `after` (Unix ms), before the spread.
    public func next(after: Int64) -> Int64 {
        let seconds = after / 1000
        var y = 1970, m = 1
        // The month `after` falls in, in the rule's zone.
        let local = seconds + Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(seconds))))
        var days = local >= 0 ? local / 86_400 : (local - 86_399) / 86_400
        // civil_from_days (Howard Hinnant).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        m = Int(mp < 10 ? mp + 3 : mp - 9)
        y = Int(yoe + era * 400) + (m <= 2 ? 1 : 0)
        for _ in 0..<14 {
            if let only = month, only != m {
                m += 1
                if m > 12 { m = 1; y += 1 }
                continue
            }
            let naive = MeterClock.civilSeconds(year: y, month: m, day: day) + Int64(hour * 3600 + minute * 60)
            let t = (naive - Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(naive))))) * 1000
            if t > after { return t }
            m += 1
            if m > 12 { m = 1; y += 1 }
        }
        return after + 366 * 86_400_000  // unreachable: within 13 months the rule's month comes round
    }

    /// The last moment of this rule at or before `t` (Unix ms), before the spread.
    public func previous(atOrBefore t: Int64) -> Int64 {
        // Start 400 days back (a yearly rule occurs in any 400 days) and walk forward; at most 14 steps.
        var candidate = next(after: t &- 400 * 86_400_000)
        var last = candidate
        for _ in 0..<16 where candidate <= t {
            last = candidate
            candidate = next(after: candidate)
        }
        return last
    }
}

/// What a line polls: its jobs, an optional set-day readout, and the back-off cap.
public struct LinePlan: Hashable, Sendable {
    /// Line name as the registry has it ("mbus-line-1", "rs485-1").
    public var line: String
    public var jobs: [PollJob]
    public var setDay: SetDayRule?
    /// The job the set-day readout runs (the first job when nil).
    public var setDayJob: String?
    /// Longest interval a slow line backs off to.
    public var maxBackoffMilliseconds: Int64

    public init(line: String, jobs: [PollJob], setDay: SetDayRule? = nil, setDayJob: String? = nil,
                maxBackoffMilliseconds: Int64 = 6 * 3_600_000) {
        self.line = line
        self.jobs = jobs
        self.setDay = setDay
        self.setDayJob = setDayJob
        self.maxBackoffMilliseconds = maxBackoffMilliseconds
    }
}

/// Which poll runs now.
public enum PollKind: Hashable, Sendable {
    case routine(job: String)
    /// The monthly billing readout that was due at `dueAt` (Unix ms): store its values as set-day.
    case setDay(job: String, dueAt: Int64)

    public var job: String {
        switch self {
        case .routine(let j), .setDay(let j, _): return j
        }
    }
}

/// How a line is doing, for the health report and the line-slow alarm.
public struct LineStatus: Hashable, Sendable {
    public var line: String
    public var cycles = 0
    /// Cycles that took longer than their job's interval.
    public var slowCycles = 0
    /// Ticks not polled because the line was still busy or backed off (never queued).
    public var skippedTicks = 0
    public var lastCycleMilliseconds: Int64?
    /// Per job: the interval it polls at now (its own, or backed off).
    public var effectiveIntervals: [String: Int64] = [:]
    public var backoffLevels: [String: Int] = [:]
    public var nextSetDay: Int64?

    public var isSlow: Bool { backoffLevels.values.contains { $0 > 0 } }

    public init(line: String) { self.line = line }
}

/// Deterministic per-gateway jitter: the same gateway always polls at the same phase, neighbours at others.
public enum PollJitter {
    /// An offset in `0..<range` from a 64-bit FNV-1a hash of the gateway id and the names.
    public static func offset(gateway: String, _ names: String..., range: Int64) -> Int64 {
        guard range > 1 else { return 0 }
        var d = ContentDigest()
        d.add(gateway)
        for n in names { d.add(n) }
        return Int64(d.value % UInt64(range))
    }
}

/// The schedule of one line as a plain value: which poll is next and when, and what a finished poll
/// does to it. No clock, no tasks; `PollScheduler` drives it.
///
/// - Routine ticks lie on a grid of the job's interval, shifted by the gateway's jitter. At start, a job that
///   is overdue by the poll ledger polls at once, then joins the grid (its next tick at least an interval on).
/// - A poll that is still running when its next tick comes skips that tick (never queues it).
/// - A cycle longer than its current interval doubles the interval (up to the cap); a cycle that fits its
///   own interval again resets it.
public struct LineSchedule: Sendable {
    public let plan: LinePlan
    public let gatewayID: String
    struct JobState: Sendable {
        var job: PollJob
        var phase: Int64
        var nextDue: Int64
        var backoff: Int
    }
    private var jobs: [JobState]
    private var nextSetDay: Int64?
    /// A set-day readout missed while the gateway was off: due at once, with its original due time.
    private var catchUp: Int64?
    public private(set) var status: LineStatus

    /// `lastSetDayReadout`: when the line's last set-day readout was due (from the set-day ledger), nil when
    /// none is known (a new installation: nothing to catch up). A set day that passed after it, at most 31
    /// days ago, is read out at once: the gateway was off at the set day, and late values beat none.
    ///
    /// `lastPolls`: per job, when its last routine poll started (from the `PollLedger`). With it, a job whose
    /// last poll is unknown, at least one interval old, or in the future (the clock was set back) polls at
    /// once and then joins its grid; a job polled less than an interval ago waits for its first tick at least
    /// an interval after that poll, so a quick restart does not read the meters twice within the interval.
    /// Nil (no memory of polls): every job waits for its first tick.
    public init(plan: LinePlan, gatewayID: String, now: Int64, lastSetDayReadout: Int64? = nil, lastPolls: [String: Int64]? = nil) {
        self.plan = plan
        self.gatewayID = gatewayID
        status = LineStatus(line: plan.line)
        jobs = plan.jobs.map { j in
            let phase = PollJitter.offset(gateway: gatewayID, plan.line, j.name, range: j.intervalMilliseconds)
            var due = Self.grid(atOrAfter: now, interval: j.intervalMilliseconds, phase: phase)
            if let lastPolls {
                if let last = lastPolls[j.name], last <= now, now &- last < j.intervalMilliseconds {
                    // Polled less than an interval ago: its first tick at least an interval after that poll.
                    due = Self.grid(atOrAfter: last &+ j.intervalMilliseconds, interval: j.intervalMilliseconds, phase: phase)
                } else {
                    due = now
                }
            }
            return JobState(job: j, phase: phase, nextDue: due, backoff: 0)
        }
        if let rule = plan.setDay {
            nextSetDay = setDayTime(after: now, rule)
            let spread = PollJitter.offset(gateway: gatewayID, plan.line, "set-day", range: rule.spreadMilliseconds)
            let missed = rule.previous(atOrBefore: now &- spread) &+ spread
            if let last = lastSetDayReadout, last < missed, missed <= now, now &- missed <= 31 * 86_400_000 {
                catchUp = missed
            }
        }
        refreshStatus()
    }

    /// The first tick ≥ t on the grid phase + k × interval.
    static func grid(atOrAfter t: Int64, interval: Int64, phase: Int64) -> Int64 {
        let k = (t - phase + interval - 1)
        let n = k >= 0 ? k / interval : (k - interval + 1) / interval
        return phase + n * interval
    }

    func setDayTime(after t: Int64, _ rule: SetDayRule) -> Int64 {
        let spread = PollJitter.offset(gateway: gatewayID, plan.line, "set-day", range: rule.spreadMilliseconds)
        // The spread shifts the moment later; look from `t - spread` so a due time is not skipped.
        return rule.next(after: t - spread) + spread
    }

    /// The next poll and when it is due (Unix ms); nil when the plan has no jobs. A set-day readout wins a tie.
    public func next() -> (kind: PollKind, at: Int64)? {
        var best: (PollKind, Int64)?
        if let missed = catchUp, let name = plan.setDayJob ?? plan.jobs.first?.name {
            // Before anything else: its due time has passed.
            return (kind: .setDay(job: name, dueAt: missed), at: missed)
        }
        if let sd = nextSetDay, let name = plan.setDayJob ?? plan.jobs.first?.name {
            best = (.setDay(job: name, dueAt: sd), sd)
        }
        for j in jobs where best == nil || j.nextDue < best!.1 {
            best = (.routine(job: j.job.name), j.nextDue)
        }
        return best.map { (kind: $0.0, at: $0.1) }
    }

    /// A poll ran from `startedAt` to `endedAt` (Unix ms). Returns true when the line's slowness changed
    /// (it became slow, or recovered), so the caller can raise or clear the alarm.
    @discardableResult
    public mutating func finished(_ kind: PollKind, startedAt: Int64, endedAt: Int64) -> Bool {
        let wasSlow = status.isSlow
        let duration = max(0, endedAt - startedAt)
        status.cycles += 1
        status.lastCycleMilliseconds = duration
        if case .setDay(_, let due) = kind, let rule = plan.setDay {
            if due == catchUp {
                catchUp = nil
            } else {
                nextSetDay = setDayTime(after: max(due, startedAt), rule)
            }
        }
        if let i = jobs.firstIndex(where: { $0.job.name == kind.job }) {
            var j = jobs[i]
            let base = j.job.intervalMilliseconds
            let current = effective(j)
            if duration > current {
                status.slowCycles += 1
                j.backoff += 1
            } else if duration <= base {
                j.backoff = 0
            }
            if duration > base && duration <= current { status.slowCycles += 1 }
            let interval = effective(j)
            let earliest = max(startedAt + interval, endedAt)
            let next = Self.grid(atOrAfter: earliest, interval: base, phase: j.phase)
            // Ticks after the one that was due and before the next one are not polled (and never queued).
            if j.nextDue <= endedAt { status.skippedTicks += Int(max(0, (next - j.nextDue) / base - 1)) }
            j.nextDue = next
            jobs[i] = j
        }
        refreshStatus()
        return wasSlow != status.isSlow
    }

    func effective(_ j: JobState) -> Int64 {
        var v = j.job.intervalMilliseconds
        for _ in 0..<min(j.backoff, 40) {
            if v >= plan.maxBackoffMilliseconds { break }
            v *= 2
        }
        return max(j.job.intervalMilliseconds, min(v, plan.maxBackoffMilliseconds))
    }

    private mutating func refreshStatus() {
        for j in jobs {
            status.effectiveIntervals[j.job.name] = effective(j)
            status.backoffLevels[j.job.name] = j.backoff
        }
        status.nextSetDay = nextSetDay
    }

    /// The line-slow condition while any job is backed off (for `AlarmTracker` / `ReadingPipeline.report`).
    public var conditions: [AlarmCondition] {
        guard status.isSlow else { return [] }
        let slow = jobs.filter { $0.backoff > 0 }.map { "\($0.job.name) every \(effective($0) / 1000) s instead of \($0.job.intervalMilliseconds / 1000) s" }
        return [AlarmCondition(code: "line_slow", priority: .major,
                               message: "line \(plan.line) is slow (last cycle \((status.lastCycleMilliseconds ?? 0) / 1000) s): polling \(slow.joined(separator: ", ")); check the line for meters that do not answer, or split it")]
    }
}
