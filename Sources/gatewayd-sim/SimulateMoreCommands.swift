import Agent
import CLISupport
import ArgumentParser
import DongleSimulator
import Drivers
import Foundation
import Logging
import PortalFake

/// `gatewayd-sim dongle`: an iM871A or AMB8465 on a pty replaying a capture in a loop, so the
/// daemon or `gatewayd listen` can be run against a radio without hardware (and measured on its own).
struct SimulateDongle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dongle",
        abstract: "Simulate a wireless M-Bus dongle on a pseudo-terminal, replaying a capture in a loop.",
        discussion: "Prints the device path; point `gatewayd listen --dongle PATH` or a [[buses.wmbus]] device at it.")

    enum Kind: String, ExpressibleByArgument { case im871a, amb8465 }

    @Option(help: "Dongle to simulate: im871a or amb8465.")
    var type: Kind = .im871a

    @Option(help: "Capture to replay (timestamped hex lines), e.g. seeds/demo-building/wmbus-replay.txt.")
    var replay: String

    @Option(help: ArgumentHelp("Time between telegrams: 500ms, 2s (a bare number counts seconds).", valueName: "duration"))
    var interval = RunLengthArgument(.seconds(2))

    func validate() throws {
        guard interval.duration > .zero else { throw ValidationError("--interval must be above 0") }
    }

    @Option(help: "Keep a symlink to the pty at this path (stable across a simulated replug).")
    var link: String?

    @OptionGroup var runLength: RunLengthOptions

    func run() async throws {
        let telegrams: [SimulatedTelegram]
        do {
            telegrams = try ReplayFile.parse(String(contentsOfFile: replay, encoding: .utf8)).map(SimulatedTelegram.init)
        } catch {
            throw CLIError("\(replay): \(error)")
        }
        let timing = DongleSimulatorTiming(interval: interval.duration)
        let path: String
        let refill: @Sendable () -> Void
        let stopAll: @Sendable () -> Void
        switch type {
        case .im871a:
            let d = IM871ASimulator(telegrams: telegrams, linkPath: link, timing: timing)
            do { try d.start() } catch { throw CLIError("cannot start the simulator: \(error)") }
            path = d.devicePath
            refill = { if d.pendingTelegrams == 0 { d.enqueue(telegrams) } }
            stopAll = { d.stop() }
        case .amb8465:
            let d = AMB8465Simulator(telegrams: telegrams, linkPath: link, timing: timing)
            do { try d.start() } catch { throw CLIError("cannot start the simulator: \(error)") }
            path = d.devicePath
            refill = { if d.pendingTelegrams == 0 { d.enqueue(telegrams) } }
            stopAll = { d.stop() }
        }
        print("simulated \(type.rawValue): \(path), \(telegrams.count) telegrams replayed every \(interval) in a loop")
        print("try: gatewayd listen --dongle \(path) --type \(type.rawValue)")
        FileHandleOutput.flush()
        let stop = StopSignal()
        let interrupt = InterruptHandler { stop.fire() }
        defer { interrupt.restore() }
        let loop = Task {
            while !Task.isCancelled {
                refill()
                try? await Task.sleep(for: .seconds(1))
            }
        }
        await stop.wait(for: runLength.limit)
        loop.cancel()
        stopAll()
    }
}

/// `gatewayd-sim portal`: the loopback portal sink, to run the daemon against without a portal.
struct SimulatePortal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portal",
        abstract: "Run a portal sink on 127.0.0.1 that stores what the uplink sends (docs/portal-api.md).",
        discussion: "Prints its base URL; Ctrl-C prints what it stored.")

    @Option(help: "File holding the bearer token the sink requires (default: any token).")
    var tokenFile: String?

    @OptionGroup var runLength: RunLengthOptions

    func run() async throws {
        var token: String?
        if let tokenFile {
            guard let t = try? String(contentsOfFile: tokenFile, encoding: .utf8) else { throw CLIError("cannot read \(tokenFile)") }
            token = t.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let sink = PortalFake(configuration: .init(token: token), countsDevices: true)
        try await sink.start()
        print("portal sink: \(sink.baseURL)")
        FileHandleOutput.flush()
        let stop = StopSignal()
        let interrupt = InterruptHandler { stop.fire() }
        defer { interrupt.restore() }
        await stop.wait(for: runLength.limit)
        let s = sink.store
        print("stored \(s.readingCount) readings from \(s.readingsPerDevice.count) devices (\(s.duplicateReceipts) resends deduplicated), \(s.alarms.count) alarms, \(s.healthReports.count) health reports")
        await sink.stop()
    }
}

/// `gatewayd-sim modbus`: a heat pump on Modbus TCP (127.0.0.1) answering with a profile's register dump.
struct SimulateModbus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "modbus",
        abstract: "Simulate a heat pump on Modbus TCP at 127.0.0.1, serving a profile's test register dump.")

    @Option(help: "Profile file, e.g. profiles/modbus/kaisai-r290-monoblock.json.")
    var profile: String

    @OptionGroup var runLength: RunLengthOptions

    func run() async throws {
        let p: ModbusProfile
        do { p = try ModbusProfile.load(path: profile) } catch { throw CLIError("\(profile): \(error)") }
        let pump: DemoHeatPump
        do { pump = try DemoHeatPump(profile: p) } catch { throw CLIError("\(error)") }
        print("simulated heat pump (\(p.id), unit \(pump.unit)): \(pump.endpoint)")
        FileHandleOutput.flush()
        let stop = StopSignal()
        let interrupt = InterruptHandler { stop.fire() }
        defer { interrupt.restore() }
        await stop.wait(for: runLength.limit)
        pump.stop()
        print("stopped: \(pump.requestsServed) requests answered")
    }
}

/// `gatewayd-sim demo`: every simulator of a demo configuration (M-Bus lines, dongles, heat pumps,
/// the portal sink) in one process. `gatewayd run --demo` and `gatewayd commission --demo` start it with
/// `--handshake`; on its own it lets you run a daemon of your own against the simulators, and measure
/// what they cost (docs/benchmarks.md).
struct SimulateDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the simulators of a demo configuration (default: the demo building).",
        discussion: "Prints where each simulator listens; Ctrl-C (or --duration) stops them.")

    @Option(help: "A demo configuration (default: seeds/demo-building/gatewayd.toml).")
    var config: String?

    @Option(help: "The daemon's buffer path; the portal sink's token file goes beside it (default: a private temporary directory).")
    var buffer: String?

    @Flag(help: "Print where the simulators listen as one JSON line (DemoEndpoints), then run until standard input closes (how gatewayd starts it).")
    var handshake = false

    @OptionGroup var runLength: RunLengthOptions

    func run() async throws {
        let choice: ConfigChoice
        do { choice = try ConfigChoice.resolve(explicit: config, demo: config == nil) } catch { throw CLIError("\(error)") }
        guard case .success(var loaded) = GatewayConfig.load(path: choice.path) else {
            throw CLIError("\(choice.path) does not load; check it with: gatewayd config check \(choice.path)")
        }
        // Without --buffer, the token file goes into a directory of its own, so that a daemon running the
        // same demo beside these simulators keeps its own token.
        loaded.buffer.path = buffer ?? NSTemporaryDirectory() + "gatewayd-sim-demo-\(getpid())/buffer"
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .warning
            return h
        }
        let building: SimulatedBuses
        do { building = try await SimulatedBuses.start(config: loaded, logger: Logger(label: "gatewayd-sim")) } catch { throw CLIError("\(error)") }
        defer { building.stop() }
        if handshake {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let line = String(decoding: try encoder.encode(building.endpoints), as: UTF8.self)
            print(line)
            FileHandleOutput.flush()
            // The parent holds our standard input open; end of file means it stopped (even by SIGKILL).
            await Self.waitForEndOfInput()
            return
        }
        var rows: [[String]] = []
        for (bus, path) in building.mbusLines.sorted(by: { $0.key < $1.key }) { rows.append([bus, "M-Bus line", path]) }
        for (bus, path) in building.dongles.sorted(by: { $0.key < $1.key }) { rows.append([bus, "iM871A", path]) }
        for (bus, port) in building.modbusLines.sorted(by: { $0.key < $1.key }) { rows.append([bus, "heat pump", "tcp://127.0.0.1:\(port)"]) }
        if let url = building.portalURL { rows.append(["portal", "portal sink", url]) }
        print(TextTable.render(header: ["BUS", "SIMULATOR", "WHERE"], rows: rows), terminator: "")
        FileHandleOutput.flush()
        let stop = StopSignal()
        let interrupt = InterruptHandler { stop.fire() }
        defer { interrupt.restore() }
        await stop.wait(for: runLength.limit)
    }

    static func waitForEndOfInput() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                var byte: UInt8 = 0
                while true {
                    let n = read(0, &byte, 1)
                    if n == 0 || (n < 0 && errno != EINTR) { break }
                }
                c.resume()
            }
        }
    }
}
