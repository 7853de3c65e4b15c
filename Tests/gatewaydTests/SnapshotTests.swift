@testable import Agent
import CLISupport
@testable import gatewayd_sim
import ArgumentParser
import Foundation
import Gateway
import MBusSimulator
import Testing
@testable import Drivers
@testable import gatewayd

/// Snapshot files under Fixtures/snapshots: compared by default, written with GATEWAYD_RECORD_SNAPSHOTS=1.
enum Snapshot {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/snapshots")
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let recordVariable = "GATEWAYD_RECORD_SNAPSHOTS"
    static var recording: Bool { ProcessInfo.processInfo.environment[recordVariable] == "1" }
    static let howToRecord = "GATEWAYD_RECORD_SNAPSHOTS=1 swift test --skip-build --filter SnapshotTests"

    static func repositoryPath(_ relative: String) -> String { repository.appendingPathComponent(relative).path }

    /// Compares `actual` with the file `name`; records it instead when asked to, and fails then too,
    /// so a recording run never passes unnoticed.
    static func check(_ actual: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let url = directory.appendingPathComponent(name)
        let expected = try? String(contentsOf: url, encoding: .utf8)
        if expected == actual { return }
        if recording {
            do {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(actual.utf8).write(to: url)
                Issue.record("recorded snapshot \(name) (\(expected == nil ? "new" : "changed")); review it with git diff, then run again without \(recordVariable)",
                             sourceLocation: sourceLocation)
            } catch {
                Issue.record("could not record snapshot \(name): \(error)", sourceLocation: sourceLocation)
            }
            return
        }
        guard let expected else {
            Issue.record("no snapshot \(name) yet: record it with `\(howToRecord)`, review it and commit the file",
                         sourceLocation: sourceLocation)
            return
        }
        Issue.record("""
            snapshot \(name) differs (- snapshot, + now); if the change is intended, record it with `\(howToRecord)`
            \(LineDiff.unified(expected, actual))
            """, sourceLocation: sourceLocation)
    }
}

/// A line diff with two lines of context, enough to see what moved in a help screen or a table.
enum LineDiff {
    static func unified(_ old: String, _ new: String, context: Int = 2) -> String {
        let a = old.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let b = new.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // Longest common subsequence table, from the end.
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var ops: [(Character, String)] = []
        var i = 0, j = 0
        while i < a.count || j < b.count {
            if i < a.count, j < b.count, a[i] == b[j] {
                ops.append((" ", a[i])); i += 1; j += 1
            } else if j < b.count, i == a.count || lcs[i][j + 1] >= lcs[i + 1][j] {
                ops.append(("+", b[j])); j += 1
            } else {
                ops.append(("-", a[i])); i += 1
            }
        }
        let changed = ops.indices.filter { ops[$0].0 != " " }
        var out: [String] = []
        var last = -1
        for k in ops.indices where changed.contains(where: { abs($0 - k) <= context }) {
            if last >= 0 && k > last + 1 { out.append("@@") }
            out.append("\(ops[k].0)\(ops[k].1)")
            last = k
        }
        return out.joined(separator: "\n")
    }
}

@Suite("Snapshots: help screens and tables")
struct SnapshotTests {

    // MARK: --help

    static func helpFile(_ path: String) -> String {
        "help/" + (["gatewayd"] + path.split(separator: " ").map(String.init)).joined(separator: "-") + ".txt"
    }

    @Test("--help of every command and subcommand matches its snapshot", arguments: CommandTree.paths())
    func help(_ path: String) throws {
        let command = try #require(CommandTree.command(at: path))
        // The trailing newline keeps the files ordinary text files for git and editors.
        Snapshot.check(Gatewayd.helpMessage(for: command, columns: 100) + "\n", Self.helpFile(path))
    }

    @Test("every help snapshot belongs to a command (a removed command leaves none behind)")
    func noStaleHelpSnapshots() throws {
        let expected = Set(CommandTree.paths().map(Self.helpFile))
        let dir = Snapshot.directory.appendingPathComponent("help")
        let present = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        for file in present.map({ "help/" + $0 }) where !expected.contains(file) {
            Issue.record("snapshot \(file) has no command any more: delete it")
        }
    }

    // MARK: decode

    @Test("decode: the demo building's wired readout")
    func decodeWired() throws {
        let text = try String(contentsOfFile: Snapshot.repositoryPath("seeds/demo-building/wired-mbus-readout.hex"), encoding: .utf8)
        var session = DecodeSession(json: false)
        let inputs = DecodeInput.lines(text, source: "wired-mbus-readout.hex")
        let out = inputs.map { session.render($0) }.joined() + session.summary + "\n"
        Snapshot.check(out, "tables/decode-wired.txt")
    }

    /// The demo radio's capture as decode input: the hex column of each line.
    static func replayFrames() throws -> [DecodeInput] {
        let text = try String(contentsOfFile: Snapshot.repositoryPath("seeds/demo-building/wmbus-replay.txt"), encoding: .utf8)
        return try ReplayFile.parse(text).enumerated().map { DecodeInput(label: "wmbus-replay.txt #\($0.offset + 1)", text: Hex.encode($0.element.bytes)) }
    }

    @Test("decode: the demo radio's telegrams, and the first one with --analyze")
    func decodeWireless() throws {
        let frames = try Self.replayFrames()
        var session = DecodeSession(json: false)
        Snapshot.check(frames.map { session.render($0) }.joined() + session.summary + "\n", "tables/decode-wireless.txt")
        var analyzing = DecodeSession(json: false, analyze: true)
        Snapshot.check(analyzing.render(try #require(frames.first)), "tables/decode-wireless-analyze.txt")
    }

    // MARK: registry

    static var demoRegistry: String { Snapshot.repositoryPath("seeds/demo-building/registry.json") }

    @Test("registry show on the demo building")
    func registryShow() throws {
        Snapshot.check(RegistryShow.text(try DeviceRegistry.load(path: Self.demoRegistry)), "tables/registry-show.txt")
    }

    @Test("registry check: ours, another building, unknown, wrong manufacturer, a heat pump's nameplate serial")
    func registryCheck() throws {
        let registry = try DeviceRegistry.load(path: Self.demoRegistry)
        let cases: [(String, String?)] = [("06855817", "KAM"), ("6855817", nil), ("31425099", "ZRM"), ("99999999", "ZRI"),
                                          ("06855817", "QDS"), ("KHP-R290-0007-001", nil)]
        var out = ""
        for (serial, manufacturer) in cases {
            let outcome = RegistryCheck.check(serial, manufacturer: manufacturer, in: registry)
            out += "$ gatewayd registry check \(serial)\(manufacturer.map { " --manufacturer " + $0 } ?? "")  (exit \(outcome.exitCode))\n"
            out += RegistryCheck.verdict(outcome, building: registry.building) + "\n"
            out += RegistryCheck.json(outcome, serial: serial, building: registry.building) + "\n"
        }
        Snapshot.check(out, "tables/registry-check.txt")
    }

    // MARK: buffer

    /// 2026-03-05 10:00:00 UTC.
    static let bufferEpoch: Int64 = 1_772_704_800_000

    static func bufferWithFixedReadings() async throws -> String {
        let path = try BufferCommandTests.tempBuffer()
        let buffer = try SQLiteReadingBuffer(path: path)
        func reading(_ device: String, _ quantity: String, _ value: Double, _ unit: String, raw: String, minutes: Int64, synced: Bool = true) -> Reading {
            Reading(device: device, quantity: quantity, value: value, unit: unit, raw: raw, receivedAt: bufferEpoch + minutes * 60_000,
                    clockSynchronised: synced, source: "mbus:/dev/gatewayd/mbus-line-1")
        }
        _ = try await buffer.append([
            reading("mbus:KAM:06855817", "Energy", 6_042_000, "Wh", raw: "6042 kWh", minutes: 0),
            reading("mbus:KAM:06855817", "Volume", 1234.5, "m^3", raw: "1234.5 m3", minutes: 0),
            reading("mbus:LUG:66660205", "Energy", 0, "Wh", raw: "0 kWh", minutes: 1),
            reading("wmbus:QDS:90919293", "HCA", 312, "", raw: "312", minutes: 15),
            reading("wmbus:QDS:90919293", "HCA", 313, "", raw: "313", minutes: 75, synced: false),
        ])
        // Two in flight, so peek and stats show both states.
        _ = try await buffer.takeBatch(maxReadings: 2)
        return path
    }

    @Test("buffer stats and peek on a buffer with fixed times (UTC, now = epoch + 2 h)")
    func buffer() async throws {
        let path = try await Self.bufferWithFixedReadings()
        let inspection = try BufferInspection(path: path)
        var summary = try inspection.summary()
        // The file's size depends on SQLite's page layout, not on gatewayd.
        summary.bytesOnDisk = 45_056
        let now = Self.bufferEpoch + 2 * 3_600_000
        let age = summary.oldestPendingReceivedAt.map { (now - $0) / 1000 }
        let utc = TimeZone(identifier: "UTC")!
        let relaxed = BufferStats.text(summary, path: "buffer.sqlite", ageSeconds: age,
                                       problems: BufferStats.problems(summary, ageSeconds: age, maxAge: .seconds(24 * 3600)), zone: utc)
        let strict = BufferStats.text(summary, path: "buffer.sqlite", ageSeconds: age,
                                      problems: BufferStats.problems(summary, ageSeconds: age, maxAge: .seconds(3600)), zone: utc)
        Snapshot.check("$ gatewayd buffer stats\n" + relaxed + "\n$ gatewayd buffer stats --max-age 1h\n" + strict, "tables/buffer-stats.txt")
        let peek = BufferPeek.render(try inspection.pending(limit: 20), device: nil, zone: utc)
        let none = BufferPeek.render([], device: "mbus:ZRM:31425080", zone: utc)
        Snapshot.check(peek + "\n" + none, "tables/buffer-peek.txt")
    }

    // MARK: listen

    @Test("listen: the table after the demo radio's capture (profiles from profiles/wmbus)")
    func listen() throws {
        let text = try String(contentsOfFile: Snapshot.repositoryPath("seeds/demo-building/wmbus-replay.txt"), encoding: .utf8)
        let catalog = try ProfileCatalog.load(directory: Snapshot.repositoryPath("profiles/wmbus"))
        let view = ListenView(keyring: WMBusKeyring(), catalog: catalog, mode: .table)
        view.describeSource("replay of wmbus-replay.txt at 1000.0x")
        for e in try ReplayFile.parse(text) {
            view.heard(ReceivedTelegram(bytes: e.bytes, rssiDBm: e.rssiDBm, receivedAt: e.timestamp, linkMode: e.linkMode, receiver: "replay"))
        }
        Snapshot.check(view.snapshot(title: "summary"), "tables/listen.txt")
    }

    // MARK: status

    @Test("status: the table of a fixed status document")
    func status() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Snapshot.repositoryPath("Tests/gatewaydTests/Fixtures/snapshot-inputs/status.json")))
        let status = try LocalEndpoints.jsonDecoder.decode(DaemonStatus.self, from: data)
        let now = try #require(ISO8601DateFormatter().date(from: "2026-03-05T12:00:00Z"))
        Snapshot.check(StatusTable.render(status, now: now), "tables/status.txt")
    }

    // MARK: devices

    @Test("devices: the plant-room board (the hidden --root fixture tree), and no adapters at all")
    func devices() throws {
        let tree = try FakeDeviceTree.plantRoom()
        let look = DeviceSource(sysfs: USBSysfs(root: tree.root)).look()
        #expect(DevicesText.needsAttention(look), "the Amber stick has no /dev/gatewayd link: exit 2")
        let none = DevicesText.listing(DeviceLook(deviceCount: 2, adapters: []), source: "libusb")
        Snapshot.check(DevicesText.listing(look, source: "sysfs") + "\n" + none, "tables/devices.txt")
    }

    // MARK: mbus

    static func meter(_ primary: UInt8?, _ id: String, _ manufacturer: String, version: UInt8, _ type: DeviceType) -> FoundMeter {
        FoundMeter(primaryAddress: primary,
                   secondaryAddress: SecondaryAddress(identification: IdentificationNumber(id)!, manufacturer: ManufacturerCode(manufacturer)!,
                                                      version: version, deviceType: type),
                   telegram: nil)
    }

    @Test("mbus scan: a registry verification with a missing meter and a collision")
    func mbusScan() throws {
        var statistics = LinkStatistics()
        statistics.requests = 27
        statistics.retries = 3
        statistics.timeouts = 4
        statistics.bytesSent = 459
        statistics.bytesReceived = 1_887
        statistics.busTime = .milliseconds(12_480)
        statistics.wireTime = .milliseconds(10_080)
        var report = ScanReport()
        report.found = [Self.meter(3, "06855817", "KAM", version: 8, .heatOutlet),
                        Self.meter(5, "66660205", "LUG", version: 7, .heatOutlet),
                        FoundMeter(primaryAddress: 17, secondaryAddress: nil, telegram: nil)]
        report.missing = [SecondaryAddress(identification: IdentificationNumber("31425080")!, manufacturer: ManufacturerCode("ZRM")!,
                                           version: 0, deviceType: .water)]
        report.collisions = ["2 meters answer to 1042FFFF FFFF FF FF and could not be told apart"]
        report.probes = 24
        report.reads = 3
        report.elapsed = .milliseconds(12_512)
        report.statistics = statistics
        var primary = report
        primary.missing = []
        primary.collisions = []
        primary.cancelled = true
        Snapshot.check(ScanTable.render(report, mode: "registry", expected: 4) + "\n\n" + ScanTable.render(primary, mode: "primary", expected: nil) + "\n",
                       "tables/mbus-scan.txt")
    }

    @Test("mbus read: the Kamstrup meter of the demo line, as one readout")
    func mbusRead() throws {
        let text = try String(contentsOfFile: Snapshot.repositoryPath("seeds/demo-building/wired-mbus-readout.hex"), encoding: .utf8)
        let first = try #require(DecodeInput.lines(text, source: "x").first)
        let bytes = try Hex.decode(first.text)
        let telegram = try TelegramDecoder.decode(bytes)
        let readout = Readout(address: .primary(3), frames: [bytes], telegrams: [telegram], truncated: false)
        #expect(!MBusRead.needsAttention(telegram))
        Snapshot.check(MBusRead.render(readout, label: "primary 3 on /dev/gatewayd/mbus-line-1"), "tables/mbus-read.txt")
    }

    // MARK: modbus

    @Test("modbus read: the Kaisai heat pump's recorded dump, with its serial checked against the registry's")
    func modbusRead() throws {
        let profile = try ModbusProfile.load(path: Snapshot.repositoryPath("profiles/modbus/kaisai-r290-monoblock.json"))
        let test = try #require(profile.test)
        let plan = profile.plan()
        let words: [[UInt16]?] = plan.map { request in
            var out: [UInt16] = []
            for a in request.range {
                guard let block = test.dump[request.kind.rawValue]?.first(where: { a >= $0.address && a < $0.address + $0.values.count }) else { return nil }
                out.append(UInt16(truncatingIfNeeded: block.values[a - block.address]))
            }
            return out
        }
        let reading = profile.decode(profile.registers, requests: plan, words: words, unit: test.unit ?? 1)
        let label = "tcp://192.0.2.30:502"
        let device = "the heat pump on \(label) unit \(reading.unit)"
        let findings = IdentityCheck.validate(reported: reading.identities,
                                              registry: ModbusReadCommand.registrySerials("KHP-R290-0007-001", profile: profile),
                                              device: device, profile: profile)
        Snapshot.check(ModbusReadCommand.render(reading, profile: profile, unit: reading.unit, label: label, findings: findings),
                       "tables/modbus-read.txt")
    }

    @Test("modbus dump: registers with one refused block, and coils")
    func modbusDump() {
        typealias Row = ModbusDump.Row
        let registers = [Row(address: 0, value: 0), Row(address: 1, value: 215), Row(address: 2, value: 65_436), Row(address: 3, value: 0x1F40),
                         Row(address: 4, value: nil, error: "4+2: exception 02 (illegal data address)")]
        let coils = [Row(address: 0, value: 1), Row(address: 1, value: 0)]
        Snapshot.check(ModbusDump.render(registers, kind: .holding) + "\n" + ModbusDump.render(coils, kind: .coil), "tables/modbus-dump.txt")
    }

    // MARK: simulate

    @Test("simulate mbus: the demo line's slaves")
    func simulateMBus() throws {
        let population = try SlavePopulation(contentsOfFile: Snapshot.repositoryPath("seeds/demo-building/mbus-slaves.json"))
        Snapshot.check(SimulateMBus.render(population, devicePath: "/dev/pts/7"), "tables/simulate-mbus.txt")
    }

    // MARK: commission

    @Test("commission: the summary of a fixed report, and the live view of its progress")
    func commission() throws {
        let report = CommissionReportRenderTests.report()
        Snapshot.check(report.terminalSummary(), "tables/commission-summary.txt")
        var floor = CommissioningProgress.Floor(floor: "2")
        floor.expected = 3
        floor.heard = 2
        floor.missing = ["wmbus:TCH:41000203"]
        floor.wrongKey = 1
        Snapshot.check(CommissionView.render(CommissioningProgress(floors: [floor], summary: report.summary), elapsed: 301, window: 900,
                                             buses: report.buses.map { "\($0.name) \($0.state)" }),
                       "tables/commission-live.txt")
    }
}
