@testable import Agent
import CLISupport
import Foundation
import Gateway
import Testing
@testable import gatewayd
#if canImport(Glibc)
import Glibc
#endif

@Suite("gatewayd reading add")
struct ReadingCommandTests {
    /// A registry with one device per kind of bus, in a fresh folder with an empty buffer beside it.
    static func workspace() throws -> (registry: String, buffer: String) {
        let dir = NSTemporaryDirectory() + "reading-add-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let json = """
            {"gateway": "gw-0007", "building": "7", "devices": [
              {"key": "mbus:KAM:06855817", "bus": "mbus", "identification": "06855817", "manufacturer": "KAM", "line": "mbus-line-1"},
              {"key": "wmbus:QDS:22222222", "bus": "wmbus", "identification": "22222222", "manufacturer": "QDS"},
              {"key": "manual:HCA:4.12", "bus": "manual", "unit": "4.12"}]}
            """
        try Data(json.utf8).write(to: URL(fileURLWithPath: dir + "/registry.json"))
        return (dir + "/registry.json", dir + "/buffer.sqlite")
    }

    func add(_ args: [String], _ ws: (registry: String, buffer: String)) async throws {
        var command = try ReadingAdd.parse(args + ["--registry", ws.registry, "--buffer", ws.buffer])
        try await command.run()
        _ = command
    }

    func stored(_ ws: (registry: String, buffer: String)) async throws -> [Reading] {
        let b = try SQLiteReadingBuffer(path: ws.buffer)
        guard let batch = try await b.takeBatch(maxReadings: 100) else { return [] }
        try await b.release(batch.id)
        // The entries themselves; a set-day entry also stores its set_day_captured proof (SetDayLedgerTests).
        return batch.readings.filter { $0.quantity != SetDayLedger.quantity }
    }

    @Test("a meter without bus takes a reading; it lands in the buffer in SI units")
    func accepts() async throws {
        let ws = try Self.workspace()
        try await add(["--device", "manual:HCA:4.12", "--value", "6042", "--unit", "kWh", "--date", "2026-01-31"], ws)
        let r = try await stored(ws)
        #expect(r.count == 1)
        #expect(r.first?.value == 6_042_000 && r.first?.unit == "Wh" && r.first?.raw == "6042 kWh" && r.first?.source == "manual")
    }

    @Test("a radio meter is refused without --force and --reason, accepted with them, the reason kept")
    func refusesAutomaticDevices() async throws {
        let ws = try Self.workspace()
        await #expect(throws: CLIError.self) { try await add(["--device", "wmbus:QDS:22222222", "--value", "12"], ws) }
        do { try await add(["--device", "wmbus:QDS:22222222", "--value", "12"], ws) } catch {
            #expect("\(error)".contains("read automatically over wireless M-Bus"))
        }
        #expect(throws: (any Error).self) { try ReadingAdd.parse(["--device", "x", "--value", "1", "--reason", "no force"]) }
        await #expect(throws: CLIError.self) { try await add(["--device", "06855817", "--value", "12", "--force"], ws) }
        #expect(try await stored(ws).isEmpty)
        try await add(["--device", "06855817", "--value", "12.5", "--unit", "m3", "--force", "--reason", "line cut"], ws)
        let r = try await stored(ws)
        #expect(r.map(\.device) == ["mbus:KAM:06855817"])
        #expect(r.first?.source == "manual (forced: line cut)" && r.first?.raw.contains("forced: line cut") == true)
    }

    @Test("the built binary: exit status 0 when stored, non-zero with the reason when refused")
    func binary() throws {
        let ws = try Self.workspace()
        let paths = ["--registry", ws.registry, "--buffer", ws.buffer]
        let unknown = try Self.spawn(["reading", "add", "--device", "mbus:XYZ:99999999", "--value", "1"] + paths)
        #expect(unknown.status != 0)
        #expect(unknown.output.contains("no such device in the registry"))
        let radio = try Self.spawn(["reading", "add", "--device", "wmbus:QDS:22222222", "--value", "1"] + paths)
        #expect(radio.status != 0 && radio.output.contains("--force"))
        let ok = try Self.spawn(["reading", "add", "--device", "manual:HCA:4.12", "--value", "312", "--unit", "HCA"] + paths)
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.output.contains("stored manual:HCA:4.12"))
    }

    /// posix_spawn + waitpid (Foundation's Process can starve on 2 cores), stdout and stderr together.
    static func spawn(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let exe = try #require(DecodeCommandTests.executable, "gatewayd binary not found")
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw CLIError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv: [UnsafeMutablePointer<CChar>?] = ([exe.path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, exe.path, &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else { close(fds[0]); throw CLIError("posix_spawn failed: \(rc)") }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            output += chunk[0..<n]
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        return ((status >> 8) & 0xFF, String(decoding: output, as: UTF8.self))
    }
}
