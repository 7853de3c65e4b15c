import Agent
import CLISupport
import ArgumentParser
import Foundation
import Logging

/// `gatewayd run`: the daemon.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway: read the buses, buffer readings, upload them to the portal.",
        discussion: """
            Starts, in order: registry and buffer; the bus readers (wired M-Bus lines, wireless dongles, \
            Modbus lines) with their schedules; the uplink; the status socket and the metrics endpoint. \
            SIGTERM stops them in reverse order without cutting a bus transaction in half; SIGHUP reloads \
            the configuration and keeps the old one if the new file is broken.

            With --demo, or with no configuration file at all, it runs the demo building from seeds/: \
            simulated buses replaying real telegrams and a portal sink on 127.0.0.1. No hardware needed.
            """)

    @Option(name: .long, help: "Configuration file (default \(GatewayConfig.defaultPath); drop-ins in PATH.d/).")
    var config: String?

    @Flag(name: .long, help: "Run the demo building from seeds/ with simulated buses and a local portal sink.")
    var demo = false

    @Option(help: ArgumentHelp(
        "Stop on its own after this long, e.g. 10m (demos and tests; a bare number counts seconds).", valueName: "duration"))
    var duration: RunLengthArgument?

    @Option(help: .hidden)
    var runFor: RunLengthArgument?

    @Option(name: .long, help: "Stop on its own once every polled line finished this many read cycles, every registered radio meter was heard or reported silent, and the buffer is drained (demos and tests).")
    var cycles: Int?

    @Option(name: .long, help: "At exit, write a JSON summary here: what the demo's portal sink stored, the buffer and the pipeline counters.")
    var summary: String?

    func validate() throws {
        let d = try RunLengthArgument.either(duration, "--duration", runFor, "--run-for")
        try RunLengthArgument.check(d, "--duration", within: .milliseconds(1) ... .seconds(366 * 86400))
    }

    func run() async throws {
        ProcessTuning.apply(environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap { JournalLogHandler(label: $0) }
        let logger = Logger(label: "gatewayd")
        let choice: ConfigChoice
        do {
            choice = try ConfigChoice.resolve(explicit: config, demo: demo)
        } catch {
            FileHandleOutput.standardError("gatewayd run: \(error)\n")
            throw ExitCode(78)  // EX_CONFIG
        }
        let loaded: GatewayConfig
        switch GatewayConfig.load(path: choice.path) {
        case .success(let c):
            loaded = c
        case .failure(let problems):
            FileHandleOutput.standardError(
                "gatewayd run: the configuration has \(configCount(problems.problems.count, "problem")); nothing was started:\n"
                    + problems.problems.map { "  \($0)\n" }.joined()
                    + "Check it with: gatewayd config check \(choice.path)\n")
            throw ExitCode(78)
        }
        if choice.isDemo { logger.notice("no configuration given: running the demo building", metadata: ["config": "\(choice.path)"]) }
        let daemon = Daemon(config: loaded, configPath: choice.path, logger: logger,
                            stopAfter: (duration ?? runFor)?.duration, stopAfterCycles: cycles,
                            summaryPath: summary)
        do {
            try await daemon.run()
        } catch let error as DaemonStartError {
            FileHandleOutput.standardError("gatewayd run: \(error)\n")
            throw ExitCode(1)
        }
    }
}

