/// How long a reading must be kept when space runs short: routine values go first, billing
/// (set-day) values and alarms last.
public enum ReadingClass: UInt8, Hashable, Sendable, Comparable, CaseIterable {
    case routine = 0
    case setDay = 1
    case alarm = 2

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// One value of one device at one moment, ready to buffer and upload.
public struct Reading: Hashable, Sendable {
    /// Assigned by the buffer when the reading is accepted: monotonic per gateway, never reused.
    public var id: Int64?
    /// The registry's key for the device ("mbus:KAM:06855817").
    public var device: String
    /// Quantity as the decoders name it ("Energy", "Volume", "Flow temperature").
    public var quantity: String
    /// Value in `unit` (SI-normalised).
    public var value: Double
    public var unit: String
    /// The value as the meter sent it, for audits ("6042 kWh").
    public var raw: String
    /// The meter's own timestamp, Unix seconds, where the telegram carries one.
    public var meterTime: Int64?
    /// When the gateway received it, Unix milliseconds by the gateway's clock.
    public var receivedAt: Int64
    /// False while the gateway's clock was not yet synchronised (boards without RTC boot in 1970).
    public var clockSynchronised: Bool
    public var storage: UInt32
    public var tariff: UInt16
    public var subunit: UInt16
    /// Where it came from: "mbus:/dev/serial/by-id/…", "wmbus:im871a".
    public var source: String
    public var rssi: Int16?
    /// Meter status flags as sent.
    public var status: UInt16
    public var readingClass: ReadingClass

    public init(device: String, quantity: String, value: Double, unit: String, raw: String = "", meterTime: Int64? = nil,
                receivedAt: Int64, clockSynchronised: Bool = true, storage: UInt32 = 0, tariff: UInt16 = 0, subunit: UInt16 = 0,
                source: String = "", rssi: Int16? = nil, status: UInt16 = 0, readingClass: ReadingClass = .routine) {
        self.device = device
        self.quantity = quantity
        self.value = value
        self.unit = unit
        self.raw = raw
        self.meterTime = meterTime
        self.receivedAt = receivedAt
        self.clockSynchronised = clockSynchronised
        self.storage = storage
        self.tariff = tariff
        self.subunit = subunit
        self.source = source
        self.rssi = rssi
        self.status = status
        self.readingClass = readingClass
    }
}

/// Readings leased to the uplink. They stay in the buffer until `markDelivered`; `release` (or a
/// restart) hands them out again, so uploads are at least once and the portal deduplicates by id.
public struct ReadingBatch: Hashable, Sendable {
    public var id: Int64
    public var readings: [Reading]
}

/// Something the buffer had to do that an operator must hear about.
public enum BufferEvent: Hashable, Sendable, CustomStringConvertible {
    /// Readings were deleted unsent to stay under the cap (or because the disk is full).
    case evicted(count: Int, oldestClass: ReadingClass, reason: String)
    /// The database failed its integrity check and was moved aside; a fresh one was started.
    case quarantined(path: String, reason: String)
    /// Readings could not be stored at all (disk full even after eviction).
    case rejected(count: Int, reason: String)

    public var description: String {
        switch self {
        case .evicted(let n, let c, let why): return "evicted \(n) unsent readings (\(c) and below): \(why)"
        case .quarantined(let p, let why): return "reading buffer moved aside to \(p): \(why); started a fresh one"
        case .rejected(let n, let why): return "could not store \(n) readings: \(why)"
        }
    }
}

/// Why the buffer could not do what was asked.
public struct BufferError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }
        public static let diskFull = Code(name: "disk_full")
        public static let unknownBatch = Code(name: "unknown_batch")
        public static let storage = Code(name: "storage")
    }

    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// Counters and levels for health reports.
public struct BufferStatistics: Hashable, Sendable {
    public var pending = 0
    public var leased = 0
    /// Readings held back until the clock is synchronised.
    public var waitingForClock = 0
    public var oldestPendingReceivedAt: Int64?
    /// The newest receive time among readings held back for the clock.
    public var newestWaitingReceivedAt: Int64?
    public var evicted = 0
    public var rejected = 0
    public var delivered = 0
    public var bytes: Int64 = 0

    public init() {}
}

/// The store-and-forward buffer between the pipeline and the uplink.
///
/// A reading counts as accepted only when `append` returns: its transaction has committed. It is
/// deleted only after `markDelivered`.
public protocol ReadingBuffer: AnyObject, Sendable {
    /// Stores readings in one transaction and returns their ids, in order.
    func append(_ readings: [Reading]) async throws(BufferError) -> [Int64]
    /// Leases up to `maxReadings` deliverable readings, oldest first, alarms before everything else.
    func takeBatch(maxReadings: Int) async throws(BufferError) -> ReadingBatch?
    /// The portal has them: delete.
    func markDelivered(_ batchID: Int64) async throws(BufferError)
    /// Not delivered (transient failure): hand them out again.
    func release(_ batchID: Int64) async throws(BufferError)
    /// The clock was synchronised: readings taken before it are shifted by `offsetMilliseconds`
    /// (true time minus the clock's time then) and become deliverable.
    func clockSynchronised(offsetMilliseconds: Int64) async throws(BufferError)
    func statistics() async -> BufferStatistics
    /// Events since the last call (evictions, quarantine), for alarms.
    func drainEvents() async -> [BufferEvent]
}
