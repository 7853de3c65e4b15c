import Foundation
import Gateway
import Logging
import Uplink

/// The uplink as the daemon runs it: the buffer as batch source, the configured transport, and the
/// callbacks that apply a new registry, report health and file refused readings.
package struct UplinkWiring: Sendable {
    package let uploader: Uploader
    package let transport: any PortalTransport
    package let source: BufferUplinkSource

    package static func make(config: GatewayConfig, buffer: any ReadingBuffer, pipeline: ReadingPipeline, board: StatusBoard,
                     demo: DemoBuilding, logger: Logger) throws -> UplinkWiring? {
        let u = config.uplink
        let uplinkLogger = logger.with("component", "uplink")
        let transport = try Self.transport(config: config, demo: demo, logger: uplinkLogger)

        let quarantineDirectory = (config.buffer.path as NSString).deletingLastPathComponent
        let source = BufferUplinkSource(buffer: buffer, quarantine: { readings, reason in
            try await Quarantine.file(readings, reason: reason, directory: quarantineDirectory, logger: uplinkLogger)
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
        // Housekeeping wakes idle workers when readings are buffered or released by the clock; the poll
        // only catches what no signal announces (a lease that expired). Every 5 s it was an idle daemon's
        // busiest wake-up: a handful of SQLite transactions for nothing.
        settings.idlePoll = config.demo ? .seconds(1) : .seconds(60)
        let registryCache: String? = if case .portal(let cache, _) = config.registry { cache } else { nil }
        let started = Date()
        let uploader = Uploader(
            transport: transport, source: source, configuration: settings, logger: uplinkLogger,
            applyRegistry: registryCache.map { registryApplier(cache: $0, pipeline: pipeline, logger: uplinkLogger) },
            healthProvider: {
                await HealthSnapshot.report(config: config, board: board, buffer: buffer, started: started)
            },
            onBatchHeld: { reason, held in
                let conditions = held ? [AlarmCondition(code: "uplink_batch_held", priority: .major, message: reason)] : []
                _ = try? await pipeline.report(conditions: conditions, device: "gateway", scope: "uplink_hold", at: unixMilliseconds())
            })
        return UplinkWiring(uploader: uploader, transport: transport, source: source)
    }
    /// The demo's own portal sink, which takes the configured endpoint's place.
    package struct DemoPortal: Sendable {
        package var url: String
        package var tokenFile: String

        /// What `config check` assumes for a demo configuration: the demo starts a sink on an ephemeral
        /// loopback port and writes a fresh token file for it.
        package static let standIn = DemoPortal(url: "http://127.0.0.1/api/v1", tokenFile: "demo-portal-token")
    }

    /// The HTTPS transport's settings for `uplink`: the one construction `gatewayd run` starts with and
    /// `config check` validates, so the two cannot disagree about what starts.
    package static func httpsConfiguration(_ u: GatewayConfig.Uplink, gatewayID: String, demoPortal: DemoPortal?) -> HTTPSTransportConfiguration {
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
    package static func startProblem(_ u: GatewayConfig.Uplink, gatewayID: String, demo: Bool) -> String? {
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
    package static func transport(config: GatewayConfig, demo: DemoBuilding, logger uplinkLogger: Logger) throws -> any PortalTransport {
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
package func registryApplier(cache: String, pipeline: ReadingPipeline, logger: Logger) -> Uploader.ApplyRegistry {
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
package enum Quarantine {
    package struct WriteError: Error, CustomStringConvertible {
        package var description: String
    }

    /// Appends one JSON line per reading (every field the portal would have had, as in
    /// docs/portal-api.md, plus the reason and when) and fsyncs the file before returning. Throws when
    /// the readings are not on disk; the caller then keeps them in the buffer.
    package static func file(_ readings: [Reading], reason: String, directory: String, logger: Logger) async throws {
        let path = directory + "/quarantine.jsonl"
        var bytes: [UInt8] = []
        let quarantinedAt = unixMilliseconds()
        // {"quarantined_at":…,"reason":"…","reading":{…the reading exactly as the portal format…}}
        let head = Array(#"{"quarantined_at":\#(quarantinedAt),"reason":"#.utf8) + Array(try JSONEncoder().encode(reason))
            + Array(#","reading":"#.utf8)
        for r in readings {
            let reading = BufferUplinkSource.uplinkReading(r, id: r.id.map(String.init) ?? "")
            bytes += head
            bytes += reading.json
            bytes += Array("}\n".utf8)
        }
        let created = access(path, F_OK) != 0
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw WriteError(description: "cannot open the quarantine file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw WriteError(description: "cannot write the quarantine file \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        guard fsync(fd) == 0 else {
            throw WriteError(description: "cannot fsync the quarantine file \(path): \(String(cString: strerror(errno)))")
        }
        if created {
            // The new name must survive a power cut too.
            let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dir >= 0 { _ = fsync(dir); close(dir) }
        }
        logger.warning("portal refused readings; kept in the quarantine file", metadata: ["path": "\(path)", "count": "\(readings.count)", "reason": "\(reason)"])
    }
}

/// The health message the uplink sends every few minutes.
package enum HealthSnapshot {
    package static func report(config: GatewayConfig, board: StatusBoard, buffer: any ReadingBuffer, started: Date) async -> HealthReport {
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
    package var portalState: String {
        switch self {
        case .healthy: "ok"
        case .starting, .degraded: "degraded"
        case .failed, .stopped: "down"
        }
    }
}
