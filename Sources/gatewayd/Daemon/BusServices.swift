import Drivers
import Foundation
import Gateway
import Logging

/// A bus reader the supervisor runs in its own task: it returns when that task is cancelled, after
/// finishing the transaction in progress.
protocol BusRunner: Sendable {
    var name: String { get }
    func run() async
}

/// Unix milliseconds now, by the gateway's clock (the scheduler's, so that both agree).
func unixMilliseconds() -> Int64 { SystemSchedulingClock().now() }

/// Hands one input to the pipeline and logs what became of it. A buffer failure (disk full even after
/// eviction) is logged and counted by the pipeline; the bus goes on, so the next reading may fit.
func feed(_ pipeline: ReadingPipeline, _ input: PipelineInput, logger: Logger) async -> PipelineOutcome? {
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
func feed(_ pipeline: ReadingPipeline, _ inputs: [PipelineInput], logger: Logger) async -> [PipelineOutcome] {
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
struct WiredLineRunner: BusRunner {
    let name: String
    let endpoint: BusEndpoint
    let options: MBusLineOptions
    let addressing: GatewayConfig.MBusLineConfig.Addressing
    let plan: LinePlan
    let pipeline: ReadingPipeline
    let scheduler: PollScheduler
    let board: StatusBoard
    let logger: Logger

    func run() async {
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
            guard let address = address(of: device) else {
                logger.warning("registry device has no usable address for this line", metadata: ["device": "\(device.key)"])
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

    private func address(of device: RegisteredDevice) -> MeterAddress? {
        switch addressing {
        case .primary:
            return device.primaryAddress.flatMap { UInt8(exactly: $0) }.map { .primary($0) }
        case .secondary:
            guard let text = device.identification, let id = IdentificationNumber(text) else {
                return device.primaryAddress.flatMap { UInt8(exactly: $0) }.map { .primary($0) }
            }
            let manufacturer = device.manufacturer.flatMap { ManufacturerCode($0) }
            return .secondary(SecondaryAddressMask(identification: id, manufacturer: manufacturer, version: nil, deviceType: nil))
        }
    }
}

/// What the last cycle of a line found, for the status line.
actor LineProgress {
    struct Snapshot { var lastAsked = 0, lastAnswered = 0, lastMissing = 0, lastMissingNames: [String] = [] }
    private var s = Snapshot()
    func record(asked: Int, answered: Int, missing: [String]) {
        s = Snapshot(lastAsked: asked, lastAnswered: answered, lastMissing: missing.count, lastMissingNames: missing)
    }
    func snapshot() -> Snapshot { s }
}

/// One Modbus line and its heat pumps: each device's profile is read on the line's schedule.
struct ModbusLineRunner: BusRunner {
    let name: String
    let endpoint: ModbusEndpoint
    let options: ModbusLineOptions
    let devices: [GatewayConfig.ModbusDeviceConfig]
    let plan: LinePlan
    let pipeline: ReadingPipeline
    let scheduler: PollScheduler
    let board: StatusBoard
    let logger: Logger

    func run() async {
        let component = "modbus:\(name)"
        await board.update(component, kind: "Modbus line", health: .starting, detail: "connecting to \(endpoint)")
        let line: ModbusLine
        do {
            line = try ModbusLine(endpoint: endpoint, options: options)
        } catch {
            await board.update(component, kind: "Modbus line", health: .failed, detail: "\(error)")
            logger.error("cannot open the Modbus line", metadata: ["line": "\(name)", "error": "\(error)"])
            return
        }
        let progress = LineProgress()
        do {
            try await scheduler.run(plan, lastSetDayReadout: await pipeline.lastSetDayReadout(line: name)) { kind in
                var answered = 0
                var missing: [String] = []
                for device in devices {
                    if Task.isCancelled { break }
                    do {
                        let reading = try await line.read(profile: device.profile, unit: device.unit)
                        answered += 1
                        _ = await feed(pipeline, .modbus(ModbusInput(reading, line: name, receivedAt: unixMilliseconds())), logger: logger)
                    } catch {
                        missing.append(device.name)
                        logger.notice("heat pump did not answer", metadata: ["line": "\(name)", "device": "\(device.name)", "error": "\(error)"])
                    }
                }
                await progress.record(asked: devices.count, answered: answered, missing: missing)
                if case .setDay(_, let due) = kind { await pipeline.setDayReadoutDone(line: name, dueAt: due) }
                await publish(line: line, progress: progress, conditions: [])
            } report: { status, conditions in
                _ = try? await pipeline.report(conditions: conditions, device: "line:\(name)", scope: "line", at: unixMilliseconds())
                await publish(line: line, progress: progress, conditions: conditions)
            }
        } catch {
            logger.error("the Modbus line's schedule stopped", metadata: ["line": "\(name)", "error": "\(error)"])
        }
        await line.close()
        await board.update(component, kind: "Modbus line", health: .stopped, detail: "stopped")
    }

    private func publish(line: ModbusLine, progress: LineProgress, conditions: [AlarmCondition]) async {
        let stats = await line.statistics
        let p = await progress.snapshot()
        let status = await scheduler.status(line: name)
        let slow = status?.isSlow ?? false
        var detail = "\(p.lastAnswered) of \(p.lastAsked) devices answered"
        if p.lastMissing > 0 { detail += "; no answer from \(p.lastMissingNames.joined(separator: ", "))" }
        if slow { detail += "; line slow, polling backed off" }
        await board.update(
            "modbus:\(name)", kind: "Modbus line",
            health: slow || !conditions.isEmpty ? .degraded : (p.lastAsked > 0 && p.lastAnswered == 0 ? .failed : .healthy),
            detail: detail,
            counters: ["requests": stats.requests, "timeouts": stats.timeouts, "exceptions": stats.exceptions,
                       "reconnects": stats.reconnects, "cycles": status?.cycles ?? 0])
    }
}
