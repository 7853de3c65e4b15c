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

    /// One runner per configured bus, with the settings it was built from as its fingerprint.
    package func runners(for config: GatewayConfig) -> [(runner: any BusRunner, fingerprint: AnyHashable)] {
        var out: [(runner: any BusRunner, fingerprint: AnyHashable)] = []
        for line in config.buses.mbus {
            let schedule = config.schedules.schedule(forBus: line.name)
            let endpoint: BusEndpoint
            switch line.source {
            case .endpoint(let e): endpoint = e
            case .simulator:
                guard let path = demo.mbusLines[line.name] else {
                    logger.error("no simulator runs for this line", metadata: ["line": "\(line.name)"])
                    continue
                }
                endpoint = .serial(path: path)
            }
            let runner = WiredLineRunner(
                name: line.name, endpoint: endpoint, options: line.lineOptions, addressing: line.addressing,
                plan: plan(line.name, jobs: [PollJob(name: "meters", intervalMilliseconds: schedule.interval.milliseconds)], schedule: schedule),
                pipeline: pipeline, scheduler: scheduler, board: board,
                logger: logger.with("bus", line.name))
            out.append((runner, AnyHashable([AnyHashable(line), AnyHashable(schedule), AnyHashable(endpoint)])))
        }
        for dongle in config.buses.wmbus {
            guard let runner = WirelessRunner.make(dongle, demo: demo, pipeline: pipeline, board: board, logger: logger.with("bus", dongle.name)) else {
                continue
            }
            out.append((runner, AnyHashable(dongle)))
        }
        for line in config.buses.modbus {
            let schedule = config.schedules.schedule(forBus: line.name)
            let endpoint: ModbusEndpoint
            switch line.source {
            case .endpoint(let e): endpoint = e
            case .simulator:
                guard let port = demo.modbusLines[line.name] else {
                    logger.error("no simulator runs for this line", metadata: ["line": "\(line.name)"])
                    continue
                }
                endpoint = .tcp(host: "127.0.0.1", port: port)
            }
            let runner = ModbusLineRunner(
                name: line.name, endpoint: endpoint, line: line, interval: schedule.interval,
                plan: plan(line.name, jobs: [PollJob(name: "devices", intervalMilliseconds: schedule.interval.milliseconds)], schedule: schedule),
                pipeline: pipeline, scheduler: scheduler, board: board,
                logger: logger.with("bus", line.name))
            out.append((runner, AnyHashable([AnyHashable(line), AnyHashable(schedule), AnyHashable(endpoint)])))
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

extension Logger {
    package func with(_ key: String, _ value: String) -> Logger {
        var copy = self
        copy[metadataKey: key] = "\(value)"
        return copy
    }
}
