import ArgumentParser
import Synchronization
import Drivers
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Modbus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "modbus",
        abstract: "Talk to a Modbus RTU/TCP device: read it through a profile, or dump raw registers.",
        subcommands: [ModbusReadCommand.self, ModbusDump.self])
}

/// Options every Modbus command shares.
struct ModbusLineArguments: ParsableArguments {
    @Option(help: "RTU: the serial device (/dev/serial/by-id/…).")
    var port: String?

    @Option(help: "TCP: the device's or gateway's address.")
    var host: String?

    @Option(name: .customLong("tcp-port"), help: "TCP port.")
    var tcpPort: Int = 502

    @Option(help: "Unit id (slave address) 1-247, or 255/0 for a TCP device that ignores it.")
    var unit: Int = 1

    @Option(help: "RTU speed.")
    var baud: Int = 9600

    @Option(help: "RTU parity: even, odd or none.")
    var parity: SerialSettings.Parity = .even

    @Option(help: "RTU stop bits: 1 or 2.")
    var stopBits: Int = 1

    @Flag(help: "Switch the UART to RS-485 mode (only for adapters whose driver supports TIOCSRS485).")
    var rs485 = false

    @Option(help: "Response timeout in milliseconds.")
    var timeoutMs: Int = 1000

    @Option(help: "Byte timeout in milliseconds (silence inside one answer).")
    var byteTimeoutMs: Int = 100

    @Option(help: "Repeats after a timeout.")
    var retries: Int = 1

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        guard (port == nil) != (host == nil) else { throw ValidationError("give --port for RTU or --host for TCP") }
        guard (0...255).contains(unit) else { throw ValidationError("--unit must be 0 to 255") }
        guard stopBits == 1 || stopBits == 2 else { throw ValidationError("--stop-bits must be 1 or 2") }
        guard (1...60_000).contains(timeoutMs), (1...60_000).contains(byteTimeoutMs) else {
            throw ValidationError("timeouts must be 1 to 60000 ms")
        }
        guard (0...10).contains(retries) else { throw ValidationError("--retries must be 0 to 10") }
    }

    var endpoint: ModbusEndpoint {
        if let host { return .tcp(host: host, port: tcpPort) }
        return .rtu(path: port!, serial: SerialSettings(baudRate: baud, parity: parity, stopBits: stopBits), rs485: rs485)
    }

    var label: String { host.map { "\($0):\(tcpPort)" } ?? port! }

    func openLine() throws -> ModbusLine {
        do {
            let line = try ModbusLine(endpoint: endpoint, options: ModbusLineOptions(
                responseTimeout: .milliseconds(timeoutMs), byteTimeout: .milliseconds(byteTimeoutMs), retries: retries))
            return line
        } catch {
            throw CLIError(error.message)
        }
    }
}

/// The statistics line every Modbus command ends with, on standard error (or inside --json).
struct ModbusStatisticsJSON: Encodable {
    var requests: Int
    var responses: Int
    var timeouts: Int
    var exceptions: Int
    var otherErrors: Int
    var reconnects: Int
    var roundTripMinMs: Double?
    var roundTripMeanMs: Double?
    var roundTripMaxMs: Double?

    init(_ s: ModbusStatistics) {
        requests = s.requests
        responses = s.responses
        timeouts = s.timeouts
        exceptions = s.exceptions
        otherErrors = s.otherErrors
        reconnects = s.reconnects
        roundTripMinMs = s.roundTripMinMs
        roundTripMeanMs = s.roundTripMeanMs
        roundTripMaxMs = s.roundTripMaxMs
    }
}


struct ModbusReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Read a device through its profile and print values with units, alarms and identity.",
        discussion: """
            --profile takes a file, or a name looked up in $GATEWAYD_PROFILES, ./profiles/modbus and \
            /usr/share/gatewayd/profiles/modbus (e.g. kaisai-r290-monoblock). --serial checks the device \
            against the registry's serial (role=serial for split units: indoor=…,outdoor=…). Exit status 2 \
            when the device raises an alarm or the serial does not match.
            """)

    @OptionGroup var line: ModbusLineArguments

    @Option(help: "Profile name or file.")
    var profile: String

    @Option(help: "Only these polling groups (comma-separated).")
    var groups: String?

    @Option(help: "The registry's serial: SERIAL, or role=SERIAL,role=SERIAL for a split unit.")
    var serial: String?

    static func resolve(_ name: String) throws -> ModbusProfile {
        var candidates = [name]
        if !name.contains("/") {
            let file = name.hasSuffix(".json") ? name : name + ".json"
            if let dir = ProcessInfo.processInfo.environment["GATEWAYD_PROFILES"] { candidates.append(dir + "/" + file) }
            candidates += ["profiles/modbus/" + file, "/usr/share/gatewayd/profiles/modbus/" + file]
        }
        for c in candidates where FileManager.default.fileExists(atPath: c) {
            do { return try ModbusProfile.load(path: c) } catch { throw CLIError(error.message) }
        }
        throw CLIError("no profile \"\(name)\": give a file, or one of the names in profiles/modbus (e.g. kaisai-r290-monoblock)")
    }

    struct Output: Encodable {
        var device: String
        var reading: ModbusReading
        var identity: [String]
        var statistics: ModbusStatisticsJSON
        var elapsedMs: Double
    }

    func run() async throws {
        let profile = try Self.resolve(self.profile)
        let chosen = profile.registers(inGroups: groups.map { Set($0.split(separator: ",").map(String.init)) })
        let modbusLine = try line.openLine()
        let started = ContinuousClock.now
        let reading: ModbusReading
        do {
            reading = try await modbusLine.read(profile: profile, unit: line.unit, selection: chosen)
        } catch {
            FileHandleOutput.standardError("\(error.message)\n\(await modbusLine.statistics)\n")
            throw ExitCode(1)
        }
        let elapsed = ModbusLine.milliseconds(ContinuousClock.now - started)
        let stats = await modbusLine.statistics
        let device = "the heat pump on " + (line.host != nil ? "\(line.label) unit \(line.unit)" : "RTU unit \(line.unit) (\(line.label))")
        var registry: [String: String] = [:]
        if let serial {
            if serial.contains("=") {
                for pair in serial.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    if kv.count == 2 { registry[String(kv[0])] = String(kv[1]) }
                }
            } else if let role = profile.identity?.units.first?.role {
                registry[role] = serial
            }
        }
        let findings = serial == nil ? [] : IdentityCheck.validate(reported: reading.identities, registry: registry, device: device, profile: profile)
        if line.json {
            print(jsonLine(Output(device: device, reading: reading, identity: findings.map(\.description),
                                  statistics: ModbusStatisticsJSON(stats), elapsedMs: elapsed)))
        } else {
            print("\(profile.name) — unit \(line.unit) on \(line.label)")
            let width = min(44, reading.values.map { $0.label.count }.max() ?? 10)
            for v in reading.values {
                let label = v.label.count >= width ? v.label : v.label + String(repeating: " ", count: width - v.label.count)
                print("  \(label)  \(v.value)\(v.unit.map { v.value == .notAvailable ? "" : " " + $0 } ?? "")")
            }
            for (name, why) in reading.failures.sorted(by: { $0.key < $1.key }) { print("  \(name): not read: \(why)") }
            for id in reading.identities {
                let parts = [id.serial.map { "serial \($0)" }, id.model.map { "model \($0)" }, id.firmware.map { "firmware \($0)" }].compactMap { $0 }
                print("  identity \(id.role): " + (parts.isEmpty ? "not exposed over Modbus" : parts.joined(separator: ", ")))
            }
            if let sid = reading.serverID { print("  report server id: \(sid)") }
            for f in findings { print("  \(f)") }
            if reading.alarms.isEmpty { print("  no alarms") }
            for a in reading.alarms { print("  ALARM \(a.message)") }
            FileHandleOutput.standardError("\(stats); \(reading.requests.count) requests planned; elapsed \(Int(elapsed)) ms\n")
        }
        if !reading.alarms.isEmpty || findings.contains(where: { $0.alarm != nil }) { throw ExitCode(2) }
    }
}

struct ModbusDump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Read raw registers or bits (like mbpoll); --watch polls until Ctrl-C.")

    @OptionGroup var line: ModbusLineArguments

    @Option(help: "Table: holding, input, coil or discrete.")
    var kind: RegisterKind = .holding

    @Option(help: "Address range, 0-based, e.g. 0-199 (split into requests of at most --block).")
    var range: String = "0-9"

    @Option(help: "Largest request.")
    var block: Int = 125

    @Flag(help: "Poll again and again until Ctrl-C.")
    var watch = false

    @Option(help: "Seconds between polls with --watch.")
    var interval: Double = 1

    func validate() throws {
        guard parsedRange != nil else { throw ValidationError("--range takes FROM-TO, e.g. 0-199, within 0-65535") }
        guard (1...kind.protocolLimit).contains(block) else { throw ValidationError("--block must be 1 to \(kind.protocolLimit) for \(kind)") }
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
    }

    var parsedRange: ClosedRange<Int>? {
        let parts = range.split(separator: "-")
        guard parts.count <= 2, let a = Int(parts[0]), let b = Int(parts.last!), a >= 0, b >= a, b <= 65535 else { return nil }
        return a...b
    }

    struct Row: Encodable {
        var address: Int
        var value: Int?
        var error: String?
    }

    struct Output: Encodable {
        var kind: String
        var unit: Int
        var poll: Int
        var rows: [Row]
        var statistics: ModbusStatisticsJSON
    }

    func run() async throws {
        let r = parsedRange!
        let modbusLine = try line.openLine()
        let stop = StopFlag()
        let interrupt = watch ? InterruptHandler { stop.set() } : nil
        defer { interrupt?.restore() }
        var poll = 0
        repeat {
            poll += 1
            var rows: [Row] = []
            var start = r.lowerBound
            while start <= r.upperBound {
                let count = min(block, r.upperBound - start + 1)
                do {
                    let words = try await modbusLine.read(kind, address: start, count: count, unit: line.unit)
                    rows += words.enumerated().map { Row(address: start + $0.offset, value: Int($0.element)) }
                } catch {
                    rows.append(Row(address: start, value: nil, error: "\(start)+\(count): \(error.message)"))
                }
                start += count
            }
            let stats = await modbusLine.statistics
            if line.json {
                print(jsonLine(Output(kind: kind.rawValue, unit: line.unit, poll: poll, rows: rows, statistics: ModbusStatisticsJSON(stats))))
            } else {
                if watch { print("-- poll \(poll)") }
                for row in rows {
                    if let v = row.value {
                        let hex = String(v, radix: 16, uppercase: true)
                        print("[\(row.address)]\t\(v)" + (kind.isRegister ? "\t0x" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + "\t\(Int16(truncatingIfNeeded: v))" : ""))
                    } else {
                        print("[\(row.address)]\terror: \(row.error ?? "")")
                    }
                }
                FileHandleOutput.standardError("\(stats)\n")
            }
            FileHandleOutput.flush()
            if watch && !stop.isSet {
                let deadline = ContinuousClock.now + .milliseconds(Int(interval * 1000))
                while ContinuousClock.now < deadline && !stop.isSet { try? await Task.sleep(for: .milliseconds(50)) }
            }
        } while watch && !stop.isSet
    }
}

/// Set from the SIGINT handler, read by the polling loop.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

extension RegisterKind: ExpressibleByArgument {}
