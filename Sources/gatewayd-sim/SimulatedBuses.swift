import Agent
import CLISupport
import DongleSimulator
import Drivers
import Foundation
import Logging
import MBusSimulator
import PortalFake
import Synchronization

/// The simulators a demo configuration asks for: M-Bus slaves behind a pty, an iM871A replaying radio
/// telegrams in a loop, a Modbus TCP heat pump, and a portal sink on 127.0.0.1. With no simulated bus in
/// the configuration, nothing is started. The daemon reaches them through `DemoEndpoints`.
final class SimulatedBuses: Sendable {
    /// Bus name → pty path of its simulated M-Bus line.
    let mbusLines: [String: String]
    /// Bus name → simulated dongle's device path.
    let dongles: [String: String]
    /// Bus name → port of its in-process Modbus TCP server on 127.0.0.1.
    let modbusLines: [String: Int]
    /// The portal sink's base URL, when the demo runs one (the configured loopback endpoint is replaced
    /// by it: an ephemeral port never clashes with another program).
    let portalURL: String?
    let portal: PortalFake?
    /// The bearer token file the demo's uplink presents to the sink (the sink checks it, as a portal would).
    let tokenFile: String?

    private let mbusSimulators: [MBusBusSimulator]
    private let dongleSimulators: [IM871ASimulator]
    private let heatPumps: [DemoHeatPump]
    private let refill: Mutex<Task<Void, Never>?>

    private init(mbusLines: [String: String], dongles: [String: String], modbusLines: [String: Int], portal: PortalFake?, tokenFile: String?,
                 mbusSimulators: [MBusBusSimulator], dongleSimulators: [IM871ASimulator], heatPumps: [DemoHeatPump],
                 refill: Task<Void, Never>?) {
        self.mbusLines = mbusLines
        self.dongles = dongles
        self.modbusLines = modbusLines
        self.portal = portal
        self.tokenFile = tokenFile
        self.portalURL = portal?.baseURL
        self.mbusSimulators = mbusSimulators
        self.dongleSimulators = dongleSimulators
        self.heatPumps = heatPumps
        self.refill = Mutex(refill)
    }

    static func start(config: GatewayConfig, logger: Logger) async throws -> SimulatedBuses {
        var mbusLines: [String: String] = [:], dongles: [String: String] = [:], modbusLines: [String: Int] = [:]
        var mbus: [MBusBusSimulator] = [], radios: [IM871ASimulator] = [], pumps: [DemoHeatPump] = []
        var replays: [(IM871ASimulator, [SimulatedTelegram])] = []
        for line in config.buses.mbus {
            guard case .simulator(let slavesFile) = line.source else { continue }
            do {
                let population = try SlavePopulation(contentsOfFile: slavesFile)
                let bus = try MBusBusSimulator(slaves: population.slaves, baudRate: line.serial.baudRate)
                try bus.start()
                mbus.append(bus)
                mbusLines[line.name] = bus.devicePath
                logger.info("demo: simulated M-Bus line", metadata: ["bus": "\(line.name)", "pty": "\(bus.devicePath)", "slaves": "\(population.slaves.count)"])
            } catch {
                throw DaemonStartError("demo: cannot start the M-Bus simulator for \(line.name) from \(slavesFile): \(error)")
            }
        }
        for dongle in config.buses.wmbus {
            guard case .simulator(let replayFile, let interval, let loop) = dongle.source else { continue }
            let file = replayFile ?? ConfigChoice.demoBuildingDirectory().map { $0 + "/wmbus-replay.txt" } ?? "wmbus-replay.txt"
            let telegrams: [SimulatedTelegram]
            do {
                let text = try String(contentsOfFile: file, encoding: .utf8)
                telegrams = try ReplayFile.parse(text).map(SimulatedTelegram.init)
            } catch {
                throw DaemonStartError("demo: cannot read the radio replay \(file): \(error)")
            }
            let radio = IM871ASimulator(telegrams: telegrams, timing: DongleSimulatorTiming(interval: interval))
            do {
                try radio.start()
            } catch {
                throw DaemonStartError("demo: cannot start the dongle simulator for \(dongle.name): \(error)")
            }
            radios.append(radio)
            if loop { replays.append((radio, telegrams)) }
            dongles[dongle.name] = radio.devicePath
            logger.info("demo: simulated iM871A", metadata: ["bus": "\(dongle.name)", "pty": "\(radio.devicePath)", "telegrams": "\(telegrams.count)"])
        }
        for line in config.buses.modbus {
            guard case .simulator = line.source, let device = line.devices.first else { continue }
            do {
                let pump = try DemoHeatPump(profile: device.profile)
                pumps.append(pump)
                modbusLines[line.name] = pump.port
                logger.info("demo: simulated heat pump", metadata: ["bus": "\(line.name)", "endpoint": "\(pump.endpoint)", "profile": "\(device.profile.id)"])
            } catch {
                throw DaemonStartError("demo: cannot start the heat-pump simulator for \(line.name): \(error)")
            }
        }
        var portal: PortalFake?
        var tokenFile: String?
        if config.demo {
            // A fresh token per run, in a 0600 file beside the buffer, like a provisioned gateway's.
            let token = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined()
            let file = (config.buffer.path as NSString).deletingLastPathComponent + "/demo-portal-token"
            do {
                try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                FileManager.default.createFile(atPath: file, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600])
            }
            let sink = PortalFake(configuration: .init(token: token), countsDevices: true)
            try await sink.start()
            portal = sink
            tokenFile = file
            logger.info("demo: portal sink", metadata: ["url": "\(sink.baseURL)"])
        }
        // The radio keeps talking: meters send every few seconds for ever, so the replay is queued again
        // whenever the simulated dongle has sent it all.
        let refill: Task<Void, Never>? = replays.isEmpty ? nil : Task {
            while !Task.isCancelled {
                for (radio, telegrams) in replays where radio.pendingTelegrams == 0 { radio.enqueue(telegrams) }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        return SimulatedBuses(mbusLines: mbusLines, dongles: dongles, modbusLines: modbusLines, portal: portal, tokenFile: tokenFile,
                            mbusSimulators: mbus, dongleSimulators: radios, heatPumps: pumps, refill: refill)
    }

    var endpoints: DemoEndpoints {
        DemoEndpoints(mbusLines: mbusLines, dongles: dongles, modbusLines: modbusLines, portalURL: portalURL, tokenFile: tokenFile)
    }

    func stop() {
        refill.withLock { $0?.cancel() }
        for s in mbusSimulators { s.stop() }
        for r in dongleSimulators { r.stop() }
        for p in heatPumps { p.stop() }
        if let portal { Task { await portal.stop() } }
    }
}
