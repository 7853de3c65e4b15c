/// The in-memory twin of the SQLite buffer: the same rules (ids, leases, eviction order, clock
/// hold-back) without a disk, for tests of everything around the buffer and as the reference the
/// SQLite buffer's tests are checked against.
public actor MemoryReadingBuffer: ReadingBuffer {
    private var readings: [Int64: Reading] = [:]
    private var leases: [Int64: Int64] = [:]  // reading id → batch id
    private var batches: [Int64: [Int64]] = [:]
    private var nextReadingID: Int64 = 1
    private var nextBatchID: Int64 = 1
    private var events: [BufferEvent] = []
    private var stats = BufferStatistics()
    /// Most readings held; above it the eviction policy applies.
    public let capacity: Int

    public init(capacity: Int = 1_000_000) {
        self.capacity = capacity
    }

    /// Every reading held, leased or not, in id order (for tests that look at what was stored).
    public func snapshot() -> [Reading] { readings.keys.sorted().compactMap { readings[$0] } }

    public func append(_ batch: [Reading]) throws(BufferError) -> [Int64] {
        var ids: [Int64] = []
        ids.reserveCapacity(batch.count)
        for var r in batch {
            r.id = nextReadingID
            readings[nextReadingID] = r
            ids.append(nextReadingID)
            nextReadingID += 1
        }
        evictIfNeeded()
        return ids
    }

    private func evictIfNeeded() {
        let excess = readings.count - capacity
        guard excess > 0 else { return }
        let victims = EvictionPolicy.victims(readings.values.map { ($0.id!, $0.readingClass) }, count: excess)
        for id in victims.ids {
            readings[id] = nil
            if let b = leases.removeValue(forKey: id) { batches[b]?.removeAll { $0 == id } }
        }
        stats.evicted += victims.ids.count
        events.append(.evicted(count: victims.ids.count, oldestClass: victims.highestClass,
                               reason: "the buffer holds at most \(capacity) readings"))
    }

    public func takeBatch(maxReadings: Int) throws(BufferError) -> ReadingBatch? {
        let deliverable = readings.values
            .filter { leases[$0.id!] == nil && $0.clockSynchronised }
            .sorted { ($0.readingClass, -$0.id!) > ($1.readingClass, -$1.id!) }
            .prefix(maxReadings)
        guard !deliverable.isEmpty else { return nil }
        let id = nextBatchID
        nextBatchID += 1
        let picked = Array(deliverable)
        for r in picked { leases[r.id!] = id }
        batches[id] = picked.map { $0.id! }
        return ReadingBatch(id: id, readings: picked)
    }

    public func markDelivered(_ batchID: Int64) throws(BufferError) {
        guard let ids = batches.removeValue(forKey: batchID) else {
            throw BufferError(.unknownBatch, "batch \(batchID) is not leased (already delivered, or released by a restart)")
        }
        for id in ids {
            readings[id] = nil
            leases[id] = nil
        }
        stats.delivered += ids.count
    }

    public func release(_ batchID: Int64) throws(BufferError) {
        guard let ids = batches.removeValue(forKey: batchID) else {
            throw BufferError(.unknownBatch, "batch \(batchID) is not leased")
        }
        for id in ids { leases[id] = nil }
    }

    public func clockSynchronised(offsetMilliseconds: Int64) throws(BufferError) {
        for (id, var r) in readings where !r.clockSynchronised {
            r.receivedAt += offsetMilliseconds
            r.clockSynchronised = true
            readings[id] = r
        }
    }

    public func statistics() -> BufferStatistics {
        var s = stats
        s.pending = readings.count - leases.count
        s.leased = leases.count
        s.waitingForClock = readings.values.filter { !$0.clockSynchronised }.count
        s.newestWaitingReceivedAt = readings.values.filter { !$0.clockSynchronised }.map(\.receivedAt).max()
        s.oldestPendingReceivedAt = readings.values.filter { leases[$0.id!] == nil }.map(\.receivedAt).min()
        return s
    }

    public func drainEvents() -> [BufferEvent] {
        defer { events.removeAll() }
        return events
    }
}

/// The written eviction policy (docs/buffer.md): when the buffer is over its cap, the oldest readings
/// of the lowest class go first; set-day values only when no routine reading is left, alarms last.
public enum EvictionPolicy {
    public static func victims(_ all: [(id: Int64, readingClass: ReadingClass)], count: Int) -> (ids: [Int64], highestClass: ReadingClass) {
        let ordered = all.sorted { ($0.readingClass, $0.id) < ($1.readingClass, $1.id) }.prefix(count)
        return (ordered.map(\.id), ordered.last?.readingClass ?? .routine)
    }
}
