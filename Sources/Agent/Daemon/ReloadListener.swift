import Foundation
import Gateway
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// SIGHUP: read the configuration again. A broken file changes nothing and says why; a good one is
/// applied: the registry is re-read, buses whose settings changed are restarted (the others keep
/// running), new meter keys apply to the next telegram, and what cannot change without a restart
/// (`ConfigChanges.needsRestart`: identity, demo, buffer, uplink, metrics, status, registry mode) is
/// named in the log, the status board and systemd's STATUS=.
package final class ReloadListener: Service, Sendable {
    package let configPath: String
    package let supervisor: BusSupervisor
    package let context: BusContext
    package let notifier: SystemdNotifier
    package let pipeline: ReadingPipeline
    package let logger: Logger
    private let current: Mutex<GatewayConfig>
    /// The configuration the daemon started with: what the restart-only sections still run on.
    private let started: GatewayConfig
    private let reloads = Atomic<Int>(0)
    /// Sections changed on disk that only a restart applies.
    private let pendingRestart = Mutex<Set<String>>([])
    package let board: StatusBoard

    package init(configPath: String, current: GatewayConfig, supervisor: BusSupervisor, context: BusContext,
         notifier: SystemdNotifier, pipeline: ReadingPipeline, board: StatusBoard, logger: Logger) {
        self.board = board
        self.configPath = configPath
        self.current = Mutex(current)
        started = current
        self.supervisor = supervisor
        self.context = context
        self.notifier = notifier
        self.pipeline = pipeline
        self.logger = logger
    }

    package var reloadCount: Int { reloads.load(ordering: .relaxed) }

    package func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                await self.reload()
            }
        }
    }

    package func reload() async {
        try? notifier.reloading(status: "reloading \(configPath)")
        defer {
            reloads.add(1, ordering: .relaxed)
            let pending = pendingRestart.withLock { $0.sorted() }
            try? notifier.ready(status: pending.isEmpty ? "reading buses"
                                : "reading buses; restart to apply \(pending.joined(separator: ", "))")
        }
        let new: GatewayConfig
        switch GatewayConfig.load(path: configPath) {
        case .failure(let problems):
            logger.error(
                "SIGHUP: the new configuration is broken; still running on the previous one",
                metadata: ["config": "\(configPath)", "problems": "\(problems.problems.map(\.description).joined(separator: " | "))"])
            return
        case .success(let c):
            new = c
        }
        let old = current.withLock { $0 }
        let changes = old.changes(to: new)
        // The registry file may have changed even when the configuration did not: always re-read it.
        if case .file(let path) = new.registry {
            do {
                let registry = try DeviceRegistry.load(path: path)
                await pipeline.replaceRegistry(registry)
            } catch {
                logger.error("SIGHUP: the registry file is broken; keeping the previous registry", metadata: ["registry": "\(path)", "error": "\(error)"])
            }
        }
        let result = await supervisor.apply(context.runners(for: new))
        current.withLock { $0 = new }
        // Against what the daemon started with: a setting changed and changed back needs nothing.
        let restartNeeded = started.changes(to: new).needsRestart.map { "[\($0.rawValue)]" }
        if new.keys != old.keys {
            // Keys apply at once: the usual reload is an installer adding the key of a meter that showed "no key".
            await pipeline.replaceKeyring(new.keys)
            logger.notice("SIGHUP: meter keys reloaded", metadata: ["keys": "\(new.keys.keys.count)"])
        }
        logger.notice("SIGHUP: configuration reloaded", metadata: [
            "changes": "\(changes)",
            "buses_started": "\(result.started.joined(separator: ","))",
            "buses_restarted": "\(result.restarted.joined(separator: ","))",
            "buses_stopped": "\(result.stopped.joined(separator: ","))",
        ])
        // Still running on the old values of these: say so where a technician looks (log, status, systemctl).
        pendingRestart.withLock { $0 = Set(restartNeeded) }
        let pending = pendingRestart.withLock { $0.sorted() }
        if !restartNeeded.isEmpty {
            logger.warning("SIGHUP: changed settings not applied until a restart (systemctl restart gatewayd); still running on the old values",
                           metadata: ["settings": "\(restartNeeded.joined(separator: ", "))"])
        }
        if !pending.isEmpty {
            await board.update("config", kind: "configuration", health: .degraded,
                               detail: "changed on disk, applied at the next restart: \(pending.joined(separator: ", "))")
        } else {
            await board.update("config", kind: "configuration", health: .healthy, detail: "as on disk")
        }
    }
}
