import Drivers
import Foundation
import GRDB

/// How big the buffer may grow and what it keeps beside the database.
public struct BufferOptions: Sendable, Hashable {
    /// Readings kept at most; the oldest (by class) are evicted beyond.
    public var capacity: Int = 2_000_000
    /// Bytes of database pages in use at most (SQLite pages holding readings, not the file's size: freed
    /// pages are reused, the file does not shrink). Nil: only `capacity`.
    public var maxBytes: Int64?
    /// Space kept free on the filesystem for eviction and start-up on a full disk.
    public var headroomBytes = 4 << 20
    /// Ids reserved per write of the id mark file.
    public var idBlock: Int64 = 100_000

    public init(capacity: Int = 2_000_000, maxBytes: Int64? = nil) {
        self.capacity = capacity
        self.maxBytes = maxBytes
    }
}

/// The durable store-and-forward buffer: SQLite in WAL mode through GRDB.
///
/// - `append` commits one transaction per call; only then are the readings accepted.
/// - Ids come from an AUTOINCREMENT key and never repeat for a gateway, even across a quarantined or
///   deleted database: a high-water mark outside the database (`ReadingIDMark`) is reserved before use.
/// - Leases are in the table, and cleared at start by the owning process, so readings leased when the
///   process died are handed out again (at least once; the portal deduplicates by id). A second process
///   (`gatewayd reading add` while the daemon runs) appends without touching leases.
/// - Over the cap (readings or bytes), or when the disk is full, the eviction policy deletes the oldest
///   readings of the lowest class and reports it as an event. Headroom kept on the filesystem lets
///   eviction and start-up work on a full disk.
/// - Only a database that is damaged (not a database, failed integrity check) is moved aside and a
///   fresh one started. Any other open error (permissions, read-only, busy) fails loudly with the fix.
///
/// The actor runs on its own thread: SQLite calls block (fsync on commit), and must not stall the
/// shared concurrency pool.
public actor SQLiteReadingBuffer: ReadingBuffer {
    public nonisolated let path: String
    public let capacity: Int
    public let options: BufferOptions
    private let executor: ThreadExecutor
    private var pool: DatabasePool
    private var names: [String: Int64] = [:]
    private var namesByID: [Int64: String] = [:]
    private var events: [BufferEvent] = []
    private var stats = BufferStatistics()
    /// Rows in the reading table, kept in step with every insert and delete: counting 2 million rows on
    /// each append would make ingest slower the fuller the buffer gets. Refreshed from the database with
    /// the statistics, as another process may have appended.
    private var storedCount = 0
    private var idMark: ReadingIDMark
    private let databaseID: String
    private let headroom: BufferHeadroom
    /// Held while this process owns the buffer; nil in a second process.
    private let owner: BufferOwnerLock?
    /// Appends since the size was last checked against `maxBytes`.
    private var appendsSinceSizeCheck = 0

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// True when this process owns the buffer (no other process had it open as owner).
    public var isOwner: Bool { owner != nil }

    public init(path: String, capacity: Int = 2_000_000) throws(BufferError) {
        try self.init(path: path, options: BufferOptions(capacity: capacity))
    }

    /// Opens (or creates) the buffer at `path`. A damaged database is quarantined; any other problem
    /// throws, saying what to fix.
    public init(path: String, options: BufferOptions) throws(BufferError) {
        self.path = path
        self.options = options
        capacity = options.capacity
        executor = ThreadExecutor(name: "reading buffer")
        owner = BufferOwnerLock(path: path + ".owner")
        headroom = BufferHeadroom(path: path + ".headroom", bytes: owner == nil ? 0 : options.headroomBytes)
        idMark = ReadingIDMark(path: path + ".ids", block: options.idBlock)
        var startupEvents: [BufferEvent] = []
        do {
            pool = try Self.openReleasingHeadroom(path, headroom)
        } catch let error where Self.isDamage(error) {
            let aside = Self.quarantine(path)
            startupEvents.append(.quarantined(path: aside, reason: "\(error)"))
            do { pool = try Self.openReleasingHeadroom(path, headroom) } catch {
                throw BufferError(.storage, Self.advice(path, error))
            }
        } catch {
            throw BufferError(.storage, Self.advice(path, error))
        }
        events = startupEvents
        do {
            let isOwner = owner != nil
            let mark = idMark
            databaseID = try pool.write { db in
                if isOwner {
                    // Readings leased to an upload that never finished go out again.
                    try db.execute(sql: "UPDATE reading SET lease = NULL WHERE lease IS NOT NULL")
                }
                let id = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'database_id'") ?? ""
                // A database the id mark was not written for continues above every id handed out before.
                if let floor = mark.floor(forDatabase: id) {
                    let seq = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'reading'") ?? 0
                    if seq < floor {
                        try db.execute(sql: "DELETE FROM sqlite_sequence WHERE name = 'reading'")
                        try db.execute(sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('reading', ?)", arguments: [floor])
                    }
                }
                return id
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
            throw BufferError(.storage, Self.advice(path, error))
        }
        headroom.restore()
    }

    deinit { executor.shutdown() }

    /// Damage, as opposed to a database that cannot be reached: only damage is a reason to move the
    /// file aside (and with it every pending reading).
    static func isDamage(_ error: any Error) -> Bool {
        guard let e = error as? DatabaseError else { return false }
        return e.resultCode == .SQLITE_CORRUPT || e.resultCode == .SQLITE_NOTADB
    }

    static func isDiskFull(_ error: any Error) -> Bool {
        if let e = error as? DatabaseError { return e.resultCode == .SQLITE_FULL }
        if let e = error as? ReadingIDMark.MarkError { return e.isNoSpace }
        return false
    }

    /// What went wrong and what to do, for an error that is not damage.
    static func advice(_ path: String, _ error: any Error) -> String {
        let dir = (path as NSString).deletingLastPathComponent
        let code = (error as? DatabaseError)?.resultCode
        switch code {
        case .SQLITE_READONLY?, .SQLITE_PERM?, .SQLITE_CANTOPEN?, .SQLITE_AUTH?:
            return """
                cannot open the reading buffer \(path) for writing (\(error)). Pending readings are kept in \
                it; nothing was moved. Check that \(dir) and the buffer files belong to the gatewayd user \
                (`sudo chown -R gatewayd: \(dir)`), that \(path) is a file, and that the filesystem is \
                not read-only (`findmnt -T \(dir)`)
                """
        case .SQLITE_BUSY?, .SQLITE_LOCKED?:
            return """
                the reading buffer \(path) is locked by another process (\(error)). Is a second gatewayd \
                running? `fuser -v \(path)` shows who holds it
                """
        case .SQLITE_FULL?:
            return "the disk holding \(path) is full (\(error)); free space (`df -h \(dir)`) and start again"
        default:
            return "cannot open the reading buffer \(path): \(error). Pending readings are kept in it; nothing was moved"
        }
    }

    /// Opens; on a full disk gives back the headroom and tries once more.
    private static func openReleasingHeadroom(_ path: String, _ headroom: BufferHeadroom) throws -> DatabasePool {
        do {
            return try open(path)
        } catch let error where isDiskFull(error) || isOutOfSpaceIO(error) {
            guard headroom.release() else { throw error }
            return try open(path)
        }
    }

    /// SQLite reports a failed -shm or -wal creation on a full disk as an I/O error or CANTOPEN.
    private static func isOutOfSpaceIO(_ error: any Error) -> Bool {
        guard let e = error as? DatabaseError else { return false }
        return e.resultCode == .SQLITE_IOERR || e.resultCode == .SQLITE_CANTOPEN
    }

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
            // Freed pages can go back to the filesystem (`incremental_vacuum` on disk pressure). Takes
            // effect only on a new, empty database (before the migrations); older ones reuse free pages.
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
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
        // Which database this is, for the id mark: a replaced database continues above the old ids.
        migrator.registerMigration("v2-identity") { db in
            try db.execute(sql: "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('database_id', ?)",
                           arguments: [UUID().uuidString.replacingOccurrences(of: "-", with: "")])
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
        } catch let error where Self.isDiskFull(error) {
            // Disk full: give back the headroom so the WAL can be checkpointed and eviction (which
            // writes to the WAL too) can run, make room by the eviction policy, hand the freed pages back
            // to the filesystem, then try once more.
            headroom.release()
            let freed = relieveDiskPressure(count: max(batch.count, 1000), reason: "the disk is full")
            if freed > 0, let ids = try? insert(batch) {
                headroom.restore()
                return ids
            }
            stats.rejected += batch.count
            events.append(.rejected(count: batch.count, reason: "the disk is full even after evicting \(freed) readings"))
            throw BufferError(.diskFull, "the disk holding \(path) is full: \(batch.count) readings were not stored; free space or lower the buffer cap")
        } catch {
            throw BufferError(.storage, "cannot store \(batch.count) readings in \(path): \(error)")
        }
    }

    /// Evicts, returns the freed pages to the filesystem (incremental vacuum) and truncates the WAL, so
    /// the space is free on disk again and the headroom can be allocated anew.
    @discardableResult
    private func relieveDiskPressure(count: Int, reason: String) -> Int {
        // First the WAL into the database, so the eviction's own writes find WAL space.
        checkpoint()
        let freed = evict(count: count, reason: reason)
        _ = try? pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA incremental_vacuum") }
        checkpoint()
        return freed
    }

    /// Copies the WAL into the database and truncates it to nothing.
    private func checkpoint() {
        _ = try? pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
    }

    /// Free bytes on the buffer's filesystem for this process.
    private func freeDiskBytes() -> Int64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        let (bytes, overflow) = Int64(s.f_bavail).multipliedReportingOverflow(by: Int64(s.f_frsize))
        return overflow ? Int64.max : bytes
    }

    /// Keeps the headroom free beside the headroom file: when the filesystem runs low (other files grow
    /// too), the buffer evicts and gives pages back before SQLite ever sees a full disk.
    private func keepDiskHeadroom() {
        guard owner != nil, options.headroomBytes > 0, let free = freeDiskBytes() else { return }
        if free < Int64(options.headroomBytes) {
            let count = max(1000, storedCount / 20)
            relieveDiskPressure(count: min(count, storedCount), reason: "the disk is nearly full (\(free) bytes free)")
        }
        headroom.restore()
    }

    private func insert(_ batch: [Reading]) throws -> [Int64] {
        var ids: [Int64] = []
        ids.reserveCapacity(batch.count)
        var newNames: [(String, Int64)] = []
        var mark = idMark
        let databaseID = databaseID
        try pool.write { db in
            // The ids this transaction will use must be covered by the mark on disk before it commits.
            let seq = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'reading'") ?? 0
            try mark.cover(seq + Int64(batch.count), database: databaseID)
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
        idMark = mark
        // Only after the commit: the cache must not know names of a rolled-back transaction.
        for (text, id) in newNames {
            names[text] = id
            namesByID[id] = text
        }
        storedCount += batch.count
        if storedCount > capacity {
            evict(count: storedCount - capacity, reason: "the buffer holds at most \(capacity) readings")
        }
        enforceMaxBytes()
        return ids
    }

    /// Keeps the pages in use under `maxBytes`: evicts the share of readings by which it is over (and
    /// 1% more, so it does not run on every append). Checked every 16 appends; a page count is cheap.
    private func enforceMaxBytes() {
        appendsSinceSizeCheck += 1
        guard appendsSinceSizeCheck >= 16 else { return }
        appendsSinceSizeCheck = 0
        keepDiskHeadroom()
        guard let maxBytes = options.maxBytes else { return }
        guard let used = try? usedBytes(), used > maxBytes, storedCount > 0 else { return }
        let share = Double(used - maxBytes) / Double(used)
        let count = min(storedCount, Int((Double(storedCount) * share).rounded(.up)) + storedCount / 100 + 1)
        evict(count: count, reason: "the buffer may use at most \(maxBytes) bytes")
    }

    /// Bytes of pages holding data (the file's pages less the free list).
    func usedBytes() throws -> Int64 {
        try pool.read { db in
            let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let free = try Int64.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
            let size = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            return (pages - free) * size
        }
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
                    readings.append(reading(from: row, db))
                }
                return ReadingBatch(id: batchID, readings: readings)
            }
            return result
        } catch {
            throw BufferError(.storage, "cannot lease readings from \(path): \(error)")
        }
    }

    func idOfName(_ text: String) -> Int64? { names[text] }

    /// A name by id: from the cache, or from the table when another process (reading add) added it.
    private func name(_ id: Int64, _ db: Database) -> String {
        if let text = namesByID[id] { return text }
        guard let text = try? String.fetchOne(db, sql: "SELECT text FROM name WHERE id = ?", arguments: [id]) else { return "?" }
        namesByID[id] = text
        names[text] = id
        return text
    }

    func reading(from row: Row, _ db: Database) -> Reading {
        var r = reading(from: row)
        r.device = name(row[2], db)
        r.quantity = name(row[3], db)
        r.unit = name(row[4], db)
        r.source = name(row[5], db)
        return r
    }

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
                if s.waitingForClock > 0 {
                    s.newestWaitingReceivedAt = try Int64.fetchOne(db, sql: "SELECT max(received) FROM reading WHERE synced = 0")
                }
                s.oldestPendingReceivedAt = try Int64.fetchOne(db, sql: "SELECT min(received) FROM reading WHERE lease IS NULL AND synced = 1")
                let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
                let size = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
                s.bytes = pages * size
            }
        } catch {
            events.append(.rejected(count: 0, reason: "cannot read buffer statistics: \(error)"))
            return s
        }
        // Another process may have appended (reading add): the count the caps work from follows.
        storedCount = s.pending + s.leased
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
