import Foundation
import Glibc
import Testing
@testable import Gateway

/// A real small filesystem for the test: a tmpfs mounted on a scratch folder. Mounting needs root (or
/// CAP_SYS_ADMIN); where that is missing the test skips, except under CI=true where it fails.
final class ScratchFilesystem {
    let directory: String

    init?(kibibytes: Int) {
        let dir = NSTemporaryDirectory() + "gatewayd-tmpfs-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard Self.run(["mount", "-t", "tmpfs", "-o", "size=\(kibibytes)k,mode=0755", "tmpfs", dir]) else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                Issue.record("cannot mount a tmpfs at \(dir) (needs root or CAP_SYS_ADMIN); CI must run these tests")
            }
            try? FileManager.default.removeItem(atPath: dir)
            return nil
        }
        directory = dir
    }

    func remount(readOnly: Bool) -> Bool {
        Self.run(["mount", "-o", readOnly ? "remount,ro" : "remount,rw", directory])
    }

    /// Takes every free byte of the filesystem with a filler file; returns its path.
    func fill(name: String = "filler") -> String {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x5A, count: 4096)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        var small = [UInt8](repeating: 0x5A, count: 1)
        while write(fd, &small, 1) > 0 {}
        return path
    }

    var freeBytes: Int64 {
        var s = statvfs()
        guard statvfs(directory, &s) == 0 else { return 0 }
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    deinit {
        _ = Self.run(["umount", "-l", directory])
        try? FileManager.default.removeItem(atPath: directory)
    }

    @discardableResult
    static func run(_ arguments: [String]) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}

@Suite("reading buffer hardening", .serialized)
struct BufferHardeningTests {
    static func tryAppend(_ buffer: SQLiteReadingBuffer, _ readings: [Reading]) async -> Result<[Int64], BufferError> {
        do { return .success(try await buffer.append(readings)) } catch { return .failure(error) }
    }

    static func openError(_ path: String) -> BufferError? {
        do {
            _ = try SQLiteReadingBuffer(path: path)
            return nil
        } catch {
            return error
        }
    }

    static func asideFiles(_ path: String) -> [String] {
        let dir = (path as NSString).deletingLastPathComponent
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".corrupt-") }
    }

    // MARK: Item 6: quarantine only on damage

    @Test("a buffer path that cannot be opened is not moved aside: a clear error instead")
    func directoryInTheWay() throws {
        let path = TempDir.file("buffer.sqlite")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let error = try #require(Self.openError(path))
        #expect(error.code == .storage)
        #expect(error.message.contains("chown") || error.message.contains("is a file"))
        #expect(Self.asideFiles(path).isEmpty, "a directory was quarantined as a corrupt database")
        var isDir: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue)
    }

    @Test("a read-only buffer keeps its pending readings in place and says how to fix it")
    func readOnlyFilesystem() async throws {
        guard let fs = ScratchFilesystem(kibibytes: 8192) else { return }
        let path = fs.directory + "/buffer.sqlite"
        do {
            let buffer = try SQLiteReadingBuffer(path: path)
            _ = try await buffer.append((0..<50).map { reading($0) })
        }
        #expect(fs.remount(readOnly: true))
        let error = try #require(Self.openError(path), "a read-only buffer opened as if writable")
        #expect(error.code == .storage)
        #expect(error.message.contains("read-only") || error.message.contains("chown"))
        #expect(Self.asideFiles(path).isEmpty, "a read-only database was quarantined")
        #expect(fs.remount(readOnly: false))
        let buffer = try SQLiteReadingBuffer(path: path)
        #expect(await buffer.statistics().pending == 50)
        #expect(await buffer.drainEvents().isEmpty)
    }

    @Test("a file that is not a database is quarantined, with an event")
    func notADatabase() async throws {
        let path = TempDir.file("buffer.sqlite")
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: path))
        let buffer = try SQLiteReadingBuffer(path: path)
        let events = await buffer.drainEvents()
        #expect(events.contains { if case .quarantined = $0 { return true } else { return false } })
        #expect(Self.asideFiles(path).count == 1)
    }

    // MARK: Item 7: ids never repeat

    @Test("ids continue above every id handed out, after a deleted buffer and after a quarantine")
    func idsNeverRepeat() async throws {
        let path = TempDir.file("buffer.sqlite")
        var last: Int64 = 0
        do {
            let buffer = try SQLiteReadingBuffer(path: path)
            let ids = try await buffer.append((0..<5).map { reading($0) })
            #expect(ids == [1, 2, 3, 4, 5], "a new gateway starts at 1")
            last = ids.last!
        }
        // Restart on the same database: contiguous.
        do {
            let buffer = try SQLiteReadingBuffer(path: path)
            let ids = try await buffer.append([reading(5)])
            #expect(ids == [last + 1])
            last = ids[0]
        }
        // The database deleted (an operator "cleaning up"): the next ids are above all earlier ones.
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        do {
            let buffer = try SQLiteReadingBuffer(path: path)
            let ids = try await buffer.append([reading(6), reading(7)])
            #expect(ids[0] > last, "ids restarted after the buffer was deleted: \(ids) after \(last)")
            last = ids.last!
        }
        // Damaged: quarantined, fresh database, still above.
        do {
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
            try handle.write(contentsOf: Data(repeating: 0xA5, count: 4096))
            try handle.close()
            unlink(path + "-wal")
            unlink(path + "-shm")
        }
        let buffer = try SQLiteReadingBuffer(path: path)
        #expect(await buffer.drainEvents().contains { if case .quarantined = $0 { return true } else { return false } })
        let ids = try await buffer.append([reading(8)])
        #expect(ids[0] > last, "ids restarted after a quarantine: \(ids) after \(last)")
    }

    @Test("the id mark survives a torn write of one of its slots")
    func tornMark() throws {
        let path = TempDir.file("buffer.sqlite.ids")
        var mark = ReadingIDMark(path: path, block: 10)
        try mark.cover(5, database: "A")
        try mark.cover(25, database: "A")
        let good = try #require(ReadingIDMark.read(path))
        #expect(good.reserved >= 25)
        // Tear the newer slot.
        let fd = open(path, O_WRONLY)
        let offset = off_t(Int(good.generation % 2) * ReadingIDMark.slotSize)
        #expect(pwrite(fd, "XX", 2, offset + 3) == 2)
        close(fd)
        let fallback = try #require(ReadingIDMark.read(path))
        #expect(fallback.generation == good.generation - 1)
        #expect(fallback.reserved >= 5)
    }

    // MARK: Item 9: a second process

    @Test("a second process appending (reading add) neither clears the daemon's leases nor shows as device \"?\"")
    func secondProcess() async throws {
        let path = TempDir.file("buffer.sqlite")
        let daemon = try SQLiteReadingBuffer(path: path)
        #expect(await daemon.isOwner)
        _ = try await daemon.append((0..<3).map { reading($0) })
        let leased = try #require(try await daemon.takeBatch(maxReadings: 10))
        #expect(leased.readings.count == 3)

        let manual = try SQLiteReadingBuffer(path: path)
        #expect(await manual.isOwner == false)
        _ = try await manual.append([reading(7, device: "manual:heat-meter-flat-12", cls: .setDay)])

        #expect(await daemon.statistics().leased == 3, "the second process cleared the daemon's leases")
        let next = try #require(try await daemon.takeBatch(maxReadings: 10))
        #expect(next.readings.map(\.device) == ["manual:heat-meter-flat-12"])
        try await daemon.markDelivered(leased.id)
        try await daemon.markDelivered(next.id)
        #expect(await daemon.statistics().pending == 0)
    }

    // MARK: Item 8: a full disk

    @Test("on a full filesystem eviction still works, appends go on, and the buffer opens again")
    func fullDisk() async throws {
        guard let fs = ScratchFilesystem(kibibytes: 6144) else { return }
        let path = fs.directory + "/buffer.sqlite"
        var options = BufferOptions(capacity: 10_000_000)
        options.headroomBytes = 512 << 10
        var accepted = 0, refused = 0
        var lastOutcomes: [Bool] = []
        do {
            let buffer = try SQLiteReadingBuffer(path: path, options: options)
            // Something else on the disk takes most of it (logs, a core dump): 1.5 MiB are left.
            let fd = open(fs.directory + "/other-files", O_WRONLY | O_CREAT, 0o600)
            #expect(posix_fallocate(fd, 0, off_t(max(0, fs.freeBytes - (1536 << 10)))) == 0)
            close(fd)
            for round in 0..<300 {
                switch await Self.tryAppend(buffer, (0..<100).map { reading(round * 100 + $0) }) {
                case .success: accepted += 100; lastOutcomes.append(true)
                case .failure(let e):
                    #expect(e.code == .diskFull)
                    refused += 1
                    lastOutcomes.append(false)
                }
            }
            #expect(await buffer.statistics().evicted > 0, "the disk never filled up: the test proves nothing")
            #expect(lastOutcomes.suffix(100).allSatisfy { $0 }, "appends kept failing on a full disk (\(refused) refused)")
        }
        // Every byte taken, then a restart (a power cut on a full card).
        _ = fs.fill(name: "last-bytes")
        let reopened = try SQLiteReadingBuffer(path: path, options: options)
        let after = await Self.tryAppend(reopened, (0..<100).map { reading(90_000 + $0) })
        if case .failure(let e) = after { Issue.record("append after restart on a full disk failed: \(e)") }
        let batch = try #require(try await reopened.takeBatch(maxReadings: 10))
        #expect(!batch.readings.isEmpty)
        _ = accepted
    }

    // MARK: Item 10: max_bytes and the clock

    @Test("max_bytes bounds the pages in use; the newest readings are kept")
    func maxBytes() async throws {
        let path = TempDir.file("buffer.sqlite")
        let cap: Int64 = 1 << 20
        let buffer = try SQLiteReadingBuffer(path: path, options: BufferOptions(capacity: 10_000_000, maxBytes: cap))
        var last: Int64 = 0
        for round in 0..<200 {
            last = try await buffer.append((0..<100).map { reading(round * 100 + $0) }).last!
        }
        let used = try await buffer.usedBytes()
        #expect(used <= cap + cap / 10, "pages in use \(used) over the cap \(cap)")
        #expect(await buffer.statistics().evicted > 0)
        let events = await buffer.drainEvents()
        #expect(events.contains { if case .evicted(_, _, let why) = $0 { return why.contains("bytes") } else { return false } })
        #expect(try await buffer.newest(device: "mbus:KAM:06855817")?.id == last)
    }

    @Test("readings taken before the clock is synchronised are never leased until it is")
    func heldForClock() async throws {
        let buffer = try SQLiteReadingBuffer(path: TempDir.file("buffer.sqlite"))
        var early = reading(1, synced: false)
        early.receivedAt = 5_000  // 1970: a board without RTC
        _ = try await buffer.append([early])
        #expect(try await buffer.takeBatch(maxReadings: 10) == nil)
        #expect(await buffer.statistics().waitingForClock == 1)
        #expect(await buffer.statistics().newestWaitingReceivedAt == 5_000)
        try await buffer.clockSynchronised(offsetMilliseconds: 1_790_000_000_000)
        let batch = try #require(try await buffer.takeBatch(maxReadings: 10))
        #expect(batch.readings.map(\.receivedAt) == [1_790_000_005_000])
    }
}
