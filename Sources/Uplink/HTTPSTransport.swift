import AsyncHTTPClient
import CompressNIO
import FoundationEssentials
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// How the HTTPS transport reaches the portal (docs/portal-api.md, "Transport and authentication").
public struct HTTPSTransportConfiguration: Sendable {
    /// "https://portal.example/api/v1". Plain http is accepted only for loopback hosts (tests, the demo)
    /// or with `insecure`.
    public var baseURL: String
    /// This gateway's id as the portal knows it; part of every path.
    public var gatewayID: String
    /// A file holding the bearer token (whitespace trimmed). Re-read whenever the file changes.
    public var bearerTokenPath: String?
    /// PEM files for mutual TLS.
    public var clientCertificatePath: String?
    public var clientPrivateKeyPath: String?
    /// Extra trust roots (PEM bundle); nil trusts the system's roots.
    public var caBundlePath: String?
    /// Turns TLS certificate verification off (and allows plain http to any host). Logged as a warning
    /// every time the transport starts. Never the default.
    public var insecure = false
    /// Time for one request, headers and body.
    public var requestTimeout: Duration = .seconds(60)
    public var connectTimeout: Duration = .seconds(15)
    /// zlib level for request bodies (1 fastest … 9 smallest).
    public var compressionLevel = 6
    public var userAgent = "gatewayd"

    public init(baseURL: String, gatewayID: String, bearerTokenPath: String? = nil) {
        self.baseURL = baseURL
        self.gatewayID = gatewayID
        self.bearerTokenPath = bearerTokenPath
    }

    /// Everything the transport refuses at start that can be decided without touching a file or the
    /// network. `HTTPSTransport.init` runs it, and so does `gatewayd config check`, so a configuration the
    /// check passes never makes the daemon exit at start (a restart loop under systemd).
    public func validate() throws(UplinkConfigurationError) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        let lower = base.lowercased()
        let isHTTPS = lower.hasPrefix("https://")
        guard isHTTPS || lower.hasPrefix("http://") else {
            throw UplinkConfigurationError("portal URL '\(baseURL)' must start with https://")
        }
        guard !gatewayID.isEmpty, gatewayID.utf8.allSatisfy({ HTTPSTransport.pathSafe.contains($0) }) else {
            throw UplinkConfigurationError("gateway id '\(gatewayID)' must be 1+ characters of A-Z a-z 0-9 . _ : -")
        }
        if !isHTTPS && !insecure && !LoopbackHost.isLoopback(url: base) {
            throw UplinkConfigurationError("portal URL '\(base)' is plain http to a non-loopback host; use https (or set insecure, which is not for production)")
        }
        // A test sink (`gatewayd-sim portal` without --token-file) may take requests without
        // credentials; a portal never does, so only insecure mode may go without.
        if bearerTokenPath == nil && clientCertificatePath == nil && !insecure {
            throw UplinkConfigurationError("no credentials: set a bearer token file or a client certificate")
        }
        if (clientCertificatePath == nil) != (clientPrivateKeyPath == nil) {
            throw UplinkConfigurationError("mutual TLS needs both a client certificate and its private key")
        }
    }
}

/// Why the HTTPS transport could not be set up.
public struct UplinkConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The portal over HTTPS (async-http-client): gzip bodies, bearer token from a file or mutual TLS.
public final class HTTPSTransport: PortalTransport {
    public let configuration: HTTPSTransportConfiguration
    public var endpointDescription: String { base }
    private let base: String
    private let client: HTTPClient
    private let token: WatchedFile?
    private let logger: Logger

    public init(configuration: HTTPSTransportConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        var base = configuration.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.base = base
        try configuration.validate()
        token = configuration.bearerTokenPath.map(WatchedFile.init(path:))

        var tls = TLSConfiguration.makeClientConfiguration()
        if let path = configuration.clientCertificatePath, let keyPath = configuration.clientPrivateKeyPath {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(path)
                tls.certificateChain = chain.map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
            } catch {
                throw UplinkConfigurationError("cannot load the client certificate \(path) / key \(keyPath): \(error)")
            }
        }
        if let ca = configuration.caBundlePath {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            } catch {
                throw UplinkConfigurationError("cannot load the CA bundle \(ca): \(error)")
            }
        }
        if configuration.insecure {
            tls.certificateVerification = .none
            logger.warning("""
                INSECURE UPLINK: TLS certificate verification is OFF for \(base) (setting 'insecure'). \
                Anyone on the path can read and alter readings and steal the token. Never use this in production.
                """)
        }
        var http = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: Self.timeAmount(configuration.connectTimeout), read: Self.timeAmount(configuration.requestTimeout)),
            decompression: .enabled(limit: .ratio(100)))
        http.connectionPool = .init(idleTimeout: .seconds(60))
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http, backgroundActivityLogger: logger)
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    // MARK: Messages

    public func deliver(_ message: PortalMessage) async -> DeliveryOutcome {
        let path: String
        let body: [UInt8]
        var idempotencyKey: String? = nil
        var batchIDs: [String] = []
        switch message {
        case .readings(let batch):
            path = "/readings"
            body = batch.body
            idempotencyKey = batch.id
            batchIDs = batch.readingIDs
        case .alarms(let id, let b):
            path = "/alarms"
            body = b
            idempotencyKey = id
        case .health(let b):
            path = "/health"
            body = b
        case .commissioningReport(let id, let b):
            path = "/commissioning-reports"
            body = b
            idempotencyKey = id
        }
        let response: Response
        switch await send(method: .POST, path: path, body: body, headers: idempotencyKey.map { [("Idempotency-Key", $0)] } ?? []) {
        case .failed(let outcome): return outcome
        case .response(let r): response = r
        }
        switch response.status {
        case 200..<300:
            return .accepted
        case 400, 422:
            let detail = Self.decodeError(response.body)
            var ids = detail?.rejected?.map(\.id) ?? []
            if ids.isEmpty { ids = batchIDs }
            let reason = detail?.rejected?.first?.reason ?? detail?.message ?? "HTTP \(response.status)"
            return .rejectedReadings(ids: ids, reason: reason)
        default:
            return Self.failureOutcome(response)
        }
    }

    public func fetchRegistry(ifNoneMatch etag: String?) async -> RegistryFetch {
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let etag { headers.append(("If-None-Match", etag)) }
        switch await send(method: .GET, path: "/registry", body: nil, headers: headers, maxResponseBytes: 32 << 20) {
        case .failed(let outcome): return .failed(outcome)
        case .response(let r):
            switch r.status {
            case 304: return .notModified
            case 200: return .document(body: r.body, etag: r.headers.first(name: "ETag"))
            default: return .failed(Self.failureOutcome(r))
            }
        }
    }

    // MARK: HTTP

    enum SendResult {
        case response(Response)
        case failed(DeliveryOutcome)
    }

    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    private func send(method: HTTPMethod, path: String, body: [UInt8]?, headers extra: [(String, String)],
                      maxResponseBytes: Int = 1 << 20) async -> SendResult {
        var request = HTTPClientRequest(url: base + "/gateways/" + configuration.gatewayID + path)
        request.method = method
        request.headers.add(name: "User-Agent", value: configuration.userAgent)
        request.headers.add(name: "Accept", value: "application/json")
        for (k, v) in extra { request.headers.replaceOrAdd(name: k, value: v) }
        if let token {
            switch token.contents() {
            case .contents(let bytes):
                let text = String(decoding: bytes, as: UTF8.self).trimmingWhitespace()
                guard !text.isEmpty else { return .failed(.unauthorized(reason: "the token file \(token.path) is empty")) }
                request.headers.add(name: "Authorization", value: "Bearer " + text)
            case .failed(let why):
                return .failed(.unauthorized(reason: "cannot read the token file \(token.path): \(why)"))
            }
        }
        if let body {
            var plain = ByteBuffer(bytes: body)
            do {
                let level = ZlibConfiguration.CompressionLevel(rawValue: Int32(configuration.compressionLevel)) ?? .defaultCompressionLevel
                let gz = try plain.compress(with: .gzip(configuration: .init(compressionLevel: level)))
                request.body = .bytes(gz)
            } catch {
                return .failed(.transient(reason: "gzip failed: \(error)", retryAfter: nil))
            }
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Content-Encoding", value: "gzip")
        }
        do {
            let response = try await client.execute(request, timeout: Self.timeAmount(configuration.requestTimeout), logger: logger)
            var collected = try await response.body.collect(upTo: maxResponseBytes)
            let bytes = collected.readBytes(length: collected.readableBytes) ?? []
            return .response(Response(status: Int(response.status.code), headers: response.headers, body: bytes))
        } catch is CancellationError {
            return .failed(.transient(reason: "cancelled", retryAfter: nil))
        } catch {
            return .failed(.transient(reason: Self.describe(error), retryAfter: nil))
        }
    }

    static func failureOutcome(_ r: Response) -> DeliveryOutcome {
        let message = decodeError(r.body)?.message
        switch r.status {
        case 401, 403:
            return .unauthorized(reason: "HTTP \(r.status)" + (message.map { ": " + $0 } ?? ""))
        case 413:
            return .tooLarge
        default:
            let retryAfter = r.headers.first(name: "Retry-After").flatMap(parseRetryAfter)
            return .transient(reason: "HTTP \(r.status)" + (message.map { ": " + $0 } ?? ""), retryAfter: retryAfter)
        }
    }

    /// Retry-After as delta-seconds (the form the portal documents). HTTP-dates are ignored.
    static func parseRetryAfter(_ text: String) -> Duration? {
        guard let s = Int64(text.trimmingWhitespace()), s >= 0 else { return nil }
        return .seconds(s)
    }

    struct ErrorBody: Decodable {
        struct Rejected: Decodable {
            var id: String
            var reason: String?
        }
        var error: String?
        var message: String?
        var rejected: [Rejected]?
    }

    static func decodeError(_ body: [UInt8]) -> ErrorBody? {
        guard !body.isEmpty else { return nil }
        return try? JSONDecoder().decode(ErrorBody.self, from: Data(body))
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded, .readTimeout, .writeTimeout: return "timeout (no answer within the request timeout)"
            case .connectTimeout: return "timeout connecting to the portal"
            case .remoteConnectionClosed: return "connection closed by the portal"
            default: return "HTTP client: \(e)"
            }
        }
        if let e = error as? IOError { return "connection error: \(e)" }
        if let e = error as? NIOSSLError { return "TLS error: \(e)" }
        if let e = error as? BoringSSLError { return "TLS error: \(e)" }
        return "\(error)"
    }

    static func timeAmount(_ d: Duration) -> TimeAmount {
        .nanoseconds(RetryPolicy.nanoseconds(d))
    }

    static let pathSafe: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-".utf8))
}

extension String {
    func trimmingWhitespace() -> String {
        let ws: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }
        return String(self.drop(while: ws).reversed().drop(while: ws).reversed())
    }
}
