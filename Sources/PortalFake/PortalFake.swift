// A loopback portal for tests, the catch-up benchmark and the demo: it implements docs/portal-api.md,
// stores what it receives (readings by id with receipt counts, alarms, health, commissioning reports),
// serves a registry with an ETag, and injects faults on a schedule.
import CompressNIO
import FoundationEssentials
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The endpoints of the portal API.
public enum PortalEndpoint: String, Sendable, Hashable, CaseIterable {
    case readings, alarms, health, registry, commissioningReports = "commissioning-reports"
}

/// A fault the fake answers a request with instead of (or on top of) the normal answer.
public enum PortalFault: Sendable, Hashable {
    /// HTTP 500.
    case serverError
    /// HTTP 503 with Retry-After (seconds).
    case unavailable(retryAfterSeconds: Int)
    /// HTTP 429 with Retry-After (seconds).
    case tooManyRequests(retryAfterSeconds: Int)
    /// No answer: the request is held (for `holdDuration`), then the connection is closed. With
    /// `afterStoring` the readings are stored first, so only the answer is lost.
    case timeout(afterStoring: Bool)
    /// The TCP connection is reset (RST) instead of answering, before or after storing.
    case connectionReset(afterStoring: Bool)
    /// The normal answer, after a delay.
    case slow(Duration)
    /// HTTP 413 whatever the size.
    case payloadTooLarge
    /// HTTP 401.
    case unauthorized
}

/// Faults to inject: a queue consumed one per request, then (optionally) random faults.
public final class FaultSchedule: Sendable {
    private struct State {
        var queued: [PortalEndpoint: [PortalFault]] = [:]
        var random: (rng: SplitMix64, probability: Double, faults: [PortalFault], endpoints: Set<PortalEndpoint>)? = nil
        var injected: [PortalFault: Int] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// The next requests to `endpoint` get these faults, in order.
    public func enqueue(_ faults: [PortalFault], on endpoint: PortalEndpoint = .readings) {
        state.withLock { $0.queued[endpoint, default: []].append(contentsOf: faults) }
    }

    /// After the queue, each request to `endpoints` gets a fault with `probability`, chosen uniformly.
    public func setRandom(seed: UInt64, probability: Double, faults: [PortalFault], endpoints: Set<PortalEndpoint> = [.readings]) {
        state.withLock { $0.random = (SplitMix64(seed: seed), probability, faults, endpoints) }
    }

    public func clear() {
        state.withLock { s in
            s.queued.removeAll()
            s.random = nil
        }
    }

    /// How often each fault was injected so far.
    public var injected: [PortalFault: Int] { state.withLock { $0.injected } }
    public var injectedTotal: Int { state.withLock { $0.injected.values.reduce(0, +) } }
    public var pending: Int { state.withLock { $0.queued.values.reduce(0) { $0 + $1.count } } }

    func next(for endpoint: PortalEndpoint) -> PortalFault? {
        state.withLock { s in
            var fault: PortalFault?
            if var q = s.queued[endpoint], !q.isEmpty {
                fault = q.removeFirst()
                s.queued[endpoint] = q
            } else if var r = s.random, r.endpoints.contains(endpoint), !r.faults.isEmpty {
                if r.rng.nextUnit() < r.probability {
                    fault = r.faults[Int(r.rng.next() % UInt64(r.faults.count))]
                }
                s.random = r
            }
            if let fault { s.injected[fault, default: 0] += 1 }
            return fault
        }
    }
}

/// A small seeded generator, so a failing fault mix can be replayed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

/// What the fake portal received.
public final class PortalStore: Sendable {
    public struct StoredMessage: Sendable, Hashable {
        public var id: String
        public var body: [UInt8]
        /// How often it arrived (resends are stored once).
        public var receipts: Int
    }

    struct Entry {
        var receipts: Int32
        /// Order of first arrival, from 0.
        var arrival: Int32
    }

    struct State {
        var readings: [String: Entry] = [:]
        var receipts = 0
        var batches: Set<String> = []
        var alarms: [String: StoredMessage] = [:]
        var alarmOrder: [String] = []
        var health: [[UInt8]] = []
        var reports: [String: StoredMessage] = [:]
        var requests: [PortalEndpoint: Int] = [:]
        var statuses: [Int: Int] = [:]
        var bytesReceived = 0
        var gateways: Set<String> = []
        /// Distinct readings per device, when `countsDevices` (the demo's sink; the bench leaves it off).
        var devices: [String: Int] = [:]
    }
    let state = Mutex(State())

    /// Also count stored readings per device (a dictionary update per reading).
    public let countsDevices: Bool

    public init(countsDevices: Bool = false) {
        self.countsDevices = countsDevices
    }

    /// Distinct meter readings (alarm edges left out) stored per device key (only with `countsDevices`).
    public var readingsPerDevice: [String: Int] { state.withLock { $0.devices } }

    /// Distinct reading ids stored.
    public var readingCount: Int { state.withLock { $0.readings.count } }
    public var uniqueReadingIDs: Set<String> { state.withLock { Set($0.readings.keys) } }
    /// Readings received in total, resends included.
    public var readingReceipts: Int { state.withLock { $0.receipts } }
    /// Receipts beyond the first of each reading (resends the portal deduplicated).
    public var duplicateReceipts: Int { state.withLock { $0.receipts - $0.readings.count } }
    public func receipts(of id: String) -> Int { state.withLock { Int($0.readings[id]?.receipts ?? 0) } }
    /// Position of the reading's first arrival (0 = first reading ever stored).
    public func arrival(of id: String) -> Int? { state.withLock { $0.readings[id].map { Int($0.arrival) } } }
    /// Distinct batch ids seen on accepted readings requests.
    public var batchCount: Int { state.withLock { $0.batches.count } }
    /// Alarms by id, in order of first arrival.
    public var alarms: [StoredMessage] { state.withLock { s in s.alarmOrder.compactMap { s.alarms[$0] } } }
    public var healthReports: [[UInt8]] { state.withLock { $0.health } }
    public var commissioningReports: [StoredMessage] { state.withLock { Array($0.reports.values) } }

    /// What the sink stored, as `GET /_fake/summary` serves it.
    public var summary: PortalFakeSummary {
        PortalFakeSummary(
            readings: readingCount, resentDuplicates: duplicateReceipts,
            readingIDs: uniqueReadingIDs.compactMap { Int64($0) }.sorted(), devices: readingsPerDevice,
            alarms: alarms.count, alarmIDs: alarms.map(\.id), healthReports: healthReports.count,
            commissioningReports: commissioningReports.count)
    }
    public var requests: [PortalEndpoint: Int] { state.withLock { $0.requests } }
    /// Answers sent, by HTTP status.
    public var statuses: [Int: Int] { state.withLock { $0.statuses } }
    /// Request body bytes as received on the wire (compressed when gzip).
    public var bytesReceived: Int { state.withLock { $0.bytesReceived } }
    public var gatewayIDs: Set<String> { state.withLock { $0.gateways } }

    /// Stores readings; returns (new, duplicates).
    func store(batchID: String, readingIDs: [String], devices: [String?] = []) -> (Int, Int) {
        state.withLock { s in
            s.batches.insert(batchID)
            var new = 0
            for (i, id) in readingIDs.enumerated() {
                s.receipts += 1
                if s.readings[id] != nil {
                    s.readings[id]!.receipts += 1
                } else {
                    s.readings[id] = Entry(receipts: 1, arrival: Int32(s.readings.count))
                    new += 1
                    if countsDevices, i < devices.count, let d = devices[i] { s.devices[d, default: 0] += 1 }
                }
            }
            return (new, readingIDs.count - new)
        }
    }
}

/// The loopback portal.
public final class PortalFake: Sendable {
    public struct Configuration: Sendable {
        /// Required bearer token; nil accepts any request.
        public var token: String?
        /// 413 for readings bodies larger than this (decompressed bytes); nil: no limit.
        public var maxBodyBytes: Int?
        /// Readings the portal refuses for good (400 naming them); the rest of their batch is stored.
        public var rejectedReadingIDs: Set<String> = []
        /// How long a `.timeout` fault holds the request before closing the connection.
        public var holdDuration: Duration = .seconds(30)
        public var logLevel: Logger.Level = .critical

        public init(token: String? = nil) { self.token = token }
    }

    public let store: PortalStore
    public let faults = FaultSchedule()
    private let config: Mutex<Configuration>
    private let registry = Mutex<(body: [UInt8], etag: String, version: Int)?>(nil)
    private let running = Mutex<(task: Task<Void, any Error>, port: Int)?>(nil)

    /// - Parameter countsDevices: keep stored-reading counts per device (see `PortalStore`).
    public init(configuration: Configuration = Configuration(), countsDevices: Bool = false) {
        config = Mutex(configuration)
        store = PortalStore(countsDevices: countsDevices)
    }

    public var configuration: Configuration {
        get { config.withLock { $0 } }
    }
    public func update(_ change: (inout Configuration) -> Void) { config.withLock { change(&$0) } }
    public func setToken(_ token: String?) { config.withLock { $0.token = token } }

    /// Serves a new registry document; returns its ETag.
    @discardableResult
    public func setRegistry(_ body: [UInt8]) -> String {
        registry.withLock { r in
            let version = (r?.version ?? 0) + 1
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in body { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
            let etag = "\"r\(version)-\(String(hash, radix: 16))\""
            r = (body, etag, version)
            return etag
        }
    }

    public var port: Int { running.withLock { $0?.port ?? 0 } }
    /// "http://127.0.0.1:PORT/api/v1".
    public var baseURL: String { "http://127.0.0.1:\(port)/api/v1" }

    /// Binds 127.0.0.1 on an ephemeral port and serves until `stop()`.
    public func start() async throws {
        let router = Router(context: FakeContext.self)
        let api = router.group("api/v1/gateways/:gateway")
        api.post("readings") { request, context in try await self.handle(.readings, request, context) }
        api.post("alarms") { request, context in try await self.handle(.alarms, request, context) }
        api.post("health") { request, context in try await self.handle(.health, request, context) }
        api.post("commissioning-reports") { request, context in try await self.handle(.commissioningReports, request, context) }
        api.get("registry") { request, context in try await self.handle(.registry, request, context) }
        // Not part of the portal API: what the sink stored, for the demo's run summary (the daemon that
        // started gatewayd-sim asks for it at exit) and for scripts.
        router.get("_fake/summary") { _, _ in
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers,
                            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(self.store.summary))))
        }

        var logger = Logger(label: "portal-fake")
        logger.logLevel = configuration.logLevel
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "portal-fake"),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: logger)
        let task = Task { try await app.run() }
        var port = 0
        for await p in ports { port = p }
        guard port > 0 else {
            task.cancel()
            _ = await task.result
            throw PortalFakeError(message: "the portal fake did not start: \(String(describing: await task.result))")
        }
        running.withLock { $0 = (task, port) }
    }

    public func stop() async {
        guard let task = running.withLock({ r -> Task<Void, any Error>? in
            let t = r?.task
            r = nil
            return t
        }) else { return }
        task.cancel()
        _ = await task.result
    }

    // MARK: Handling

    private func handle(_ endpoint: PortalEndpoint, _ request: Request, _ context: FakeContext) async throws -> Response {
        var request = request
        let gateway = context.parameters.get("gateway") ?? ""
        store.state.withLock { s in
            s.requests[endpoint, default: 0] += 1
            s.gateways.insert(gateway)
        }
        let fault = faults.next(for: endpoint)
        switch fault {
        case .serverError?:
            return answer(500, error: "internal", message: "injected fault: 500")
        case .unavailable(let s)?:
            return answer(503, error: "unavailable", message: "injected fault: 503", retryAfter: s)
        case .tooManyRequests(let s)?:
            return answer(429, error: "too_many_requests", message: "injected fault: 429", retryAfter: s)
        case .payloadTooLarge?:
            return answer(413, error: "payload_too_large", message: "injected fault: 413")
        case .unauthorized?:
            return answer(401, error: "unauthorized", message: "injected fault: 401")
        case .timeout(afterStoring: false)?:
            return try await hold(context)
        case .connectionReset(afterStoring: false)?:
            return try await reset(context)
        case .slow(let d)?:
            try await Task.sleep(for: d)
        default:
            break
        }
        let config = self.configuration
        if let token = config.token {
            let header = request.headers[.authorization] ?? ""
            guard header == "Bearer " + token else {
                return answer(401, error: "unauthorized", message: header.isEmpty ? "bearer token missing" : "bearer token not accepted")
            }
        }
        let response: Response
        if endpoint == .registry {
            response = registryAnswer(request)
        } else {
            let raw = try await request.collectBody(upTo: 64 << 20)
            store.state.withLock { $0.bytesReceived += raw.readableBytes }
            let body: [UInt8]
            switch decodeBody(raw, encoding: request.headers[.contentEncoding], limit: config.maxBodyBytes.map { $0 + 1 } ?? (256 << 20)) {
            case .bytes(let b): body = b
            case .failed(let status, let why): return answer(status, error: "bad_body", message: why)
            }
            if endpoint == .readings, let max = config.maxBodyBytes, body.count > max {
                return answer(413, error: "payload_too_large", message: "body of \(body.count) bytes exceeds \(max)")
            }
            let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]
            switch endpoint {
            case .readings: response = readings(body, rejected: config.rejectedReadingIDs)
            case .alarms: response = alarms(body)
            case .health: response = health(body)
            default: response = commissioning(body, key: idempotencyKey)
            }
        }
        switch fault {
        case .timeout(afterStoring: true)?: return try await hold(context)
        case .connectionReset(afterStoring: true)?: return try await reset(context)
        default: break
        }
        return response
    }

    private func hold(_ context: FakeContext) async throws -> Response {
        try await Task.sleep(for: configuration.holdDuration)
        try? await context.channel.close()
        throw PortalFakeError(message: "held the request without an answer")
    }

    private func reset(_ context: FakeContext) async throws -> Response {
        if let socket = context.channel as? any SocketOptionProvider {
            try? await socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        }
        try? await context.channel.close()
        throw PortalFakeError(message: "reset the connection")
    }

    private enum Body {
        case bytes([UInt8])
        case failed(Int, String)
    }

    private func decodeBody(_ raw: ByteBuffer, encoding: String?, limit: Int) -> Body {
        var raw = raw
        switch encoding?.lowercased() {
        case nil, "identity"?:
            return .bytes(raw.readBytes(length: raw.readableBytes) ?? [])
        case "gzip"?:
            do {
                var out = try raw.decompress(with: .gzip(), maxSize: limit)
                return .bytes(out.readBytes(length: out.readableBytes) ?? [])
            } catch let e as CompressNIOError where e == .bufferOverflow {
                return .failed(413, "decompressed body exceeds \(limit - 1) bytes")
            } catch {
                return .failed(400, "body is not valid gzip: \(error)")
            }
        default:
            return .failed(415, "unsupported Content-Encoding \(encoding ?? "")")
        }
    }

    private func readings(_ body: [UInt8], rejected: Set<String>) -> Response {
        let envelope: ReadingsEnvelope
        do {
            envelope = try JSONDecoder().decode(ReadingsEnvelope.self, from: Data(body))
        } catch {
            return answer(400, error: "malformed", message: "not a readings batch: \(error)")
        }
        var good: [String] = []
        var goodDevices: [String?] = []
        good.reserveCapacity(envelope.readings.count)
        var refused: [(String, String)] = []
        for r in envelope.readings {
            guard let id = r.id else {
                return answer(400, error: "malformed", message: "a reading without an id")
            }
            if let problem = r.problem {
                refused.append((id, problem))
            } else if rejected.contains(id) {
                refused.append((id, "refused by the portal"))
            } else {
                good.append(id)
                if store.countsDevices { goodDevices.append(r.isAlarm ? nil : r.device) }
            }
        }
        let (new, duplicates) = store.store(batchID: envelope.batchID, readingIDs: good, devices: goodDevices)
        var out: [UInt8] = Array(#"{"batch_id":"#.utf8)
        appendJSONString(envelope.batchID, to: &out)
        out += Array(#","accepted":\#(new),"duplicates":\#(duplicates)"#.utf8)
        guard !refused.isEmpty else {
            out += Array("}".utf8)
            return respond(200, out)
        }
        out += Array(#","error":"invalid_readings","message":"\#(refused.count) readings refused","rejected":["#.utf8)
        for (i, (id, reason)) in refused.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += Array(#"{"id":"#.utf8)
            appendJSONString(id, to: &out)
            out += Array(#","reason":"#.utf8)
            appendJSONString(reason, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out += Array("]}".utf8)
        return respond(400, out)
    }

    private func alarms(_ body: [UInt8]) -> Response {
        struct Alarm: Decodable { var id: String }
        struct Envelope: Decodable { var alarms: [Alarm] }
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(body)) else {
            return answer(400, error: "malformed", message: "not an alarms body")
        }
        // Store each alarm's own JSON by id: the body holds several.
        store.state.withLock { s in
            for a in envelope.alarms {
                if s.alarms[a.id] != nil {
                    s.alarms[a.id]!.receipts += 1
                } else {
                    s.alarms[a.id] = .init(id: a.id, body: body, receipts: 1)
                    s.alarmOrder.append(a.id)
                }
            }
        }
        return respond(200, Array(#"{"accepted":\#(envelope.alarms.count)}"#.utf8))
    }

    private func health(_ body: [UInt8]) -> Response {
        struct Health: Decodable {
            var version: String
            var uptime_seconds: Int64
            var queue_depth: Int
        }
        guard (try? JSONDecoder().decode(Health.self, from: Data(body))) != nil else {
            return answer(400, error: "malformed", message: "not a health report")
        }
        store.state.withLock { $0.health.append(body) }
        return respond(200, Array(#"{"accepted":1}"#.utf8))
    }

    private func commissioning(_ body: [UInt8], key: String?) -> Response {
        let id = key ?? "report-\(store.commissioningReports.count + 1)"
        store.state.withLock { s in
            if s.reports[id] != nil { s.reports[id]!.receipts += 1 } else { s.reports[id] = .init(id: id, body: body, receipts: 1) }
        }
        return respond(200, Array(#"{"accepted":1}"#.utf8))
    }

    private func registryAnswer(_ request: Request) -> Response {
        guard let doc = registry.withLock({ $0 }) else {
            return answer(404, error: "no_registry", message: "no registry for this gateway")
        }
        var headers = HTTPFields()
        headers[.eTag] = doc.etag
        if let tag = request.headers[.ifNoneMatch], tag.split(separator: ",").contains(where: { $0.filter { $0 != " " } == doc.etag }) {
            count(304)
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = "application/json"
        count(200)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: doc.body)))
    }

    private func answer(_ status: Int, error: String, message: String, retryAfter: Int? = nil) -> Response {
        var out: [UInt8] = Array(#"{"error":"#.utf8)
        appendJSONString(error, to: &out)
        out += Array(#","message":"#.utf8)
        appendJSONString(message, to: &out)
        out += Array("}".utf8)
        var r = respond(status, out)
        if let retryAfter { r.headers[.retryAfter] = String(retryAfter) }
        return r
    }

    private func respond(_ status: Int, _ body: [UInt8]) -> Response {
        count(status)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    private func count(_ status: Int) {
        store.state.withLock { $0.statuses[status, default: 0] += 1 }
    }
}

/// The sink's store in numbers (`GET /_fake/summary`, snake_case keys).
public struct PortalFakeSummary: Codable, Sendable, Hashable {
    public var readings: Int
    public var resentDuplicates: Int
    public var readingIDs: [Int64]
    public var devices: [String: Int]
    public var alarms: Int
    public var alarmIDs: [String]
    public var healthReports: Int
    public var commissioningReports: Int
}

public struct PortalFakeError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// The request context: the default storage plus the connection, so a fault can reset it.
struct FakeContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
    var maxUploadSize: Int { 64 << 20 }
}

/// The readings batch as documented; each reading is checked on its own so a bad one can be named.
struct ReadingsEnvelope: Decodable {
    var batchID: String
    var readings: [CheckedReading]
    enum CodingKeys: String, CodingKey {
        case batchID = "batch_id"
        case readings
    }
}

struct CheckedReading: Decodable {
    var id: String?
    var device: String?
    /// Alarm edges travel as readings of class "alarm" (docs/portal-api.md).
    var isAlarm = false
    var problem: String?

    enum CodingKeys: String, CodingKey {
        case id, device, quantity, value, unit, readingClass = "class"
        case receivedAt = "received_at"
        case meterTime = "meter_time"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try? c.decode(String.self, forKey: .id)
        device = try? c.decode(String.self, forKey: .device)
        isAlarm = (try? c.decode(String.self, forKey: .readingClass)) == "alarm"
        problem = Self.check(c)
    }

    private static func check(_ c: KeyedDecodingContainer<CodingKeys>) -> String? {
        do {
            guard try !c.decode(String.self, forKey: .device).isEmpty else { return "device is empty" }
            _ = try c.decode(String.self, forKey: .quantity)
            _ = try c.decode(String.self, forKey: .unit)
            _ = try c.decodeIfPresent(Double.self, forKey: .value)
            _ = try c.decodeIfPresent(Int64.self, forKey: .meterTime)
            let received = try c.decode(Int64.self, forKey: .receivedAt)
            guard received > 946_684_800_000 else { return "received_at before 2000: the gateway clock was not set" }
            let cls = try c.decode(String.self, forKey: .readingClass)
            guard ["routine", "set_day", "alarm"].contains(cls) else { return "unknown class '\(cls)'" }
            return nil
        } catch {
            return "invalid reading: \(error)"
        }
    }
}

func appendJSONString(_ s: String, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), b]
        case 0..<0x20:
            let hex = Array("0123456789abcdef".utf8)
            out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 15)]]
        default: out.append(b)
        }
    }
    out.append(UInt8(ascii: "\""))
}
