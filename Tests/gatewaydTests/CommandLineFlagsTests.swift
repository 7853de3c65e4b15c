@testable import Agent
import CLISupport
@testable import gatewayd_sim
import ArgumentParser
import Drivers
import Foundation
import Testing
@testable import gatewayd

/// gatewayd's commands, found from the root's configuration so a new subcommand is never missed.
enum CommandTree {
    /// Every command reachable from the root, as its words after `gatewayd` ("" for the root itself).
    static func paths(_ command: any ParsableCommand.Type = Gatewayd.self, prefix: [String] = []) -> [String] {
        var out = [prefix.joined(separator: " ")]
        for sub in command.configuration.subcommands {
            out += paths(sub, prefix: prefix + [sub._commandName])
        }
        return out
    }

    static func command(at path: String) -> (any ParsableCommand.Type)? {
        var current: any ParsableCommand.Type = Gatewayd.self
        for word in path.split(separator: " ") {
            guard let next = current.configuration.subcommands.first(where: { $0._commandName == word }) else { return nil }
            current = next
        }
        return current
    }
}

/// The options every command shares: one duration syntax, one --port, old spellings still accepted.
@Suite("Shared command-line options")
struct CommandLineFlagsTests {

    @Test("durations: units, decimals, compounds, and a bare number in the option's old unit")
    func durations() {
        #expect(TimeoutArgument(argument: "500ms")?.duration == .milliseconds(500))
        #expect(TimeoutArgument(argument: "2s")?.duration == .seconds(2))
        #expect(TimeoutArgument(argument: "1.5s")?.duration == .milliseconds(1500))
        #expect(TimeoutArgument(argument: "10m")?.duration == .seconds(600))
        #expect(TimeoutArgument(argument: "1h")?.duration == .seconds(3600))
        #expect(TimeoutArgument(argument: "1h30m")?.duration == .seconds(5400))
        #expect(TimeoutArgument(argument: "250")?.duration == .milliseconds(250))
        #expect(RunLengthArgument(argument: "5")?.duration == .seconds(5))
        #expect(RunLengthArgument(argument: "0.1")?.duration == .milliseconds(100))
        #expect(DurationArgument<Hours>(argument: "24")?.duration == .seconds(86400))
        for bad in ["", "-1s", "2 parsecs", "1.2.3s", "s", ".", "1e3", "1.5h30m"] {
            #expect(TimeoutArgument(argument: bad) == nil, "\(bad)")
        }
        #expect(TimeoutArgument(.milliseconds(1500)).description == "1500ms")
        #expect(RunLengthArgument(.seconds(90)).description == "1m30s")
    }

    @Test("modbus --port takes a device or tcp://host[:port]; --host/--tcp-port still work, hidden")
    func modbusPort() throws {
        func endpoint(_ args: [String]) throws -> ModbusEndpoint {
            try ModbusDump.parse(args).line.endpoint
        }
        #expect(try endpoint(["--port", "tcp://192.0.2.30"]) == .tcp(host: "192.0.2.30", port: 502))
        #expect(try endpoint(["--port", "tcp://192.0.2.30:1502"]) == .tcp(host: "192.0.2.30", port: 1502))
        #expect(try endpoint(["--port", "tcp://[2001:db8::5]"]) == .tcp(host: "2001:db8::5", port: 502))
        #expect(try endpoint(["--host", "192.0.2.30", "--tcp-port", "1502"]) == .tcp(host: "192.0.2.30", port: 1502))
        #expect(try endpoint(["--host", "192.0.2.30"]) == .tcp(host: "192.0.2.30", port: 502))
        guard case .rtu(let path, let serial, false) = try endpoint(["--port", "/dev/ttyUSB0", "--baud", "19200", "--parity", "none"]) else {
            Issue.record("a device path is RTU")
            return
        }
        #expect(path == "/dev/ttyUSB0")
        #expect(serial.baudRate == 19200)
        #expect(try ModbusDump.parse(["--port", "tcp://192.0.2.30"]).line.label == "tcp://192.0.2.30:502")

        for usage in [[], ["--port", "tcp://h", "--host", "h"], ["--port", "/dev/x", "--tcp-port", "502"], ["--port", "ttyUSB0"],
                      ["--port", "tcp://h:x"], ["--port", "/dev/x", "--baud", "12345"]] {
            #expect(throws: (any Error).self, "\(usage)") { try ModbusDump.parse(usage) }
        }
        let help = Gatewayd.helpMessage(for: ModbusDump.self, columns: 100)
        #expect(!help.contains("--host") && !help.contains("--tcp-port") && !help.contains("--timeout-ms"))
    }

    @Test("timeouts: new spelling and old spelling give the same value; both at once is a usage error")
    func timeoutAliases() throws {
        #expect(try ModbusDump.parse(["--port", "/dev/x", "--timeout", "250"]).line.responseTimeout == .milliseconds(250))
        #expect(try ModbusDump.parse(["--port", "/dev/x", "--timeout-ms", "250"]).line.responseTimeout == .milliseconds(250))
        #expect(try ModbusDump.parse(["--port", "/dev/x", "--timeout", "2s", "--byte-timeout", "50ms"]).line.answerByteTimeout == .milliseconds(50))
        #expect(try ModbusDump.parse(["--port", "/dev/x", "--byte-timeout-ms", "50"]).line.answerByteTimeout == .milliseconds(50))
        #expect(try ModbusDump.parse(["--port", "/dev/x"]).line.responseTimeout == .seconds(1))
        #expect(throws: (any Error).self) { try ModbusDump.parse(["--port", "/dev/x", "--timeout", "1s", "--timeout-ms", "1000"]) }
        #expect(throws: (any Error).self) { try ModbusDump.parse(["--port", "/dev/x", "--timeout", "2m"]) }

        #expect(try Status.parse(["--timeout", "2s"]).timeout?.duration == .seconds(2))
        #expect(try Status.parse(["--timeout-ms", "2000"]).timeoutMs?.duration == .seconds(2))
        #expect(throws: (any Error).self) { try Status.parse(["--timeout", "2s", "--timeout-ms", "2000"]) }

        #expect(try MBusScan.parse(["--port", "/dev/x", "--allowance", "0.2s"]).line.adapterAllowance == .milliseconds(200))
        #expect(try MBusScan.parse(["--port", "/dev/x", "--allowance-ms", "200"]).line.adapterAllowance == .milliseconds(200))
        #expect(try MBusScan.parse(["--port", "/dev/x"]).line.adapterAllowance == .milliseconds(30))
    }

    @Test("run lengths: --duration everywhere, --seconds and --run-for kept")
    func runLengths() throws {
        #expect(try Listen.parse(["--replay", "x", "--duration", "10m"]).runLength.limit == .seconds(600))
        #expect(try Listen.parse(["--replay", "x", "--seconds", "5"]).runLength.limit == .seconds(5))
        #expect(try Listen.parse(["--replay", "x"]).runLength.limit == nil)
        #expect(throws: (any Error).self) { try Listen.parse(["--replay", "x", "--duration", "5s", "--seconds", "5"]) }
        #expect(try SimulatePortal.parse(["--seconds", "3"]).runLength.limit == .seconds(3))
        #expect(try SimulateDongle.parse(["--replay", "x", "--interval", "0.1"]).interval.duration == .milliseconds(100))
        #expect(try SimulateDongle.parse(["--replay", "x", "--interval", "250ms"]).interval.duration == .milliseconds(250))
        #expect(try Run.parse(["--run-for", "2.5"]).runFor?.duration == .milliseconds(2500))
        #expect(try Run.parse(["--duration", "10m"]).duration?.duration == .seconds(600))
        #expect(try ModbusDump.parse(["--port", "/dev/x", "--interval", "500ms"]).interval.duration == .milliseconds(500))
        #expect(try BufferStats.parse(["--max-age", "2d"]).maxAge.duration == .seconds(172_800))
        #expect(try BufferStats.parse(["--max-age", "6"]).maxAge.duration == .seconds(21_600))
    }

    @Test("--json is a flag of every command that prints results, with the same wording")
    func jsonEverywhere() throws {
        let exempt: Set<String> = ["run", "version", "profiles suggest"]
        for path in CommandTree.paths() where !path.isEmpty {
            let command = try #require(CommandTree.command(at: path))
            guard command.configuration.subcommands.isEmpty, !exempt.contains(path) else { continue }
            let help = Gatewayd.helpMessage(for: command, columns: 200)
            #expect(help.contains("--json") && help.contains("snake_case keys"),
                    "gatewayd \(path) has no --json of the shared kind (docs/cli.md); add one, or add the command to `exempt` with the reason in docs/cli.md")
        }
    }

    @Test("buffer export: --json is --format json; both formats at once is a usage error")
    func exportJSON() throws {
        #expect(try BufferExport.parse(["--json"]).json)
        #expect(try BufferExport.parse([]).format == nil)
        #expect(throws: (any Error).self) { try BufferExport.parse(["--json", "--format", "csv"]) }
    }

    @Test("exit codes: unreadable input files are 1 (could not do it), not 64 (usage)")
    func unreadableFiles() throws {
        let decode = try Decode.parse(["--file", "/nonexistent/frames.hex"])
        #expect(throws: CLIError.self) { try decode.run() }
        let keys = try Decode.parse(["--keys", "/nonexistent/keys.txt", "68"])
        #expect(throws: CLIError.self) { _ = try keys.keyring() }
    }

    @Test("needs attention: meter status error bits and application errors; devices without links")
    func attention() throws {
        var t = Telegram(controlInformation: 0x72)
        #expect(!MBusRead.needsAttention(t))
        t.header.status = MeterStatus(rawValue: 0x04)
        #expect(MBusRead.needsAttention(t), "power low")
        t.header.status = MeterStatus(rawValue: 0xE0)
        #expect(!MBusRead.needsAttention(t), "manufacturer bits alone are not judged")
        #expect(!DevicesText.needsAttention(DeviceLook(deviceCount: 0, adapters: [])))
    }
}
