import Agent
import CLISupport
import ArgumentParser
import Gateway

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with gatewayd's configuration file.",
        subcommands: [ConfigCheck.self])
}

struct ConfigCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration without starting the daemon.",
        discussion: """
            Reads PATH and the *.toml files of its drop-in directory (PATH.d) as the daemon would, and \
            prints every problem as file:line: field: message, then a summary. Exit status 0 when the \
            configuration loads, 1 when it has problems. --skip-path-checks is for packaging: files the \
            daemon reads at start need not exist on this machine (permissions of those that do are still \
            checked). See docs/configuration.md.
            """)

    @Argument(help: "The configuration file.")
    var path: String = GatewayConfig.defaultPath

    @Option(name: .customLong("drop-ins"), help: "The drop-in directory (default: PATH.d).")
    var dropIns: String?

    @Flag(help: "Do not require the files the configuration names to exist (for packaging).")
    var skipPathChecks = false

    @Option(help: "Also look up Modbus profile names in this directory.")
    var profiles: String?

    @Flag(help: "Print one JSON object on one line (snake_case keys) instead of text.")
    var json = false

    func run() throws {
        var options = ConfigLoadOptions(checkPaths: !skipPathChecks)
        if let profiles { options.profileDirectories.insert(profiles, at: 0) }
        let result = GatewayConfig.load(path: path, dropInDirectory: dropIns, options: options)
        let warnings = (try? result.get()).map(ConfigCheckReport.warnings) ?? []
        print(json ? ConfigCheckReport.json(result, warnings: warnings) : ConfigCheckReport.text(result, path: path, warnings: warnings),
              terminator: "")
        if case .failure = result { throw ExitCode(1) }
    }
}

/// What `gatewayd config check` prints, kept apart from the command so tests compare it directly.
enum ConfigCheckReport {
    /// Things that load but will not work as meant (a registry entry without manufacturer matches no
    /// telegram): printed as warnings, the exit status stays 0.
    static func warnings(_ config: GatewayConfig) -> [String] {
        guard case .file(let path) = config.registry, let registry = try? DeviceRegistry.load(path: path) else { return [] }
        return registry.warnings.map { "\(path): \($0)" }
    }

    static func text(_ result: Result<GatewayConfig, ConfigProblems>, path: String, warnings: [String] = []) -> String {
        switch result {
        case .success(let config):
            return warnings.map { "warning: \($0)\n" }.joined() + "ok: \(files(config.sources)): \(config)\n"
        case .failure(let failure):
            var out = failure.problems.map { $0.description + "\n" }.joined()
            out += "\(configCount(failure.problems.count, "problem")) in \(files(failure.files)); the configuration was not loaded\n"
            return out
        }
    }

    /// "gatewayd.toml" or "gatewayd.toml and 2 drop-ins".
    private static func files(_ files: [String]) -> String {
        let main = files.first ?? GatewayConfig.defaultPath
        return files.count > 1 ? "\(main) and \(configCount(files.count - 1, "drop-in"))" : main
    }

    struct JSONReport: Encodable {
        var ok: Bool
        var files: [String]
        var problems: [ConfigProblem]
        var warnings: [String] = []
        var summary: Summary?
    }

    struct Summary: Encodable {
        var gatewayId: String
        var building: String
        var demo: Bool
        var mbus: [String]
        var wmbus: [String]
        var modbus: [String]
        var modbusDevices: [String]
        var uplink: String
        var meterKeys: Int
    }

    static func json(_ result: Result<GatewayConfig, ConfigProblems>, warnings: [String] = []) -> String {
        switch result {
        case .success(let c):
            let summary = Summary(gatewayId: c.gatewayID, building: c.building, demo: c.demo, mbus: c.buses.mbus.map(\.name),
                                  wmbus: c.buses.wmbus.map(\.name), modbus: c.buses.modbus.map(\.name),
                                  modbusDevices: c.buses.modbus.flatMap { $0.devices.map(\.name) },
                                  uplink: "\(c.uplink.transport.rawValue) \(c.uplink.endpoint)", meterKeys: c.keys.keys.count)
            return jsonLine(JSONReport(ok: true, files: c.sources, problems: [], warnings: warnings, summary: summary)) + "\n"
        case .failure(let f):
            return jsonLine(JSONReport(ok: false, files: f.files, problems: f.problems, summary: nil)) + "\n"
        }
    }
}
