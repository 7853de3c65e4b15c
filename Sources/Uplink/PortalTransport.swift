/// What the uplink sends to the portal. Bodies are JSON as documented in docs/portal-api.md, not yet
/// compressed: each transport compresses (HTTPS: gzip Content-Encoding) or frames (MQTT) as it must.
public enum PortalMessage: Sendable, Hashable {
    /// A readings batch. Idempotent: the portal deduplicates by batch id and by reading id.
    case readings(UplinkBatch)
    /// Alarms skip the readings queue.
    case alarms(id: String, body: [UInt8])
    case health(body: [UInt8])
    case commissioningReport(id: String, body: [UInt8])
}

/// How the portal answered one message. Transports map their own status codes onto these, so the
/// uploader's retry policy is the same whatever carries the bytes.
public enum DeliveryOutcome: Sendable, Hashable {
    /// Stored (or already stored: a resend is acknowledged the same way).
    case accepted
    /// The portal stored all but these readings, which it will never accept (HTTP 400 naming them).
    case rejectedReadings(ids: [String], reason: String)
    /// Too large for the portal (HTTP 413): split and resend.
    case tooLarge
    /// Credentials refused (HTTP 401/403). Uploading stops until an operator fixes them.
    case unauthorized(reason: String)
    /// Try again later: 5xx, timeout, connection reset, broker gone. `retryAfter` honours the
    /// portal's Retry-After when it gave one.
    case transient(reason: String, retryAfter: Duration?)
}

/// The result of asking the portal for this gateway's device registry.
public enum RegistryFetch: Sendable, Hashable {
    /// Unchanged since the ETag we sent (HTTP 304).
    case notModified
    case document(body: [UInt8], etag: String?)
    case failed(DeliveryOutcome)
}

/// One way of reaching the portal: HTTPS (async-http-client) or MQTT (libmosquitto).
public protocol PortalTransport: Sendable {
    /// A short name for logs and health ("https://portal.example/api/v1", "mqtt://broker:8883").
    var endpointDescription: String { get }
    func deliver(_ message: PortalMessage) async -> DeliveryOutcome
    func fetchRegistry(ifNoneMatch etag: String?) async -> RegistryFetch
    /// Close connections; after this the transport is not used again.
    func shutdown() async
}
