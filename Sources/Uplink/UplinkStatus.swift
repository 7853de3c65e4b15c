import FoundationEssentials
import Glibc

/// What the uploader is doing, for `gatewayd status`, health telemetry and metrics.
public enum UplinkState: Sendable, Hashable, CustomStringConvertible {
    case starting
    /// Nothing pending; waiting for readings.
    case idle
    case uploading
    /// The last attempt failed transiently; retrying with backoff.
    case retrying(reason: String)
    /// The portal refused the credentials (401/403). Uploads stop, buffering continues; retried slowly
    /// and at once when the credentials change.
    case unauthorized(reason: String)
    /// Graceful shutdown: finishing the batches in flight.
    case draining
    case stopped

    public var name: String {
        switch self {
        case .starting: return "starting"
        case .idle: return "idle"
        case .uploading: return "uploading"
        case .retrying: return "retrying"
        case .unauthorized: return "unauthorized"
        case .draining: return "draining"
        case .stopped: return "stopped"
        }
    }

    public var description: String {
        switch self {
        case .retrying(let why): return "retrying (\(why))"
        case .unauthorized(let why):
            return "unauthorized: the portal refused this gateway's credentials (\(why)); check the token file or client certificate"
        default: return name
        }
    }
}

/// A snapshot of the uplink.
public struct UplinkStatus: Sendable, Hashable {
    public var endpoint: String
    public var state: UplinkState = .starting
    /// Unix milliseconds of the last message the portal accepted.
    public var lastSuccessAt: Int64?
    public var lastError: String?
    public var lastErrorAt: Int64?
    /// Readings batches accepted (split halves count one each).
    public var batchesSent = 0
    public var readingsSent = 0
    /// Readings the portal refused for good (400) and the source quarantined.
    public var readingsRejected = 0
    /// Attempts that were repeated after a transient failure.
    public var retries = 0
    /// Transient failures (5xx, 429, timeouts, resets, source errors).
    public var failures = 0
    /// 401/403 answers.
    public var authorizationFailures = 0
    /// Batches split after a 413.
    public var splits = 0
    /// HTTP 400 answers that named no reading of the batch: the batch was held, not deleted.
    public var batchesHeld = 0
    public var alarmsSent = 0
    public var alarmsDropped = 0
    public var healthReportsSent = 0
    public var commissioningReportsSent = 0
    /// Registry: the ETag applied last, when, and the last sync error (the old registry stays in force).
    public var registryETag: String?
    public var registryUpdatedAt: Int64?
    public var registryCheckedAt: Int64?
    public var registryError: String?
    public var registryUpdates = 0
    /// Bytes of JSON handed to the transport (before compression).
    public var bodyBytesSent: Int64 = 0

    public init(endpoint: String) { self.endpoint = endpoint }
}

/// Wall-clock Unix milliseconds (CLOCK_REALTIME), for timestamps shown to people.
func unixMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// An alarm for the portal's alarms endpoint (docs/portal-api.md, "Alarms"). Alarms skip the readings queue.
public struct PortalAlarm: Sendable, Hashable, Codable {
    /// Unique per gateway; the portal deduplicates by it.
    public var id: String
    /// "readings_rejected", "buffer_evicted", "meter_alarm", "credentials_refused", …
    public var kind: String
    public var severity: String
    public var device: String?
    /// Unix milliseconds.
    public var raisedAt: Int64
    public var message: String
    public var readingIDs: [String]?

    public init(id: String, kind: String, severity: String = "warning", device: String? = nil, raisedAt: Int64,
                message: String, readingIDs: [String]? = nil) {
        self.id = id
        self.kind = kind
        self.severity = severity
        self.device = device
        self.raisedAt = raisedAt
        self.message = message
        self.readingIDs = readingIDs
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, severity, device, message
        case raisedAt = "raised_at"
        case readingIDs = "reading_ids"
    }

    /// The documented body: `{"alarms":[…]}`.
    public static func body(_ alarms: [PortalAlarm]) -> [UInt8] {
        struct Envelope: Encodable { var alarms: [PortalAlarm] }
        return Array((try? JSONEncoder().encode(Envelope(alarms: alarms))) ?? Data("{\"alarms\":[]}".utf8))
    }
}

/// What the gateway reports every few minutes (docs/portal-api.md, "Health"). The daemon fills it from
/// the buffer, the bus masters and the dongles; the uploader adds its own section.
public struct HealthReport: Sendable, Hashable, Codable {
    public struct Bus: Sendable, Hashable, Codable {
        /// "mbus:/dev/serial/by-id/…", "wmbus:im871a", "modbus:tcp://10.0.0.5".
        public var name: String
        /// "ok", "degraded", "down".
        public var state: String
        /// Error and traffic counters by name ("frames", "timeouts", "crc_errors", "collisions").
        public var counters: [String: Int]
        public init(name: String, state: String, counters: [String: Int] = [:]) {
            self.name = name
            self.state = state
            self.counters = counters
        }
    }

    public struct Uplink: Sendable, Hashable, Codable {
        public var state: String
        public var lastSuccessAt: Int64?
        public var lastError: String?
        public var batchesSent: Int
        public var readingsSent: Int
        public var readingsRejected: Int
        public var retries: Int
        public var failures: Int
        public var registryEtag: String?

        enum CodingKeys: String, CodingKey {
            case state, retries, failures
            case lastSuccessAt = "last_success_at"
            case lastError = "last_error"
            case batchesSent = "batches_sent"
            case readingsSent = "readings_sent"
            case readingsRejected = "readings_rejected"
            case registryEtag = "registry_etag"
        }

        public init(_ s: UplinkStatus) {
            state = s.state.name
            lastSuccessAt = s.lastSuccessAt
            lastError = s.lastError
            batchesSent = s.batchesSent
            readingsSent = s.readingsSent
            readingsRejected = s.readingsRejected
            retries = s.retries
            failures = s.failures
            registryEtag = s.registryETag
        }
    }

    public var version: String
    public var uptimeSeconds: Int64
    /// Readings buffered and not yet delivered.
    public var queueDepth: Int
    /// Age of the oldest pending reading, seconds.
    public var oldestPendingAgeSeconds: Int64?
    public var diskUsedBytes: Int64?
    public var diskFreeBytes: Int64?
    public var buses: [Bus]
    /// Filled in by the uploader.
    public var uplink: Uplink?
    /// Unix milliseconds; filled in by the uploader when zero.
    public var reportedAt: Int64

    public init(version: String, uptimeSeconds: Int64, queueDepth: Int, oldestPendingAgeSeconds: Int64? = nil,
                diskUsedBytes: Int64? = nil, diskFreeBytes: Int64? = nil, buses: [Bus] = [], reportedAt: Int64 = 0) {
        self.version = version
        self.uptimeSeconds = uptimeSeconds
        self.queueDepth = queueDepth
        self.oldestPendingAgeSeconds = oldestPendingAgeSeconds
        self.diskUsedBytes = diskUsedBytes
        self.diskFreeBytes = diskFreeBytes
        self.buses = buses
        self.reportedAt = reportedAt
    }

    enum CodingKeys: String, CodingKey {
        case version, buses, uplink
        case uptimeSeconds = "uptime_seconds"
        case queueDepth = "queue_depth"
        case oldestPendingAgeSeconds = "oldest_pending_age_seconds"
        case diskUsedBytes = "disk_used_bytes"
        case diskFreeBytes = "disk_free_bytes"
        case reportedAt = "reported_at"
    }

    public var body: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data("{}".utf8))
    }
}
