import Foundation
import Testing
@testable import Gateway

/// One suite, run against the in-memory twin and the SQLite buffer alike.
enum BufferKind: String, CaseIterable, CustomTestStringConvertible {
    case memory, sqlite
    var testDescription: String { rawValue }

    func make(capacity: Int = 1000, path: String? = nil) throws -> any ReadingBuffer {
        switch self {
        case .memory: return MemoryReadingBuffer(capacity: capacity)
        case .sqlite: return try SQLiteReadingBuffer(path: path ?? TempDir.file("buffer.sqlite"), capacity: capacity)
        }
    }
}

enum TempDir {
    static func file(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "gatewayd-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/" + name
    }
}

func reading(_ n: Int, device: String = "mbus:KAM:06855817", cls: ReadingClass = .routine, synced: Bool = true) -> Reading {
    Reading(device: device, quantity: "Energy", value: Double(n) * 1000, unit: "Wh", raw: "\(n) kWh",
            meterTime: 1_790_000_000 + Int64(n), receivedAt: 1_790_000_000_000 + Int64(n), clockSynchronised: synced,
            storage: UInt32(n % 3), tariff: UInt16(n % 2), subunit: 0, source: "mbus:/dev/ttyUSB0", rssi: -70,
            status: 0, readingClass: cls)
}

@Suite("reading buffer")
struct ReadingBufferTests {
    @Test("ids are monotonic and never reused; readings come back as stored", arguments: BufferKind.allCases)
    func idsAndRoundTrip(kind: BufferKind) async throws {
        let buffer = try kind.make()
        let first = try await buffer.append((0..<5).map { reading($0) })
        #expect(first == first.sorted())
        let batch = try #require(try await buffer.takeBatch(maxReadings: 100))
        #expect(batch.readings.map(\.id!) == first)
        var expected = reading(3)
        expected.id = first[3]
        #expect(batch.readings[3] == expected)
        try await buffer.markDelivered(batch.id)
        let second = try await buffer.append([reading(9)])
        #expect(second[0] > first.last!)
    }

    @Test("a lease hides readings until released; delivery deletes them", arguments: BufferKind.allCases)
    func leases(kind: BufferKind) async throws {
        let buffer = try kind.make()
        _ = try await buffer.append((0..<10).map { reading($0) })
        let a = try #require(try await buffer.takeBatch(maxReadings: 4))
        let b = try #require(try await buffer.takeBatch(maxReadings: 100))
        #expect(a.readings.count == 4 && b.readings.count == 6)
        #expect(try await buffer.takeBatch(maxReadings: 100) == nil)
        try await buffer.release(a.id)
        let again = try #require(try await buffer.takeBatch(maxReadings: 100))
        #expect(again.readings.map(\.id) == a.readings.map(\.id))
        try await buffer.markDelivered(b.id)
        try await buffer.markDelivered(again.id)
        #expect(await buffer.statistics().pending == 0)
        await #expect { try await buffer.markDelivered(b.id) } throws: { ($0 as? BufferError)?.code == .unknownBatch }
    }

    @Test("alarms go out first, then set-day values, then routine readings", arguments: BufferKind.allCases)
    func priority(kind: BufferKind) async throws {
        let buffer = try kind.make()
        _ = try await buffer.append([reading(1), reading(2, cls: .setDay), reading(3, cls: .alarm), reading(4)])
        let batch = try #require(try await buffer.takeBatch(maxReadings: 10))
        #expect(batch.readings.map(\.readingClass) == [.alarm, .setDay, .routine, .routine])
    }

    @Test("over the cap, the oldest routine readings go first, alarms last, and it is reported", arguments: BufferKind.allCases)
    func eviction(kind: BufferKind) async throws {
        let buffer = try kind.make(capacity: 5)
        _ = try await buffer.append([reading(1, cls: .alarm), reading(2, cls: .setDay), reading(3), reading(4), reading(5)])
        _ = try await buffer.append([reading(6), reading(7, cls: .setDay)])
        let kept = try #require(try await buffer.takeBatch(maxReadings: 10)).readings.map(\.value)
        // Two over the cap: routine 3 and 4 (the oldest routine) went.
        #expect(Set(kept) == Set([1000, 2000, 5000, 6000, 7000]))
        let events = await buffer.drainEvents()
        #expect(events.contains { if case .evicted(2, .routine, _) = $0 { return true } else { return false } })
        #expect(await buffer.statistics().evicted == 2)
    }

    @Test("readings taken before the clock was set wait, then go out with corrected times", arguments: BufferKind.allCases)
    func clock(kind: BufferKind) async throws {
        let buffer = try kind.make()
        var early = reading(1, synced: false)
        early.receivedAt = 5_000  // 1970
        _ = try await buffer.append([early, reading(2)])
        let first = try #require(try await buffer.takeBatch(maxReadings: 10))
        #expect(first.readings.map(\.value) == [2000])
        #expect(await buffer.statistics().waitingForClock == 1)
        try await buffer.clockSynchronised(offsetMilliseconds: 1_790_000_000_000)
        let second = try #require(try await buffer.takeBatch(maxReadings: 10))
        #expect(second.readings.first?.receivedAt == 1_790_000_005_000)
        #expect(second.readings.first?.clockSynchronised == true)
    }
}

@Suite("SQLite reading buffer on disk")
struct SQLiteBufferDiskTests {
    @Test("readings survive a restart, and leases are handed out again")
    func restart() async throws {
        let path = TempDir.file("restart.sqlite")
        var ids: [Int64] = []
        do {
            let buffer = try SQLiteReadingBuffer(path: path)
            ids = try await buffer.append((0..<20).map { reading($0) })
            _ = try await buffer.takeBatch(maxReadings: 5)  // leased, never delivered
        }
        let reopened = try SQLiteReadingBuffer(path: path)
        let batch = try #require(try await reopened.takeBatch(maxReadings: 100))
        #expect(batch.readings.map(\.id!) == ids)
        let more = try await reopened.append([reading(99)])
        #expect(more[0] > ids.last!)
    }

    @Test("a corrupt database is moved aside and a fresh one started, with an event")
    func corrupt() async throws {
        let path = TempDir.file("corrupt.sqlite")
        do {
            let buffer = try SQLiteReadingBuffer(path: path)
            _ = try await buffer.append((0..<100).map { reading($0) })
        }
        // Overwrite the middle of the file with garbage, as a failing SD card would.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: Data(repeating: 0xA5, count: 4096))
        try handle.close()
        let buffer = try SQLiteReadingBuffer(path: path)
        let events = await buffer.drainEvents()
        let aside = try #require(events.compactMap { e -> String? in if case .quarantined(let p, _) = e { return p } else { return nil } }.first)
        #expect(FileManager.default.fileExists(atPath: aside))
        #expect(try await buffer.append([reading(1)]).count == 1)
    }

    @Test("disk full: eviction makes room, or the readings are refused with a typed error; nothing crashes")
    func diskFull() async throws {
        // SQLite's max_page_count is a real SQLITE_FULL without needing a small filesystem.
        let path = TempDir.file("full.sqlite")
        let buffer = try SQLiteReadingBuffer(path: path, capacity: 1_000_000)
        try await buffer.limitPages(60)
        var accepted = 0
        var refused = 0
        for round in 0..<200 {
            let outcome = await Self.tryAppend(buffer, (0..<50).map { reading(round * 50 + $0) })
            if let n = outcome.accepted { accepted += n } else {
                #expect(outcome.error?.code == .diskFull)
                refused += 1
            }
        }
        let events = await buffer.drainEvents()
        #expect(events.contains { if case .evicted(_, _, let why) = $0 { return why.contains("disk is full") } else { return false } })
        #expect(accepted > 0)
        #expect(await buffer.statistics().evicted > 0)
        _ = refused
    }

    static func tryAppend(_ buffer: SQLiteReadingBuffer, _ readings: [Reading]) async -> (accepted: Int?, error: BufferError?) {
        do {
            return (try await buffer.append(readings).count, nil)
        } catch {
            return (nil, error)
        }
    }
}
