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
    /// When each line's jobs last polled; nil when the scheduler keeps no memory of polls (then every job
    /// waits for its first tick).
    private var polls: PollLedger?
    private let pollsFile: PollLedgerFile?
    private var pollProblems: [String] = []

    /// `polls`: the poll ledger loaded at start, so overdue lines are read at once (see `LineSchedule`);
    /// `pollsFile`: where it is saved (at most every `pollsSaveInterval`, and when a line stops).
    public init(gatewayID: String, clock: any SchedulingClock = SystemSchedulingClock(),
                polls: PollLedger? = nil, pollsFile: PollLedgerFile? = nil) {
        self.gatewayID = gatewayID
        self.clock = clock
        self.polls = polls
        self.pollsFile = pollsFile
    }

    /// The poll ledger as it stands (nil without one).
    public var pollLedger: PollLedger? { polls }

    /// Problems saving the poll ledger since the last call (for the log).
    public func drainPollProblems() -> [String] {
        defer { pollProblems.removeAll() }
        return pollProblems
    }

    /// The file is written at most this often (the first poll after start always), so a line polled every
    /// 10 s does not wear an SD card. A restart may then find a record up to this old and read a short-interval
    /// line once more than needed: the safe side.
    public static let pollsSaveInterval: Int64 = 900_000
    private var pollsSavedAt: Int64?
    /// The ledger holds polls the file does not yet.
    private var pollsUnsaved = false

    private func polled(line: String, job: String, startedAt: Int64) {
        guard var ledger = polls else { return }
        ledger.polled(line: line, job: job, startedAt: startedAt)
        polls = ledger
        pollsUnsaved = true
        let now = clock.now()
        if let saved = pollsSavedAt, saved <= now, now &- saved < Self.pollsSaveInterval { return }
        savePolls()
    }

    /// Writes the ledger now if it holds unsaved polls (a line stopping: shutdown or reload).
    private func savePolls() {
        guard pollsUnsaved, let ledger = polls, let pollsFile else { return }
        pollsSavedAt = clock.now()
        pollsUnsaved = false
        do { try pollsFile.save(ledger) } catch {
            pollProblems.append(error.message)
            if pollProblems.count > 16 { pollProblems.removeFirst() }
        }
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
        var schedule = LineSchedule(plan: plan, gatewayID: gatewayID, now: clock.now(), lastSetDayReadout: lastSetDayReadout,
                                    lastPolls: polls?.lastPolls(line: plan.line))
        running[plan.line] = schedule.status
        defer {
            running[plan.line] = nil
            savePolls()
        }
        while !Task.isCancelled, let (kind, at) = schedule.next() {
            do { try await clock.sleep(until: at) } catch { return }
            let started = clock.now()
            await job(kind)
            let ended = clock.now()
            let changed = schedule.finished(kind, startedAt: started, endedAt: ended)
            // A set-day readout reads the whole line too, so it counts as the job's poll. A poll cut short
            // by shutdown does not: its unread meters are read at the next start.
            if !Task.isCancelled { polled(line: plan.line, job: kind.job, startedAt: started) }
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
