@testable import Agent
import CLISupport
import ArgumentParser
import Foundation
import Gateway
import Testing
@testable import gatewayd

@Suite("gatewayd buffer")
struct BufferCommandTests {
    static func tempBuffer() throws -> String {
        let dir = NSTemporaryDirectory() + "buffer-cmd-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/buffer.sqlite"
    }

    static func reading(_ device: String, _ value: Double, at ms: Int64, raw: String = "", synced: Bool = true,
                        readingClass: ReadingClass = .routine) -> Reading {
        Reading(device: device, quantity: "Energy", value: value, unit: "Wh", raw: raw, receivedAt: ms,
                clockSynchronised: synced, source: "mbus:/dev/test", readingClass: readingClass)
    }

    /// Runs a command and returns its exit status (0 when it returned normally).
    static func status(_ command: any AsyncParsableCommand) async throws -> Int32 {
        var command = command
        do { try await command.run() } catch let e as ExitCode { return e.rawValue }
        return 0
    }

    static let now = Int64(Date().timeIntervalSince1970 * 1000)

    @Test("stats counts pending, leased, waiting for the clock and readings per device, most first")
    func stats() async throws {
        let path = try Self.tempBuffer()
        let buffer = try SQLiteReadingBuffer(path: path)
        _ = try await buffer.append((0..<5).map { Self.reading("mbus:KAM:06855817", Double($0), at: Self.now - 60_000 + Int64($0)) })
        _ = try await buffer.append([Self.reading("wmbus:QDS:22222222", 7, at: Self.now - 30_000),
                                     Self.reading("wmbus:QDS:22222222", 8, at: 1000, synced: false)])
        let batch = try #require(try await buffer.takeBatch(maxReadings: 2))
        #expect(batch.readings.count == 2)

        let s = try BufferInspection(path: path).summary()
        #expect(s.stored == 7)
        #expect(s.pending == 5)
        #expect(s.leased == 2)
        #expect(s.waitingForClock == 1)
        #expect(s.devices.map(\.device) == ["mbus:KAM:06855817", "wmbus:QDS:22222222"])
        #expect(s.devices.map(\.count) == [5, 2])
        #expect(s.oldestPendingReceivedAt == Self.now - 60_000 + 2)
        #expect(s.bytesOnDisk > 0)

        // A reading waits for the clock: done, but a problem (exit 2), and the text says what to check.
        #expect(try await Self.status(BufferStats.parse(["--buffer", path])) == 2)
        let text = BufferStats.text(s, path: path, ageSeconds: 60, problems: BufferStats.problems(s, ageSeconds: 60, maxAge: .seconds(24 * 3600)))
        #expect(text.contains("leased (in flight): 2"))
        #expect(text.contains("1 reading waits for the clock"))
        #expect(text.contains("  mbus:KAM:06855817   5         "))
    }

    @Test("stats on a healthy buffer exits 0; JSON lists every device, the table only the top 20")
    func statsHealthyAndTop20() async throws {
        let path = try Self.tempBuffer()
        let buffer = try SQLiteReadingBuffer(path: path)
        _ = try await buffer.append((0..<25).map { Self.reading("dev:\($0)", 1, at: Self.now) })
        #expect(try await Self.status(BufferStats.parse(["--buffer", path])) == 0)
        #expect(try await Self.status(BufferStats.parse(["--buffer", path, "--json"])) == 0)
        let s = try BufferInspection(path: path).summary()
        #expect(s.devices.count == 25)
        let text = BufferStats.text(s, path: path, ageSeconds: 0, problems: [])
        #expect(text.contains("top 20 of 25 devices"))
        #expect(text.components(separatedBy: "\n").filter { $0.hasPrefix("  dev:") }.count == 20)
    }

    @Test("a missing buffer is exit 1 with what to do, and is not created")
    func missing() async throws {
        let path = try Self.tempBuffer()
        await #expect(throws: CLIError.self) { _ = try await Self.status(BufferStats.parse(["--buffer", path])) }
        do { _ = try BufferInspection(path: path) } catch { #expect(error.message.contains("--buffer")) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("peek shows pending readings in upload order and leases nothing: takeBatch still returns them")
    func peekDoesNotLease() async throws {
        let path = try Self.tempBuffer()
        let buffer = try SQLiteReadingBuffer(path: path)
        _ = try await buffer.append([Self.reading("a", 1, at: Self.now), Self.reading("b", 2, at: Self.now + 1),
                                     Self.reading("a", 3, at: Self.now + 2, readingClass: .alarm)])
        let peeked = try BufferInspection(path: path).pending(limit: 10)
        #expect(peeked.map(\.reading.value) == [3, 1, 2])
        #expect(peeked.allSatisfy { $0.state == "pending" })
        #expect(try BufferInspection(path: path).pending(device: "a", limit: 1).map(\.reading.value) == [3])
        #expect(try await Self.status(BufferPeek.parse(["--buffer", path, "--limit", "2"])) == 0)
        #expect(try await Self.status(BufferPeek.parse(["--buffer", path, "--json"])) == 0)

        let batch = try #require(try await buffer.takeBatch(maxReadings: 10))
        #expect(batch.readings.map(\.value) == [3, 1, 2])
        #expect(try BufferInspection(path: path).pending(limit: 10).isEmpty)
        #expect(throws: (any Error).self) { try BufferPeek.parse(["--limit", "0"]) }
    }

    @Test("peek escapes control characters from meter text; the table keeps its columns")
    func peekEscapes() async throws {
        let path = try Self.tempBuffer()
        let buffer = try SQLiteReadingBuffer(path: path)
        var r = Self.reading("mbus:KAM:06855817", 5, at: Self.now, raw: "5 \u{1B}[31mred")
        r.unit = "\u{9B}2J"
        _ = try await buffer.append([r])
        let readings = try BufferInspection(path: path).pending(limit: 10)
        let text = BufferPeek.render(readings, device: nil)
        #expect(!text.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{9B}" }, "\(text)")
        #expect(text.contains("5 \\x1B[31mred") && text.contains("\\x9B2J"))
    }

    @Test("CSV export: formula-looking text gets a leading quote, numbers stay numbers, --bom writes U+FEFF")
    func csvInjection() async throws {
        let path = try Self.tempBuffer()
        let buffer = try SQLiteReadingBuffer(path: path)
        var hostile = Self.reading("mbus:KAM:06855817", -12.5, at: Self.now, raw: "=HYPERLINK(\"http://x\",\"y\")")
        hostile.quantity = "@SUM(A1:A9)"
        hostile.unit = "+cmd"
        _ = try await buffer.append([hostile])
        let out = (path as NSString).deletingLastPathComponent + "/export.csv"
        #expect(try await Self.status(BufferExport.parse(["--buffer", path, "--output", out, "--bom"])) == 0)
        let data = try #require(FileManager.default.contents(atPath: out))
        #expect(Array(data.prefix(3)) == [0xEF, 0xBB, 0xBF])
        let text = String(decoding: data.dropFirst(3), as: UTF8.self)
        let row = text.components(separatedBy: "\r\n")[1]
        #expect(row.contains(",mbus:KAM:06855817,'@SUM(A1:A9),-12.5,'+cmd,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\","), "\(row)")
        #expect(throws: (any Error).self) { try BufferExport.parse(["--json", "--bom"]) }
    }

    @Test("CSV export: header row, RFC 4180 quoting of a raw value with a comma and a quote, CRLF")
    func csvQuoting() async throws {
        let path = try Self.tempBuffer()
        let buffer = try SQLiteReadingBuffer(path: path)
        _ = try await buffer.append([Self.reading("mbus:KAM:06855817", 6_042_000, at: Self.now, raw: "6,042 \"kWh\""),
                                     Self.reading("mbus:KAM:06855817", 5, at: Self.now + 1, raw: "plain")])
        let out = (path as NSString).deletingLastPathComponent + "/export.csv"
        #expect(try await Self.status(BufferExport.parse(["--format", "csv", "--buffer", path, "--output", out])) == 0)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines.count == 4 && lines[3].isEmpty)
        #expect(lines[0] == ExportRow.header.joined(separator: ","))
        #expect(lines[1].contains(",mbus:KAM:06855817,Energy,6042000,Wh,\"6,042 \"\"kWh\"\"\","))
        #expect(lines[2].contains(",5,Wh,plain,"))
        #expect(CSVWriter.cell("a\nb") == "\"a\nb\"" && CSVWriter.cell("x") == "x" && CSVWriter.cell("\"") == "\"\"\"\"")
    }

    @Test("export filters by receive day (--to included) and device; JSON lines are snake_case")
    func dateRange() async throws {
        let path = try Self.tempBuffer()
        let buffer = try SQLiteReadingBuffer(path: path)
        let noon: Int64 = 12 * 3_600_000
        let march1 = try #require(BufferExport.day("2026-03-01"))
        let march5 = try #require(BufferExport.day("2026-03-05"))
        let march6 = try #require(BufferExport.day("2026-03-06"))
        _ = try await buffer.append([Self.reading("a", 1, at: march1 + noon), Self.reading("a", 5, at: march5 + noon),
                                     Self.reading("b", 55, at: march6 - 1), Self.reading("a", 6, at: march6)])
        let inspect = try BufferInspection(path: path)
        let inRange = try inspect.readings(receivedFrom: BufferExport.day("2026-03-02"), before: BufferExport.nextDay("2026-03-05"))
        #expect(inRange.map(\.reading.value) == [5, 55])
        #expect(try inspect.readings(receivedFrom: march1, before: nil, device: "a").map(\.reading.value) == [1, 5, 6])
        #expect(try inspect.readings().count == 4)

        let out = (path as NSString).deletingLastPathComponent + "/export.jsonl"
        #expect(try await Self.status(BufferExport.parse(["--format", "json", "--from", "2026-03-05", "--to", "2026-03-05",
                                                          "--device", "a", "--buffer", path, "--output", out])) == 0)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("\"received_at\":") == true && lines.first?.contains("\"value\":5") == true)
        #expect(throws: (any Error).self) { try BufferExport.parse(["--format", "csv", "--from", "2026-3-1"]) }
        #expect(throws: (any Error).self) { try BufferExport.parse(["--format", "csv", "--from", "2026-03-05", "--to", "2026-03-01"]) }
        #expect(throws: (any Error).self) { try BufferExport.parse(["--format", "xml"]) }
    }

    @Test("the built binary: 1 for a missing buffer, 64 for usage, 0 for an export")
    func binary() async throws {
        let path = try Self.tempBuffer()
        let missing = try ReadingCommandTests.spawn(["buffer", "stats", "--buffer", path])
        #expect(missing.status == 1 && missing.output.contains("no reading buffer"), "\(missing.output)")
        let usage = try ReadingCommandTests.spawn(["buffer", "export", "--format", "csv", "--from", "yesterday", "--buffer", path])
        #expect(usage.status == 64, "\(usage.output)")
        let buffer = try SQLiteReadingBuffer(path: path)
        _ = try await buffer.append([Self.reading("a", 1, at: Self.now)])
        let ok = try ReadingCommandTests.spawn(["buffer", "export", "--format", "csv", "--buffer", path])
        #expect(ok.status == 0 && ok.output.hasPrefix("id,device,"), "\(ok.output)")
    }
}
