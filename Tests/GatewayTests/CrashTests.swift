import Foundation
import TestSupport
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
            // posix_spawn and waitpid, not Foundation's Process: its waitUntilExit runs a run loop on a
            // cooperative thread and can starve while other suites do the same on a 2-core machine.
            let child = try SpawnedProcess(exe.path, [path, "25"])
            // Kill somewhere between "still opening the database" and "in the middle of a commit".
            let wait = UInt64.random(in: 2_000_000...40_000_000, using: &rng)
            try await Task.sleep(nanoseconds: wait)
            kill(child.pid, SIGKILL)
            let (signalled, text) = child.finish()
            kills += signalled ? 1 : 0
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

/// A child process with its standard output on a pipe.
struct SpawnedProcess {
    let pid: pid_t
    let output: Int32

    init(_ path: String, _ arguments: [String]) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
        let child: pid_t
        do {
            child = try ChildProcess.spawn(path, arguments, output: .descriptor(fds[1], closeInChild: fds[0]), stderr: "/dev/null")
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[1])
        pid = child
        output = fds[0]
    }

    /// Waits for the child (already killed or exiting), reads all it wrote, and says whether a signal ended it.
    func finish() -> (signalled: Bool, output: String) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        close(output)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFSIGNALED: low 7 bits hold the signal number, neither 0 (exited) nor 0x7F (stopped).
        let signalled = (status & 0x7F) != 0 && (status & 0x7F) != 0x7F
        return (signalled, String(decoding: bytes, as: UTF8.self))
    }
}
