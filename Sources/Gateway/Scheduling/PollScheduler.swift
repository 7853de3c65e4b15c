/// Why a line cannot be scheduled.
public struct SchedulerError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Runs each line's `LineSchedule` on a clock: at most one master per half-duplex line, because a line's
/// polls run one after another in a single loop and a line can only be run once at a time.
///
///     let scheduler = PollScheduler(gatewayID: registry.gateway, clock: SystemSchedulingClock())
///     try await scheduler.run(LinePlan(line: "mbus-line-1", jobs: [PollJob(name: "meters", intervalMilliseconds: 900_000)],
///                                      setDay: SetDayRule(day: 1, hour: 0, minute: 5))) { kind in
///         await readAllMeters(kind)          // the line's job; returns when the cycle is done
///     } report: { status, conditions in
///         try? await pipeline.report(conditions: conditions, device: "line:" + status.line, scope: "line", at: now)
///     }
public actor PollScheduler {
    public nonisolated let gatewayID: String
    public nonisolated let clock: any SchedulingClock
    private var running: [String: LineStatus] = [:]

    public init(gatewayID: String, clock: any SchedulingClock = SystemSchedulingClock()) {
        self.gatewayID = gatewayID
        self.clock = clock
    }

    /// Polls `plan.line` until the task is cancelled (then returns normally). `job` runs one poll and returns
    /// when it is done; it is never started again before it returned. `report` hears the line's status after
    /// every poll, with the line-slow condition while it is backed off (empty when it recovered).
    public func run(_ plan: LinePlan, lastSetDayReadout: Int64? = nil, job: @escaping @Sendable (PollKind) async -> Void,
                    report: (@Sendable (LineStatus, [AlarmCondition]) async -> Void)? = nil) async throws(SchedulerError) {
        guard running[plan.line] == nil else {
            throw SchedulerError(message: "line \(plan.line) is already being polled; one master per line")
        }
        guard !plan.jobs.isEmpty else { throw SchedulerError(message: "line \(plan.line) has nothing to poll: give it at least one job") }
        var schedule = LineSchedule(plan: plan, gatewayID: gatewayID, now: clock.now(), lastSetDayReadout: lastSetDayReadout)
        running[plan.line] = schedule.status
        defer { running[plan.line] = nil }
        while !Task.isCancelled, let (kind, at) = schedule.next() {
            do { try await clock.sleep(until: at) } catch { return }
            let started = clock.now()
            await job(kind)
            let ended = clock.now()
            let changed = schedule.finished(kind, startedAt: started, endedAt: ended)
            running[plan.line] = schedule.status
            if let report, changed || schedule.status.isSlow { await report(schedule.status, schedule.conditions) }
        }
    }

    public func status(line: String) -> LineStatus? { running[line] }

    /// A line driven by its own loop (a Modbus line's `FairLine`) reports its status here, so status and
    /// `run --cycles` see it like the others. Fails when the line is already being polled.
    public func track(_ status: LineStatus) throws(SchedulerError) {
        if let old = running[status.line], old.cycles > status.cycles {
            throw SchedulerError(message: "line \(status.line) is already being polled; one master per line")
        }
        running[status.line] = status
    }

    public func untrack(line: String) { running[line] = nil }
    public var lines: [String] { running.keys.sorted() }
}
