import CMosquitto
import Logging

/// How the MQTT transport reaches the broker. Everything but host and gateway id has a default
/// suited to a plant room on a cellular link.
public struct MQTTTransportConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Stable across restarts: it is the MQTT client id (the persistent session's key) and the
    /// second topic level.
    public var gatewayID: String
    /// First topic level(s): `<prefix>/<gateway>/readings`. May contain `/`.
    public var topicPrefix: String
    /// nil: plain TCP (loopback and tests only; the default is TLS with verification).
    public var tls: TLS?
    public var credentials: Credentials?
    public var keepAlive: Duration = .seconds(60)
    /// How long `deliver` waits for the connection and the PUBACK before answering `.transient`.
    public var acknowledgementTimeout: Duration = .seconds(30)
    /// MQTT 5 Session Expiry Interval: how long the broker keeps the session (subscriptions, QoS 1
    /// state) while the gateway is away.
    public var sessionExpiry: Duration = .seconds(7 * 24 * 3600)
    /// Reconnect delay: doubles from `initial` up to `maximum`, each drawn from [d/2, d] (jitter).
    public var reconnectDelay: ReconnectDelay = .init(initial: .milliseconds(500), maximum: .seconds(60))
    public var compression: MQTTPayload.Compression = .none
    /// Flow control: publishes that may await their PUBACK at once, in count and payload bytes.
    /// Beyond this `deliver` answers `.transient` without publishing, so memory stays bounded.
    public var maximumUnacknowledged: Int = 64
    public var maximumUnacknowledgedBytes: Int = 32 << 20
    /// MQTT 5 PUBACK 0x10 (no matching subscribers) means nobody will receive the message. By
    /// default that is `.transient` (the reading stays buffered); brokers whose rule engine
    /// forwards to Kafka without a subscriber need `true`.
    public var acceptWithoutSubscribers: Bool = false
    /// How long `fetchRegistry` waits for the connection and the retained registry message.
    public var registryWait: Duration = .seconds(5)

    public struct TLS: Sendable, Hashable {
        public enum Verification: Sendable, Hashable {
            /// Chain to `caFile` (or the system CAs) and host name. The default.
            case full
            /// No verification at all. Only for a lab; logged as critical on every start.
            case insecureNoVerification
        }
        /// PEM CA bundle; nil uses the operating system's CAs.
        public var caFile: String?
        /// PEM client certificate and key for mutual TLS.
        public var clientCertificateFile: String?
        public var clientKeyFile: String?
        public var verification: Verification

        public init(caFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil,
                    verification: Verification = .full) {
            self.caFile = caFile
            self.clientCertificateFile = clientCertificateFile
            self.clientKeyFile = clientKeyFile
            self.verification = verification
        }
    }

    public struct Credentials: Sendable, Hashable {
        public var username: String
        public var password: String?
        public init(username: String, password: String?) {
            self.username = username
            self.password = password
        }
    }

    public struct ReconnectDelay: Sendable, Hashable {
        public var initial: Duration
        public var maximum: Duration
        public init(initial: Duration, maximum: Duration) {
            self.initial = initial
            self.maximum = maximum
        }
    }

    /// `port` defaults to 8883 with TLS and 1883 without.
    public init(host: String, port: Int? = nil, gatewayID: String, topicPrefix: String = "gatewayd",
                tls: TLS? = TLS(), credentials: Credentials? = nil) {
        self.host = host
        self.port = port ?? (tls == nil ? 1883 : 8883)
        self.gatewayID = gatewayID
        self.topicPrefix = topicPrefix
        self.tls = tls
        self.credentials = credentials
    }
}

/// The portal over MQTT 5 through libmosquitto: QoS 1 publishes on a persistent session, a retained
/// status with a Last Will, the registry as a retained message. Layout and payloads: docs/mqtt.md.
///
/// `deliver` answers `.accepted` only once the broker's PUBACK for that publish arrived. A publish
/// that timed out stays queued in libmosquitto and is resent after a reconnect, so the broker may
/// see it twice: consumers deduplicate by batch and reading id, as the portal does over HTTPS.
public final class MQTTTransport: PortalTransport {
    public let configuration: MQTTTransportConfiguration
    public let topics: MQTTTopics
    public let endpointDescription: String
    let session: MQTTSession

    /// Creates the libmosquitto client and starts its network thread, which connects (and
    /// reconnects) on its own. Throws for settings libmosquitto refuses (unreadable CA file, bad topic).
    public init(configuration: MQTTTransportConfiguration, logger: Logger) throws(MQTTConfigurationError) {
        self.configuration = configuration
        topics = try MQTTTopics(prefix: configuration.topicPrefix, gatewayID: configuration.gatewayID)
        endpointDescription = "\(configuration.tls == nil ? "mqtt" : "mqtts")://\(configuration.host):\(configuration.port)"
        if configuration.port <= 0 || configuration.port > 65535 {
            throw MQTTConfigurationError("port \(configuration.port) is not a TCP port")
        }
        if configuration.maximumUnacknowledged < 1 {
            throw MQTTConfigurationError("maximumUnacknowledged must be at least 1")
        }
        var logger = logger
        logger[metadataKey: "mqtt"] = "\(endpointDescription)"
        session = try MQTTSession(configuration: configuration, topics: topics, endpoint: endpointDescription, logger: logger)
        try session.start()
    }

    public func deliver(_ message: PortalMessage) async -> DeliveryOutcome {
        let frame: MQTTPayload.Frame
        do {
            frame = try MQTTPayload.frame(message, topics: topics, compression: configuration.compression)
        } catch {
            return .transient(reason: "gzip failed: \(error)", retryAfter: nil)
        }
        return await session.publish(frame, timeout: configuration.acknowledgementTimeout)
    }

    public func fetchRegistry(ifNoneMatch etag: String?) async -> RegistryFetch {
        await session.registry(ifNoneMatch: etag, wait: configuration.registryWait)
    }

    /// Publishes the retained "offline" status, disconnects cleanly (no Last Will) and stops the
    /// network thread. Deliveries still waiting answer `.transient`.
    public func shutdown() async {
        await session.stop()
    }

    /// Counters since start, for health telemetry and logs.
    public var statistics: MQTTStatistics { session.statistics }

    deinit {
        session.requestStop()
    }
}

/// What the transport did since it started.
public struct MQTTStatistics: Sendable, Hashable {
    public var published = 0
    public var acknowledged = 0
    /// Deliveries answered `.transient` because no PUBACK came in time.
    public var timedOut = 0
    /// PUBACKs that arrived after their delivery had timed out.
    public var lateAcknowledgements = 0
    /// Timed-out publishes no PUBACK came for within 10 × the acknowledgement timeout (at least
    /// 5 min); they no longer count against the flow-control window.
    public var forgottenPublishes = 0
    public var connects = 0
    public var connectionLosses = 0
}
