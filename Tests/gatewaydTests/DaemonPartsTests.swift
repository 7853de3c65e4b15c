@testable import Agent
@testable import gatewayd_sim
import CLISupport
import Drivers
import Foundation
import Gateway
import Logging
import Prometheus
import Testing
@testable import gatewayd

@Suite("daemon parts")
struct DaemonPartsTests {
    @Test("metrics: cumulative snapshots advance counters; a restarted part never makes one go down")
    func metricsFromSnapshots() {
        let m = GatewayMetrics()
        m.observe(.telegrams, labels: [("outcome", "heard")], cumulative: 5)
        m.observe(.telegrams, labels: [("outcome", "heard")], cumulative: 8)
        m.observe(.telegrams, labels: [("outcome", "heard")], cumulative: 3)  // the part restarted from zero
        m.set(.bufferDepth, to: 42)
        let text = m.exposition()
        #expect(text.contains(#"gatewayd_telegrams_total{outcome="heard"} 11"#))
        #expect(text.contains("gatewayd_buffer_pending_readings 42"))
        #expect(text.contains("# HELP gatewayd_telegrams_total"))
    }

    @Test("metrics are served on loopback only: a name that merely starts with 127. is refused")
    func metricsLoopbackOnly() throws {
        let registry = PrometheusCollectorRegistry()
        let logger = Logger(label: "test")
        for host in ["0.0.0.0", "192.168.1.10", "127.evil.example", "127.0.0.1.nip.io"] {
            #expect(throws: EndpointError.self, "\(host)") {
                _ = try LocalEndpoints.metricsServer(host: host, port: 9464, registry: registry, logger: logger)
            }
        }
        _ = try LocalEndpoints.metricsServer(host: "127.0.0.1", port: 9464, registry: registry, logger: logger)
        _ = try LocalEndpoints.metricsServer(host: "::1", port: 9464, registry: registry, logger: logger)
    }

    @Test("journal lines: syslog priority under journald, keys and tokens redacted, one line per event")
    func journalLines() {
        let line = JournalLogHandler.format(
            level: .warning, message: "dongle\nunplugged", metadata: ["key": "00112233445566778899AABBCCDDEEFF", "bus": "wmbus-1", "token": "s3cret"],
            label: "gatewayd", underJournal: true, now: Date(timeIntervalSince1970: 0))
        #expect(line == "<4>[gatewayd] dongle unplugged bus=wmbus-1 key=<redacted> token=<redacted>\n")
        let terminal = JournalLogHandler.format(level: .info, message: "ready", metadata: [:], label: "gatewayd", underJournal: false,
                                                now: Date(timeIntervalSince1970: 0))
        #expect(terminal.hasSuffix(" INFO [gatewayd] ready\n"))
        // Telegram text in a message or in metadata neither drives the terminal nor forges a line.
        let hostile = JournalLogHandler.format(
            level: .notice, message: "unit \u{1B}[2J", metadata: ["unit": "\u{1B}]0;x\u{7}\n<3>[gatewayd] forged", "bus\u{9B}": "1"],
            label: "gatewayd", underJournal: true, now: Date(timeIntervalSince1970: 0))
        #expect(hostile == #"<5>[gatewayd] unit \x1B[2J bus\x9B=1 unit="\x1B]0;x\x07 <3>[gatewayd] forged""# + "\n")
    }

    @Test("the status socket names registered devices only; strangers appear as identity, signal and counts, never bytes or values")
    func statusShowsNoStrangerData() async throws {
        let seeds = ConfigErrorTests.repositoryRoot.appendingPathComponent("seeds/demo-building")
        let text = try String(contentsOf: seeds.appendingPathComponent("wmbus-replay.txt"), encoding: .utf8)
        let telegrams = try ReplayFile.parse(text).map {
            ReceivedTelegram(bytes: $0.bytes, rssiDBm: $0.rssiDBm, receivedAt: $0.timestamp, linkMode: $0.linkMode, receiver: "test")
        }
        let registry = try DeviceRegistry.load(path: seeds.appendingPathComponent("registry.json").path)
        let board = StatusBoard(gateway: registry.gateway, building: registry.building, demo: false)
        let pipeline = ReadingPipeline(registry: registry, buffer: MemoryReadingBuffer())
        let runner = WirelessRunner(name: "radio", source: .command("true"), pipeline: pipeline, board: board, logger: Logger(label: "test"))
        let encoder = LocalEndpoints.jsonEncoder
        // One batch per telegram: after each, nothing of a stranger's telegram is on the socket.
        for telegram in telegrams {
            await runner.handle([telegram], counters: Tally())
            let status = await LocalEndpoints.statusDocument(board: board, strangers: pipeline.unknownDevices)
            let json = String(decoding: try encoder.encode(status), as: UTF8.self)
            let rendered = StatusTable.render(status, now: Date())
            for t in telegrams {
                // The payload after the link header: a registered meter's bytes are not for the socket either.
                let payload = Hex.encode(Array(t.bytes.dropFirst(10)))
                #expect(!json.contains(payload) && !rendered.contains(payload), "raw telegram bytes on the status socket")
            }
            let detail = try #require(status.components.first { $0.name == "wmbus:radio" }).detail
            #expect(detail.hasPrefix("receiving; last from wmbus:") || detail.contains("not in the registry") || detail.hasSuffix("not stored (see the log)"),
                    "\(detail)")
        }
        let status = await LocalEndpoints.statusDocument(board: board, strangers: pipeline.unknownDevices)
        let strangers = try #require(status.unknownDevices)
        // The demo's three neighbours, by identity only.
        #expect(Set(strangers.map(\.manufacturer)) == ["EIE", "LAS", "LSE"])
        #expect(status.unknownDeviceCount == 3)
        #expect(strangers.allSatisfy { $0.count == 1 && $0.lastRssi != nil })
        #expect(StatusTable.render(status, now: Date()).contains("unknown devices: 3 heard"))
    }

    @Test("an rtl_wmbus pipeline in process: telegrams reach the buffer, CRC failures are counted, the status names the receiver")
    func rtlWMBusRunner() async throws {
        let seeds = ConfigErrorTests.repositoryRoot.appendingPathComponent("seeds/demo-building")
        let entries = try ReplayFile.parse(String(contentsOf: seeds.appendingPathComponent("wmbus-replay.txt"), encoding: .utf8))
        let registry = try DeviceRegistry.load(path: seeds.appendingPathComponent("registry.json").path)
        // rtl_wmbus's line format: mode;crc ok;3of6 ok;time;rssi;link quality;meter id;0xHEX.
        var text = ""
        for (n, e) in entries.enumerated() {
            text += "T1;1;1;2026-12-05 10:00:\(String(format: "%02d", n % 60)).000;117;102;\(n);0x\(Hex.encode(e.bytes))\n"
        }
        text += "T1;0;1;2026-12-05 10:01:00.000;90;40;99;0x\(Hex.encode(entries[0].bytes))\n"
        let dir = NSTemporaryDirectory() + "rtl-runner-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/lines"))
        let buffer = MemoryReadingBuffer()
        let board = StatusBoard(gateway: registry.gateway, building: registry.building, demo: false)
        let pipeline = ReadingPipeline(registry: registry, buffer: buffer)
        // The pipeline prints its lines once and then stays open, as a live rtl_wmbus does.
        let runner = WirelessRunner(name: "sdr", source: .command("cat '\(dir)/lines'; sleep 600"), pipeline: pipeline, board: board,
                                    logger: Logger(label: "test"))
        let task = Task { await runner.run() }
        var component: DaemonStatus.Component?
        for _ in 0..<300 {
            let status = await LocalEndpoints.statusDocument(board: board, strangers: pipeline.unknownDevices)
            component = status.components.first { $0.name == "wmbus:sdr" }
            if let c = component, c.counters["telegrams"] == entries.count, c.counters["crc_failures"] == 1 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        task.cancel()
        await task.value
        let c = try #require(component)
        #expect(c.kind == "rtl_wmbus receiver")
        #expect(c.counters["telegrams"] == entries.count, "\(c.counters)")
        #expect(c.counters["crc_failures"] == 1, "\(c.counters)")
        #expect(c.counters["strangers"] == 3, "\(c.counters)")
        let stats = await buffer.statistics()
        #expect(stats.pending > 0)
        let counters = await pipeline.counters()
        #expect(counters.heard == entries.count)
    }

    @Test("all three runners in process: a simulated wired line, dongle and heat pump into a memory buffer")
    func runnersInProcess() async throws {
        let ws = try DaemonTests.workspace()
        let config = try GatewayConfig.load(path: ws.config).get()
        // The simulators run in this test process; the runners reach them as the daemon would.
        let buses = try await SimulatedBuses.start(config: config, logger: Logger(label: "test"))
        defer { buses.stop() }
        let registry = try DeviceRegistry.load(path: DaemonTests.seeds + "/registry.json")
        let buffer = MemoryReadingBuffer()
        let board = StatusBoard(gateway: config.gatewayID, building: config.building, demo: true)
        let pipeline = ReadingPipeline(registry: registry, buffer: buffer, options: PipelineOptions(keyring: config.keys))
        let scheduler = PollScheduler(gatewayID: config.gatewayID)
        let context = BusContext(pipeline: pipeline, scheduler: scheduler, board: board,
                                 demo: DemoBuilding(endpoints: buses.endpoints), logger: Logger(label: "test"))
        let runners: [any BusRunner] = context.runners(for: config).map(\.runner)
        #expect(runners.count == 3)
        var tasks: [Task<Void, Never>] = []
        for runner in runners { tasks.append(Task { await runner.run() }) }
        var devices: Set<String> = []
        for _ in 0..<1_200 {
            devices = Set(await buffer.snapshot().map(\.device))
            let lines = await scheduler.lines
            var cycled = lines.count == 2
            for line in lines { if (await scheduler.status(line: line)?.cycles ?? 0) < 1 { cycled = false } }
            if cycled, devices.contains(where: { $0.hasPrefix("wmbus:") }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        for t in tasks { t.cancel() }
        for t in tasks { await t.value }
        #expect(devices.contains { $0.hasPrefix("mbus:") }, "\(devices)")
        #expect(devices.contains { $0.hasPrefix("wmbus:") }, "\(devices)")
        #expect(devices.contains { $0.hasPrefix("modbus:") }, "\(devices)")
        let status = await LocalEndpoints.statusDocument(board: board, strangers: pipeline.unknownDevices)
        for name in ["mbus:mbus-line-1", "wmbus:wmbus-1", "modbus:rs485-1"] {
            #expect(status.components.contains { $0.name == name }, "no status component \(name)")
        }
        // Strangers never reach the buffer.
        #expect(devices.isDisjoint(with: ["wmbus:EIE:01097274", "wmbus:LAS:00010206", "wmbus:LSE:91835132"]), "\(devices)")
        #expect(devices.allSatisfy { registry.devices.map(\.key).contains($0) || $0.hasPrefix("modbus:") || $0.hasPrefix("line:") }, "\(devices)")
    }

    @Test("the status table puts the worst first and names open alarms")
    func statusTable() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let s = DaemonStatus(
            gateway: "gw-1", building: "7", version: "0.1.0", startedAt: now.addingTimeInterval(-3600), demo: false, overall: .degraded,
            components: [
                .init(name: "uplink", kind: "uplink", health: .healthy, detail: "idle", counters: [:], updatedAt: now),
                .init(name: "wmbus:wmbus-1", kind: "wireless dongle", health: .degraded, detail: "dongle at /dev/x unplugged", counters: [:], updatedAt: now),
            ],
            buffer: .init(pending: 3, leased: 0, waitingForClock: 0, oldestPendingAgeSeconds: 90, evicted: 0, delivered: 10),
            uplink: nil,
            alarms: [.init(device: "wmbus:QDS:1", kind: "leak", priority: "critical", since: now, detail: "leak")])
        let text = StatusTable.render(s, now: now)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[1] == "overall: DEGRADED  up 60 min")
        #expect(lines[3].hasPrefix("COMPONENT"))
        #expect(lines[4].hasPrefix("wmbus:wmbus-1"))
        #expect(lines[5].hasPrefix("uplink"))
        #expect(text.contains("buffer: 3 pending, 0 in flight oldest 90 s"))
        #expect(text.contains("[critical] wmbus:QDS:1 leak"))
    }
}
