import Drivers
import Foundation
import GRDB

/// The durable store-and-forward buffer: SQLite in WAL mode through GRDB.
///
/// - `append` commits one transaction per call; only then are the readings accepted.
/// - Ids come from an AUTOINCREMENT key: monotonic per gateway and never reused, even after deletes.
/// - Leases are in the table, and cleared at start, so readings leased when the process died are
///   handed out again (at least once; the portal deduplicates by id).
/// - Over the cap, or when the disk is full, the eviction policy deletes the oldest readings of the
///   lowest class and reports it as an event.
/// - A database that fails its integrity check at start is moved aside and a fresh one is started.
///
/// The actor runs on its own thread: SQLite calls block (fsync on commit), and must not stall the
/// shared concurrency pool.
public actor SQLiteReadingBuffer: ReadingBuffer {
    public nonisolated let path: String
    public let capacity: Int
    private let executor: ThreadExecutor
    private var pool: DatabasePool
    private var names: [String: Int64] = [:]
    private var namesByID: [Int64: String] = [:]
    private var events: [BufferEvent] = []
    private var stats = BufferStatistics()
    /// Rows in the reading table, kept in step with every insert and delete: counting 2 million rows on
    /// each append would make ingest slower the fuller the buffer gets.
    private var storedCount = 0

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Opens (or creates) the buffer at `path`. A corrupt database is quarantined, never fatal.
    public init(path: String, capacity: Int = 2_000_000) throws(BufferError) {
        self.path = path
        self.capacity = capacity
        executor = ThreadExecutor(name: "reading buffer")
        var startupEvents: [BufferEvent] = []
        do {
            pool = try Self.open(path)
        } catch {
            let aside = Self.quarantine(path)
            startupEvents.append(.quarantined(path: aside, reason: "\(error)"))
            do { pool = try Self.open(path) } catch {
                throw BufferError(.storage, "cannot create a reading buffer at \(path): \(error)")
            }
        }
        events = startupEvents
        do {
            try pool.write { db in
                // Readings leased to an upload that never finished go out again.
                try db.execute(sql: "UPDATE reading SET lease = NULL WHERE lease IS NOT NULL")
            }
            storedCount = try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM reading") ?? 0 }
            let rows = try pool.read { db in try Row.fetchAll(db, sql: "SELECT id, text FROM name") }
            for row in rows {
                let id: Int64 = row[0]
                let text: String = row[1]
                names[text] = id
                namesByID[id] = text
            }
        } catch {
            throw BufferError(.storage, "cannot prepare the reading buffer at \(path): \(error)")
        }
    }

    deinit { executor.shutdown() }

    static func open(_ path: String) throws -> DatabasePool {
        var config = Configuration()
        config.journalMode = .wal
        config.busyMode = .timeout(5)
        // Two readers at most: the buffer's reads are stats, leases and a peek now and then, never many
        // at once, and every connection keeps a page cache of its own.
        config.maximumReaderCount = 2
        config.prepareDatabase { db in
            // 1 MiB of page cache per connection instead of SQLite's 2 MiB: appends touch the table's last
            // pages and the index's right edge; the rest is read once per lease and can come from the OS.
            try db.execute(sql: "PRAGMA cache_size = -1024")
        }
        let pool = try DatabasePool(path: path, configuration: config)
        // FULL: every commit is fsynced before append returns, so "accepted" survives a power cut, not
        // only a process crash (NORMAL in WAL mode may lose the last commits on power loss). Set on the
        // writer after the pool is open: GRDB's WAL set-up runs after `prepareDatabase` and sets NORMAL, so
        // FULL set there never took effect (strace: no fsync at all on commit). Read back: this is the
        // buffer's durability promise, so a connection that did not take it is refused.
        try pool.barrierWriteWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            let level = try Int.fetchOne(db, sql: "PRAGMA synchronous")
            guard level == 2 else {
                throw DatabaseError(resultCode: .SQLITE_ERROR, message: "synchronous is \(level.map(String.init) ?? "unknown"), not FULL")
            }
        }
        let check = try pool.read { db in try String.fetchOne(db, sql: "PRAGMA quick_check") }
        guard check == "ok" else {
            throw DatabaseError(resultCode: .SQLITE_CORRUPT, message: "integrity check: \(check ?? "no answer")")
        }
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE name (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
                CREATE TABLE reading (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    class INTEGER NOT NULL,
                    device INTEGER NOT NULL,
                    quantity INTEGER NOT NULL,
                    unit INTEGER NOT NULL,
                    source INTEGER NOT NULL,
                    value REAL NOT NULL,
                    raw TEXT NOT NULL,
                    meter_time INTEGER,
                    received INTEGER NOT NULL,
                    synced INTEGER NOT NULL,
                    position INTEGER NOT NULL,
                    status INTEGER NOT NULL,
                    rssi INTEGER,
                    lease INTEGER
                );
                CREATE INDEX reading_by_class ON reading (class, id);
                CREATE TABLE batch (id INTEGER PRIMARY KEY AUTOINCREMENT);
                """)
        }
        try migrator.migrate(pool)
        return pool
    }

    /// Moves a damaged database (and its WAL and shared-memory files) aside; returns the new name.
    static func quarantine(_ path: String) -> String {
        let stamp = Int(Date().timeIntervalSince1970)
        let aside = "\(path).corrupt-\(stamp)"
        let fm = FileManager.default
        for suffix in ["", "-wal", "-shm"] where fm.fileExists(atPath: path + suffix) {
            try? fm.moveItem(atPath: path + suffix, toPath: aside + suffix)
        }
        return aside
    }

    // MARK: - ReadingBuffer

    public func append(_ batch: [Reading]) throws(BufferError) -> [Int64] {
        guard !batch.isEmpty else { return [] }
        do {
            return try insert(batch)
        } catch let e as DatabaseError where e.resultCode == .SQLITE_FULL {
            // Disk full: make room by the eviction policy, then try once more.
            let freed = evict(count: max(batch.count, 1000), reason: "the disk is full")
            if freed > 0, let ids = try? insert(batch) { return ids }
            stats.rejected += batch.count
            events.append(.rejected(count: batch.count, reason: "the disk is full even after evicting \(freed) readings"))
            throw BufferError(.diskFull, "the disk holding \(path) is full: \(batch.count) readings were not stored; free space or lower the buffer cap")
        } catch {
            throw BufferError(.storage, "cannot store \(batch.count) readings in \(path): \(error)")
        }
    }

    private func insert(_ batch: [Reading]) throws -> [Int64] {
        var ids: [Int64] = []
        ids.reserveCapacity(batch.count)
        var newNames: [(String, Int64)] = []
        try pool.write { db in
            let statement = try db.cachedStatement(sql: """
                INSERT INTO reading (class, device, quantity, unit, source, value, raw, meter_time, received, synced, position, status, rssi)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for r in batch {
                let device = try intern(r.device, db, &newNames)
                let quantity = try intern(r.quantity, db, &newNames)
                let unit = try intern(r.unit, db, &newNames)
                let source = try intern(r.source, db, &newNames)
                let position = Int64(r.storage) | Int64(r.tariff) << 32 | Int64(r.subunit) << 48
                try statement.execute(arguments: [
                    Int64(r.readingClass.rawValue), device, quantity, unit, source, r.value, r.raw, r.meterTime,
                    r.receivedAt, r.clockSynchronised ? 1 : 0, position, Int64(r.status), r.rssi.map { Int64($0) },
                ])
                ids.append(db.lastInsertedRowID)
            }
        }
        // Only after the commit: the cache must not know names of a rolled-back transaction.
        for (text, id) in newNames {
            names[text] = id
            namesByID[id] = text
        }
        storedCount += batch.count
        if storedCount > capacity {
            evict(count: storedCount - capacity, reason: "the buffer holds at most \(capacity) readings")
        }
        return ids
    }

    private func intern(_ text: String, _ db: Database, _ pending: inout [(String, Int64)]) throws -> Int64 {
        if let id = names[text] { return id }
        if let p = pending.first(where: { $0.0 == text }) { return p.1 }
        try db.execute(sql: "INSERT OR IGNORE INTO name (text) VALUES (?)", arguments: [text])
        let id = try Int64.fetchOne(db, sql: "SELECT id FROM name WHERE text = ?", arguments: [text])!
        pending.append((text, id))
        return id
    }

    /// Deletes up to `count` readings by the eviction policy; returns how many went.
    @discardableResult
    private func evict(count: Int, reason: String) -> Int {
        var removed = 0
        var highest = ReadingClass.routine
        do {
            try pool.write { db in
                for c in ReadingClass.allCases where removed < count {
                    try db.execute(sql: """
                        DELETE FROM reading WHERE id IN
                            (SELECT id FROM reading WHERE class = ? ORDER BY id LIMIT ?)
                        """, arguments: [Int64(c.rawValue), count - removed])
                    let n = db.changesCount
                    if n > 0 { highest = c }
                    removed += n
                }
            }
        } catch {
            events.append(.rejected(count: 0, reason: "eviction failed: \(error)"))
            return removed
        }
        storedCount -= removed
        if removed > 0 {
            stats.evicted += removed
            events.append(.evicted(count: removed, oldestClass: highest, reason: reason))
        }
        return removed
    }

    public func takeBatch(maxReadings: Int) throws(BufferError) -> ReadingBatch? {
        do {
            let result: ReadingBatch? = try pool.write { db in
                var rows: [Row] = []
                for c in ReadingClass.allCases.reversed() where rows.count < maxReadings {
                    rows += try Row.fetchAll(db, sql: """
                        SELECT id, class, device, quantity, unit, source, value, raw, meter_time, received, synced, position, status, rssi
                        FROM reading WHERE class = ? AND lease IS NULL AND synced = 1 ORDER BY id LIMIT ?
                        """, arguments: [Int64(c.rawValue), maxReadings - rows.count])
                }
                guard !rows.isEmpty else { return nil }
                try db.execute(sql: "INSERT INTO batch DEFAULT VALUES")
                let batchID = db.lastInsertedRowID
                let statement = try db.cachedStatement(sql: "UPDATE reading SET lease = ? WHERE id = ?")
                var readings: [Reading] = []
                readings.reserveCapacity(rows.count)
                for row in rows {
                    let id: Int64 = row[0]
                    try statement.execute(arguments: [batchID, id])
                    readings.append(reading(from: row))
                }
                return ReadingBatch(id: batchID, readings: readings)
            }
            return result
        } catch {
            throw BufferError(.storage, "cannot lease readings from \(path): \(error)")
        }
    }

    func idOfName(_ text: String) -> Int64? { names[text] }

    func reading(from row: Row) -> Reading {
        let position: Int64 = row[11]
        let rssi: Int64? = row[13]
        let meterTime: Int64? = row[8]
        var r = Reading(
            device: namesByID[row[2]] ?? "?", quantity: namesByID[row[3]] ?? "?", value: row[6],
            unit: namesByID[row[4]] ?? "?", raw: row[7], meterTime: meterTime, receivedAt: row[9],
            clockSynchronised: (row[10] as Int64) != 0,
            storage: UInt32(truncatingIfNeeded: position), tariff: UInt16(truncatingIfNeeded: position >> 32),
            subunit: UInt16(truncatingIfNeeded: position >> 48), source: namesByID[row[5]] ?? "?",
            rssi: rssi.map { Int16(truncatingIfNeeded: $0) }, status: UInt16(truncatingIfNeeded: row[12] as Int64),
            readingClass: ReadingClass(rawValue: UInt8(truncatingIfNeeded: row[1] as Int64)) ?? .routine)
        r.id = row[0]
        return r
    }

    public func markDelivered(_ batchID: Int64) throws(BufferError) {
        let deleted: Int
        do {
            deleted = try pool.write { db in
                guard try Int64.fetchOne(db, sql: "SELECT id FROM batch WHERE id = ?", arguments: [batchID]) != nil else { return -1 }
                try db.execute(sql: "DELETE FROM reading WHERE lease = ?", arguments: [batchID])
                let n = db.changesCount
                try db.execute(sql: "DELETE FROM batch WHERE id = ?", arguments: [batchID])
                return n
            }
        } catch {
            throw BufferError(.storage, "cannot delete delivered batch \(batchID) from \(path): \(error)")
        }
        guard deleted >= 0 else {
            throw BufferError(.unknownBatch, "batch \(batchID) is not leased (already delivered, or released by a restart)")
        }
        storedCount -= deleted
        stats.delivered += deleted
    }

    public func release(_ batchID: Int64) throws(BufferError) {
        do {
            try pool.write { db in
                try db.execute(sql: "UPDATE reading SET lease = NULL WHERE lease = ?", arguments: [batchID])
                try db.execute(sql: "DELETE FROM batch WHERE id = ?", arguments: [batchID])
            }
        } catch {
            throw BufferError(.storage, "cannot release batch \(batchID) in \(path): \(error)")
        }
    }

    public func clockSynchronised(offsetMilliseconds: Int64) throws(BufferError) {
        do {
            try pool.write { db in
                try db.execute(sql: "UPDATE reading SET received = received + ?, synced = 1 WHERE synced = 0",
                               arguments: [offsetMilliseconds])
            }
        } catch {
            throw BufferError(.storage, "cannot correct reading times in \(path): \(error)")
        }
    }

    public func statistics() -> BufferStatistics {
        var s = stats
        do {
            try pool.read { db in
                s.pending = try Int.fetchOne(db, sql: "SELECT count(*) FROM reading WHERE lease IS NULL") ?? 0
                s.leased = try Int.fetchOne(db, sql: "SELECT count(*) FROM reading WHERE lease IS NOT NULL") ?? 0
                s.waitingForClock = try Int.fetchOne(db, sql: "SELECT count(*) FROM reading WHERE synced = 0") ?? 0
                s.oldestPendingReceivedAt = try Int64.fetchOne(db, sql: "SELECT min(received) FROM reading WHERE lease IS NULL AND synced = 1")
                let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
                let size = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
                s.bytes = pages * size
            }
        } catch {
            events.append(.rejected(count: 0, reason: "cannot read buffer statistics: \(error)"))
        }
        return s
    }

    public func drainEvents() -> [BufferEvent] {
        defer { events.removeAll() }
        return events
    }
}

extension SQLiteReadingBuffer {
    /// Caps the database file at `pages` pages (SQLite's max_page_count): SQLITE_FULL then behaves as a
    /// full disk. Used by the disk-full test and by operators who want a hard size limit.
    public func limitPages(_ pages: Int) throws(BufferError) {
        do {
            try pool.barrierWriteWithoutTransaction { db in
                _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = \(pages)")
            }
        } catch {
            throw BufferError(.storage, "cannot limit the size of \(path): \(error)")
        }
    }
}

extension SQLiteReadingBuffer {
    /// The newest stored reading of a device (by id), delivered or not yet. After a restart this is
    /// where a replay source resumes and what deduplication compares the next telegram with.
    public func newest(device: String) throws(BufferError) -> Reading? {
        guard let deviceID = idOfName(device) else { return nil }
        do {
            let row = try pool.read { db in
                try Row.fetchOne(db, sql: """
                    SELECT id, class, device, quantity, unit, source, value, raw, meter_time, received, synced, position, status, rssi
                    FROM reading WHERE device = ? ORDER BY id DESC LIMIT 1
                    """, arguments: [deviceID])
            }
            return row.map(reading(from:))
        } catch {
            throw BufferError(.storage, "cannot read the newest reading of \(device) from \(path): \(error)")
        }
    }

    /// Every stored reading's value for a device, in id order (audits and the crash test).
    public func values(device: String) throws(BufferError) -> [Double] {
        guard let deviceID = idOfName(device) else { return [] }
        do {
            return try pool.read { db in
                try Double.fetchAll(db, sql: "SELECT value FROM reading WHERE device = ? ORDER BY id", arguments: [deviceID])
            }
        } catch {
            throw BufferError(.storage, "cannot read values of \(device) from \(path): \(error)")
        }
    }
}
