import Foundation
import Testing
@testable import Gateway

/// The durability promise: a reading acknowledged by `append` survives SIGKILL, exactly once.
@Suite("reading buffer crash test")
struct CrashTests {
    static var probe: URL? {
        var dir = Bundle.main.bundleURL
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("buffer-crash-probe")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    @Test("200 SIGKILLs at random moments: every acknowledged reading is stored exactly once")
    func killTwoHundredTimes() async throws {
        let exe = try #require(Self.probe, "buffer-crash-probe not built next to \(Bundle.main.bundleURL.path)")
        let path = TempDir.file("crash.sqlite")
        var acknowledged = Set<Int64>()
        var rng = SystemRandomNumberGenerator()
        var kills = 0
        for _ in 0..<200 {
            let p = Process()
            p.executableURL = exe
            p.arguments = [path, "25"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Kill somewhere between "still opening the database" and "in the middle of a commit".
            let wait = UInt64.random(in: 2_000_000...40_000_000, using: &rng)
            try await Task.sleep(nanoseconds: wait)
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            kills += p.terminationReason == .uncaughtSignal ? 1 : 0
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            for line in text.split(separator: "\n") where line.hasPrefix("ACK ") {
                let parts = line.split(separator: " ")
                guard parts.count == 3, let a = Int64(parts[1]), let b = Int64(parts[2]) else { continue }
                for v in a...b { acknowledged.insert(v) }
            }
            #expect(!text.contains("ERROR"), "\(text)")
        }
        let buffer = try SQLiteReadingBuffer(path: path, capacity: 10_000_000)
        let stored = try await buffer.values(device: "crash-probe").map { Int64($0) }
        let unique = Set(stored)
        print("crash test: \(kills) kills, \(acknowledged.count) readings acknowledged, \(stored.count) stored, \(stored.count - unique.count) duplicates, \(acknowledged.subtracting(unique).count) lost")
        #expect(kills == 200)
        #expect(stored.count == unique.count, "a reading is stored twice")
        #expect(acknowledged.isSubset(of: unique), "acknowledged readings are missing")
        // Resuming after the newest stored reading leaves no gap either.
        #expect(stored == Array(0..<Int64(stored.count)))
        #expect(acknowledged.count > 1000)
    }
}
