import Agent
import CLISupport
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
    @Option(help: "The device: a serial device for RTU (/dev/serial/by-id/…) or tcp://host[:port] for Modbus TCP (port 502 when left out).")
    var port: String?

    @Option(help: .hidden)
    var host: String?

    @Option(name: .customLong("tcp-port"), help: .hidden)
    var tcpPort: Int?

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

    @Option(help: ArgumentHelp(
        "How long to wait for an answer: 500ms, 2s (a bare number counts milliseconds). (default: 1s)", valueName: "duration"))
    var timeout: TimeoutArgument?

    @Option(help: .hidden)
    var timeoutMs: TimeoutArgument?

    @Option(help: ArgumentHelp(
        "Longest silence inside one answer: 100ms (a bare number counts milliseconds). (default: 100ms)", valueName: "duration"))
    var byteTimeout: TimeoutArgument?

    @Option(help: .hidden)
    var byteTimeoutMs: TimeoutArgument?

    @Option(help: "Repeats after a timeout.")
    var retries: Int = 1

    @Flag(help: "Print one JSON object per line (snake_case keys) instead of a table.")
    var json = false

    func validate() throws {
        if port != nil && host != nil { throw ValidationError("give --port only (--host is the old spelling of --port tcp://HOST)") }
        guard port != nil || host != nil else { throw ValidationError("give --port: a serial device for RTU, or tcp://host:port") }
        if tcpPort != nil && host == nil { throw ValidationError("--tcp-port goes with --host; write --port tcp://host:port instead") }
        if let tcpPort, !(1...65535).contains(tcpPort) { throw ValidationError("--tcp-port must be 1 to 65535") }
        if let port { _ = try Self.endpoint(port) }
        guard (0...255).contains(unit) else { throw ValidationError("--unit must be 0 to 255") }
        if case .rtu = try endpoint { try SerialArguments.validate(baud: baud, stopBits: stopBits) }
        let t = try TimeoutArgument.either(timeout, "--timeout", timeoutMs, "--timeout-ms")
        let b = try TimeoutArgument.either(byteTimeout, "--byte-timeout", byteTimeoutMs, "--byte-timeout-ms")
        try TimeoutArgument.check(t, "--timeout", within: .milliseconds(1) ... .seconds(60))
        try TimeoutArgument.check(b, "--byte-timeout", within: .milliseconds(1) ... .seconds(60))
        guard (0...10).contains(retries) else { throw ValidationError("--retries must be 0 to 10") }
    }

    /// `tcp://host[:port]` or a device path; the same shapes `mbus --port` takes, with Modbus's port 502
    /// as the default.
    static func endpoint(_ text: String) throws -> BusEndpoint {
        var text = text
        if text.hasPrefix("tcp://") {
            let rest = text.dropFirst("tcp://".count)
            let bracketed = rest.hasPrefix("[") && rest.hasSuffix("]")
            if bracketed || !rest.contains(":") { text += ":502" }
        }
        do { return try BusEndpoint(text) } catch { throw ValidationError("--port " + error.message) }
    }

    var endpoint: ModbusEndpoint {
        get throws {
            if let host { return .tcp(host: host, port: tcpPort ?? 502) }
            switch try Self.endpoint(port!) {
            case .tcp(let host, let port): return .tcp(host: host, port: Int(port))
            case .serial(let path):
                return .rtu(path: path, serial: SerialSettings(baudRate: baud, parity: parity, stopBits: stopBits), rs485: rs485)
            }
        }
    }

    /// Where the device is, as a technician wrote it: the device path or tcp://host:port.
    var label: String {
        switch try? endpoint {
        case .tcp(let host, let port)?: return BusEndpoint.tcp(host: host, port: UInt16(port)).description
        case .rtu(let path, _, _)?: return path
        case nil: return port ?? host ?? "?"
        }
    }

    var isTCP: Bool { if case .tcp? = try? endpoint { true } else { false } }

    var responseTimeout: Duration { (timeout ?? timeoutMs)?.duration ?? .seconds(1) }
    var answerByteTimeout: Duration { (byteTimeout ?? byteTimeoutMs)?.duration ?? .milliseconds(100) }

    func openLine() throws -> ModbusLine {
        if host != nil { FileHandleOutput.standardError("gatewayd: --host and --tcp-port are deprecated; write --port \(label)\n") }
        let endpoint = try self.endpoint
        do {
            return try ModbusLine(endpoint: endpoint, options: ModbusLineOptions(
                responseTimeout: responseTimeout, byteTimeout: answerByteTimeout, retries: retries))
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
            --profile takes a file, or a name looked up in $GATEWAYD_PROFILES/modbus, ./profiles/modbus and \
            /usr/share/gatewayd/profiles/modbus (e.g. kaisai-r290-monoblock). --serial checks the device \
            against the registry's serial (role=serial for split units: indoor=…,outdoor=…). Exit status 0 \
            when everything was read and is in order; 2 when the device raises an alarm, the serial does not \
            match or registers could not be read; 1 when the device does not answer.
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
            let directories: [String]
            do { directories = try ProfileRoot.modbusSearchPath() } catch { throw CLIError(error.message) }
            candidates += directories.map { $0 + "/" + file }
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
        let ticker = ProgressTicker("reading \(profile.name) on \(line.label)…")
        let reading: ModbusReading
        do {
            reading = try await modbusLine.read(profile: profile, unit: line.unit, selection: chosen)
        } catch {
            ticker.stop()
            FileHandleOutput.standardError("\(error.message)\n\(await modbusLine.statistics)\n")
            throw ExitCode(1)
        }
        ticker.stop()
        let elapsed = ModbusLine.milliseconds(ContinuousClock.now - started)
        let stats = await modbusLine.statistics
        let device = "the heat pump on " + (line.isTCP ? "\(line.label) unit \(line.unit)" : "RTU unit \(line.unit) (\(line.label))")
        let findings = serial.map {
            IdentityCheck.validate(reported: reading.identities, registry: Self.registrySerials($0, profile: profile), device: device, profile: profile)
        } ?? []
        if line.json {
            print(jsonLine(Output(device: device, reading: reading, identity: findings.map(\.description),
                                  statistics: ModbusStatisticsJSON(stats), elapsedMs: elapsed)))
        } else {
            print(Self.render(reading, profile: profile, unit: line.unit, label: line.label, findings: findings), terminator: "")
            FileHandleOutput.standardError("\(stats); \(reading.requests.count) requests planned; elapsed \(Int(elapsed)) ms\n")
        }
        if Self.needsAttention(reading, findings: findings) { throw ExitCode(2) }
    }

    /// --serial as roles: "SERIAL" belongs to the profile's first unit, "indoor=A,outdoor=B" names them.
    static func registrySerials(_ serial: String, profile: ModbusProfile) -> [String: String] {
        var registry: [String: String] = [:]
        if serial.contains("=") {
            for pair in serial.split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { registry[String(kv[0])] = String(kv[1]) }
            }
        } else if let role = profile.identity?.units.first?.role {
            registry[role] = serial
        }
        return registry
    }

    /// Alarms, a serial that does not match, and registers the device would not give all need a look.
    static func needsAttention(_ reading: ModbusReading, findings: [IdentityFinding]) -> Bool {
        !reading.alarms.isEmpty || !reading.failures.isEmpty || findings.contains { $0.alarm != nil }
    }

    static func render(_ reading: ModbusReading, profile: ModbusProfile, unit: Int, label: String, findings: [IdentityFinding]) -> String {
        var out = "\(profile.name) — unit \(unit) on \(label)\n"
        let rows = reading.values.map { v in
            [v.label, "\(v.value)", v.value == .notAvailable ? "" : v.unit ?? ""]
        }
        out += TextTable.render(header: ["name", "value", "unit"], rows: rows, indent: "  ")
        for (name, why) in reading.failures.sorted(by: { $0.key < $1.key }) { out += "  ! \(name): not read: \(why)\n" }
        for id in reading.identities {
            let parts = [id.serial.map { "serial \($0)" }, id.model.map { "model \($0)" }, id.firmware.map { "firmware \($0)" }].compactMap { $0 }
            out += "  identity \(id.role): " + (parts.isEmpty ? "not exposed over Modbus" : parts.joined(separator: ", ")) + "\n"
        }
        if let sid = reading.serverID { out += "  report server id: \(sid)\n" }
        for f in findings { out += "  \(f)\n" }
        if reading.alarms.isEmpty { out += "  no alarms\n" }
        for a in reading.alarms { out += "  ALARM \(a.message)\n" }
        return out
    }
}

struct ModbusDump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Read raw registers or bits (like mbpoll); --watch polls until Ctrl-C.",
        discussion: """
            Exit status 0 when every request was answered; 2 when some were refused or timed out (their \
            addresses are listed after the table); 1 when none was answered.
            """)

    @OptionGroup var line: ModbusLineArguments

    @Option(help: "Table: holding, input, coil or discrete.")
    var kind: RegisterKind = .holding

    @Option(help: "Address range, 0-based, e.g. 0-199 (split into requests of at most --block).")
    var range: String = "0-9"

    @Option(help: "Largest request.")
    var block: Int = 125

    @Flag(help: "Poll again and again until Ctrl-C.")
    var watch = false

    @Option(help: ArgumentHelp("Time between polls with --watch: 500ms, 2s (a bare number counts seconds).", valueName: "duration"))
    var interval = RunLengthArgument(.seconds(1))

    func validate() throws {
        guard parsedRange != nil else { throw ValidationError("--range takes FROM-TO, e.g. 0-199, within 0-65535") }
        guard (1...kind.protocolLimit).contains(block) else { throw ValidationError("--block must be 1 to \(kind.protocolLimit) for \(kind)") }
        guard interval.duration > .zero else { throw ValidationError("--interval must be above 0") }
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
        let progress = ProgressLine()
        let requests = (r.count + block - 1) / block
        var poll = 0
        var answered = 0
        var failed = 0
        repeat {
            poll += 1
            var rows: [Row] = []
            var start = r.lowerBound
            var done = 0
            while start <= r.upperBound && !stop.isSet {
                if requests > 1 { progress.show("\(watch ? "poll \(poll): " : "")request \(done + 1) of \(requests), address \(start)") }
                let count = min(block, r.upperBound - start + 1)
                do {
                    let words = try await modbusLine.read(kind, address: start, count: count, unit: line.unit)
                    rows += words.enumerated().map { Row(address: start + $0.offset, value: Int($0.element)) }
                    answered += 1
                } catch {
                    rows.append(Row(address: start, value: nil, error: "\(start)+\(count): \(error.message)"))
                    failed += 1
                }
                start += count
                done += 1
            }
            progress.clear()
            let stats = await modbusLine.statistics
            if line.json {
                print(jsonLine(Output(kind: kind.rawValue, unit: line.unit, poll: poll, rows: rows, statistics: ModbusStatisticsJSON(stats))))
            } else {
                if watch { print("-- poll \(poll)") }
                print(Self.render(rows, kind: kind), terminator: "")
                FileHandleOutput.standardError("\(stats)\n")
            }
            FileHandleOutput.flush()
            if watch && !stop.isSet {
                let deadline = ContinuousClock.now + interval.duration
                var shown: Int64 = -1
                while ContinuousClock.now < deadline && !stop.isSet {
                    let left = (deadline - ContinuousClock.now).components.seconds + 1
                    if left != shown {
                        progress.show("polled \(poll) time\(poll == 1 ? "" : "s"), next in \(left) s; Ctrl-C to stop")
                        shown = left
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                progress.clear()
            }
        } while watch && !stop.isSet
        if answered == 0 && failed > 0 { throw ExitCode(1) }
        if failed > 0 { throw ExitCode(2) }
    }

    /// Registers as address, unsigned, hex and signed (the columns mbpoll shows); bits as address and value.
    static func render(_ rows: [Row], kind: RegisterKind) -> String {
        let values = rows.filter { $0.value != nil }
        var out = ""
        if !values.isEmpty {
            let header = kind.isRegister ? ["address", "value", "hex", "signed"] : ["address", "value"]
            out += TextTable.render(header: header, rows: values.map { row in
                let v = row.value!
                guard kind.isRegister else { return [String(row.address), String(v)] }
                let hex = String(v, radix: 16, uppercase: true)
                return [String(row.address), String(v), "0x" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex,
                        String(Int16(truncatingIfNeeded: v))]
            })
        }
        for row in rows where row.value == nil { out += "! \(row.error ?? "no answer at \(row.address)")\n" }
        return out
    }
}

/// Set from the SIGINT handler, read by the polling loop.

extension RegisterKind: ExpressibleByArgument {}
