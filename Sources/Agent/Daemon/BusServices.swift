import Drivers
import Foundation
import Gateway
import Logging

/// A bus reader the supervisor runs in its own task: it returns when that task is cancelled, after
/// finishing the transaction in progress.
package protocol BusRunner: Sendable {
    var name: String { get }
    func run() async
}

/// Unix milliseconds now, by the gateway's clock (the scheduler's, so that both agree).
package func unixMilliseconds() -> Int64 { SystemSchedulingClock().now() }

/// Hands one input to the pipeline and logs what became of it. A buffer failure (disk full even after
/// eviction) is logged and counted by the pipeline; the bus goes on, so the next reading may fit.
package func feed(_ pipeline: ReadingPipeline, _ input: PipelineInput, logger: Logger) async -> PipelineOutcome? {
    do {
        let outcome = try await pipeline.ingest(input)
        switch outcome {
        case .buffered(let device, let n, let alarms):
            logger.debug("buffered", metadata: ["device": "\(device)", "values": "\(n)", "alarm_edges": "\(alarms.count)"])
        case .failed(let why):
            logger.notice("telegram not stored", metadata: ["reason": "\(why)"])
        case .rejected(let reason):
            logger.notice("reading rejected", metadata: ["reason": "\(reason)"])
        case .duplicate, .unknownDevice:
            break
        }
        return outcome
    } catch {
        logger.error("reading buffer refused a reading", metadata: ["error": "\(error)"])
        return nil
    }
}

/// A batch of inputs in one buffer transaction; a buffer failure is logged and the bus goes on.
package func feed(_ pipeline: ReadingPipeline, _ inputs: [PipelineInput], logger: Logger) async -> [PipelineOutcome] {
    do {
        let outcomes = try await pipeline.ingest(inputs)
        for outcome in outcomes {
            switch outcome {
            case .failed(let why): logger.notice("telegram not stored", metadata: ["reason": "\(why)"])
            case .rejected(let reason): logger.notice("reading rejected", metadata: ["reason": "\(reason)"])
            default: break
            }
        }
        return outcomes
    } catch {
        logger.error("reading buffer refused a batch of readings", metadata: ["error": "\(error)", "telegrams": "\(inputs.count)"])
        return []
    }
}

/// One wired M-Bus line: on its schedule, reads every meter the registry places on it, one after another
/// (one master per line), and feeds the answers to the pipeline.
///
/// Shutdown: the runner's task is cancelled, but a readout in progress finishes its transaction first
/// (MBusLine's calls are not interruptible mid-frame), and no new meter is started after cancellation.
package struct WiredLineRunner: BusRunner {
    package let name: String
    package let endpoint: BusEndpoint
    package let options: MBusLineOptions
    package let addressing: GatewayConfig.MBusLineConfig.Addressing
    package let plan: LinePlan
    package let pipeline: ReadingPipeline
    package let scheduler: PollScheduler
    package let board: StatusBoard
    package let logger: Logger

    package func run() async {
        await board.update("mbus:\(name)", kind: "wired M-Bus line", health: .starting, detail: "opening \(endpoint)")
        let line: MBusLine
        do {
            line = try MBusLine(endpoint: endpoint, options: options)
        } catch {
            // The line stays down until a restart or reload; everything else keeps running.
            await board.update("mbus:\(name)", kind: "wired M-Bus line", health: .failed, detail: "\(error)")
            logger.error("cannot open the M-Bus line", metadata: ["line": "\(name)", "error": "\(error)"])
            return
        }
        let progress = LineProgress()
        do {
            try await scheduler.run(plan, lastSetDayReadout: await pipeline.lastSetDayReadout(line: name)) { kind in
                await readAll(line: line, kind: kind, progress: progress)
                if case .setDay(_, let due) = kind { await pipeline.setDayReadoutDone(line: name, dueAt: due) }
                await publish(line: line, progress: progress, conditions: [])
            } report: { status, conditions in
                _ = try? await pipeline.report(conditions: conditions, device: "line:\(name)", scope: "line", at: unixMilliseconds())
                await publish(line: line, progress: progress, conditions: conditions)
            }
        } catch {
            logger.error("the M-Bus line's schedule stopped", metadata: ["line": "\(name)", "error": "\(error)"])
        }
        await line.close()
        await board.update("mbus:\(name)", kind: "wired M-Bus line", health: .stopped, detail: "stopped")
    }

    /// The line's status line after every cycle (the scheduler reports only changes).
    private func publish(line: MBusLine, progress: LineProgress, conditions: [AlarmCondition]) async {
        let stats = await line.statistics
        let counts = await progress.snapshot()
        let status = await scheduler.status(line: name)
        // The line is healthy while it is not backed off and meters answer on it; single silent meters
        // are alarms on those meters.
        let slow = status?.isSlow ?? false
        let health: Health = slow || !conditions.isEmpty ? .degraded
            : (counts.lastAsked > 0 && counts.lastAnswered == 0 ? .failed : .healthy)
        var detail = "\(counts.lastAnswered) of \(counts.lastAsked) meters answered"
        if counts.lastMissing > 0 { detail += "; no answer from \(counts.lastMissingNames.prefix(3).joined(separator: ", "))" }
        if slow { detail += "; line slow, polling backed off" }
        await board.update(
            "mbus:\(name)", kind: "wired M-Bus line", health: health, detail: detail,
            counters: ["requests": stats.requests, "timeouts": stats.timeouts, "retries": stats.retries,
                       "cycles": status?.cycles ?? 0, "slow_cycles": status?.slowCycles ?? 0, "skipped_ticks": status?.skippedTicks ?? 0])
    }

    private func readAll(line: MBusLine, kind: PollKind, progress: LineProgress) async {
        let devices = await pipeline.registry.devices.filter { $0.bus == .wiredMBus && $0.line == name }
        var answered = 0
        var missing: [String] = []
        for device in devices {
            // Between meters, not inside a transaction: a shutdown never cuts a frame in half.
            if Task.isCancelled { break }
            let address: MeterAddress
            switch addressing.address(of: device) {
            case .success(let a): address = a
            case .failure(let why):
                logger.warning("registry device cannot be addressed on this line", metadata: ["device": "\(device.key)", "reason": "\(why)"])
                continue
            }
            do {
                let readout = try await line.read(address)
                answered += 1
                _ = await feed(pipeline, .wired(WiredInput(.telegram(readout.assembled), line: name, receivedAt: unixMilliseconds(), frames: readout.frames)), logger: logger)
            } catch {
                missing.append(device.key)
                // A silent meter is the meter's problem, not the line's. One missed readout is noise (a
                // collision, a meter busy integrating); the pipeline's silence watch raises no_answer on the
                // device after [alarms] not_heard_intervals missed intervals, as for radio meters.
                logger.notice("meter did not answer", metadata: ["line": "\(name)", "device": "\(device.key)", "error": "\(error)"])
            }
        }
        await progress.record(asked: devices.count, answered: answered, missing: missing)
    }
}

/// What the last cycle of a line found, for the status line.
package actor LineProgress {
    package struct Snapshot { var lastAsked = 0, lastAnswered = 0, lastMissing = 0, lastMissingNames: [String] = [] }
    private var s = Snapshot()
    package func record(asked: Int, answered: Int, missing: [String]) {
        s = Snapshot(lastAsked: asked, lastAnswered: answered, lastMissing: missing.count, lastMissingNames: missing)
    }
    package func snapshot() -> Snapshot { s }
}

/// One Modbus line and its heat pumps, shared fairly (issue 18): a `FairLine` decides which device is
/// read when, so a dead or slow controller costs at most one timeout per backoff period and never pushes
/// the others off their interval. Each device is first fingerprinted (its identifying registers against
/// its profile, or its family's members by firmware); a device another controller answers for is refused.
package struct ModbusLineRunner: BusRunner {
    package let name: String
    package let endpoint: ModbusEndpoint
    package let line: GatewayConfig.ModbusLineConfig
    package let interval: Duration
    package let plan: LinePlan
    package let pipeline: ReadingPipeline
    package let scheduler: PollScheduler
    package let board: StatusBoard
    package let logger: Logger

    package var options: ModbusLineOptions { line.options }
    package var devices: [GatewayConfig.ModbusDeviceConfig] { line.devices }

    package func run() async {
        let component = "modbus:\(name)"
        await board.update(component, kind: "Modbus line", health: .starting, detail: "connecting to \(endpoint)")
        let modbus: ModbusLine
        do {
            modbus = try ModbusLine(endpoint: endpoint, options: options)
        } catch {
            await board.update(component, kind: "Modbus line", health: .failed, detail: "\(error)")
            logger.error("cannot open the Modbus line", metadata: ["line": "\(name)", "error": "\(error)"])
            return
        }
        let clock = scheduler.clock
        let timeoutCost = options.responseTimeout.milliseconds &* Int64(1 + options.retries)
        var fair = FairLine(devices: devices.map { ($0.name, [(name: "all", interval: interval.milliseconds)]) },
                            options: FairLine.Options(timeoutCost: timeoutCost, baseBackoff: line.backoff.milliseconds,
                                                      maxBackoff: line.maxBackoff.milliseconds, pace: line.pace.milliseconds),
                            now: clock.now())
        var status = LineStatus(line: name)
        do { try await scheduler.track(status) } catch {
            logger.error("the Modbus line's schedule stopped", metadata: ["line": "\(name)", "error": "\(error)"])
            return
        }
        var setDay = SetDayWatch(plan: plan, gatewayID: scheduler.gatewayID, now: clock.now(),
                                 last: await pipeline.lastSetDayReadout(line: name))
        var chosen: [Int: ModbusProfile] = [:]
        var attemptsAtSetDay: [Int]?

        while !Task.isCancelled {
            if let due = setDay.due(now: clock.now()), attemptsAtSetDay == nil {
                // The billing readout: every device now, then the ledger hears it was done.
                fair.allDue(now: clock.now())
                attemptsAtSetDay = fair.devices.map { $0.answered + $0.unanswered }
                logger.info("set-day readout", metadata: ["line": "\(name)", "due": "\(due)"])
            }
            switch fair.next(now: clock.now()) {
            case .wait(var until):
                if let next = setDay.nextDue, attemptsAtSetDay == nil { until = min(until, next) }
                do { try await clock.sleep(until: until) } catch { break }
                continue
            case .read(let j, let probe):
                let d = fair.jobs[j].device
                let device = devices[d]
                let started = clock.now()
                let outcome = await read(device, index: d, probe: probe, modbus: modbus, chosen: &chosen)
                let ended = clock.now()
                fair.finished(job: j, probe: probe, startedAt: started, endedAt: ended, outcome: outcome)
                if case .noAnswer(let why) = outcome {
                    let dev = fair.devices[d]
                    logger.notice("heat pump did not answer; trying it again later", metadata: [
                        "line": "\(name)", "device": "\(device.name)", "error": "\(why)",
                        "next_try_in": "\(dev.backoff / 1000) s"])
                }
            }
            if let before = attemptsAtSetDay,
               zip(fair.devices, before).allSatisfy({ $0.health != .healthy || $0.answered + $0.unanswered > $1 }) {
                if let due = setDay.done() { await pipeline.setDayReadoutDone(line: name, dueAt: due) }
                attemptsAtSetDay = nil
            }
            status.cycles = fair.jobs.map { $0.reads + $0.skipped }.min() ?? 0
            status.skippedTicks = fair.jobs.reduce(0) { $0 + $1.skipped }
            try? await scheduler.track(status)
            await publish(modbus: modbus, fair: fair)
        }
        await scheduler.untrack(line: name)
        await modbus.close()
        await board.update(component, kind: "Modbus line", health: .stopped, detail: "stopped")
    }

    /// Fingerprints the device when it has no profile yet, then reads it and hands the reading on.
    private func read(_ device: GatewayConfig.ModbusDeviceConfig, index: Int, probe: Bool, modbus: ModbusLine,
                      chosen: inout [Int: ModbusProfile]) async -> FairLine.Outcome {
        let retries = probe ? 0 : nil
        let who = "the heat pump \(device.name) (unit \(device.unit) on \(name))"
        let known = chosen[index]
        let groups = Set(device.groups)
        // The whole poll (fingerprint and read) holds the line, so another process waits behind it.
        let result: Result<(ProfileChoice?, ModbusReading?), ModbusError> = await modbus.holdingLineResult { line throws(ModbusError) in
            var choice: ProfileChoice?
            var profile = known
            if profile == nil {
                let c = try line.choose(among: device.candidates, unit: device.unit)
                choice = c
                guard case .chosen(let p, _) = c else { return (c, nil) }
                profile = p
            }
            let p = profile ?? device.profile
            let reading = try line.read(profile: p, unit: device.unit,
                                        selection: groups.isEmpty ? nil : p.registers(inGroups: groups), retries: retries)
            return (choice, reading)
        }
        let choice: ProfileChoice?
        var reading: ModbusReading?
        switch result {
        case .failure(let error): return .noAnswer(error.message)
        case .success(let r): (choice, reading) = r
        }
        let key = "modbus:\(name):\(device.name)"
        switch choice {
        case .chosen(let profile, let verdict)?:
            chosen[index] = profile
            if profile.hasFingerprint {
                logger.info("heat pump identified", metadata: ["device": "\(device.name)", "profile": "\(profile.id)", "fingerprint": "\(verdict)"])
            }
            _ = try? await pipeline.report(conditions: [], device: key, scope: "fingerprint", at: unixMilliseconds())
        case .refused(let list)?:
            let message = ProfileChoice.refused(list).message(device: who)
            logger.error("heat pump refused: it is not the configured model", metadata: ["device": "\(device.name)", "why": "\(message)"])
            _ = try? await pipeline.report(conditions: [AlarmCondition(code: "profile_mismatch", priority: .critical, message: message)],
                                           device: key, scope: "fingerprint", at: unixMilliseconds())
            return .refused(message)
        case nil:
            break
        }
        guard var reading, let profile = chosen[index] else { return .noAnswer("no reading") }
        if let due = ServiceDue.alarm(reading: reading, profile: profile, intervalHours: device.serviceIntervalHours,
                                      lastInspectionHours: device.serviceLastHours, device: "the heat pump \(device.name)") {
            reading.alarms.append(due)
        }
        _ = await feed(pipeline, .modbus(ModbusInput(reading, line: name, receivedAt: unixMilliseconds())), logger: logger)
        return .answered
    }

    private func publish(modbus: ModbusLine, fair: FairLine) async {
        let stats = await modbus.statistics
        let answering = fair.devices.filter { $0.health == .healthy }.count
        var detail = "\(answering) of \(fair.devices.count) devices answering"
        let down = fair.devices.filter { $0.health != .healthy }
        if !down.isEmpty {
            detail += "; " + down.map { "\($0.name) \($0.health == .refused ? "refused (another model answers)" : "backing off")" }.joined(separator: ", ")
        }
        await board.update(
            "modbus:\(name)", kind: "Modbus line",
            health: down.isEmpty ? .healthy : (answering == 0 ? .failed : .degraded),
            detail: detail,
            counters: ["requests": stats.requests, "timeouts": stats.timeouts, "exceptions": stats.exceptions,
                       "reconnects": stats.reconnects, "cycles": fair.jobs.map { $0.reads + $0.skipped }.min() ?? 0])
        // Per device: its health, reads, unanswered reads, probes and skipped slots (status and metrics).
        for (d, device) in fair.devices.enumerated() {
            let skipped = fair.jobs(ofDevice: d).reduce(0) { $0 + $1.skipped }
            var text: String
            switch device.health {
            case .healthy: text = "answering"
            case .backingOff: text = "not answering (\(device.lastProblem ?? "no answer")); next try in \(max(0, device.probeAt - unixMilliseconds()) / 1000) s"
            case .refused: text = device.lastProblem ?? "refused"
            }
            text = TerminalText.line(text)
            await board.update(
                "modbus:\(name)/\(device.name)", kind: "heat pump",
                health: device.health == .healthy ? .healthy : (device.health == .refused ? .failed : .degraded),
                detail: text,
                counters: ["reads": device.answered, "no_answer": device.unanswered, "probes": device.probes,
                           "skipped": skipped, "timeout_ms": Int(clamping: device.timeoutMilliseconds)])
        }
    }
}

extension ModbusLine {
    /// `holdingLine` with its typed error as a value (an actor call cannot carry a typed throw across `await`).
    package func holdingLineResult<T: Sendable>(_ body: @Sendable (isolated ModbusLine) throws(ModbusError) -> T) async -> Result<T, ModbusError> {
        do throws(ModbusError) { return .success(try holdingLine(body)) } catch { return .failure(error) }
    }
}

/// When a Modbus line's set-day (billing) readout is due: the line schedule's set-day rule, with its
/// catch-up of a readout missed while the gateway was off.
package struct SetDayWatch {
    private var schedule: LineSchedule?
    private var pending: PollKind?

    package init(plan: LinePlan, gatewayID: String, now: Int64, last: Int64?) {
        guard plan.setDay != nil else { return }
        // Only the set-day part of the schedule: its routine job never comes round.
        var p = plan
        p.jobs = [PollJob(name: "set-day", intervalMilliseconds: Int64.max / 4)]
        p.setDayJob = "set-day"
        schedule = LineSchedule(plan: p, gatewayID: gatewayID, now: now, lastSetDayReadout: last)
    }

    package var nextDue: Int64? {
        guard let (kind, at) = schedule?.next(), case .setDay = kind else { return nil }
        return at
    }

    /// The due time of a set-day readout that has come, once.
    package mutating func due(now: Int64) -> Int64? {
        guard pending == nil, let (kind, at) = schedule?.next(), case .setDay(_, let due) = kind, at <= now else { return nil }
        pending = kind
        return due
    }

    /// The readout is done: returns its due time for the ledger.
    package mutating func done() -> Int64? {
        guard let kind = pending, case .setDay(_, let due) = kind else { return nil }
        let now = SystemSchedulingClock().now()
        _ = schedule?.finished(kind, startedAt: now, endedAt: now)
        pending = nil
        return due
    }
}
