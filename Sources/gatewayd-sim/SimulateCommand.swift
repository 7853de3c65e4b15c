import Agent
import CLISupport
import ArgumentParser
import Dispatch
import Drivers
import MBusSimulator
#if canImport(Glibc)
import Glibc
#endif

/// gatewayd-sim: the test doubles of gatewayd as a program of their own, so the production binary carries
/// none of them. The demo, the tests and the benchmarks start it.
@main
struct GatewaydSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewayd-sim",
        abstract: "Simulated buses, dongles, heat pumps and a portal sink for gatewayd's demo and tests (no hardware).",
        subcommands: [SimulateMBus.self, SimulateDongle.self, SimulateModbus.self, SimulatePortal.self, SimulateDemo.self, SimulateBuilding.self])
}

struct SimulateMBus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mbus",
        abstract: "Simulate a wired M-Bus line of slaves behind a pseudo-terminal.",
        discussion: """
            Prints the pseudo-terminal path; point `gatewayd mbus scan/read --port PATH` at it. The slaves \
            answer with real meter telegrams at true byte timing (11 bits per byte at the line speed). \
            Runs until Ctrl-C, then prints the simulator's counters.
            """)

    @Option(help: "Slave population (JSON), e.g. seeds/demo-building/mbus-slaves.json.")
    var slaves: String

    @Option(help: "Line speed; overrides the file's baudRate.")
    var baud: Int?

    @OptionGroup var runLength: RunLengthOptions

    func validate() throws {
        if let baud { try SerialArguments.validate(baud: baud, stopBits: 1) }
    }

    func run() async throws {
        var population: SlavePopulation
        do {
            population = try SlavePopulation(contentsOfFile: slaves)
        } catch {
            throw CLIError("\(slaves): \(error.message)")
        }
        if let baud { population.baudRate = baud }
        let bus: MBusBusSimulator
        do {
            bus = try MBusBusSimulator(slaves: population.slaves, baudRate: population.baudRate)
            try bus.start()
        } catch {
            throw CLIError("cannot start the simulator: \(error.message)")
        }
        print(Self.render(population, devicePath: bus.devicePath), terminator: "")
        FileHandleOutput.flush()
        let stop = StopSignal()
        let interrupt = InterruptHandler { stop.fire() }
        defer { interrupt.restore() }
        await stop.wait(for: runLength.limit)
        bus.stop()
        let c = bus.counters
        print("stopped: \(c.requestsSeen) requests, \(c.responsesSent) responses, \(c.collisions) collisions, \(c.bytesReceived) bytes in, \(c.bytesSent) bytes out")
    }
}

extension SimulateMBus {
    static func render(_ population: SlavePopulation, devicePath: String) -> String {
        var out = "simulated M-Bus line: \(devicePath) at \(population.baudRate) baud, \(population.slaves.count) slaves\n"
        out += TextTable.render(header: ["primary", "secondary", "behaviour", "telegrams", "name"], rows: population.slaves.map { s in
            [String(s.primaryAddress), s.secondaryAddress.map { $0.description } ?? "-", s.behaviour.rawValue, String(s.frames.count), s.name]
        }, indent: "  ")
        out += "try: gatewayd mbus scan --port \(devicePath) --baud \(population.baudRate) --primary\n"
        return out
    }
}

