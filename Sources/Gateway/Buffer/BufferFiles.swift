import Foundation

// Files the reading buffer keeps beside its database (`buffer.sqlite`):
//
// - `buffer.sqlite.ids`: the reading-id high-water mark. Ids must never repeat for a gateway, also
//   when the database is quarantined or deleted; the portal deduplicates by id.
// - `buffer.sqlite.headroom`: preallocated space, given back when the disk is full so that eviction
//   (which itself writes to the WAL) and start-up can still run.
// - `buffer.sqlite.owner`: an flock held by the process that owns the buffer (the daemon). A second
//   process (`gatewayd reading add`) may append, but leaves leases and headroom alone.

/// The id high-water mark, kept outside the database.
///
/// Every id the buffer hands out is at most `reserved`, and `reserved` is on disk (fsynced) before the
/// transaction that uses an id commits. A database that is not the one the mark was written for (a
/// fresh one after a quarantine or a deleted file) continues above `reserved`. Reservations are made in
/// blocks, so the file is written once per `block` ids, not per reading; ids stay contiguous within one
/// database and jump at most by a block when the database is replaced.
///
/// The file holds two 64-byte slots written alternately, each with a generation and a checksum: a write
/// torn by a power cut leaves the other slot intact.
struct ReadingIDMark {
    struct Slot: Equatable {
        var generation: UInt64
        var reserved: Int64
        var database: String
    }

    enum MarkError: Error, CustomStringConvertible {
        case io(String, Int32)
        var description: String {
            switch self {
            case .io(let what, let code): "\(what): \(String(cString: strerror(code)))"
            }
        }
        var isNoSpace: Bool {
            if case .io(_, let code) = self { return code == ENOSPC || code == EDQUOT }
            return false
        }
    }

    let path: String
    let block: Int64
    private(set) var current: Slot?

    init(path: String, block: Int64) {
        self.path = path
        self.block = max(1, block)
        current = Self.read(path)
    }

    static let slotSize = 64

    /// The newest intact slot on disk, or nil (no file, or both slots damaged).
    static func read(_ path: String) -> Slot? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let bytes = [UInt8](data)
        var best: Slot?
        for index in 0..<2 {
            let start = index * slotSize
            guard bytes.count >= start + slotSize else { continue }
            if let slot = parse(Array(bytes[start..<start + slotSize])), slot.generation >= (best?.generation ?? 0) {
                best = slot
            }
        }
        return best
    }

    /// "G R DB CHECK" padded with spaces; CHECK is FNV-1a over "G R DB".
    static func encode(_ slot: Slot) -> [UInt8] {
        let body = "\(slot.generation) \(slot.reserved) \(slot.database)"
        var line = Array("\(body) \(String(checksum(body), radix: 16))".utf8)
        line = Array(line.prefix(slotSize - 1))
        line += [UInt8](repeating: 0x20, count: slotSize - 1 - line.count)
        line.append(0x0A)
        return line
    }

    static func parse(_ bytes: [UInt8]) -> Slot? {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = text.split(separator: " ")
        guard parts.count == 4, let g = UInt64(parts[0]), let r = Int64(parts[1]), r >= 0,
              let check = UInt64(parts[3], radix: 16) else { return nil }
        let body = "\(parts[0]) \(parts[1]) \(parts[2])"
        guard checksum(body) == check else { return nil }
        return Slot(generation: g, reserved: r, database: String(parts[2]))
    }

    static func checksum(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    /// The first id a database that is not `database` must continue after: the reservation, when the
    /// mark was written for another database.
    func floor(forDatabase database: String) -> Int64? {
        guard let current, current.database != database else { return nil }
        return current.reserved
    }

    /// Makes sure ids up to `highest` are covered by a reservation on disk for `database`.
    mutating func cover(_ highest: Int64, database: String) throws(MarkError) {
        if let c = current, c.database == database, highest <= c.reserved { return }
        // Another process (reading add) may have moved the mark on: never write a smaller one.
        let onDisk = Self.read(path)
        let base = max(current?.reserved ?? 0, onDisk?.reserved ?? 0)
        let generation = max(current?.generation ?? 0, onDisk?.generation ?? 0) + 1
        if let d = onDisk, d.database == database, highest <= d.reserved {
            current = d
            return
        }
        let next = Slot(generation: generation, reserved: max(base, highest) + block, database: database)
        try write(next)
        current = next
    }

    private func write(_ slot: Slot) throws(MarkError) {
        let existed = access(path, F_OK) == 0
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw .io("cannot open \(path)", errno) }
        defer { close(fd) }
        if !existed {
            // Both slots, so the file never grows later (a full disk must not stop a reservation).
            let empty = [UInt8](repeating: 0x20, count: Self.slotSize * 2)
            guard pwriteAll(fd, empty, at: 0) else { throw .io("cannot write \(path)", errno) }
        }
        let offset = off_t(Int(slot.generation % 2) * Self.slotSize)
        guard pwriteAll(fd, Self.encode(slot), at: offset) else { throw .io("cannot write \(path)", errno) }
        guard fsync(fd) == 0 else { throw .io("cannot fsync \(path)", errno) }
        if !existed { fsyncDirectory(of: path) }
    }
}

/// Space set aside on the buffer's filesystem for the moment it fills up.
struct BufferHeadroom {
    let path: String
    let bytes: Int

    /// Allocates the headroom file (up to `bytes`) when the filesystem has room; true when it is whole.
    @discardableResult
    func restore() -> Bool {
        guard bytes > 0 else { return true }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, Int(st.st_blocks) * 512 >= bytes { return true }
        guard posix_fallocate(fd, 0, off_t(bytes)) == 0 else {
            // Not whole: give back what was taken, so the buffer's own files get it.
            _ = ftruncate(fd, 0)
            return false
        }
        _ = fsync(fd)
        return true
    }

    /// Gives the space back to the filesystem; true when there was some.
    @discardableResult
    func release() -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, st.st_blocks > 0 else { return false }
        return unlink(path) == 0
    }
}

/// The flock that makes one process the buffer's owner.
final class BufferOwnerLock: @unchecked Sendable {
    private let fd: Int32

    /// Nil when another process holds it (the daemon is running) or the lock file cannot be made.
    init?(path: String) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
    }

    deinit {
        _ = flock(fd, LOCK_UN)
        close(fd)
    }
}

func pwriteAll(_ fd: Int32, _ bytes: [UInt8], at offset: off_t) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = bytes[done...].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, offset + off_t(done)) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        done += n
    }
    return true
}

func fsyncDirectory(of path: String) {
    let dir = (path as NSString).deletingLastPathComponent
    let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd >= 0 {
        _ = fsync(fd)
        close(fd)
    }
}
