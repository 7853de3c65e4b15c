import Glibc
import Logging
import PortalFake
import ServiceLifecycle
import Synchronization
import Testing
@testable import Uplink

/// An in-memory batch source over a lazily generated backlog: it holds only what is leased (plus
/// explicitly added alarms and fresh readings), so a test can assert the uploader's memory bound.
actor MemorySource: UplinkBatchSource {
    let supportsPriority: Bool
    private var nextBacklog = 0
    private var backlogEnd = 0
    private var alarmsQueue: [UplinkReading] = []
    private var freshQueue: [UplinkReading] = []
    private var leases: [String: Set<String>] = [:]
    private var leaseSeq = 0
    private(set) var leasedNow = 0
    private(set) var maxLeased = 0
    private(set) var acknowledged: Set<String> = []
    private(set) var rejected: Set<String> = []
    private(set) var rejectReasons: [String] = []
    /// Acknowledgements of readings that were not leased, or twice: must stay 0.
    private(set) var protocolErrors: [String] = []
    private(set) var handedOut = 0
    /// Reading ids in the order batches were handed out.
    private(set) var handOutOrder: [String] = []
    private let keepOrder: Bool
    static let baseTime: Int64 = 1_790_000_000_000

    init(backlog: Int, supportsPriority: Bool = true, keepOrder: Bool = false) {
        backlogEnd = backlog
        self.supportsPriority = supportsPriority
        self.keepOrder = keepOrder
    }

    static func backlogReading(_ i: Int) -> UplinkReading {
        UplinkReading(id: "r\(i)", device: "wmbus:QDS:\(10_000_000 + i % 3_500)", quantity: i % 2 == 0 ? "Energy" : "Volume",
                      value: Double(i) * 0.5, unit: i % 2 == 0 ? "Wh" : "m^3", raw: "", meterTime: 1_790_000_000 + Int64(i / 3_500),
                      receivedAt: baseTime + Int64(i), source: "wmbus:im871a", rssi: -70, readingClass: "routine")
    }

    static func ids(_ range: Range<Int>) -> Set<String> { Set(range.map { "r\($0)" }) }

    func addBacklog(_ n: Int) { backlogEnd += n }
    func addAlarm(_ r: UplinkReading) { alarmsQueue.append(r) }
    func addFresh(_ r: UplinkReading) { freshQueue.append(r) }

    /// Readings not yet handed out.
    var remaining: Int { backlogEnd - nextBacklog + alarmsQueue.count + freshQueue.count }
    var outstandingLeases: Int { leases.count }
    /// Done: nothing left to hand out and nothing leased.
    var drained: Bool { remaining == 0 && leases.isEmpty }

    /// As a restart does: leases are forgotten and their readings handed out again.
    func releaseAll(regenerate: (String) -> UplinkReading) {
        for (_, ids) in leases {
            for id in ids { freshQueue.append(regenerate(id)) }
        }
        leases.removeAll()
        leasedNow = 0
    }

    func nextBatch(maxReadings: Int, maxBytes: Int) async throws -> UplinkBatch? {
        try await nextBatch(maxReadings: maxReadings, maxBytes: maxBytes, priority: .backlog)
    }

    func nextBatch(maxReadings: Int, maxBytes: Int, priority: UplinkBatchPriority) async throws -> UplinkBatch? {
        leaseSeq += 1
        let id = "b\(leaseSeq)"
        var bodies: [[UInt8]] = []
        var ids: [String] = []
        var bytes = ReadingsBody.envelopeBytes(batchID: id)
        func take(_ r: UplinkReading) -> Bool {
            let json = r.json
            if !bodies.isEmpty && (bodies.count >= maxReadings || bytes + json.count + 1 > maxBytes) { return false }
            bodies.append(json)
            ids.append(r.id)
            bytes += json.count + 1
            return true
        }
        func takeQueue(_ q: inout [UplinkReading]) {
            var n = 0
            while n < q.count, take(q[n]) { n += 1 }
            q.removeFirst(n)
        }
        func takeBacklog() {
            while nextBacklog < backlogEnd, take(Self.backlogReading(nextBacklog)) { nextBacklog += 1 }
        }
        let effective = supportsPriority ? priority : .backlog
        switch effective {
        case .alarms:
            takeQueue(&alarmsQueue)
        case .fresh:
            takeQueue(&freshQueue)
        case .backlog:
            // The source's own order: alarms first, then oldest first (the backlog is older than fresh).
            takeQueue(&alarmsQueue)
            takeBacklog()
            takeQueue(&freshQueue)
        }
        guard !ids.isEmpty else { return nil }
        leases[id] = Set(ids)
        leasedNow += ids.count
        maxLeased = max(maxLeased, leasedNow)
        handedOut += ids.count
        if keepOrder { handOutOrder += ids }
        return UplinkBatch(id: id, readingIDs: ids, body: ReadingsBody.encode(batchID: id, readings: bodies))
    }

    func acknowledge(batchID: String, readingIDs: [String]) async throws {
        settle(batchID, readingIDs)
        for id in readingIDs where !acknowledged.insert(id).inserted { protocolErrors.append("acknowledged twice: \(id)") }
    }

    func reject(batchID: String, readingIDs: [String], reason: String) async throws {
        settle(batchID, readingIDs)
        rejectReasons.append(reason)
        for id in readingIDs where !rejected.insert(id).inserted { protocolErrors.append("rejected twice: \(id)") }
    }

    private func settle(_ batchID: String, _ ids: [String]) {
        guard var lease = leases[batchID] else {
            protocolErrors.append("unknown batch \(batchID)")
            return
        }
        for id in ids {
            if lease.remove(id) == nil { protocolErrors.append("\(id) not leased in \(batchID)") } else { leasedNow -= 1 }
        }
        leases[batchID] = lease.isEmpty ? nil : lease
    }
}

/// Captures log lines so a test can check what an operator would read.
final class CapturedLogs: Sendable {
    let lines = Mutex<[String]>([])
    func contains(_ text: String) -> Bool { lines.withLock { $0.contains { $0.contains(text) } } }
    var logger: Logger {
        Logger(label: "uplink-test") { _ in CaptureHandler(sink: self) }
    }
}

struct CaptureHandler: LogHandler {
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
             function: String, line: UInt) {
        sink.lines.withLock { $0.append("\(level): \(message)") }
    }
}

func quietLogger() -> Logger { Logger(label: "uplink-test") { _ in SwiftLogNoOpLogHandler() } }

/// A temporary file holding a token.
struct TokenFile {
    let path: String
    init(_ token: String) {
        path = "/tmp/uplink-test-token-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        write(token)
    }
    func write(_ token: String) {
        // Write a new file and rename it over the old one, as an operator's tools do.
        let tmp = path + ".new"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0)
        let bytes = Array(token.utf8) + [10]
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        rename(tmp, path)
    }
    func remove() { unlink(path) }
}

/// Test-sized retry and pacing: short backoff cap, quick idle polls.
func testConfiguration(maxReadings: Int = 500, concurrency: Int = 2) -> UploaderConfiguration {
    var c = UploaderConfiguration()
    c.maxReadings = maxReadings
    c.maxBytes = 256 * 1024
    c.concurrency = concurrency
    c.retry = RetryPolicy(base: .milliseconds(2), cap: .milliseconds(40), maxRetryAfter: .milliseconds(100))
    c.idlePoll = .milliseconds(20)
    c.unauthorizedRetry = .seconds(600)
    c.credentialPoll = .milliseconds(20)
    c.registryInterval = nil
    c.healthInterval = nil
    return c
}

/// Generous timeouts by default: a loaded CI machine must not turn an answer into a timeout. Tests
/// that are about timeouts pass their own.
func transport(for fake: PortalFake, token: TokenFile, timeout: Duration = .seconds(10), logger: Logger = quietLogger()) throws -> HTTPSTransport {
    var c = HTTPSTransportConfiguration(baseURL: fake.baseURL, gatewayID: "gw-test-1", bearerTokenPath: token.path)
    c.requestTimeout = timeout
    c.connectTimeout = .seconds(10)
    return try HTTPSTransport(configuration: c, logger: logger)
}

/// Runs the uploader as a service until `done` holds (checked every 10 ms, at most `limit` checks:
/// a hang guard, not a timing assertion), then shuts it down gracefully.
func runUntil(_ uploader: Uploader, limit: Int = 30_000, _ done: @Sendable () async -> Bool) async throws -> Bool {
    let group = ServiceGroup(configuration: .init(services: [uploader], gracefulShutdownSignals: [], cancellationSignals: [], logger: quietLogger()))
    let task = Task { try await group.run() }
    var reached = false
    for _ in 0..<limit {
        if await done() { reached = true; break }
        try await Task.sleep(for: .milliseconds(10))
    }
    await group.triggerGracefulShutdown()
    try await task.value
    return reached
}
