import Drivers
import Foundation
import Gateway
import Logging

/// Everything a bus reader needs besides its own settings; turns a configuration's buses into runners.
package struct BusContext: Sendable {
    package let pipeline: ReadingPipeline
    package let scheduler: PollScheduler
    package let board: StatusBoard
    package let demo: DemoBuilding
    package let logger: Logger

    /// One runner per configured bus, with the settings it was built from as its fingerprint. A bus with
    /// nothing to open (a demo simulator that did not start) gets a runner that says so on the status board.
    package func runners(for config: GatewayConfig) -> [(runner: any BusRunner, fingerprint: AnyHashable)] {
        let endpoints = BusEndpoints(demo: demo)
        var out: [(runner: any BusRunner, fingerprint: AnyHashable)] = []
        func unavailable(_ component: String, _ kind: String, _ why: BusUnavailable, _ settings: AnyHashable) {
            out.append((UnavailableBus(component: component, kind: kind, why: why, board: board, logger: logger), settings))
        }
        for line in config.buses.mbus {
            let schedule = config.schedules.schedule(forBus: line.name)
            switch endpoints.wired(line) {
            case .failure(let why):
                unavailable("mbus:\(line.name)", "wired M-Bus line", why, line)
            case .success(let endpoint):
                let runner = WiredLineRunner(
                    name: line.name, endpoint: endpoint, options: line.lineOptions, addressing: line.addressing,
                    plan: plan(line.name, jobs: [PollJob(name: "meters", intervalMilliseconds: schedule.interval.milliseconds)], schedule: schedule),
                    pipeline: pipeline, scheduler: scheduler, board: board,
                    logger: logger.with("bus", line.name))
                out.append((runner, AnyHashable([AnyHashable(line), AnyHashable(schedule), AnyHashable(endpoint)])))
            }
        }
        for dongle in config.buses.wmbus {
            switch endpoints.receiver(dongle) {
            case .failure(let why):
                unavailable("wmbus:\(dongle.name)", "wireless dongle", why, dongle)
            case .success(let receiver):
                let runner = WirelessRunner(name: dongle.name, source: receiver, pipeline: pipeline, board: board, logger: logger.with("bus", dongle.name))
                out.append((runner, AnyHashable(dongle)))
            }
        }
        for line in config.buses.modbus {
            let schedule = config.schedules.schedule(forBus: line.name)
            switch endpoints.modbus(line) {
            case .failure(let why):
                unavailable("modbus:\(line.name)", "Modbus line", why, line)
            case .success(let endpoint):
                let runner = ModbusLineRunner(
                    name: line.name, endpoint: endpoint, line: line, interval: schedule.interval,
                    plan: plan(line.name, jobs: [PollJob(name: "devices", intervalMilliseconds: schedule.interval.milliseconds)], schedule: schedule),
                    pipeline: pipeline, scheduler: scheduler, board: board,
                    logger: logger.with("bus", line.name))
                out.append((runner, AnyHashable([AnyHashable(line), AnyHashable(schedule), AnyHashable(endpoint)])))
            }
        }
        return out
    }

    private func plan(_ line: String, jobs: [PollJob], schedule: GatewayConfig.BusSchedule) -> LinePlan {
        var rule: SetDayRule?
        switch schedule.setDay {
        case .monthly(let day)?:
            rule = SetDayRule(month: nil, day: day, hour: schedule.setDayTime.hour, minute: schedule.setDayTime.minute,
                              spreadMilliseconds: schedule.jitter.milliseconds)
        case .yearly(let month, let day)?:
            rule = SetDayRule(month: month, day: day, hour: schedule.setDayTime.hour, minute: schedule.setDayTime.minute,
                              spreadMilliseconds: schedule.jitter.milliseconds)
        case nil:
            rule = nil
        }
        return LinePlan(line: line, jobs: jobs, setDay: rule)
    }
}

/// A configured bus with nothing to open: it shows as failed on the status board, with the reason, until
/// a reload or restart; the other buses run on.
package struct UnavailableBus: BusRunner {
    package let component: String
    package let kind: String
    package let why: BusUnavailable
    package let board: StatusBoard
    package let logger: Logger

    package var name: String { component }

    package func run() async {
        logger.error("bus not started", metadata: ["bus": "\(component)", "reason": "\(why)"])
        await board.update(component, kind: kind, health: .failed, detail: why.description)
    }
}

extension Logger {
    package func with(_ key: String, _ value: String) -> Logger {
        var copy = self
        copy[metadataKey: key] = "\(value)"
        return copy
    }
}
