import Drivers
import Foundation
import Gateway
import Logging
import ServiceLifecycle
import UnixSignals

/// The daemon: builds the parts from a configuration and runs them as one ServiceGroup.
///
/// Start order: registry and buffer (plain objects, opened here), then the bus supervisor (wired
/// lines, dongles, Modbus lines, each on its schedule), the uplink, housekeeping (watchdog, metrics,
/// status), the reload listener and the local endpoints. ServiceGroup stops them in reverse order.
package final class Daemon: Sendable {
    package let initialConfig: GatewayConfig
    package let configPath: String
    package let logger: Logger
    package let stopAfter: Duration?
    package let stopAfterCycles: Int?
    package let summaryPath: String?

    package init(config: GatewayConfig, configPath: String, logger: Logger, stopAfter: Duration?, stopAfterCycles: Int?,
         summaryPath: String? = nil) {
        self.summaryPath = summaryPath
        initialConfig = config
        self.configPath = configPath
        self.logger = logger
        self.stopAfter = stopAfter
        self.stopAfterCycles = stopAfterCycles
    }

    package func run() async throws {
        let config = initialConfig
        let notifier = SystemdNotifier.fromProcessEnvironment()
        logger.notice("gatewayd starting", metadata: ["version": "\(GatewaydVersion.string)", "config": "\(configPath)", "summary": "\(config)"])

        // 1. Registry and buffer.
        let registry = try loadRegistry(config)
        let board = StatusBoard(gateway: config.gatewayID, building: config.building, demo: config.demo)
        let buffer = try Self.openBuffer(config.buffer)
        // Start-up events (a quarantine) stay in the buffer's queue: housekeeping's first round logs them
        // and raises them as alarms, which reach the portal.
        let silence = SilenceWatch.Policy(intervals: config.alarms.notHeardIntervals,
                                          minimum: Int64(config.alarms.notHeardMinimum.components.seconds) * 1000)
        // Polled devices are judged by their line's readout interval.
        var lineIntervals: [String: Int64] = [:]
        for name in config.buses.mbus.map(\.name) + config.buses.modbus.map(\.name) {
            lineIntervals[name] = Int64(config.schedules.schedule(forBus: name).interval.components.seconds) * 1000
        }
        // Set-day proof beside the buffer (`gatewayd billing` reads it). A damaged ledger is set aside, not fatal:
        // the proof records already at the portal stay, and the next set-day values rebuild it.
        let stateDirectory = (config.buffer.path as NSString).deletingLastPathComponent
        let ledgerFile = SetDayLedgerFile(path: stateDirectory + "/set-days.json")
        var (ledger, ledgerProblem) = ledgerFile.loadOrSetAside(now: unixMilliseconds())
        if let ledgerProblem { logger.warning("set-day ledger unreadable; set aside, starting a new one", metadata: ["error": "\(ledgerProblem)"]) }
        ledger.keep(only: Set(registry.devices.map(\.key)))
        let pipeline = ReadingPipeline(
            registry: registry, buffer: buffer,
            options: PipelineOptions(keyring: config.keys, normaliser: try loadMeterProfiles(), silence: silence, lineIntervals: lineIntervals),
            startedAt: unixMilliseconds(), ledger: ledger, ledgerFile: ledgerFile)
        await board.update("buffer", kind: "reading buffer", health: .healthy, detail: config.buffer.path)
        await board.update("registry", kind: "device registry", health: .healthy,
                           detail: "\(registry.devices.count) devices, building \(registry.building)")

        // 2. The demo building's simulators, when the configuration asks for them.
        let demo = try await DemoBuilding.start(config: config, configPath: configPath, logger: logger)
        defer { demo.stop() }

        // 3. Services.
        // When each line was last polled, beside the buffer: a start reads a line whose readout is overdue
        // (or was never made) at once, and a quick restart does not read battery meters twice. A damaged
        // file is set aside: every line is read once at start, which is the safe side.
        let pollsFile = PollLedgerFile(path: stateDirectory + "/polls.json")
        var (polls, pollsProblem) = pollsFile.loadOrSetAside(now: unixMilliseconds())
        if let pollsProblem { logger.warning("poll ledger unreadable; set aside, every line is read once at start", metadata: ["error": "\(pollsProblem)"]) }
        polls.keep(only: Set(config.buses.mbus.map(\.name) + config.buses.modbus.map(\.name)))
        let scheduler = PollScheduler(gatewayID: config.gatewayID, polls: polls, pollsFile: pollsFile)
        let context = BusContext(pipeline: pipeline, scheduler: scheduler, board: board, demo: demo, logger: logger)
        let supervisor = BusSupervisor(runners: context.runners(for: config), logger: logger)
        let metrics = GatewayMetrics()
        let uplink = try UplinkWiring.make(config: config, buffer: buffer, pipeline: pipeline, board: board, demo: demo, logger: logger)
        let housekeeping = Housekeeping(
            pipeline: pipeline, buffer: buffer, board: board, metrics: metrics, notifier: notifier, uplink: uplink,
            scheduler: scheduler, stopAfter: stopAfter, stopAfterCycles: stopAfterCycles, logger: logger,
            clockSync: config.demo ? .off : config.buffer.clockSync, evidencePath: config.buffer.path,
            // A minute in, the start is over (buses opened, first polls begun): its code can go.
            releaseStartupPagesAfter: .seconds(60))
        // Before any bus runs: readings of an unsynchronised clock must be stamped so from the first one.
        await housekeeping.checkClock()
        let reload = ReloadListener(
            configPath: configPath, current: config, supervisor: supervisor, context: context, notifier: notifier,
            pipeline: pipeline, board: board, logger: logger)

        // Each service under a name, so the log says which one stopped, and which one a shutdown waits for.
        let watch = ShutdownWatch(logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [watch.named("buses", supervisor)]
        if let uplink { services.append(watch.named("uplink", uplink.uploader)) }
        services.append(watch.named("housekeeping", housekeeping))
        services.append(watch.named("reload", reload))
        do {
            services.append(watch.named("status-socket", try LocalEndpoints.statusServer(
                path: config.status.path, group: config.status.group, board: board, strangers: pipeline.unknownDevices, logger: logger,
                evidence: { await SupportEvidence.collect(pipeline: pipeline, board: board) })))
            if config.metrics.enabled {
                services.append(watch.named("metrics-http", try LocalEndpoints.metricsServer(
                    host: config.metrics.host, port: config.metrics.port, registry: metrics.registry, logger: logger)))
            }
        } catch {
            throw DaemonStartError("cannot open a local endpoint: \(error)")
        }
        // Last, so that it hears the shutdown first (ServiceGroup stops services in reverse order).
        services.append(watch.trigger)
        var groupConfiguration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        // A backstop under systemd's TimeoutStopSec (30 s): a service still not stopped after 20 s is
        // cancelled, so the evidence and the last statistics are still written before the process ends.
        groupConfiguration.maximumGracefulShutdownDuration = Self.maximumShutdown
        let group = ServiceGroup(configuration: groupConfiguration)
        housekeeping.attach(group)
        try await group.run()

        try? notifier.stopping(status: "stopped")
        await Self.saveEvidence(pipeline: pipeline, board: board, bufferPath: config.buffer.path, logger: logger)
        let stats = await buffer.statistics()
        logger.notice("gatewayd stopped", metadata: ["pending": "\(stats.pending)", "leased": "\(stats.leased)", "delivered": "\(stats.delivered)"])
        let sink = await demo.portalSummary()
        if let sink {
            logger.notice("demo portal sink", metadata: [
                "readings": "\(sink.readings)", "resent_duplicates": "\(sink.resentDuplicates)", "alarms": "\(sink.alarms)",
                "health_reports": "\(sink.healthReports)"])
        }
        if let summaryPath {
            await RunSummary.write(to: summaryPath, pipeline: pipeline, buffer: buffer, portal: sink, logger: logger)
        }
    }

    /// How long a graceful shutdown may take before the services still running are cancelled.
    package static let maximumShutdown: Duration = .seconds(20)

    /// The support bundle's evidence beside the buffer (`support.json`), for bundles taken while the daemon is down.
    package static func saveEvidence(pipeline: ReadingPipeline, board: StatusBoard, bufferPath: String, logger: Logger) async {
        let path = (bufferPath as NSString).deletingLastPathComponent + "/" + SupportEvidence.fileName
        do { try await SupportEvidence.collect(pipeline: pipeline, board: board).write(to: path) } catch {
            logger.warning("support evidence not saved (support bundles will lack the newest frames)", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// The reading buffer as configured: its directory created, caps applied.
    package static func openBuffer(_ b: GatewayConfig.Buffer) throws -> SQLiteReadingBuffer {
        do {
            try FileManager.default.createDirectory(
                atPath: (b.path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            var options = BufferOptions(capacity: b.maxReadings ?? Int.max, maxBytes: b.maxBytes.map(Int64.init))
            if b.maxReadings == nil && b.maxBytes == nil { options.capacity = GatewayConfig.Buffer.defaultMaxReadings }
            return try SQLiteReadingBuffer(path: b.path, options: options)
        } catch {
            throw DaemonStartError("cannot open the reading buffer at \(b.path): \(error)")
        }
    }

    /// Wireless meter profiles (profiles/wmbus): without them every telegram still decodes generically.
    private func loadMeterProfiles() throws -> any ReadingNormaliser {
        let found: String?
        do { found = try ProfileCatalog.defaultDirectory() } catch { throw DaemonStartError(error.message) }
        guard let dir = found else {
            logger.warning("no wireless meter profiles found (set GATEWAYD_PROFILES to the profiles root, holding wmbus/ and modbus/); decoding radio telegrams generically")
            return EN13757Normaliser()
        }
        do {
            let catalog = try ProfileCatalog.load(directory: dir, keeping: .evaluation)
            logger.info("wireless meter profiles loaded", metadata: ["directory": "\(dir)"])
            return MeterProfileNormaliser(catalog: catalog)
        } catch {
            logger.error("wireless meter profiles are broken; decoding radio telegrams generically", metadata: ["directory": "\(dir)", "error": "\(error)"])
            return EN13757Normaliser()
        }
    }

    private func loadRegistry(_ config: GatewayConfig) throws -> DeviceRegistry {
        let path: String
        switch config.registry {
        case .file(let p): path = p
        case .portal(let cache, _): path = cache
        }
        do {
            return try DeviceRegistry.load(path: path)
        } catch {
            throw DaemonStartError("cannot load the device registry from \(path): \(error)")
        }
    }
}
