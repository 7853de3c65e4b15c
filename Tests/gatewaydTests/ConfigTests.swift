@testable import Agent
import CLISupport
import Drivers
import Foundation
import Logging
import Uplink
import Testing
@testable import gatewayd

/// A scratch directory holding a configuration and its companions, removed when the test ends.
final class ConfigScratch {
    let directory: URL
    var main: String { directory.appendingPathComponent("gatewayd.toml").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatewayd-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    @discardableResult
    func write(_ name: String, _ text: String, mode: Int = 0o644) throws -> String {
        let url = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
        return url.path
    }

    func load(checkPaths: Bool = true) -> Result<GatewayConfig, ConfigProblems> {
        var options = ConfigErrorTests.options
        options.checkPaths = checkPaths
        return GatewayConfig.load(path: main, options: options)
    }
}

/// A complete, valid configuration to vary in tests.
let baseConfig = """
    gateway_id = "gw-test-0001"
    building = "7"

    [[buses.mbus]]
    name = "line-1"
    port = "/dev/gatewayd/mbus-1"

    [[buses.modbus]]
    name = "rs485-1"
    port = "/dev/gatewayd/rs485-1"

    [[buses.modbus.devices]]
    name = "heat-pump"
    unit = 1
    profile = "kaisai-r290-monoblock"

    [uplink]
    transport = "https"
    endpoint = "http://127.0.0.1:18080/api/v1"
    insecure = true

    [registry]
    source = "portal"

    """

func loaded(_ result: Result<GatewayConfig, ConfigProblems>, sourceLocation: SourceLocation = #_sourceLocation) throws -> GatewayConfig {
    switch result {
    case .success(let config): return config
    case .failure(let f):
        Issue.record("did not load:\n\(f)", sourceLocation: sourceLocation)
        throw f
    }
}

func problems(_ result: Result<GatewayConfig, ConfigProblems>) -> [ConfigProblem] {
    if case .failure(let f) = result { return f.problems }
    return []
}

@Suite("configuration: shipped files")
struct ConfigShippedFilesTests {
    static let root = ConfigErrorTests.repositoryRoot

    @Test("the demo building's configuration loads with every path checked")
    func demoConfig() throws {
        let path = Self.root.appendingPathComponent("seeds/demo-building/gatewayd.toml").path
        let config = try loaded(GatewayConfig.load(path: path, options: ConfigErrorTests.options))
        #expect(config.gatewayID == "gw-demo-0007")
        #expect(config.building == "7")
        #expect(config.demo)
        #expect(config.buses.mbus.map(\.name) == ["mbus-line-1"])
        #expect(config.buses.mbus[0].source == .simulator(slavesFile: Self.root.appendingPathComponent("seeds/demo-building/mbus-slaves.json").path))
        #expect(config.buses.wmbus.first?.source == .simulator(replayFile: nil, interval: .seconds(2), loop: true))
        #expect(config.buses.modbus.first?.source == .simulator)
        #expect(config.buses.modbus.first?.devices.first?.profile.id == "kaisai-r290-monoblock")
        #expect(config.registry == .file(path: Self.root.appendingPathComponent("seeds/demo-building/registry.json").path))
        #expect(config.schedules.schedule(forBus: "mbus-line-1").interval == .seconds(120))
        #expect(config.schedules.schedule(forBus: "mbus-line-1").setDay == .yearly(month: 12, day: 31))
        #expect(config.schedules.schedule(forBus: "rs485-1").interval == .seconds(60))
        #expect(config.uplink.insecure)
        // The demo's keys file is checked out readable by others (public test keys); demo mode accepts that.
        #expect(config.keys.keys.count == 2)
        #expect(config.keysFile == Self.root.appendingPathComponent("seeds/demo-building/keys").path)
    }

    @Test("the annotated example loads when path checks are skipped (packaging)")
    func example() throws {
        let path = Self.root.appendingPathComponent("docs/gatewayd.example.toml").path
        let config = try loaded(GatewayConfig.load(path: path, options: ConfigLoadOptions(
            checkPaths: false, profileDirectories: ConfigErrorTests.options.profileDirectories)))
        #expect(config.buses.mbus.count == 2)
        #expect(config.buses.mbus[1].source == .endpoint(.tcp(host: "192.0.2.10", port: 10001)))
        #expect(config.buses.mbus[1].serial.baudRate == 9600)
        #expect(config.buses.modbus[0].devices[0].groups == ["fast", "energy"])
        #expect(config.buses.modbus[1].source == .endpoint(.tcp(host: "192.0.2.20", port: 502)))
        #expect(config.buffer.maxBytes == 512 << 20)
        #expect(config.uplink.auth == .bearer(tokenFile: "/etc/gatewayd/portal.token"))
        #expect(config.schedules.schedule(forBus: "line-2").setDay == .monthly(day: 1))
        #expect(config.schedules.schedule(forBus: "line-2").jitter == .seconds(30))
        #expect(config.schedules.schedule(forBus: "line-1").setDay == .yearly(month: 12, day: 31))
        // With path checks on, only the files of a real gateway are missing.
        let strict = problems(GatewayConfig.load(path: path, options: ConfigErrorTests.options))
        #expect(!strict.isEmpty)
        #expect(strict.allSatisfy { $0.message.contains("does not exist") || $0.message.contains("no group") })
    }

    @Test("a GATEWAYD_PROFILES that is not the profiles root stops config check and run, naming the path and the expected layout")
    func wrongProfilesRoot() throws {
        let exe = try #require(DecodeCommandTests.executable)
        let wmbus = Self.root.appendingPathComponent("profiles/wmbus").path
        func run(_ arguments: [String], profiles: String) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = exe
            p.arguments = arguments
            p.currentDirectoryURL = Self.root
            var environment = ProcessInfo.processInfo.environment
            environment["GATEWAYD_PROFILES"] = profiles
            p.environment = environment
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        // The wmbus directory itself, as one document used to say: refused, not decoded generically.
        let check = try run(["config", "check", "seeds/demo-building/gatewayd.toml"], profiles: wmbus)
        #expect(check.0 == 1)
        #expect(check.1.contains("GATEWAYD_PROFILES=\(wmbus)") && check.1.contains("holding wmbus/ and modbus/"), "\(check.1)")
        let daemon = try run(["run", "--config", "seeds/demo-building/gatewayd.toml", "--duration", "1"], profiles: "/nonexistent/profiles")
        #expect(daemon.0 != 0)
        #expect(daemon.1.contains("GATEWAYD_PROFILES=/nonexistent/profiles") && daemon.1.contains("nothing was started"), "\(daemon.1)")
        // The root is accepted.
        let good = try run(["config", "check", "seeds/demo-building/gatewayd.toml"], profiles: Self.root.appendingPathComponent("profiles").path)
        #expect(good.0 == 0, "\(good.1)")
    }

    @Test("config check exits 0 for a good file and 1 for a broken one, and --json parses")
    func commandLine() throws {
        let exe = try #require(DecodeCommandTests.executable)
        func run(_ arguments: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = exe
            p.arguments = arguments
            p.currentDirectoryURL = Self.root
            let out = Pipe()
            p.standardOutput = out
            p.standardError = Pipe()
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        let good = try run(["config", "check", "seeds/demo-building/gatewayd.toml"])
        #expect(good.0 == 0)
        #expect(good.1.hasPrefix("ok: seeds/demo-building/gatewayd.toml: gateway gw-demo-0007"))
        let scratch = try ConfigScratch()
        try scratch.write("gatewayd.toml", baseConfig.replacingOccurrences(of: "port = \"/dev/gatewayd/mbus-1\"",
                                                                          with: "port = \"/dev/gatewayd/mbus-1\"\nbaud = 2401"))
        let bad = try run(["config", "check", "--json", scratch.main])
        #expect(bad.0 == 1)
        let object = try #require(JSONSerialization.jsonObject(with: Data(bad.1.utf8)) as? [String: Any])
        #expect(object["ok"] as? Bool == false)
        let list = try #require(object["problems"] as? [[String: Any]])
        #expect(list.count == 1)
        #expect(list.first?["line"] as? Int == 7)
        #expect(list.first?["field"] as? String == "buses.mbus[0].baud")
    }
}

@Suite("configuration: loading")
struct ConfigLoadingTests {
    @Test("the base configuration loads with the documented defaults")
    func defaults() throws {
        let scratch = try ConfigScratch()
        try scratch.write("gatewayd.toml", baseConfig)
        let config = try loaded(scratch.load())
        let line = try #require(config.buses.mbus.first)
        #expect(line.source == .endpoint(.serial(path: "/dev/gatewayd/mbus-1")))
        #expect(line.serial == SerialSettings(baudRate: 2400, parity: .even, stopBits: 1))
        #expect(line.addressing == .secondary)
        #expect(line.lineOptions.retries == 2)
        #expect(config.buses.modbus[0].options.responseTimeout == .seconds(1))
        #expect(config.buffer == GatewayConfig.Buffer(path: "/var/lib/gatewayd/buffer.sqlite", maxReadings: 2_000_000, maxBytes: nil))
        #expect(config.metrics == GatewayConfig.Metrics(enabled: true, host: "127.0.0.1", port: 9464))
        #expect(config.status.path == "/run/gatewayd/status.sock")
        #expect(config.registry == .portal(cacheFile: "/var/lib/gatewayd/registry.json", refreshInterval: .seconds(3600)))
        #expect(config.schedules.defaults.interval == .seconds(900))
        #expect(config.keys.keys.isEmpty)
        #expect(config.sources == [scratch.main])
    }

    @Test("check and run agree on the uplink: what loads also starts, insecure without [uplink.auth] included")
    func uplinkThatLoadsAlsoStarts() async throws {
        let variants: [(String, String)] = [
            ("insecure, no auth", baseConfig),
            ("insecure, token", baseConfig + "\n[uplink.auth]\nbearer_token_file = \"token\"\n"),
            ("https, token", baseConfig.replacingOccurrences(of: "http://127.0.0.1:18080/api/v1", with: "https://portal.example/api/v1")
                .replacingOccurrences(of: "insecure = true", with: "insecure = false") + "\n[uplink.auth]\nbearer_token_file = \"token\"\n"),
            ("plain http without insecure", baseConfig.replacingOccurrences(of: "insecure = true", with: "insecure = false")),
            ("https, no auth, not insecure", baseConfig.replacingOccurrences(of: "http://", with: "https://")
                .replacingOccurrences(of: "insecure = true", with: "insecure = false")),
        ]
        var started = 0
        for (name, text) in variants {
            let scratch = try ConfigScratch()
            try scratch.write("token", "secret\n", mode: 0o600)
            try scratch.write("gatewayd.toml", text)
            guard case .success(let config) = scratch.load() else { continue }
            let demo = try await DemoBuilding.start(config: config, configPath: scratch.main, logger: Logger(label: "test"))
            defer { demo.stop() }
            do {
                let transport = try UplinkWiring.transport(config: config, demo: demo, logger: Logger(label: "test"))
                await transport.shutdown()
                started += 1
            } catch {
                Issue.record("\(name): config check passes it, but the uplink does not start: \(error)")
            }
        }
        // The three good ones load and start; the two broken ones are refused by the check itself.
        #expect(started == 3)
    }

    @Test("drop-ins apply in byte order: later values win, buses merge by name")
    func dropIns() throws {
        let scratch = try ConfigScratch()
        try scratch.write("gatewayd.toml", baseConfig)
        // "10-" sorts before "9-": lexical, not numeric.
        try scratch.write("gatewayd.toml.d/9-late.toml", """
            building = "8"
            [[buses.mbus]]
            name = "line-1"
            port = "tcp://192.0.2.10:10001"
            baud = 9600
            """)
        try scratch.write("gatewayd.toml.d/10-early.toml", """
            building = "9"
            [[buses.mbus]]
            name = "line-1"
            port = "/dev/gatewayd/other"
            [[buses.mbus]]
            name = "line-2"
            port = "/dev/gatewayd/mbus-2"
            [schedules]
            interval = "5m"
            """)
        try scratch.write("gatewayd.toml.d/50-disable.toml", """
            [[buses.modbus]]
            name = "rs485-1"
            enabled = false
            port = "/dev/gatewayd/rs485-1"
            devices = [{ unit = 1, profile = "generic-sg-ready" }]
            """)
        try scratch.write("gatewayd.toml.d/README", "not a drop-in")
        let config = try loaded(scratch.load())
        #expect(config.building == "8")
        #expect(config.buses.mbus.map(\.name) == ["line-1", "line-2"])
        #expect(config.buses.mbus[0].source == .endpoint(.tcp(host: "192.0.2.10", port: 10001)))
        // Replaced whole by 9-late's entry, the last one read.
        #expect(config.buses.mbus[0].serial.baudRate == 9600)
        #expect(config.buses.modbus.isEmpty)
        #expect(config.schedules.defaults.interval == .seconds(300))
        #expect(config.sources.map { $0.split(separator: "/").last.map(String.init) ?? "" }
                == ["gatewayd.toml", "10-early.toml", "50-disable.toml", "9-late.toml"])
    }

    @Test("a problem in a drop-in names the drop-in's file and line")
    func dropInProblemPlace() throws {
        let scratch = try ConfigScratch()
        try scratch.write("gatewayd.toml", baseConfig)
        try scratch.write("gatewayd.toml.d/20-site.toml", "\n\n[schedules]\njitter = \"2h\"\n")
        let list = problems(scratch.load())
        #expect(list.map(\.description) == [
            "\(scratch.directory.path)/gatewayd.toml.d/20-site.toml:4: schedules.jitter: 2h is out of range; expected 0s to 1h",
        ])
    }

    @Test("keys come from a private keys file; a readable one is refused with the chmod to run")
    func keysFile() throws {
        let scratch = try ConfigScratch()
        let keys = try scratch.write("keys", "# id key\n12345678 000102030405060708090A0B0C0D0E0F\n87654321 = 0F0E0D0C0B0A09080706050403020100\n", mode: 0o600)
        try scratch.write("gatewayd.toml", "keys_file = \"keys\"\n" + baseConfig)
        let config = try loaded(scratch.load())
        #expect(config.keysFile == keys)
        #expect(config.keys.keys.count == 2)
        #expect(config.keys.key(for: IdentificationNumber("12345678")!) == WMBusKey(hex: "000102030405060708090A0B0C0D0E0F"))
        #expect(!config.description.contains("000102"))

        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: keys)
        let list = problems(scratch.load())
        #expect(list.count == 1)
        #expect(list.first?.message == "\(keys) has mode 0640, so other users can read the meter keys; run: chmod 600 \(keys)")
        #expect(list.first?.line == 1)
        #expect(list.first?.field == "keys_file")

        // Only a demo configuration (published test keys) may keep its keys file readable by others.
        try scratch.write("gatewayd.toml", "keys_file = \"keys\"\ndemo = true\n" + baseConfig)
        #expect(try loaded(scratch.load()).keys.keys.count == 2)
    }

    @Test("a Modbus line's fairness and a device's service keys; a profile family resolves to its members")
    func modbusFairnessAndFamily() throws {
        let scratch = try ConfigScratch()
        var text = baseConfig.replacingOccurrences(of: "port = \"/dev/gatewayd/rs485-1\"\n",
                                                   with: "port = \"/dev/gatewayd/rs485-1\"\npace = \"50ms\"\nconnect_pause = \"200ms\"\nbackoff = \"2m\"\nmax_backoff = \"1h\"\n")
        text = text.replacingOccurrences(of: "profile = \"kaisai-r290-monoblock\"\n",
                                         with: "profile = \"kaisai-r290-monoblock\"\nservice_interval_hours = 3000\nservice_last_hours = 9000\n\n[[buses.modbus.devices]]\nname = \"lux\"\nunit = 2\nprofile = \"luxtronik-2-modbus\"\n")
        try scratch.write("gatewayd.toml", text)
        let config = try loaded(scratch.load(checkPaths: false))
        let line = try #require(config.buses.modbus.first)
        #expect(line.pace == .milliseconds(50) && line.options.connectPause == .milliseconds(200))
        #expect(line.backoff == .seconds(120) && line.maxBackoff == .seconds(3600))
        #expect(line.devices[0].serviceIntervalHours == 3000 && line.devices[0].serviceLastHours == 9000)
        #expect(line.devices[0].candidates.map(\.id) == ["kaisai-r290-monoblock"])
        #expect(line.devices[1].candidates.map(\.id) == ["luxtronik-2-modbus-v3-90", "luxtronik-2-modbus-v3-92"])

        // A profile without run hours cannot plan an inspection; a max_backoff shorter than backoff is refused.
        try scratch.write("gatewayd.toml", baseConfig.replacingOccurrences(of: "profile = \"kaisai-r290-monoblock\"\n",
                                                                           with: "profile = \"nibe-s-series\"\nservice_interval_hours = 3000\n")
                                              .replacingOccurrences(of: "port = \"/dev/gatewayd/rs485-1\"\n", with: "port = \"/dev/gatewayd/rs485-1\"\nbackoff = \"10m\"\nmax_backoff = \"1m\"\n"))
        let list = problems(scratch.load(checkPaths: false)).map(\.message)
        #expect(list.contains("profile nibe-s-series names no run-hours register (\"service\"), so no inspection can be planned from it"), "\(list)")
        #expect(list.contains { $0.hasPrefix("is shorter than backoff") }, "\(list)")
    }

    @Test("the same device through a symlink is the same port")
    func symlinkedPort() throws {
        let scratch = try ConfigScratch()
        let device = try scratch.write("ttyUSB0", "")
        let link = scratch.directory.appendingPathComponent("by-id-adapter").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: device)
        try scratch.write("gatewayd.toml", baseConfig
            .replacingOccurrences(of: "/dev/gatewayd/mbus-1", with: device)
            .replacingOccurrences(of: "/dev/gatewayd/rs485-1", with: link))
        let list = problems(scratch.load())
        #expect(list.count == 1)
        #expect(list.first?.field == "buses.modbus[0].port")
        #expect(list.first?.message.contains("is already used by bus \"line-1\" (gatewayd.toml:6)") == true)
    }

    @Test("problems come out sorted by file, then line, and all are reported at once")
    func ordering() throws {
        let scratch = try ConfigScratch()
        try scratch.write("gatewayd.toml", baseConfig
            .replacingOccurrences(of: "unit = 1", with: "unit = 0")
            .replacingOccurrences(of: "building = \"7\"", with: "building = 7")
            .replacingOccurrences(of: "transport = \"https\"", with: "transport = \"http\""))
        let list = problems(scratch.load())
        #expect(list.map(\.line) == [2, 14, 18])
        #expect(list.map(\.field) == ["building", "buses.modbus[0].devices[0].unit", "uplink.transport"])
        #expect(list[2].message == "\"http\" is not an uplink transport; expected one of https, mqtt (did you mean \"https\"?)")
    }
}

@Suite("configuration: source lines")
struct TOMLSourceMapTests {
    @Test("tables, arrays of tables (nested), dotted keys, inline tables and multi-line values")
    func lines() {
        let text = """
            # comment with [brackets] and "quotes"
            a = 1
            b.c.d = "x"   # dotted
            [[buses.modbus]]
            name = "one"
            [[buses.modbus.devices]]
            unit = 1
            [[buses.modbus.devices]]
            unit = 2
            [[buses.modbus]]
            name = '''two
            lines'''
            list = [
              1,
              { x = 1, y = [2,
                3] },
            ]
            [[buses.modbus.devices]]
            "quoted key" = true
            [buses.modbus.extra]
            z = \"\"\"
            ] not a header
            \"\"\"
            after = 1
            """
        let map = TOMLSourceMap(text: text)
        #expect(map.line(of: "a") == 2)
        #expect(map.line(of: "b.c.d") == 3)
        #expect(map.line(of: "b") == 3)
        #expect(map.line(of: "buses.modbus[0]") == 4)
        #expect(map.line(of: "buses.modbus[0].devices[1].unit") == 9)
        #expect(map.line(of: "buses.modbus[1].name") == 11)
        #expect(map.line(of: "buses.modbus[1].list[1].x") == 15)
        #expect(map.line(of: "buses.modbus[1].list[1].y[1]") == 16)
        #expect(map.line(of: "buses.modbus[1].devices[0]") == 18)
        #expect(map.line(of: "buses.modbus[1].devices[0].\"quoted key\"") == 19)
        #expect(map.line(of: "buses.modbus[1].extra.z") == 21)
        #expect(map.line(of: "buses.modbus[1].extra.after") == 24)
        #expect(map.line(of: "] not a header") == nil)
    }

    @Test("durations and sizes as written in the file")
    func units() {
        #expect(DurationText.parse("1h30m") == .seconds(5400))
        #expect(DurationText.parse("500ms") == .milliseconds(500))
        #expect(DurationText.parse("2d") == .seconds(172_800))
        #expect(DurationText.parse("15") == nil)
        #expect(DurationText.parse("1.5h") == nil)
        #expect(DurationText.format(.seconds(5400)) == "1h30m")
        #expect(DurationText.format(.milliseconds(1500)) == "1500ms")
        #expect(ConfigDecoder.size("512MiB") == 512 << 20)
        #expect(ConfigDecoder.size("1 GB") == 1_000_000_000)
        #expect(ConfigDecoder.size("12 parsecs") == nil)
        #expect(closestMatch("baudrate", in: ["name", "port", "baud"]) == "baud")
        #expect(closestMatch("intervall", in: ["interval", "jitter"]) == "interval")
        #expect(closestMatch("zzz", in: ["interval", "jitter"]) == nil)
    }
}

@Suite("configuration: reload diff")
struct ConfigDiffTests {
    func load(_ text: String) throws -> GatewayConfig {
        let scratch = try ConfigScratch()
        try scratch.write("gatewayd.toml", text)
        return try loaded(scratch.load())
    }

    @Test("an identical file changes nothing")
    func same() throws {
        let a = try load(baseConfig), b = try load(baseConfig)
        #expect(a.changes(to: b).isEmpty)
        #expect(a.changes(to: b).description == "nothing")
    }

    @Test("only the changed bus and sections are reported")
    func changed() throws {
        let a = try load(baseConfig)
        let b = try load(baseConfig
            .replacingOccurrences(of: "port = \"/dev/gatewayd/mbus-1\"", with: "port = \"/dev/gatewayd/mbus-1\"\nbaud = 9600")
            .replacingOccurrences(of: "insecure = true", with: "insecure = true\nbatch_readings = 50")
            + "\n[[buses.wmbus]]\nname = \"wmbus-1\"\ntype = \"im871a\"\ndevice = \"/dev/gatewayd/im871a-0\"\n")
        let c = a.changes(to: b)
        #expect(c.sections == [.buses, .uplink])
        #expect(c.changedBuses == ["line-1"])
        #expect(c.addedBuses == ["wmbus-1"])
        #expect(c.removedBuses.isEmpty)
        #expect(c.description == "buses (added wmbus-1; changed line-1), uplink")
        let back = b.changes(to: a)
        #expect(back.removedBuses == ["wmbus-1"])
    }

    @Test("reload names what it does not apply: uplink, buffer, metrics, status need a restart; buses and keys do not")
    func restartNeeded() throws {
        let a = try load(baseConfig)
        let uplink = try load(baseConfig.replacingOccurrences(of: "insecure = true", with: "insecure = true\nbatch_readings = 50"))
        #expect(a.changes(to: uplink).needsRestart == [.uplink])
        #expect(a.changes(to: uplink).appliedNow.isEmpty)
        let buses = try load(baseConfig.replacingOccurrences(of: "kaisai-r290-monoblock", with: "nibe-s-series")
                             + "\n[schedules.bus.line-1]\ninterval = \"1h\"\n")
        #expect(buses.changes(to: a).needsRestart.isEmpty)
        #expect(a.changes(to: buses).appliedNow == [.buses, .schedules])
        var moved = a
        moved.buffer.path = "/var/lib/gatewayd/other.sqlite"
        moved.metrics.enabled.toggle()
        moved.status.path = "/run/gatewayd/other.sock"
        #expect(a.changes(to: moved).needsRestart == [.buffer, .metrics, .status])
        // The silence policy is the pipeline's, set at start: a changed [alarms] waits for a restart, and says so.
        let alarms = try load(baseConfig + "\n[alarms]\nnot_heard_minimum = \"2h\"\n")
        #expect(alarms.alarms.notHeardMinimum == .seconds(7200))
        #expect(a.changes(to: alarms).needsRestart == [.alarms] && a.changes(to: alarms).appliedNow.isEmpty)
        var identity = a
        identity.gatewayID = "gw-other"
        #expect(a.changes(to: identity).needsRestart == [.identity])
    }

    @Test("a Modbus device's profile or a schedule counts as a change")
    func deeper() throws {
        let a = try load(baseConfig)
        let b = try load(baseConfig.replacingOccurrences(of: "kaisai-r290-monoblock", with: "nibe-s-series")
                         + "\n[schedules.bus.line-1]\ninterval = \"1h\"\n")
        let c = a.changes(to: b)
        #expect(c.sections == [.buses, .schedules])
        #expect(c.changedBuses == ["rs485-1"])
    }
}
