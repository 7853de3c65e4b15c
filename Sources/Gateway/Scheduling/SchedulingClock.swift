import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Wall time for the scheduler: set-day readouts follow the calendar, so this is Unix time, not a
/// monotonic clock. Injected so tests run on a virtual clock.
public protocol SchedulingClock: Sendable {
    /// Unix milliseconds.
    func now() -> Int64
    /// Returns at or after `deadline` (Unix milliseconds); throws `CancellationError` when cancelled.
    func sleep(until deadline: Int64) async throws
}

/// The system's real-time clock (clock_gettime CLOCK_REALTIME). Sleeps in slices of at most a minute and
/// looks again, so a clock stepped by NTP (boards without RTC boot in 1970) does not strand a sleeper.
public struct SystemSchedulingClock: SchedulingClock {
    public init() {}

    public func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    public func sleep(until deadline: Int64) async throws {
        while true {
            let left = deadline - now()
            if left <= 0 { return }
            try await Task.sleep(for: .milliseconds(min(left, 60_000)))
        }
    }
}

/// A clock that moves only when told (`advance`): for tests and simulations. Sleepers wake in deadline order.
public final class VirtualClock: SchedulingClock {
    struct Sleeper {
        var id: Int
        var deadline: Int64
        var continuation: CheckedContinuation<Void, any Error>
    }
    struct State {
        var now: Int64
        var sleepers: [Sleeper] = []
        var nextID = 0
    }
    private let state: Mutex<State>

    public init(now: Int64 = 0) {
        state = Mutex(State(now: now))
    }

    public func now() -> Int64 { state.withLock { $0.now } }

    /// Tasks asleep on this clock now.
    public var sleepers: Int { state.withLock { $0.sleepers.count } }

    /// The earliest deadline anyone sleeps until.
    public var nextDeadline: Int64? { state.withLock { $0.sleepers.map(\.deadline).min() } }

    public func sleep(until deadline: Int64) async throws {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let resumeNow: Bool = state.withLock { s in
                    if deadline <= s.now || Task.isCancelled { return true }
                    s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: c))
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i).continuation
            }
            c?.resume(throwing: CancellationError())
        }
        try Task.checkCancellation()
    }

    /// Moves time forward and wakes everyone whose deadline has come.
    public func advance(to time: Int64) {
        let due = state.withLock { s -> [Sleeper] in
            s.now = max(s.now, time)
            let due = s.sleepers.filter { $0.deadline <= s.now }.sorted { ($0.deadline, $0.id) < ($1.deadline, $1.id) }
            s.sleepers.removeAll { $0.deadline <= s.now }
            return due
        }
        for d in due { d.continuation.resume() }
    }

    public func advance(by milliseconds: Int64) { advance(to: now() + milliseconds) }
}
