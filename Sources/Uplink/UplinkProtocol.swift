/// The seam between the gateway core and the uplink. The uplink knows nothing of buses or meters:
/// it moves opaque, already-serialised batches that the core hands it and reports what the portal
/// accepted. gatewayd wires a Gateway buffer to an Uplink transport through this protocol.
public protocol UplinkBatchSource: Sendable {
    /// The next batch to send, or nil when nothing is pending.
    func nextBatch(maxReadings: Int, maxBytes: Int) async throws -> UplinkBatch?
    /// The next batch, preferring `priority` (a hint; see `UplinkBatchPriority`). Optional: the default
    /// answers with `nextBatch(maxReadings:maxBytes:)`.
    func nextBatch(maxReadings: Int, maxBytes: Int, priority: UplinkBatchPriority) async throws -> UplinkBatch?
    /// The portal stored these readings; the source may forget them.
    func acknowledge(batchID: String, readingIDs: [String]) async throws
    /// The portal refused these readings for good; the source quarantines them.
    func reject(batchID: String, readingIDs: [String], reason: String) async throws
}

/// A batch of readings as the portal protocol carries them.
public struct UplinkBatch: Sendable, Hashable {
    /// Idempotency key: resending the same batch id never stores a reading twice.
    public var id: String
    public var readingIDs: [String]
    /// The JSON body (not yet compressed).
    public var body: [UInt8]

    public init(id: String, readingIDs: [String], body: [UInt8]) {
        self.id = id
        self.readingIDs = readingIDs
        self.body = body
    }
}

/// Which readings the uploader would like next. A hint: a source may ignore it and answer in its own
/// order (the default implementation does), so sources written before it keep working unchanged.
public enum UplinkBatchPriority: Sendable, Hashable {
    /// Alarm readings only; nil when none are pending.
    case alarms
    /// Readings received at or after this moment (Unix milliseconds), newest first; nil when none.
    /// Lets fresh values through ahead of a backlog after an outage.
    case fresh(receivedSince: Int64)
    /// Anything pending, in the source's own order (alarms first, then oldest first).
    case backlog
}

extension UplinkBatchSource {
    /// Sources that cannot select by priority answer every hint with their own order.
    public func nextBatch(maxReadings: Int, maxBytes: Int, priority: UplinkBatchPriority) async throws -> UplinkBatch? {
        try await nextBatch(maxReadings: maxReadings, maxBytes: maxBytes)
    }
}
