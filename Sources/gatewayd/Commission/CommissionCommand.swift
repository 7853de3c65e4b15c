import Agent
import CLISupport
import ArgumentParser
import Drivers
import Foundation
import Gateway
import Logging
import Uplink

/// `gatewayd commission`: the installer's check that every device of the registry is heard, opened
/// and read, with a report to leave behind (terminal, JSON, CSV, HTML) and to upload as the building's
/// commissioning record.
struct Commission: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a building against its registry: every meter heard, decrypted and read; write and upload the report.",
        discussion: """
            Listens on every wireless dongle, verifies every wired M-Bus line against the registry (one \
            select per meter), and reads every heat pump's identity, all at once, for the listening window. \
            It stops early once every expected device has been heard, unless --full.

            On a terminal it shows progress by floor; piped, it stays quiet until the summary. The report is \
            written as JSON, CSV and a self-contained HTML page (opens on a phone) into --out, and uploaded \
            through the configured uplink as the building's commissioning record (--no-upload to skip).

            Exit codes: 0 every expected device heard and read; 1 could not run (configuration, registry); \
            2 done, and something needs attention (missing devices, wrong keys, mismatches, weak signal).
            """)

    @Option(help: "The gateway configuration (buses, keys, uplink); default /etc/gatewayd/gatewayd.toml, or the demo building.")
    var config: String?

    @Flag(help: "Commission the embedded demo building (simulated buses).")
    var demo = false

    @Option(help: "The building's registry (JSON) instead of the configured one (a file, or the portal's copy).")
    var registry: String?

    @Option(help: "File of wireless keys ('ID KEY' per line) instead of the configured one.")
    var keys: String?

    @Option(help: "How long to listen: e.g. 10m, 90s, 1h (a bare number is seconds).")
    var listen: RunLengthArgument = RunLengthArgument(.seconds(600))

    @Flag(help: "Listen for the whole window even when every expected device has been heard (more RSSI samples).")
    var full = false

    @Flag(help: "After verifying the wired lines, scan them blind for meters not in the registry (slow: minutes per line).")
    var blindScan = false

    @Option(help: "A radio device whose median signal is below this (dBm) is reported as weak.")
    var weakBelow: Double = -95

    @Option(help: "Directory for the report files (default: commissioning/ beside the reading buffer).")
    var out: String?

    @Flag(help: "Start the CSV report with a UTF-8 byte order mark, so Excel reads accents and units right.")
    var bom = false

    @Flag(help: "Do not upload the report to the portal.")
    var noUpload = false

    @Flag(help: "Print the report as one JSON object on one line (snake_case keys) instead of the summary.")
    var json = false

    func validate() throws {
        if listen.duration < .seconds(1) { throw ValidationError("--listen must be at least 1s") }
        if !weakBelow.isFinite || weakBelow > 0 || weakBelow < -150 { throw ValidationError("--weak-below takes dBm between -150 and 0, e.g. -95") }
        if demo && config != nil { throw ValidationError("give --config or --demo, not both") }
    }

    func run() async throws {
        // Logs would break the live view: only warnings, on stderr.
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = .warning
            return h
        }
        let logger = Logger(label: "gatewayd.commission")
        let choice: ConfigChoice
        do {
            choice = try ConfigChoice.resolve(explicit: config, demo: demo)
        } catch {
            throw CLIError("\(error)")
        }
        let loaded: GatewayConfig
        switch GatewayConfig.load(path: choice.path) {
        case .success(let c): loaded = c
        case .failure(let problems):
            FileHandleOutput.standardError(
                "gatewayd commission: the configuration has \(configCount(problems.problems.count, "problem")):\n"
                    + problems.problems.map { "  \($0)\n" }.joined() + "Check it with: gatewayd config check \(choice.path)\n")
            throw ExitCode(1)
        }
        var keyring = loaded.keys
        if let keys {
            guard let text = try? String(contentsOfFile: keys, encoding: .utf8) else {
                throw CLIError("cannot read \(keys): check the path and that you may read it")
            }
            switch WMBusKeyring.parse(text) {
            case .success(let k): keyring = k
            case .failure(let e): throw CLIError("\(keys): \(e)")
            }
        }

        let demoBuilding: DemoBuilding
        do {
            demoBuilding = try await DemoBuilding.start(config: loaded, configPath: choice.path, logger: logger)
        } catch {
            throw CLIError("\(error)")
        }
        defer { demoBuilding.stop() }
        let transport: (any PortalTransport)?
        do {
            transport = noUpload && registry != nil ? nil
                : try UplinkWiring.transport(config: loaded, demo: demoBuilding, logger: logger.with("component", "uplink"))
        } catch {
            if !noUpload { FileHandleOutput.standardError("gatewayd commission: \(error); the report will not be uploaded\n") }
            transport = nil
        }

        let registryResult = await CommissionRegistry.load(explicit: registry, config: loaded, transport: transport)
        let deviceRegistry: DeviceRegistry
        switch registryResult {
        case .success(let r, let note):
            deviceRegistry = r
            if let note { FileHandleOutput.standardError("gatewayd commission: \(note)\n") }
        case .failure(let message):
            await transport?.shutdown()
            throw CLIError(message)
        }

        // A wrong GATEWAYD_PROFILES or a broken profile would make every radio meter's values generic in
        // the report: refuse instead.
        let catalog: ProfileCatalog?
        do {
            if let dir = try ProfileCatalog.defaultDirectory() { catalog = try ProfileCatalog.load(directory: dir) } else { catalog = nil }
        } catch let error as ProfileRootError {
            await transport?.shutdown()
            throw CLIError(error.message)
        } catch {
            await transport?.shutdown()
            throw CLIError("wireless meter profiles: \(error)")
        }
        let run = CommissioningRun(
            config: loaded, registry: deviceRegistry, keyring: keyring, catalog: catalog, demo: demoBuilding,
            options: CommissioningOptions(weakSignalBelow: weakBelow), listenSeconds: Int(listen.duration.components.seconds),
            full: full, blindScan: blindScan, logger: logger)
        let view = CommissionView(enabled: !json && isatty(1) == 1, window: Int(listen.duration.components.seconds))
        let stop = StopFlag()
        let interrupt = InterruptHandler { stop.set() }
        let report = await run.run(stop: stop) { view.draw($0, elapsed: $1, buses: $2) }
        interrupt.restore()
        view.clear()

        let directory = out ?? ((loaded.buffer.path as NSString).deletingLastPathComponent + "/commissioning")
        let written: CommissionFiles.Written
        do {
            written = try CommissionFiles.write(report, to: directory, csvByteOrderMark: bom)
        } catch {
            await transport?.shutdown()
            throw CLIError("cannot write the report into \(directory): \(error); give another directory with --out")
        }

        var uploadLine: String
        if noUpload {
            uploadLine = "not uploaded (--no-upload)"
        } else if let transport {
            uploadLine = await CommissionUpload.send(report, transport: transport)
            if let sink = await demoBuilding.portalSummary() {
                uploadLine += "; the demo portal sink holds \(sink.commissioningReports) commissioning report(s)"
            }
        } else {
            uploadLine = "not uploaded: no usable uplink in the configuration"
        }
        await transport?.shutdown()

        if json {
            // One line, like every --json output (the file on disk keeps the readable, indented form).
            let compact = (try? JSONSerialization.jsonObject(with: Data(report.json())))
                .flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .withoutEscapingSlashes]) } ?? Data(report.json())
            FileHandle.standardOutput.write(compact + Data("\n".utf8))
        } else {
            print(report.terminalSummary(), terminator: "")
        }
        let files = "report: \(written.json)\n        \(written.csv)\n        \(written.html)\nupload: \(uploadLine)\n"
        if json { FileHandleOutput.standardError(files) } else { print(files, terminator: "") }
        FileHandleOutput.flush()
        if report.findings.contains(where: { $0.severity != .info }) { throw ExitCode(2) }
    }
}

/// Where the registry comes from: `--registry FILE`, the configured file, or the portal (falling back
/// to the daemon's cached copy when the portal cannot be reached).
enum CommissionRegistry {
    enum Loaded {
        case success(DeviceRegistry, note: String?)
        case failure(String)
    }

    static func load(explicit: String?, config: GatewayConfig, transport: (any PortalTransport)?) async -> Loaded {
        if let explicit { return file(explicit) }
        switch config.registry {
        case .file(let path):
            return file(path)
        case .portal(let cache, _):
            guard let transport else { return withNote(file(cache), "no uplink: using the cached registry \(cache)") }
            switch await transport.fetchRegistry(ifNoneMatch: nil) {
            case .document(let body, _):
                do {
                    let document = try JSONDecoder().decode(Gateway.RegistryDocument.self, from: Data(body))
                    return .success(try DeviceRegistry(document), note: nil)
                } catch {
                    return withNote(file(cache), "the portal's registry does not load (\(error)); using the cached copy \(cache)")
                }
            case .notModified, .failed:
                return withNote(file(cache), "the portal did not send the registry; using the cached copy \(cache)")
            }
        }
    }

    private static func file(_ path: String) -> Loaded {
        do {
            return .success(try DeviceRegistry.load(path: path), note: nil)
        } catch {
            return .failure("\(error)")
        }
    }

    private static func withNote(_ loaded: Loaded, _ note: String) -> Loaded {
        if case .success(let r, _) = loaded { return .success(r, note: note) }
        return loaded
    }
}

/// The report files: `<id>.json`, `<id>.csv`, `<id>.html`, written atomically so a half-written report
/// never replaces a good one.
enum CommissionFiles {
    struct Written {
        var json: String
        var csv: String
        var html: String
    }

    static func write(_ report: CommissioningReport, to directory: String, csvByteOrderMark: Bool = false) throws -> Written {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let base = directory + "/" + report.id
        let w = Written(json: base + ".json", csv: base + ".csv", html: base + ".html")
        try Data(report.json()).write(to: URL(fileURLWithPath: w.json), options: .atomic)
        try Data(report.csv(byteOrderMark: csvByteOrderMark).utf8).write(to: URL(fileURLWithPath: w.csv), options: .atomic)
        try Data(report.html().utf8).write(to: URL(fileURLWithPath: w.html), options: .atomic)
        return w
    }
}

/// Sends the report as the building's commissioning record: a few attempts, then the local copy is
/// what remains (the JSON file can be sent again later with the same id; the portal keeps one record
/// per id).
enum CommissionUpload {
    static func send(_ report: CommissioningReport, transport: any PortalTransport) async -> String {
        let body = report.json()
        var wait: Duration = .seconds(1)
        var last = ""
        for attempt in 1...4 {
            switch await transport.deliver(.commissioningReport(id: report.id, body: body)) {
            case .accepted:
                return "accepted by \(transport.endpointDescription) as \(report.id)"
            case .unauthorized(let why):
                return "refused by the portal (\(why)): check the gateway's credentials; the report stays on disk"
            case .rejectedReadings(_, let why):
                return "refused by the portal (\(why)); the report stays on disk"
            case .tooLarge:
                return "too large for the portal; the report stays on disk"
            case .transient(let why, let retryAfter):
                last = why
                if attempt < 4 {
                    try? await Task.sleep(for: retryAfter ?? wait)
                    wait *= 2
                }
            }
        }
        return "not uploaded (\(last)); the report stays on disk"
    }
}
