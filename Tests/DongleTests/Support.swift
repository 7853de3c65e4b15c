import Drivers
import Foundation
import Synchronization
import Testing

/// Real telegrams from the wireless fixtures (wmbusmeters' test telegrams, L-field first, no CRCs).
enum Fixtures {
    struct Line: Decodable {
        let telegram_hex: String
    }

    static let telegrams: [[UInt8]] = {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let file = tests.appendingPathComponent("WirelessTests/Fixtures/wmbus/telegrams.jsonl")
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
        var out: [[UInt8]] = []
        for line in text.split(separator: "\n") {
            guard let parsed = try? JSONDecoder().decode(Line.self, from: Data(line.utf8)),
                  let bytes = try? Hex.decode(parsed.telegram_hex),
                  bytes.count >= 12, Int(bytes[0]) == bytes.count - 1 else { continue }
            out.append(bytes)
        }
        return out
    }()

    /// The first `n` usable telegrams (the test fails loudly when the fixtures are missing).
    static func take(_ n: Int) -> [[UInt8]] {
        precondition(telegrams.count >= n, "Tests/WirelessTests/Fixtures/wmbus/telegrams.jsonl holds \(telegrams.count) usable telegrams, \(n) needed")
        return Array(telegrams.prefix(n))
    }
}


/// swift-nio's decoder verifier: the same events in one piece, byte by byte and split at random.
enum StreamVerifier {
    static func events<D: DongleStreamDecoder>(_ make: () -> D, _ pieces: [ArraySlice<UInt8>]) -> [D.Event] {
        var d = make()
        var out: [D.Event] = []
        for p in pieces {
            d.append(p)
            out += d.drain()
        }
        if let last = d.finish() { out.append(last) }
        return out
    }

    /// Returns the one-piece events after checking the other chunkings give the same.
    static func verify<D: DongleStreamDecoder>(_ input: [UInt8], sourceLocation: SourceLocation = #_sourceLocation, _ make: () -> D) -> [D.Event] {
        let whole = events(make, [input[...]])
        let bytewise = events(make, input.indices.map { input[$0...$0] })
        #expect(bytewise == whole, "byte-by-byte feeding changes the events", sourceLocation: sourceLocation)
        for seed in UInt64(1)...20 {
            var rng = SeededRandom(seed: seed)
            var pieces: [ArraySlice<UInt8>] = []
            var i = 0
            while i < input.count {
                let n = Int.random(in: 1...max(1, min(64, input.count - i)), using: &rng)
                pieces.append(input[i..<(i + n)])
                i += n
            }
            let split = events(make, pieces)
            #expect(split == whole, "random split (seed \(seed)) changes the events", sourceLocation: sourceLocation)
        }
        return whole
    }
}

/// Collects a dongle session's events on a task of its own, for tests to wait on.
final class EventLog: Sendable {
    final class Storage: Sendable {
        let events = Mutex<[DongleEvent]>([])
    }

    private let storage = Storage()
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ stream: AsyncStream<DongleEvent>) {
        let t = Task { [storage] in
            for await e in stream { storage.events.withLock { $0.append(e) } }
        }
        task.withLock { $0 = t }
    }

    var all: [DongleEvent] { storage.events.withLock { $0 } }

    var telegrams: [ReceivedTelegram] {
        all.compactMap { if case .telegram(let t) = $0 { return t } else { return nil } }
    }

    var states: [DongleState] {
        all.compactMap { if case .state(let s) = $0 { return s } else { return nil } }
    }

    var problems: [DongleError] {
        all.compactMap { if case .problem(let p) = $0 { return p } else { return nil } }
    }

    var readyCount: Int { states.filter { if case .ready = $0 { return true } else { return false } }.count }

    /// Waits until `condition` holds; false after `limit` (a guard against a hanging test, not a timing
    /// assertion).
    func wait(limit: Duration = .seconds(30), _ condition: (EventLog) -> Bool) async -> Bool {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if condition(self) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(self)
    }

    func stop() async {
        let t = task.withLock { $0 }
        t?.cancel()
        await t?.value
    }
}

/// A private directory for symlinks, removed by the caller.
func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "dongle-tests-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A clock that moves only when a test says so, and tells the test when someone starts sleeping on it:
/// backoff is asserted by the waits asked for, not by how long anything took.
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Swift.Duration
        func advanced(by duration: Swift.Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Swift.Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    private struct Sleeper {
        var id: Int
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Sleeper] = []
        /// Waits asked for and not yet taken by `nextSleep`.
        var requested: [Swift.Duration] = []
        var nextID = 0
    }

    private let state = Mutex(State())

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Swift.Duration { .zero }

    func sleep(until deadline: Instant, tolerance: Swift.Duration? = nil) async throws {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { s -> Bool in
                    s.requested.append(s.now.duration(to: deadline))
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
    func advance(by duration: Swift.Duration) {
        let due = state.withLock { s -> [Sleeper] in
            s.now = s.now.advanced(by: duration)
            let now = s.now
            let due = s.sleepers.filter { $0.deadline <= now }
            s.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for d in due { d.continuation.resume() }
    }

    /// The next wait someone asked for, once they are asleep; nil after `limit` (a guard against a
    /// hanging test, not a timing assertion).
    func nextSleep(limit: Swift.Duration = .seconds(30)) async -> Swift.Duration? {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if let wait = state.withLock({ s -> Swift.Duration? in s.requested.isEmpty ? nil : s.requested.removeFirst() }) {
                return wait
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }
}
