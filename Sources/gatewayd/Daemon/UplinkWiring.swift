import Foundation
import Gateway
import Logging
import Uplink

/// The uplink as the daemon runs it: the buffer as batch source, the configured transport, and the
/// callbacks that apply a new registry, report health and file refused readings.
struct UplinkWiring: Sendable {
    let uploader: Uploader
    let transport: any PortalTransport
    let source: BufferUplinkSource

    static func make(config: GatewayConfig, buffer: any ReadingBuffer, pipeline: ReadingPipeline, board: StatusBoard,
                     demo: DemoBuilding, logger: Logger) throws -> UplinkWiring? {
        let u = config.uplink
        let uplinkLogger = logger.with("component", "uplink")
        let transport = try Self.transport(config: config, demo: demo, logger: uplinkLogger)

        let quarantineDirectory = (config.buffer.path as NSString).deletingLastPathComponent
        let source = BufferUplinkSource(buffer: buffer, quarantine: { readings, reason in
            await Quarantine.file(readings, reason: reason, directory: quarantineDirectory, logger: uplinkLogger)
            _ = try? await pipeline.report(
                conditions: [AlarmCondition(code: "readings_refused", priority: .major,
                                            message: "the portal refused \(readings.count) readings: \(reason)")],
                device: "gateway", scope: "uplink", at: unixMilliseconds())
        })
        var settings = UploaderConfiguration()
        settings.maxReadings = u.batchReadings
        settings.maxBytes = u.batchBytes
        settings.healthInterval = u.healthInterval
        switch u.auth {
        case .bearer(let file): settings.credentialFiles = [file]
        case .mutualTLS(let cert, let key): settings.credentialFiles = [cert, key]
        case .none: break
        }
        if case .portal(_, let interval) = config.registry {
            settings.registryInterval = interval
        } else {
            settings.registryInterval = nil
        }
        if config.demo {
            settings.idlePoll = .seconds(1)
        }
        let registryCache: String? = if case .portal(let cache, _) = config.registry { cache } else { nil }
        let started = Date()
        let uploader = Uploader(
            transport: transport, source: source, configuration: settings, logger: uplinkLogger,
            applyRegistry: registryCache.map { registryApplier(cache: $0, pipeline: pipeline, logger: uplinkLogger) },
            healthProvider: {
                await HealthSnapshot.report(config: config, board: board, buffer: buffer, started: started)
            })
        return UplinkWiring(uploader: uploader, transport: transport, source: source)
    }
    /// The demo's own portal sink, which takes the configured endpoint's place.
    struct DemoPortal: Sendable {
        var url: String
        var tokenFile: String

        /// What `config check` assumes for a demo configuration: the demo starts a sink on an ephemeral
        /// loopback port and writes a fresh token file for it.
        static let standIn = DemoPortal(url: "http://127.0.0.1/api/v1", tokenFile: "demo-portal-token")
    }

    /// The HTTPS transport's settings for `uplink`: the one construction `gatewayd run` starts with and
    /// `config check` validates, so the two cannot disagree about what starts.
    static func httpsConfiguration(_ u: GatewayConfig.Uplink, gatewayID: String, demoPortal: DemoPortal?) -> HTTPSTransportConfiguration {
        // In demo mode the portal sink runs on an ephemeral loopback port and takes the endpoint's place.
        var https = HTTPSTransportConfiguration(baseURL: demoPortal?.url ?? u.endpoint, gatewayID: gatewayID)
        switch u.auth {
        case .none: https.bearerTokenPath = demoPortal?.tokenFile
        case .bearer(let file): https.bearerTokenPath = file
        case .mutualTLS(let cert, let key):
            https.clientCertificatePath = cert
            https.clientPrivateKeyPath = key
        }
        https.caBundlePath = u.caFile
        https.insecure = u.insecure
        return https
    }

    /// Why the uplink as configured would not start, or nil: the start checks of the transport itself,
    /// for `config check` (and every load) to report before `gatewayd run` exits on them.
    static func startProblem(_ u: GatewayConfig.Uplink, gatewayID: String, demo: Bool) -> String? {
        switch u.transport {
        case .https:
            do {
                try httpsConfiguration(u, gatewayID: gatewayID, demoPortal: demo ? .standIn : nil).validate()
                return nil
            } catch {
                return error.message
            }
        case .mqtt:
            // MQTT's start checks (port range, a readable password file) are the loader's own already.
            return nil
        }
    }

    /// The configured way to the portal (also used by `gatewayd commission` to upload its report).
    static func transport(config: GatewayConfig, demo: DemoBuilding, logger uplinkLogger: Logger) throws -> any PortalTransport {
        let u = config.uplink
        switch u.transport {
        case .https:
            let demoPortal = demo.portalURL.flatMap { url in demo.tokenFile.map { DemoPortal(url: url, tokenFile: $0) } }
            let https = httpsConfiguration(u, gatewayID: config.gatewayID, demoPortal: demoPortal)
            do {
                return try HTTPSTransport(configuration: https, logger: uplinkLogger)
            } catch {
                throw DaemonStartError("cannot set up the HTTPS uplink to \(u.endpoint): \(error)")
            }
        case .mqtt:
            return try MQTTWiring.transport(config: config, logger: uplinkLogger)
        }
    }
}

/// Applies a registry document from the portal: parse first (a document that does not load changes
/// nothing and the old registry stays), then keep it in the cache file for starts without network, then
/// swap it into the pipeline.
func registryApplier(cache: String, pipeline: ReadingPipeline, logger: Logger) -> Uploader.ApplyRegistry {
    { document in
        let parsed = try DeviceRegistry(JSONDecoder().decode(Gateway.RegistryDocument.self, from: Data(document.body)))
        try Data(document.body).write(to: URL(fileURLWithPath: cache + ".new"))
        guard rename(cache + ".new", cache) == 0 else {
            throw DaemonStartError("cannot replace the registry cache \(cache) (errno \(errno))")
        }
        await pipeline.replaceRegistry(parsed)
        logger.notice("registry updated from the portal", metadata: ["devices": "\(parsed.devices.count)"])
    }
}

/// Readings the portal refused for good are kept in a JSON-lines file beside the buffer, so nothing
/// is silently lost; an operator can inspect and resubmit them.
enum Quarantine {
    static func file(_ readings: [Reading], reason: String, directory: String, logger: Logger) async {
        let path = directory + "/quarantine.jsonl"
        var text = ""
        for r in readings {
            let line: [String: String] = [
                "id": r.id.map(String.init) ?? "", "device": r.device, "quantity": r.quantity, "value": "\(r.value)",
                "unit": r.unit, "received_at": "\(r.receivedAt)", "reason": reason,
            ]
            if let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) {
                text += String(decoding: data, as: UTF8.self) + "\n"
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() else {
            logger.error("cannot write the quarantine file; refused readings are only in this log", metadata: ["path": "\(path)", "count": "\(readings.count)"])
            return
        }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        try? handle.write(contentsOf: Data(text.utf8))
        try? handle.synchronize()
        logger.warning("portal refused readings; kept in the quarantine file", metadata: ["path": "\(path)", "count": "\(readings.count)", "reason": "\(reason)"])
    }
}

/// The health message the uplink sends every few minutes.
enum HealthSnapshot {
    static func report(config: GatewayConfig, board: StatusBoard, buffer: any ReadingBuffer, started: Date) async -> HealthReport {
        let status = await board.snapshot()
        let stats = await buffer.statistics()
        var fs = statvfs()
        var used: Int64?, free: Int64?
        if statvfs((config.buffer.path as NSString).deletingLastPathComponent, &fs) == 0 {
            free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
            used = (Int64(fs.f_blocks) - Int64(fs.f_bfree)) * Int64(fs.f_frsize)
        }
        let buses = status.components
            .filter { $0.name.hasPrefix("mbus:") || $0.name.hasPrefix("wmbus:") || $0.name.hasPrefix("modbus:") }
            .map { HealthReport.Bus(name: $0.name, state: $0.health.portalState, counters: $0.counters) }
        return HealthReport(
            version: GatewaydVersion.string, uptimeSeconds: Int64(Date().timeIntervalSince(started)),
            queueDepth: stats.pending + stats.leased,
            oldestPendingAgeSeconds: stats.oldestPendingReceivedAt.map { max(0, unixMilliseconds() - $0) / 1000 },
            diskUsedBytes: used, diskFreeBytes: free, buses: buses)
    }
}

extension Health {
    /// The portal's words for a bus state (docs/portal-api.md, "Health").
    var portalState: String {
        switch self {
        case .healthy: "ok"
        case .starting, .degraded: "degraded"
        case .failed, .stopped: "down"
        }
    }
}
