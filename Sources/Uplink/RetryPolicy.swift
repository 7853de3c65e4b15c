import Synchronization

/// Exponential backoff with full jitter and a cap (AWS "full jitter"): the n-th consecutive failure waits a
/// uniformly random time in [0, min(cap, base · 2ⁿ)]. A Retry-After from the portal is a floor (clamped to
/// `maxRetryAfter`, so a wrong header cannot park the gateway for days).
public struct RetryPolicy: Sendable, Hashable {
    public var base: Duration
    public var cap: Duration
    public var maxRetryAfter: Duration

    public init(base: Duration = .milliseconds(500), cap: Duration = .seconds(300), maxRetryAfter: Duration = .seconds(3600)) {
        self.base = base
        self.cap = cap
        self.maxRetryAfter = maxRetryAfter
    }

    /// The ceiling of the jitter window after `failures` consecutive failures (1 = first failure).
    public func ceiling(failures: Int) -> Duration {
        let exponent = min(max(failures - 1, 0), 40)
        let capNs = Self.nanoseconds(cap)
        let grown = Self.nanoseconds(base).multipliedReportingOverflow(by: Int64(1) << exponent)
        return .nanoseconds(grown.overflow ? capNs : min(capNs, grown.partialValue))
    }

    /// The delay before the next attempt. `unit` is a uniform random number in [0, 1).
    public func delay(failures: Int, retryAfter: Duration?, unit: Double) -> Duration {
        let ceilingNs = Double(Self.nanoseconds(ceiling(failures: failures)))
        let jittered = Duration.nanoseconds(Int64(ceilingNs * Self.clamped(unit)))
        guard let retryAfter else { return jittered }
        return max(jittered, min(retryAfter, maxRetryAfter))
    }

    public func delay<G: RandomNumberGenerator>(failures: Int, retryAfter: Duration?, using rng: inout G) -> Duration {
        delay(failures: failures, retryAfter: retryAfter, unit: Double.random(in: 0..<1, using: &rng))
    }

    /// A random number meant to be in [0, 1], made so: NaN and infinities count as 0.
    static func clamped(_ unit: Double) -> Double { unit.isFinite ? min(max(unit, 0), 1) : 0 }

    static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        let (ns, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int64.max : ns &+ atto / 1_000_000_000
    }
}

/// How the uploader waits: real time in the daemon, a clock the test controls in virtual-time tests.
/// `sleep` returns early (without throwing) when the task is cancelled.
public protocol UplinkSleeper: Sendable {
    func sleep(for duration: Duration) async
}

/// Real time: `Task.sleep`.
public struct TaskSleeper: UplinkSleeper {
    public init() {}
    public func sleep(for duration: Duration) async { try? await Task.sleep(for: duration) }
}

/// A sleep that ends early when signalled or cancelled. The uploader keeps two: one that new readings
/// wake (idle workers), and one that only shutdown and new credentials wake (backoff, Retry-After), so
/// a steady stream of readings cannot cut the wait the portal asked for.
final class Wakeup: Sendable {
    private struct State {
        var generation = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())
    private let sleeper: any UplinkSleeper

    init(sleeper: any UplinkSleeper = TaskSleeper()) {
        self.sleeper = sleeper
    }

    /// Wakes every current sleeper.
    func signal() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.generation += 1
            let w = Array(s.waiters.values)
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume() }
    }

    /// How many signals there have been: read it before looking at the condition a signal announces,
    /// then `wait(after:)` cannot miss a signal that comes in between.
    var generation: Int { state.withLock { $0.generation } }

    /// Waits, without a time limit, for a signal after `generation` (at once if there was one), or cancellation.
    func wait(after generation: Int) async {
        await waitForSignal(after: generation)
    }

    /// Sleeps up to `duration`; returns early on `signal()` or cancellation.
    func sleep(for duration: Duration) async {
        let generation = state.withLock { $0.generation }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.sleeper.sleep(for: duration) }
            group.addTask { await self.waitForSignal(after: generation) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal(after generation: Int) async {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.generation != generation || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            let c = state.withLock { $0.waiters.removeValue(forKey: id) }
            c?.resume()
        }
    }
}
