import Foundation
import GRDB

/// Read-only look into a reading buffer file for the technicians' `gatewayd buffer …` commands.
///
/// Opens the database read-only (its own connection, never `SQLiteReadingBuffer`): nothing here
/// leases, deletes or clears leases, so a running daemon's delivery state is left as it is.
public struct BufferInspection: Sendable {
    public let path: String
    private let queue: DatabaseQueue

    /// One stored reading with its delivery state.
    public struct StoredReading: Hashable, Sendable {
        public var reading: Reading
        /// Leased to an upload that has not yet been confirmed.
        public var leased: Bool
        public var state: String { leased ? "leased" : reading.clockSynchronised ? "pending" : "waiting_for_clock" }
    }

    public struct DeviceCount: Hashable, Sendable {
        public var device: String
        public var count: Int
        public var oldestReceivedAt: Int64
        public var newestReceivedAt: Int64
    }

    public struct Summary: Hashable, Sendable {
        public var stored = 0
        /// Not leased (includes readings waiting for the clock).
        public var pending = 0
        public var leased = 0
        public var waitingForClock = 0
        public var oldestPendingReceivedAt: Int64?
        public var oldestReceivedAt: Int64?
        public var newestReceivedAt: Int64?
        /// The database file with its WAL and shared-memory files.
        public var bytesOnDisk: Int64 = 0
        /// Most readings first.
        public var devices: [DeviceCount] = []
    }

    /// Opens `path` read-only. Fails with a message saying what to do when the file is missing,
    /// unreadable or not a reading buffer.
    public init(path: String) throws(BufferError) {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw BufferError(.storage, "no reading buffer at \(path): check the path (--buffer), or start gatewayd once to create it")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw BufferError(.storage, "cannot read the reading buffer \(path): run as the gatewayd user or with sudo")
        }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(5)
        do {
            queue = try DatabaseQueue(path: path, configuration: config)
            let tables = try queue.read { db in
                try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('reading', 'name')")
            }
            guard Set(tables) == ["reading", "name"] else {
                throw BufferError(.storage, "\(path) is not a gatewayd reading buffer: check the path (--buffer)")
            }
        } catch let e as BufferError {
            throw e
        } catch {
            throw BufferError(.storage, "cannot open the reading buffer \(path) read-only: \(error); check its permissions (and those of its folder)")
        }
    }

    static let columns = """
        r.id, r.class, d.text, q.text, u.text, s.text, r.value, r.raw, r.meter_time, r.received, r.synced, r.position, r.status, r.rssi, r.lease
        FROM reading r LEFT JOIN name d ON d.id = r.device LEFT JOIN name q ON q.id = r.quantity
        LEFT JOIN name u ON u.id = r.unit LEFT JOIN name s ON s.id = r.source
        """

    static func stored(from row: Row) -> StoredReading {
        let position: Int64 = row[11]
        let rssi: Int64? = row[13]
        let meterTime: Int64? = row[8]
        let lease: Int64? = row[14]
        let device: String? = row[2], quantity: String? = row[3], unit: String? = row[4], source: String? = row[5]
        var r = Reading(
            device: device ?? "?", quantity: quantity ?? "?", value: row[6], unit: unit ?? "?", raw: row[7],
            meterTime: meterTime, receivedAt: row[9], clockSynchronised: (row[10] as Int64) != 0,
            storage: UInt32(truncatingIfNeeded: position), tariff: UInt16(truncatingIfNeeded: position >> 32),
            subunit: UInt16(truncatingIfNeeded: position >> 48), source: source ?? "?",
            rssi: rssi.map { Int16(truncatingIfNeeded: $0) }, status: UInt16(truncatingIfNeeded: row[12] as Int64),
            readingClass: ReadingClass(rawValue: UInt8(truncatingIfNeeded: row[1] as Int64)) ?? .routine)
        r.id = row[0]
        return StoredReading(reading: r, leased: lease != nil)
    }

    /// Depth, ages, size and per-device counts.
    public func summary() throws(BufferError) -> Summary {
        var s = Summary()
        do {
            try queue.read { db in
                s.stored = try Int.fetchOne(db, sql: "SELECT count(*) FROM reading") ?? 0
                s.pending = try Int.fetchOne(db, sql: "SELECT count(*) FROM reading WHERE lease IS NULL") ?? 0
                s.leased = try Int.fetchOne(db, sql: "SELECT count(*) FROM reading WHERE lease IS NOT NULL") ?? 0
                s.waitingForClock = try Int.fetchOne(db, sql: "SELECT count(*) FROM reading WHERE synced = 0") ?? 0
                s.oldestPendingReceivedAt = try Int64.fetchOne(db, sql: "SELECT min(received) FROM reading WHERE lease IS NULL AND synced = 1")
                s.oldestReceivedAt = try Int64.fetchOne(db, sql: "SELECT min(received) FROM reading")
                s.newestReceivedAt = try Int64.fetchOne(db, sql: "SELECT max(received) FROM reading")
                let rows = try Row.fetchAll(db, sql: """
                    SELECT d.text, count(*) AS n, min(r.received), max(r.received)
                    FROM reading r LEFT JOIN name d ON d.id = r.device
                    GROUP BY r.device ORDER BY n DESC, d.text
                    """)
                s.devices = rows.map { row in
                    let name: String? = row[0]
                    return DeviceCount(device: name ?? "?", count: row[1], oldestReceivedAt: row[2], newestReceivedAt: row[3])
                }
            }
        } catch {
            throw BufferError(.storage, "cannot read the reading buffer \(path): \(error)")
        }
        let fm = FileManager.default
        for suffix in ["", "-wal", "-shm"] {
            if let size = (try? fm.attributesOfItem(atPath: path + suffix))?[.size] as? NSNumber { s.bytesOnDisk += size.int64Value }
        }
        return s
    }

    /// Readings not leased, in the order the uplink would take them (alarms first, then set-day values,
    /// then routine, oldest first in each), followed by those waiting for the clock. Changes nothing.
    public func pending(device: String? = nil, limit: Int) throws(BufferError) -> [StoredReading] {
        var sql = "SELECT \(Self.columns) WHERE r.lease IS NULL"
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let device {
            sql += " AND d.text = ?"
            arguments.append(device)
        }
        sql += " ORDER BY r.synced DESC, r.class DESC, r.id LIMIT ?"
        arguments.append(max(0, limit))
        return try fetch(sql, arguments)
    }

    /// Every stored reading (pending or leased) received in `from ..< to` (Unix milliseconds, either
    /// bound optional), in order of receipt.
    public func readings(receivedFrom from: Int64? = nil, before to: Int64? = nil, device: String? = nil) throws(BufferError) -> [StoredReading] {
        var sql = "SELECT \(Self.columns) WHERE 1"
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let from {
            sql += " AND r.received >= ?"
            arguments.append(from)
        }
        if let to {
            sql += " AND r.received < ?"
            arguments.append(to)
        }
        if let device {
            sql += " AND d.text = ?"
            arguments.append(device)
        }
        sql += " ORDER BY r.received, r.id"
        return try fetch(sql, arguments)
    }

    private func fetch(_ sql: String, _ arguments: [(any DatabaseValueConvertible)?]) throws(BufferError) -> [StoredReading] {
        do {
            let rows = try queue.read { db in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)) }
            return rows.map(Self.stored(from:))
        } catch {
            throw BufferError(.storage, "cannot read the reading buffer \(path): \(error)")
        }
    }
}
