import Logging
import ServiceLifecycle
import Synchronization

/// Names the daemon's services in the log as they stop, so a shutdown that does not finish says which
/// service it is waiting for. systemd kills a daemon that has not stopped after TimeoutStopSec; without
/// these lines the journal would show only the kill.
///
/// ServiceGroup stops its services one at a time, last first. `ShutdownWatch` is the last service, so it
/// hears the shutdown first: from then on, every `reportEvery` it logs the services still running.
package final class ShutdownWatch: Sendable {
    private struct State {
        var running: [String] = []
        var shutdownBegan: ContinuousClock.Instant?
    }
    private let state = Mutex(State())
    private let logger: Logger
    private let reportEvery: Duration

    package init(logger: Logger, reportEvery: Duration = .seconds(5)) {
        self.logger = logger
        self.reportEvery = reportEvery
    }

    /// The services not yet stopped, in start order.
    package var running: [String] { state.withLock { $0.running } }

    /// `service` under `name`, its start and stop recorded here.
    package func named(_ name: String, _ service: any Service) -> ServiceGroupConfiguration.ServiceConfiguration {
        state.withLock { $0.running.append(name) }
        return .init(service: Tracked(name: name, base: service, watch: self), serviceName: name)
    }

    /// The service that starts the watch when the group begins to shut down. Add it last.
    package var trigger: ServiceGroupConfiguration.ServiceConfiguration {
        .init(service: Trigger(watch: self), serviceName: "shutdown-watch")
    }

    fileprivate func stopped(_ name: String, error: (any Error)?) {
        let began = state.withLock { s -> ContinuousClock.Instant? in
            s.running.removeAll { $0 == name }
            return s.shutdownBegan
        }
        var metadata: Logger.Metadata = ["service": "\(name)"]
        if let began { metadata["after_ms"] = "\((ContinuousClock.now - began).milliseconds)" }
        if let error {
            metadata["error"] = "\(error)"
            logger.error("service stopped with an error", metadata: metadata)
        } else if began == nil {
            // Before any shutdown: ServiceGroup treats this as a failure and stops the rest.
            logger.error("service stopped on its own", metadata: metadata)
        } else {
            logger.notice("service stopped", metadata: metadata)
        }
    }

    fileprivate func shutdownBegan() {
        let first = state.withLock { s -> Bool in
            guard s.shutdownBegan == nil else { return false }
            s.shutdownBegan = .now
            return true
        }
        guard first else { return }
        logger.notice("shutting down", metadata: ["services": "\(running.joined(separator: ", "))"])
        // Unstructured: the watch must outlive its own service, which returns at once so that the
        // group goes on to stop the others. It ends when they have all stopped.
        Task { [self] in
            while true {
                try? await Task.sleep(for: reportEvery)
                let (left, began) = state.withLock { ($0.running, $0.shutdownBegan ?? .now) }
                if left.isEmpty { return }
                logger.warning("shutdown is still waiting for a service", metadata: [
                    "waiting_for": "\(left.last ?? "")", "not_stopped": "\(left.joined(separator: ", "))",
                    "after_ms": "\((ContinuousClock.now - began).milliseconds)"])
            }
        }
    }

    private struct Tracked: Service {
        let name: String
        let base: any Service
        let watch: ShutdownWatch

        func run() async throws {
            do {
                try await base.run()
            } catch {
                watch.stopped(name, error: error)
                throw error
            }
            watch.stopped(name, error: nil)
        }
    }

    private struct Trigger: Service {
        let watch: ShutdownWatch
        func run() async throws {
            try? await gracefulShutdown()
            watch.shutdownBegan()
        }
    }
}
