import Foundation
import Drivers
import MBusSimulator

/// A simulated demo line (seeds/demo-building/mbus-slaves.json) and the gateway's master on it.
struct SimulatedLine {
    let bus: MBusBusSimulator
    let line: MBusLine
    let population: SlavePopulation

    static let seedPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("seeds/demo-building/mbus-slaves.json").path

    static let lockDirectory: String = {
        let dir = NSTemporaryDirectory() + "gatewayd-test-locks"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    static func options(baud: Int = 38400, retries: Int = 2, lockWait: Duration = .seconds(10),
                        allowance: Duration = .milliseconds(5)) -> MBusLineOptions {
        MBusLineOptions(serial: SerialSettings(baudRate: baud), adapterAllowance: allowance, retries: retries,
                        lockWait: lockWait, lockDirectory: lockDirectory)
    }

    static func demo(baud: Int = 38400, retries: Int = 2, allowance: Duration = .milliseconds(5)) throws -> SimulatedLine {
        try start(try SlavePopulation(contentsOfFile: seedPath).slaves, baud: baud, retries: retries, allowance: allowance)
    }

    static func start(_ slaves: [SimulatedSlave], baud: Int = 38400, retries: Int = 2,
                      allowance: Duration = .milliseconds(5)) throws -> SimulatedLine {
        let bus = try MBusBusSimulator(slaves: slaves, baudRate: baud)
        try bus.start()
        do {
            let line = try MBusLine(endpoint: .serial(path: bus.devicePath), options: options(baud: baud, retries: retries, allowance: allowance))
            return SimulatedLine(bus: bus, line: line, population: SlavePopulation(baudRate: baud, slaves: slaves))
        } catch {
            bus.stop()
            throw error
        }
    }

    var live: [SimulatedSlave] { population.slaves.filter { $0.behaviour != .dead } }

    func stop() async {
        await line.close()
        bus.stop()
    }
}

/// Real frames from the corpus for hand-built populations.
enum CorpusFrames {
    static let gwf = try! Hex.decode("68 1B 1B 68 08 01 72 07 20 18 00 E6 1E 35 07 4C 00 00 00 0C 78 07 20 18 00 0C 16 69 02 00 00 96 16")
    static let nzr = try! Hex.decode("""
        68 32 32 68 08 05 72 08 06 10 30 52 3B 01 02 01 00 00 00 04 03 FA 04 00 00 04 83 7F FA 04 00 00 02 FD 48 \
        44 09 02 FD 5B 00 00 02 2B 00 00 0C 78 08 06 10 30 0F 0E 71 16
        """)
}
