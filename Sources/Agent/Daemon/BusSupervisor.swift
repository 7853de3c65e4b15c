import Logging
import ServiceLifecycle

/// Runs every bus reader in its own task and restarts only the buses whose settings changed on a
/// reload. A bus's task is cancelled to stop it; the reader finishes the transaction in progress first.
package actor BusSupervisor: Service {
    package struct Entry {
        /// The settings the reader was built from: a reload restarts it only when these differ.
        package var fingerprint: AnyHashable
        package var task: Task<Void, Never>
    }

    private var entries: [String: Entry] = [:]
    private var pending: [(runner: any BusRunner, fingerprint: AnyHashable)]
    private let logger: Logger

    package init(runners: [(runner: any BusRunner, fingerprint: AnyHashable)], logger: Logger) {
        pending = runners
        self.logger = logger
    }

    package var busNames: [String] { entries.keys.sorted() }

    package func run() async throws {
        for (runner, fingerprint) in pending { start(runner, fingerprint: fingerprint) }
        pending = []
        // Runs until the group shuts down, then stops every bus and waits for each to finish its
        // transaction in progress.
        try? await gracefulShutdown()
        await stopAll()
    }

    /// Applies a new set of buses: unchanged ones keep running, changed ones are restarted, removed
    /// ones stopped, new ones started. Returns what it did, for the reload log line.
    package func apply(_ runners: [(runner: any BusRunner, fingerprint: AnyHashable)]) async -> (started: [String], restarted: [String], stopped: [String]) {
        var started: [String] = [], restarted: [String] = [], stopped: [String] = []
        let names = Set(runners.map(\.runner.name))
        for (name, entry) in entries where !names.contains(name) {
            entry.task.cancel()
            await entry.task.value
            entries[name] = nil
            stopped.append(name)
        }
        for (runner, fingerprint) in runners {
            if let old = entries[runner.name] {
                if old.fingerprint == fingerprint { continue }
                old.task.cancel()
                await old.task.value
                restarted.append(runner.name)
            } else {
                started.append(runner.name)
            }
            start(runner, fingerprint: fingerprint)
        }
        return (started.sorted(), restarted.sorted(), stopped.sorted())
    }

    private func start(_ runner: any BusRunner, fingerprint: AnyHashable) {
        logger.info("bus reader starting", metadata: ["bus": "\(runner.name)"])
        let task = Task { await runner.run() }
        entries[runner.name] = Entry(fingerprint: fingerprint, task: task)
    }

    private func stopAll() async {
        for entry in entries.values { entry.task.cancel() }
        for (name, entry) in entries.sorted(by: { $0.key < $1.key }) {
            await entry.task.value
            logger.info("bus reader stopped", metadata: ["bus": "\(name)"])
        }
        entries = [:]
    }
}
