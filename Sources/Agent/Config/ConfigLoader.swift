import Drivers
import Gateway
import TOMLKit
import Uplink
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How strictly `GatewayConfig.load` checks the machine it runs on.
package struct ConfigLoadOptions: Sendable {
    /// Check that files the daemon reads at start exist (keys, registry, token, certificates, simulator
    /// data), that the status group exists and that the buffer's directory exists. Off for packaging,
    /// where the configuration is checked on a machine that is not the gateway. Permissions of files
    /// that do exist, and Modbus profiles, are checked either way.
    package var checkPaths = true
    /// Where Modbus profile names are looked up, after the file's own `profiles_dir`.
    package var profileDirectories: [String] = ConfigLoadOptions.defaultProfileDirectories

    /// Why `$GATEWAYD_PROFILES` is unusable, when it is set and is not a profiles root: a problem of the
    /// configuration as the daemon would run it, so `config check` and `gatewayd run` both refuse it.
    package var profileRootProblem: String?

    /// `$GATEWAYD_PROFILES/modbus` (when set and usable), ./profiles/modbus, the installed copy.
    package static var defaultProfileDirectories: [String] {
        (try? ProfileRoot.modbusSearchPath()) ?? ["profiles/modbus", ProfileRoot.installed + "/modbus"]
    }

    package init(checkPaths: Bool = true, profileDirectories: [String] = ConfigLoadOptions.defaultProfileDirectories,
         environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.checkPaths = checkPaths
        self.profileDirectories = profileDirectories
        do { try ProfileRoot.check(environment: environment) } catch { profileRootProblem = error.message }
    }
}

extension GatewayConfig {
    /// Reads `path` and the `*.toml` files of `dropInDirectory` (default: `path` + ".d") in lexical
    /// order, merges them and validates the result. The daemon calls this at start and on SIGHUP; on
    /// failure it keeps the configuration it has and logs the problems.
    package static func load(path: String = defaultPath, dropInDirectory: String? = nil,
                     options: ConfigLoadOptions = ConfigLoadOptions()) -> Result<GatewayConfig, ConfigProblems> {
        let sink = ProblemSink()
        let dropIns = dropInFiles(in: dropInDirectory ?? path + ".d")
        let files = [path] + dropIns
        sink.fileOrder = files

        var tables: [ConfigTable] = []
        for file in files {
            if let table = parseFile(file, sink: sink, isMain: file == path) { tables.append(table) }
        }
        guard sink.problems.isEmpty, var root = tables.first else {
            return .failure(ConfigProblems(problems: sink.sorted, files: files))
        }
        for overlay in tables.dropFirst() { ConfigTree.merge(overlay, into: &root) }

        if let problem = options.profileRootProblem {
            sink.add(ConfigProblem(file: path, line: nil, field: "", message: problem))
        }
        var decoder = ConfigDecoder(sink: sink, options: options, sources: files)
        let config = decoder.decode(root)
        if let config, sink.problems.isEmpty { return .success(config) }
        return .failure(ConfigProblems(problems: sink.sorted, files: files))
    }

    /// The drop-in files of `directory`: `*.toml`, sorted by name byte for byte. None if it does not exist.
    package static func dropInFiles(in directory: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { $0.hasSuffix(".toml") && !$0.hasPrefix(".") }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            .map { directory.hasSuffix("/") ? directory + $0 : directory + "/" + $0 }
    }

    private static func parseFile(_ file: String, sink: ProblemSink, isMain: Bool) -> ConfigTable? {
        guard let data = FileManager.default.contents(atPath: file) else {
            var info = stat()
            let message: String
            if stat(file, &info) != 0 {
                message = isMain ? "no such file; start from docs/gatewayd.example.toml" : "no such file"
            } else if (info.st_mode & S_IFMT) == S_IFDIR {
                message = "is a directory; give the configuration file"
            } else {
                message = "cannot read the file; check that this user may read it"
            }
            sink.add(ConfigProblem(file: file, line: nil, field: "", message: message))
            return nil
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            sink.add(ConfigProblem(file: file, line: nil, field: "", message: "is not UTF-8 text"))
            return nil
        }
        do {
            let table = try TOMLTable(string: text)
            return ConfigTree.build(table, file: file, map: TOMLSourceMap(text: text))
        } catch let error as TOMLParseError {
            sink.add(ConfigProblem(file: file, line: error.source.begin.line, field: "",
                                   message: "TOML syntax: \(error.description) (column \(error.source.begin.column))"))
            return nil
        } catch {
            sink.add(ConfigProblem(file: file, line: nil, field: "", message: "TOML syntax: \(error)"))
            return nil
        }
    }
}

/// Turns the merged tree into a `GatewayConfig`, reporting every problem it finds on the way (it does
/// not stop at the first).
package struct ConfigDecoder {
    package let sink: ProblemSink
    package let options: ConfigLoadOptions
    package let sources: [String]
    /// `profiles_dir` from the file, searched before the default directories.
    private var profileDirectories: [String] = []
    private var demo = false
    private var gatewayID: String?

    package init(sink: ProblemSink, options: ConfigLoadOptions, sources: [String]) {
        self.sink = sink
        self.options = options
        self.sources = sources
    }

    package static let mbusBaudRates = [300, 600, 1200, 2400, 4800, 9600, 19200, 38400]
    package static let namePattern = "letters, digits, '-', '_' and '.', up to 40 characters, starting with a letter or digit"

    package mutating func decode(_ root: ConfigTable) -> GatewayConfig? {
        var r = TableReader(root, sink)
        let gatewayID = r.nonEmptyString("gateway_id", required: "give the gateway's id at the portal, e.g. gateway_id = \"gw-0001\"")
        if let (id, origin) = gatewayID, !Self.isIdentifier(id, maximum: 64) {
            sink.add(origin, "\"\(id)\" is not a gateway id; expected \(Self.namePattern.replacing("40", with: "64"))")
        }
        self.gatewayID = gatewayID?.0
        let building = r.nonEmptyString("building", required: "give the building's id in the registry, e.g. building = \"7\"")
        demo = r.bool("demo") ?? false
        if let (dir, origin) = r.nonEmptyString("profiles_dir") {
            let resolved = resolve(dir, origin)
            profileDirectories = [resolved]
            if options.checkPaths && !isDirectory(resolved) {
                sink.add(origin, "\(resolved) is not a directory; give the directory holding the Modbus profiles (*.json)")
            }
        }
        let keysFile = r.nonEmptyString("keys_file").map { ($0.0, $0.1, resolve($0.0, $0.1)) }
        let keys = keysFile.flatMap { readKeys(path: $0.2, origin: $0.1) } ?? WMBusKeyring()

        let buses = decodeBuses(r.table("buses"), root: root)
        let schedules = decodeSchedules(r.table("schedules"), buses: buses, root: root)
        let buffer = decodeBuffer(r.table("buffer"), root: root)
        let uplink = decodeUplink(r.table("uplink"), root: root)
        let registry = decodeRegistry(r.table("registry"), root: root, building: building?.0)
        let metrics = decodeMetrics(r.table("metrics"), root: root)
        let status = decodeStatus(r.table("status"), root: root)
        let alarms = decodeAlarms(r.table("alarms"))
        r.finish()

        guard let gatewayID, let building, let buses, let schedules, let buffer, let uplink, let registry, let metrics,
              let status, let alarms, sink.problems.isEmpty else { return nil }
        return GatewayConfig(gatewayID: gatewayID.0, building: building.0, demo: demo, buses: buses, schedules: schedules,
                             buffer: buffer, uplink: uplink, registry: registry, metrics: metrics, status: status,
                             keys: keys, keysFile: keysFile?.2, sources: sources, alarms: alarms)
    }

    // MARK: - Buses

    /// Where each serial device and TCP endpoint is used, for "the same port on two buses".
    private struct PortUse {
        package var bus: String
        package var origin: ConfigOrigin
    }

    private mutating func decodeBuses(_ table: ConfigTable?, root: ConfigTable) -> GatewayConfig.Buses? {
        guard let table else {
            sink.add(ConfigOrigin(file: root.origin.file, line: 1, path: "buses"),
                     "no buses; add at least one [[buses.mbus]], [[buses.wmbus]] or [[buses.modbus]]")
            return nil
        }
        let before = sink.problems.count
        var r = TableReader(table, sink)
        let mbusTables = r.tables("mbus")
        let wmbusTables = r.tables("wmbus")
        let modbusTables = r.tables("modbus")
        r.finish()

        var names: [String: ConfigOrigin] = [:]
        var ports: [String: PortUse] = [:]
        var deviceNames: [String: ConfigOrigin] = [:]
        var buses = GatewayConfig.Buses()
        var ok = true
        for t in mbusTables {
            if let bus = decodeMBusLine(t, names: &names, ports: &ports) { buses.mbus.append(contentsOf: bus) } else { ok = false }
        }
        for t in wmbusTables {
            if let bus = decodeWMBusDongle(t, names: &names, ports: &ports) { buses.wmbus.append(contentsOf: bus) } else { ok = false }
        }
        for t in modbusTables {
            if let bus = decodeModbusLine(t, names: &names, ports: &ports, deviceNames: &deviceNames) {
                buses.modbus.append(contentsOf: bus)
            } else {
                ok = false
            }
        }
        if ok && buses.isEmpty && sink.problems.count == before {
            sink.add(table.origin, "no enabled buses; add at least one [[buses.mbus]], [[buses.wmbus]] or [[buses.modbus]]")
            return nil
        }
        return ok ? buses : nil
    }

    /// The bus name: required, well-formed, unique across all kinds of bus.
    private func busName(_ r: inout TableReader, names: inout [String: ConfigOrigin]) -> String? {
        guard let (name, origin) = r.nonEmptyString("name", required: "give the bus a name, e.g. name = \"line-1\"") else { return nil }
        guard Self.isIdentifier(name, maximum: 40) else {
            sink.add(origin, "\"\(name)\" is not a usable name; expected \(Self.namePattern)")
            return nil
        }
        if let first = names[name] {
            sink.add(origin, "\"\(name)\" is already the name of \(Self.pathOfTable(first.path)) (\(Self.place(first))); bus names must be unique")
            return nil
        }
        names[name] = ConfigOrigin(file: origin.file, line: origin.line, path: r.origin.path)
        return name
    }

    /// Claims a serial device or TCP endpoint for `bus`; reports it if another bus has it.
    private func claim(_ key: String, display: String, bus: String, origin: ConfigOrigin, ports: inout [String: PortUse]) -> Bool {
        var identity = key
        var both = ""
        if options.checkPaths, key.hasPrefix("/"), let real = realPath(key) {
            identity = real
            both = real == key ? "" : " (\(key) is \(real))"
        }
        if let other = ports[identity] {
            sink.add(origin, "\(display) is already used by bus \"\(other.bus)\" (\(Self.place(other.origin)))\(both); "
                     + "one port can serve only one bus")
            return false
        }
        ports[identity] = PortUse(bus: bus, origin: origin)
        return true
    }

    private mutating func decodeMBusLine(_ t: ConfigTable, names: inout [String: ConfigOrigin],
                                         ports: inout [String: PortUse]) -> [GatewayConfig.MBusLineConfig]? {
        let before = sink.problems.count
        var r = TableReader(t, sink)
        let name = busName(&r, names: &names)
        let enabled = r.bool("enabled") ?? true
        let port = r.nonEmptyString("port")
        let simulator = r.bool("simulator") ?? false
        let slaves = r.nonEmptyString("slaves")
        let baud = r.integer("baud", in: 1...1_000_000)
        let parity: (SerialSettings.Parity, ConfigOrigin)? = r.choice("parity", "a parity")
        let stopBits = r.integer("stop_bits", in: 1...2)
        let addressing: (GatewayConfig.MBusLineConfig.Addressing, ConfigOrigin)? = r.choice("addressing", "an addressing mode")
        let allowance = r.duration("adapter_allowance", in: .zero ... .seconds(2))
        let retries = r.integer("retries", in: 0...10)
        let lockWait = r.duration("lock_wait", in: .zero ... .seconds(300))
        let maxTelegrams = r.integer("max_telegrams", in: 1...64)
        r.finish()

        if let (b, origin) = baud, !Self.mbusBaudRates.contains(b) {
            sink.add(origin, "\(b) is not a standard M-Bus baud rate; expected one of \(Self.mbusBaudRates.map(String.init).joined(separator: ", "))")
        }
        var source: GatewayConfig.MBusLineConfig.Source?
        switch (port, simulator) {
        case (nil, false):
            r.missing("port", "give the line's serial device (/dev/serial/by-id/…) or tcp://host:port")
        case (let (p, origin)?, true):
            sink.add(origin, "a line has either a port or simulator = true, not both (port is \"\(p)\")")
        case (let (p, origin)?, false):
            if let endpoint = try? BusEndpoint(p) {
                source = .endpoint(endpoint)
                if enabled, let name {
                    _ = claim(endpoint.description, display: p, bus: name, origin: origin, ports: &ports)
                }
            } else {
                sink.add(origin, "\"\(p)\" is not a port; expected an absolute device path (/dev/serial/by-id/…) or tcp://host:port")
            }
        case (nil, true):
            if !demo { sink.add(fieldOrigin(t, "simulator"), "simulators run in demo mode only; set demo = true at the top, or give a port") }
            if let (s, origin) = slaves {
                let path = resolve(s, origin)
                if options.checkPaths && !isFile(path) {
                    sink.add(origin, "\(path) does not exist; give the simulator's slave file (e.g. seeds/demo-building/mbus-slaves.json)")
                }
                source = .simulator(slavesFile: path)
            } else {
                r.missing("slaves", "a simulated line needs its slave population, e.g. slaves = \"mbus-slaves.json\"")
            }
        }
        if slaves != nil && !simulator, let (_, origin) = slaves {
            sink.add(origin, "slaves is for simulated lines only (simulator = true)")
        }
        guard sink.problems.count == before, let name, let source else { return nil }
        guard enabled else { return [] }
        let serial = SerialSettings(baudRate: baud?.0 ?? 2400, parity: parity?.0 ?? .even, stopBits: stopBits?.0 ?? 1)
        return [GatewayConfig.MBusLineConfig(
            name: name, source: source, serial: serial, addressing: addressing?.0 ?? .secondary,
            adapterAllowance: allowance?.0 ?? .milliseconds(30), retries: retries?.0 ?? 2,
            lockWait: lockWait?.0 ?? .seconds(10), maximumTelegrams: maxTelegrams?.0 ?? 16)]
    }

    private mutating func decodeWMBusDongle(_ t: ConfigTable, names: inout [String: ConfigOrigin],
                                           ports: inout [String: PortUse]) -> [GatewayConfig.WMBusDongleConfig]? {
        typealias Dongle = GatewayConfig.WMBusDongleConfig
        let before = sink.problems.count
        var r = TableReader(t, sink)
        let name = busName(&r, names: &names)
        let enabled = r.bool("enabled") ?? true
        let type: (Dongle.DongleType, ConfigOrigin)? = r.choice("type", "a supported receiver",
                                                               required: "give the receiver: im871a, amb8465, iu891a, cul, rtlwmbus or auto")
        let linkMode: (Dongle.LinkMode, ConfigOrigin)? = r.choice("link_mode", "a wireless M-Bus link mode")
        let device = r.nonEmptyString("device")
        let command = r.nonEmptyString("command")
        let simulator = r.bool("simulator") ?? false
        let replay = r.nonEmptyString("replay")
        let simulatorInterval = r.duration("simulator_interval", in: .milliseconds(1)...(.seconds(3600)))
        let simulatorLoop = r.bool("simulator_loop")
        r.finish()

        var source: Dongle.Source?
        if simulator {
            if !demo { sink.add(fieldOrigin(t, "simulator"), "simulators run in demo mode only; set demo = true at the top, or give a device") }
            for (key, value) in [("device", device), ("command", command)] {
                if let (_, origin) = value { sink.add(origin, "a simulated dongle has no \(key); remove it or set simulator = false") }
            }
            var replayFile: String?
            if let (file, origin) = replay {
                replayFile = resolve(file, origin)
                if options.checkPaths && !isFile(replayFile!) { sink.add(origin, "\(replayFile!) does not exist; give a file of telegrams to replay") }
            }
            source = .simulator(replayFile: replayFile, interval: simulatorInterval?.0 ?? .seconds(2), loop: simulatorLoop ?? true)
        } else {
            if let (_, origin) = replay { sink.add(origin, "replay is for simulated dongles only (simulator = true)") }
            if let (_, origin) = simulatorInterval { sink.add(origin, "simulator_interval is for simulated dongles only (simulator = true)") }
            if simulatorLoop != nil { sink.add(fieldOrigin(t, "simulator_loop"), "simulator_loop is for simulated dongles only (simulator = true)") }
            if let (kind, _) = type {
                if kind == .rtlwmbus {
                    if let (_, origin) = device {
                        sink.add(origin, "rtlwmbus reads rtl_wmbus's output, not a device; give command = \"rtl_sdr … | rtl_wmbus\" or leave it out for the default")
                    }
                    let mode = linkMode?.0 ?? .c1t1
                    source = .command(command?.0 ?? Self.defaultRTLCommand(mode))
                } else {
                    if let (_, origin) = command { sink.add(origin, "command is for type = \"rtlwmbus\" only; a \(kind.rawValue) dongle takes device = \"/dev/…\"") }
                    if let (d, origin) = device {
                        if d.hasPrefix("/") {
                            source = .device(d)
                            if enabled, let name { _ = claim(d, display: d, bus: name, origin: origin, ports: &ports) }
                        } else {
                            sink.add(origin, "\"\(d)\" is not a device path; expected an absolute path such as /dev/gatewayd/im871a-0 (see udev/)")
                        }
                    } else {
                        r.missing("device", "give the dongle's serial device, e.g. device = \"/dev/gatewayd/im871a-0\"")
                    }
                }
            }
        }
        guard sink.problems.count == before, let name, let type, let source else { return nil }
        guard enabled else { return [] }
        return [Dongle(name: name, type: type.0, linkMode: linkMode?.0 ?? .c1t1, source: source)]
    }

    package static func defaultRTLCommand(_ mode: GatewayConfig.WMBusDongleConfig.LinkMode) -> String {
        let frequency = mode == .s1 ? "868.3M" : "868.95M"
        return "rtl_sdr -f \(frequency) -s 1.6e6 - 2>/dev/null | rtl_wmbus"
    }

    private mutating func decodeModbusLine(_ t: ConfigTable, names: inout [String: ConfigOrigin], ports: inout [String: PortUse],
                                           deviceNames: inout [String: ConfigOrigin]) -> [GatewayConfig.ModbusLineConfig]? {
        let before = sink.problems.count
        var r = TableReader(t, sink)
        let name = busName(&r, names: &names)
        let enabled = r.bool("enabled") ?? true
        let port = r.nonEmptyString("port")
        let simulator = r.bool("simulator") ?? false
        let baud = r.integer("baud", in: 1...1_000_000)
        let parity: (SerialSettings.Parity, ConfigOrigin)? = r.choice("parity", "a parity")
        let stopBits = r.integer("stop_bits", in: 1...2)
        let rs485 = r.bool("rs485")
        let responseTimeout = r.duration("response_timeout", in: .milliseconds(10) ... .seconds(60))
        let byteTimeout = r.duration("byte_timeout", in: .milliseconds(1) ... .seconds(10))
        let retries = r.integer("retries", in: 0...10)
        let lockWait = r.duration("lock_wait", in: .zero ... .seconds(300))
        let pace = r.duration("pace", in: .zero ... .seconds(60))
        let connectPause = r.duration("connect_pause", in: .zero ... .seconds(60))
        let backoff = r.duration("backoff", in: .seconds(1) ... .seconds(86_400))
        let maxBackoff = r.duration("max_backoff", in: .seconds(1) ... .seconds(7 * 86_400))
        let deviceTables = r.tables("devices")
        r.finish()

        if let (b, origin) = baud, !SerialSettings.supportedBaudRates.contains(b) {
            sink.add(origin, "\(b) is not a serial baud rate; expected one of \(SerialSettings.supportedBaudRates.map(String.init).joined(separator: ", "))")
        }
        var isTCP = simulator
        var source: GatewayConfig.ModbusLineConfig.Source?
        let serial = SerialSettings(baudRate: baud?.0 ?? 9600, parity: parity?.0 ?? .even, stopBits: stopBits?.0 ?? 1)
        switch (port, simulator) {
        case (nil, false):
            r.missing("port", "give the RS-485 adapter (/dev/serial/by-id/…) or tcp://host:port")
        case (let (p, origin)?, true):
            sink.add(origin, "a line has either a port or simulator = true, not both (port is \"\(p)\")")
        case (let (p, origin)?, false):
            switch try? BusEndpoint(p) {
            case .tcp(let host, let tcpPort)?:
                isTCP = true
                source = .endpoint(.tcp(host: host, port: Int(tcpPort)))
                if enabled, let name { _ = claim("tcp://\(host):\(tcpPort)", display: p, bus: name, origin: origin, ports: &ports) }
            case .serial(let path)?:
                source = .endpoint(.rtu(path: path, serial: serial, rs485: rs485 ?? false))
                if enabled, let name { _ = claim(path, display: p, bus: name, origin: origin, ports: &ports) }
            case nil:
                sink.add(origin, "\"\(p)\" is not a port; expected an absolute device path (/dev/serial/by-id/…) for RTU or tcp://host:502 for TCP")
            }
        case (nil, true):
            if !demo { sink.add(fieldOrigin(t, "simulator"), "simulators run in demo mode only; set demo = true at the top, or give a port") }
            source = .simulator
        }
        if isTCP {
            for key in ["baud", "parity", "stop_bits", "rs485"] where t.entries[key] != nil {
                sink.add(t.entries[key]!.origin, "applies to RTU lines only; this line is Modbus TCP")
            }
        }

        let addDevices = "add a [[\(TOMLSourceMap.path(t.origin.path, "devices"))]] table for each device on the line"
        if t.entries["devices"] == nil {
            r.missing("devices", addDevices)
        } else if case .array(let list)? = t.entries["devices"]?.value, list.isEmpty {
            sink.add(t.entries["devices"]!.origin, "is empty; \(addDevices)")
        }
        if let (b, _) = backoff, let (m, origin) = maxBackoff, m < b {
            sink.add(origin, "is shorter than backoff (\(b.components.seconds) s); the tries of a dead device only grow further apart, so max_backoff must be at least backoff")
        }
        var units: [Int: ConfigOrigin] = [:]
        var devices: [GatewayConfig.ModbusDeviceConfig] = []
        for d in deviceTables {
            if let device = decodeModbusDevice(d, bus: name ?? "modbus", isTCP: isTCP, simulator: simulator, units: &units,
                                               deviceNames: &deviceNames) {
                devices.append(device)
            }
        }
        guard sink.problems.count == before, let name, let source else { return nil }
        guard enabled else { return [] }
        var options = ModbusLineOptions(responseTimeout: responseTimeout?.0 ?? .seconds(1),
                                        byteTimeout: byteTimeout?.0 ?? .milliseconds(100), retries: retries?.0 ?? 1,
                                        lockWait: lockWait?.0 ?? .seconds(10))
        options.connectPause = connectPause?.0 ?? .zero
        return [GatewayConfig.ModbusLineConfig(name: name, source: source, options: options, devices: devices,
                                               pace: pace?.0 ?? .zero, backoff: backoff?.0 ?? .seconds(60),
                                               maxBackoff: maxBackoff?.0 ?? .seconds(1800))]
    }

    private mutating func decodeModbusDevice(_ t: ConfigTable, bus: String, isTCP: Bool, simulator: Bool,
                                             units: inout [Int: ConfigOrigin],
                                             deviceNames: inout [String: ConfigOrigin]) -> GatewayConfig.ModbusDeviceConfig? {
        let before = sink.problems.count
        var r = TableReader(t, sink)
        let nameValue = r.nonEmptyString("name")
        let unitRange = isTCP ? 0...255 : 1...247
        let unit = r.integer("unit", in: unitRange, unit: isTCP ? " (Modbus TCP)" : " (RTU slave addresses)",
                             required: "give the device's unit id (slave address), e.g. unit = 1")
        let profileValue = r.nonEmptyString("profile", required: "give the device's profile, e.g. profile = \"kaisai-r290-monoblock\"")
        let serial = r.nonEmptyString("serial")
        let groups = r.strings("groups") ?? []
        let serviceInterval = r.integer("service_interval_hours", in: 1...1_000_000)
        let serviceLast = r.integer("service_last_hours", in: 0...10_000_000)
        r.finish()

        if let (u, origin) = unit {
            if let first = units[u] {
                sink.add(origin, "unit \(u) is already used by \(Self.pathOfTable(first.path)) (\(Self.place(first))); each device on a line needs its own unit id")
            } else {
                units[u] = ConfigOrigin(file: origin.file, line: origin.line, path: t.origin.path)
            }
        }
        let name = nameValue?.0 ?? unit.map { "\(bus)-unit\($0.0)" }
        if let (n, origin) = nameValue {
            if !Self.isIdentifier(n, maximum: 40) {
                sink.add(origin, "\"\(n)\" is not a usable name; expected \(Self.namePattern)")
            } else if let first = deviceNames[n] {
                sink.add(origin, "\"\(n)\" is already the name of \(Self.pathOfTable(first.path)) (\(Self.place(first))); device names must be unique")
            } else {
                deviceNames[n] = ConfigOrigin(file: origin.file, line: origin.line, path: t.origin.path)
            }
        }
        var loaded: (ModbusProfile, String)?
        var family: [ModbusProfile] = []
        if let (p, origin) = profileValue {
            if let members = loadFamily(p, origin: origin) {
                family = members
                loaded = (members[0], p)
            } else {
                loaded = loadProfile(p, origin: origin)
            }
            if let (profile, _) = loaded, (serviceInterval != nil || serviceLast != nil), profile.service == nil {
                sink.add(serviceInterval?.1 ?? serviceLast!.1, "profile \(profile.id) names no run-hours register (\"service\"), so no inspection can be planned from it")
            }
            if let (profile, _) = loaded {
                let known = (profile.groups ?? []).map(\.name)
                for (g, gOrigin) in groups where !known.contains(g) {
                    var message = "\"\(g)\" is not a polling group of profile \(profile.id); expected one of \(known.joined(separator: ", "))"
                    if let guess = closestMatch(g, in: known) { message += " (did you mean \"\(guess)\"?)" }
                    sink.add(gOrigin, message)
                }
                if simulator && profile.test == nil {
                    sink.add(origin, "profile \(profile.id) has no test dump, so the demo simulator has nothing to serve; pick a profile with a \"test\" section")
                }
            }
        }
        guard sink.problems.count == before, let name, let unit, let (profile, path) = loaded else { return nil }
        return GatewayConfig.ModbusDeviceConfig(name: name, unit: unit.0, profile: profile, profilePath: path,
                                                serial: serial?.0, groups: groups.map(\.0),
                                                family: family.count > 1 ? family : [],
                                                serviceIntervalHours: serviceInterval.map { Double($0.0) },
                                                serviceLastHours: serviceLast.map { Double($0.0) })
    }

    /// The profiles of a family (`"family"` in the profile files), when `value` names one and no profile
    /// file has that name; ordered by id. The fingerprint's firmware range picks the member at run time.
    private func loadFamily(_ value: String, origin: ConfigOrigin) -> [ModbusProfile]? {
        guard !value.contains("/"), !value.hasSuffix(".json") else { return nil }
        let directories = profileDirectories + options.profileDirectories
        if directories.contains(where: { isFile($0 + "/" + value + ".json") }) { return nil }
        var members: [String: ModbusProfile] = [:]
        for dir in directories {
            for f in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() where f.hasSuffix(".json") {
                guard let p = try? ModbusProfile.load(path: dir + "/" + f), p.family == value, members[p.id] == nil else { continue }
                members[p.id] = p
            }
        }
        guard !members.isEmpty else { return nil }
        let list = members.values.sorted { $0.id < $1.id }
        if let bare = list.first(where: { !$0.hasFingerprint }), list.count > 1 {
            sink.add(origin, "family \(value): profile \(bare.id) has no fingerprint, so the firmware cannot choose between \(list.map(\.id).joined(separator: ", "))")
            return nil
        }
        return list
    }

    /// A profile by file (a value with a '/' or ending in .json) or by name in the profile directories.
    private func loadProfile(_ value: String, origin: ConfigOrigin) -> (ModbusProfile, String)? {
        let directories = profileDirectories + options.profileDirectories
        var candidates: [String] = []
        if value.contains("/") || value.hasSuffix(".json") {
            candidates = [resolve(value, origin)]
        } else {
            candidates = directories.map { $0 + "/" + value + ".json" }
        }
        guard let path = candidates.first(where: isFile) else {
            if value.contains("/") || value.hasSuffix(".json") {
                sink.add(origin, "\(candidates[0]) does not exist; give a profile file or a profile name")
            } else {
                // Profile names, and the families a profile may be named by (read only on this error path).
                let names = Set(directories.flatMap { dir in
                    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".json") }.flatMap { f in
                        [String(f.dropLast(5))] + ((try? ModbusProfile.load(path: dir + "/" + f))?.family.map { [$0] } ?? [])
                    }
                }).sorted()
                var message = "no profile named \"\(value)\""
                if names.isEmpty {
                    message += "; no profiles found in \(directories.joined(separator: ", "))"
                } else {
                    message += "; expected one of \(names.joined(separator: ", "))"
                    if let guess = closestMatch(value, in: names) { message += " (did you mean \"\(guess)\"?)" }
                }
                sink.add(origin, message)
            }
            return nil
        }
        do {
            return (try ModbusProfile.load(path: path), path)
        } catch {
            sink.add(origin, "profile \(path) does not load: \(error.message)")
            return nil
        }
    }

    // MARK: - Schedules

    private func decodeSchedules(_ table: ConfigTable?, buses: GatewayConfig.Buses?, root: ConfigTable) -> GatewayConfig.Schedules? {
        let fallback = GatewayConfig.BusSchedule(interval: .seconds(900), jitter: .seconds(30), setDay: nil,
                                                 setDayTime: GatewayConfig.TimeOfDay(hour: 0, minute: 30))
        guard let table else { return GatewayConfig.Schedules(defaults: fallback, perBus: [:]) }
        var r = TableReader(table, sink)
        let defaults = readSchedule(&r, inheriting: fallback)
        let perBusTable = r.table("bus")
        r.finish()
        guard let defaults else { return nil }

        var perBus: [String: GatewayConfig.BusSchedule] = [:]
        var ok = true
        if let perBusTable {
            let scheduled = (buses?.mbus.map(\.name) ?? []) + (buses?.modbus.map(\.name) ?? [])
            let wireless = buses?.wmbus.map(\.name) ?? []
            for key in perBusTable.orderedKeys(fileOrder: sink.fileOrder) {
                let node = perBusTable.entries[key]!
                guard case .table(let busTable) = node.value else {
                    sink.add(node.origin, "expected a table [\(node.origin.path)] with interval, jitter, set_day or set_day_time")
                    ok = false
                    continue
                }
                if wireless.contains(key) {
                    sink.add(node.origin, "\"\(key)\" is a wireless dongle, which listens all the time; schedules apply to wired M-Bus and Modbus lines")
                    ok = false
                } else if buses != nil && !scheduled.contains(key) {
                    var message = "no bus named \"\(key)\""
                    if let guess = closestMatch(key, in: scheduled) {
                        message += "; did you mean \"\(guess)\"?"
                    } else if !scheduled.isEmpty {
                        message += "; the buses are \(scheduled.joined(separator: ", "))"
                    }
                    sink.add(node.origin, message)
                    ok = false
                }
                var br = TableReader(busTable, sink)
                let schedule = readSchedule(&br, inheriting: defaults)
                br.finish()
                if let schedule { perBus[key] = schedule } else { ok = false }
            }
        }
        return ok ? GatewayConfig.Schedules(defaults: defaults, perBus: perBus) : nil
    }

    private func readSchedule(_ r: inout TableReader, inheriting base: GatewayConfig.BusSchedule) -> GatewayConfig.BusSchedule? {
        let before = sink.problems.count
        let interval = r.duration("interval", in: .seconds(10) ... .seconds(7 * 86400))
        let jitter = r.duration("jitter", in: .zero ... .seconds(3600))
        var schedule = base
        if let interval { schedule.interval = interval.0 }
        if let jitter { schedule.jitter = jitter.0 }
        if schedule.jitter >= schedule.interval, interval != nil || jitter != nil {
            let origin = jitter?.1 ?? interval!.1
            sink.add(origin, "jitter \(DurationText.format(schedule.jitter)) must be shorter than the interval \(DurationText.format(schedule.interval))",
                     field: r.field("jitter"))
        }
        if let node = r.node("set_day") {
            switch node.value {
            case .integer(let day):
                if (1...28).contains(day) {
                    schedule.setDay = .monthly(day: day)
                } else {
                    sink.add(node.origin, "\(day) is out of range; expected a day of the month from 1 to 28 (one every month has), or \"MM-DD\" for a yearly set day")
                }
            case .string(let text):
                if let (month, day) = Self.monthDay(text) {
                    schedule.setDay = .yearly(month: month, day: day)
                } else {
                    sink.add(node.origin, "\"\(text)\" is not a set day; expected \"MM-DD\" (e.g. \"12-31\") for a yearly set day, or a day of the month 1 to 28")
                }
            default:
                r.wrongType(node, expected: "a day of the month (1 to 28) or \"MM-DD\"")
            }
        }
        if let node = r.node("set_day_time") {
            switch node.value {
            case .time(let h, let m, let s) where s == 0:
                schedule.setDayTime = GatewayConfig.TimeOfDay(hour: h, minute: m)
            case .string(let text):
                if let time = Self.timeOfDay(text) {
                    schedule.setDayTime = time
                } else {
                    sink.add(node.origin, "\"\(text)\" is not a time of day; expected \"HH:MM\" from \"00:00\" to \"23:59\"")
                }
            default:
                r.wrongType(node, expected: "a time of day \"HH:MM\"")
            }
        }
        return sink.problems.count == before ? schedule : nil
    }

    package static func monthDay(_ text: String) -> (Int, Int)? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 }), let m = Int(parts[0]), let d = Int(parts[1]) else { return nil }
        let days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(m), (1...days[m - 1]).contains(d) else { return nil }
        return (m, d)
    }

    package static func timeOfDay(_ text: String) -> GatewayConfig.TimeOfDay? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 }), let h = Int(parts[0]), let m = Int(parts[1]),
              (0...23).contains(h), (0...59).contains(m) else { return nil }
        return GatewayConfig.TimeOfDay(hour: h, minute: m)
    }

    // MARK: - Buffer, uplink, registry, metrics, status

    private func decodeBuffer(_ table: ConfigTable?, root: ConfigTable) -> GatewayConfig.Buffer? {
        let defaultPath = "/var/lib/gatewayd/buffer.sqlite"
        guard let table else {
            return GatewayConfig.Buffer(path: defaultPath, maxReadings: GatewayConfig.Buffer.defaultMaxReadings, maxBytes: nil)
        }
        let before = sink.problems.count
        var r = TableReader(table, sink)
        let path = r.nonEmptyString("path").map { resolve($0.0, $0.1) } ?? defaultPath
        let pathOrigin = r.node("path")?.origin
        let maxReadings = r.integer("max_readings", in: 1000...100_000_000)
        let maxBytes = readSize(&r, "max_bytes", in: 1 << 20 ... 1 << 40)
        let clockSync: (GatewayConfig.Buffer.ClockSyncPolicy, ConfigOrigin)? = r.choice("clock_sync", "a clock policy")
        r.finish()
        if options.checkPaths, let pathOrigin {
            let directory = Self.directoryPart(path)
            if isDirectory(path) {
                sink.add(pathOrigin, "\(path) is a directory; give the database file, e.g. \(path)/buffer.sqlite")
            } else {
                // The daemon creates missing directories; something other than a directory in the way is fatal.
                var ancestor = directory
                while !ancestor.isEmpty, ancestor != "/", !exists(ancestor) { ancestor = Self.directoryPart(ancestor) }
                if !ancestor.isEmpty, exists(ancestor), !isDirectory(ancestor) {
                    sink.add(pathOrigin, "\(ancestor) is not a directory, so the buffer cannot be created under it")
                }
            }
        }
        guard sink.problems.count == before else { return nil }
        return GatewayConfig.Buffer(path: path, maxReadings: maxReadings?.0 ?? (maxBytes == nil ? GatewayConfig.Buffer.defaultMaxReadings : nil),
                                    maxBytes: maxBytes, clockSync: clockSync?.0 ?? .auto)
    }

    /// A size in bytes: an integer, or a string with a unit ("512MiB", "1GB", "64kB").
    private func readSize(_ r: inout TableReader, _ key: String, in range: ClosedRange<Int>) -> Int? {
        guard let node = r.node(key) else { return nil }
        var bytes: Int?
        switch node.value {
        case .integer(let n): bytes = n
        case .string(let s): bytes = Self.size(s)
            if bytes == nil {
                sink.add(node.origin, "\"\(s)\" is not a size; write bytes as an integer or with a unit (kB, MB, GB, KiB, MiB, GiB), e.g. \"512MiB\"")
                return nil
            }
        default:
            r.wrongType(node, expected: "a size such as \"512MiB\"")
            return nil
        }
        guard let b = bytes, range.contains(b) else {
            sink.add(node.origin, "\(bytes ?? 0) bytes is out of range; expected \(Self.formatSize(range.lowerBound)) to \(Self.formatSize(range.upperBound))")
            return nil
        }
        return b
    }

    package static func size(_ text: String) -> Int? {
        let t = text.configTrimmed
        let digits = t.prefix { $0.isNumber }
        guard let n = Int(digits), n < 1 << 42 else { return nil }
        let units: [String: Int] = ["": 1, "B": 1, "kB": 1000, "KB": 1000, "MB": 1_000_000, "GB": 1_000_000_000,
                                    "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "TB": 1_000_000_000_000]
        guard let factor = units[String(t.dropFirst(digits.count)).configTrimmed] else { return nil }
        return n * factor
    }

    package static func formatSize(_ n: Int) -> String {
        for (factor, unit) in [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] where n % factor == 0 {
            return "\(n / factor)\(unit)"
        }
        return "\(n) bytes"
    }

    private func decodeUplink(_ table: ConfigTable?, root: ConfigTable) -> GatewayConfig.Uplink? {
        guard let table else {
            sink.add(ConfigOrigin(file: root.origin.file, line: 1, path: "uplink"),
                     "missing; add an [uplink] table with transport and endpoint")
            return nil
        }
        typealias Uplink = GatewayConfig.Uplink
        let before = sink.problems.count
        var r = TableReader(table, sink)
        let transport: (Uplink.Transport, ConfigOrigin)? = r.choice("transport", "an uplink transport",
                                                                   required: "give transport = \"https\" or \"mqtt\"")
        let endpoint = r.nonEmptyString("endpoint", required: "give the portal's URL, e.g. endpoint = \"https://portal.example.com/api/v1\"")
        let insecure = r.bool("insecure") ?? false
        let batchReadings = r.integer("batch_readings", in: 1...10_000)
        let batchBytes = readSize(&r, "batch_bytes", in: 1 << 10 ... 16 << 20)
        let health = r.duration("health_interval", in: .seconds(10) ... .seconds(86400))
        let topicPrefix = r.nonEmptyString("topic_prefix")
        let authTable = r.table("auth")
        r.finish()

        var host = "", port = 0
        if let (t, _) = transport, let (url, origin) = endpoint {
            let secure = t == .https ? "https" : "mqtts"
            let plain = t == .https ? "http" : "mqtt"
            if let parsed = Self.parseURL(url) {
                host = parsed.host
                if parsed.scheme == secure {
                    port = parsed.port ?? (t == .https ? 443 : 8883)
                } else if parsed.scheme == plain {
                    port = parsed.port ?? (t == .https ? 80 : 1883)
                    if !insecure {
                        sink.add(origin, "\"\(url)\" is not encrypted; use \(secure)://, or set insecure = true for a loopback test sink")
                    }
                } else {
                    sink.add(origin, "\"\(url)\" is not \(t == .https ? "an HTTPS" : "an MQTT") URL; expected \(secure)://host[:port]\(t == .https ? "/path" : "")")
                }
            } else {
                sink.add(origin, "\"\(url)\" is not a URL; expected \(secure)://host[:port]\(t == .https ? "/path" : "")")
            }
            if demo, !host.isEmpty, !LoopbackHost.isLoopback(host) {
                sink.add(origin, "demo mode starts a portal sink at the uplink endpoint, so it must be on loopback (127.0.0.1); got \(host)")
            }
        }
        if let (_, origin) = topicPrefix, transport?.0 == .https {
            sink.add(origin, "applies to transport = \"mqtt\" only")
        }

        var auth: Uplink.Auth = .none
        var caFile: String?
        if let authTable {
            var a = TableReader(authTable, sink)
            let token = a.nonEmptyString("bearer_token_file")
            let certificate = a.nonEmptyString("client_certificate")
            let key = a.nonEmptyString("client_key")
            let ca = a.nonEmptyString("ca_file")
            a.finish()
            if let (t, origin) = token {
                let path = resolve(t, origin)
                checkSecretFile(path, origin: origin, what: "the token")
                auth = .bearer(tokenFile: path)
                if let (_, cOrigin) = certificate ?? key {
                    sink.add(cOrigin, "give either bearer_token_file or client_certificate and client_key, not both")
                }
            } else if let (c, cOrigin) = certificate, let (k, kOrigin) = key {
                let certPath = resolve(c, cOrigin), keyPath = resolve(k, kOrigin)
                if options.checkPaths && !isFile(certPath) { sink.add(cOrigin, "\(certPath) does not exist; give the client certificate (PEM)") }
                checkSecretFile(keyPath, origin: kOrigin, what: "the private key")
                auth = .mutualTLS(certificateFile: certPath, keyFile: keyPath)
            } else if let (_, origin) = certificate {
                sink.add(origin, "client_certificate needs client_key (the certificate's private key, PEM)", field: a.field("client_key"))
            } else if let (_, origin) = key {
                sink.add(origin, "client_key needs client_certificate (PEM)", field: a.field("client_certificate"))
            }
            if let (c, origin) = ca {
                caFile = resolve(c, origin)
                if options.checkPaths && !isFile(caFile!) { sink.add(origin, "\(caFile!) does not exist; give the CA bundle (PEM) that signed the portal's certificate") }
            }
        }
        if case .none = auth, !insecure, sink.problems.count == before {
            let origin = ConfigOrigin(file: table.origin.file, line: table.origin.line, path: TOMLSourceMap.path(table.origin.path, "auth"))
            sink.add(origin, "missing; give [uplink.auth] bearer_token_file, or client_certificate and client_key")
        }
        guard sink.problems.count == before, let transport, let endpoint else { return nil }
        let uplink = Uplink(transport: transport.0, endpoint: endpoint.0, host: host, port: port, auth: auth, caFile: caFile,
                            insecure: insecure, batchReadings: batchReadings?.0 ?? 500, batchBytes: batchBytes ?? 1 << 20,
                            healthInterval: health?.0 ?? .seconds(300),
                            topicPrefix: transport.0 == .mqtt ? (topicPrefix?.0 ?? gatewayID.map { "gatewayd/\($0)" }) : nil)
        // The transport's own start checks, so that what loads here also starts (a missing gateway_id is
        // reported on its own line; the check then runs with a stand-in).
        if let problem = UplinkWiring.startProblem(uplink, gatewayID: gatewayID ?? "gw", demo: demo) {
            sink.add(endpoint.1, "the uplink would not start: \(problem)")
            return nil
        }
        return uplink
    }

    package struct URLParts {
        package var scheme: String
        package var host: String
        package var port: Int?
    }

    /// scheme://host[:port][/path]; IPv6 hosts in brackets.
    package static func parseURL(_ text: String) -> URLParts? {
        guard let range = text.firstRange(of: "://") else { return nil }
        let scheme = String(text[..<range.lowerBound]).lowercased()
        var rest = text[range.upperBound...]
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) { rest = rest[..<slash] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        var host = Substring(rest), portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { return nil }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        }
        guard !scheme.isEmpty, !host.isEmpty, !host.contains(" ") else { return nil }
        var port: Int?
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { return nil }
            port = p
        }
        return URLParts(scheme: scheme, host: String(host), port: port)
    }

    private func decodeRegistry(_ table: ConfigTable?, root: ConfigTable, building: String?) -> GatewayConfig.Registry? {
        guard let table else {
            sink.add(ConfigOrigin(file: root.origin.file, line: 1, path: "registry"),
                     "missing; add a [registry] table: source = \"file\" with file = \"registry.json\", or source = \"portal\"")
            return nil
        }
        enum Source: String, CaseIterable { case file, portal }
        let before = sink.problems.count
        var r = TableReader(table, sink)
        let source: (Source, ConfigOrigin)? = r.choice("source", "a registry source", required: "give source = \"file\" or \"portal\"")
        let file = r.nonEmptyString("file")
        let cache = r.nonEmptyString("cache_file")
        let refresh = r.duration("refresh_interval", in: .seconds(60) ... .seconds(7 * 86400))
        r.finish()
        var result: GatewayConfig.Registry?
        switch source?.0 {
        case .file?:
            for (key, value) in [("cache_file", cache?.1), ("refresh_interval", refresh?.1)] {
                if let origin = value { sink.add(origin, "applies to source = \"portal\" only", field: r.field(key)) }
            }
            if let (f, origin) = file {
                let path = resolve(f, origin)
                result = .file(path: path)
                if options.checkPaths { checkRegistryFile(path, origin: origin, building: building) }
            } else {
                r.missing("file", "a file registry needs file = \"/etc/gatewayd/registry.json\"")
            }
        case .portal?:
            if let (_, origin) = file { sink.add(origin, "applies to source = \"file\" only; the portal registry is kept in cache_file") }
            let cachePath = cache.map { resolve($0.0, $0.1) } ?? "/var/lib/gatewayd/registry.json"
            result = .portal(cacheFile: cachePath, refreshInterval: refresh?.0 ?? .seconds(3600))
        case nil:
            break
        }
        return sink.problems.count == before ? result : nil
    }

    /// The registry must load and belong to this gateway and building.
    private func checkRegistryFile(_ path: String, origin: ConfigOrigin, building: String?) {
        guard isFile(path) else {
            sink.add(origin, "\(path) does not exist; give the building's registry (JSON, see seeds/demo-building/registry.json)")
            return
        }
        do {
            let registry = try DeviceRegistry.load(path: path)
            if let gatewayID, registry.gateway != gatewayID {
                sink.add(origin, "\(path) is the registry of gateway \(registry.gateway), not \(gatewayID)")
            }
            if let building, registry.building != building {
                sink.add(origin, "\(path) is the registry of building \(registry.building), not \(building)")
            }
        } catch {
            sink.add(origin, "\(path) does not load: \(error.message)")
        }
    }

    private func decodeMetrics(_ table: ConfigTable?, root: ConfigTable) -> GatewayConfig.Metrics? {
        let fallback = GatewayConfig.Metrics(enabled: true, host: "127.0.0.1", port: 9464)
        guard let table else { return fallback }
        let before = sink.problems.count
        var r = TableReader(table, sink)
        let enabled = r.bool("enabled") ?? true
        let listen = r.nonEmptyString("listen")
        r.finish()
        var metrics = fallback
        metrics.enabled = enabled
        if let (text, origin) = listen {
            if let parts = Self.parseURL("tcp://" + text), let port = parts.port {
                if LoopbackHost.isLoopback(parts.host) {
                    metrics.host = parts.host
                    metrics.port = port
                } else {
                    sink.add(origin, "\(parts.host) is not a loopback address; metrics are served on loopback only: an address in 127.0.0.0/8, ::1 or localhost (other names are not looked up), e.g. \"127.0.0.1:\(port)\"")
                }
            } else {
                sink.add(origin, "\"\(text)\" is not an address; expected host:port, e.g. \"127.0.0.1:9464\"")
            }
        }
        return sink.problems.count == before ? metrics : nil
    }

    /// `[alarms]`: when a registered radio meter counts as silent (`not_heard`).
    private func decodeAlarms(_ table: ConfigTable?) -> GatewayConfig.Alarms? {
        let fallback = GatewayConfig.Alarms()
        guard let table else { return fallback }
        let before = sink.problems.count
        var r = TableReader(table, sink)
        let intervals = r.integer("not_heard_intervals", in: 2...100)
        let minimum = r.duration("not_heard_minimum", in: .seconds(10) ... .seconds(30 * 86_400))
        r.finish()
        var alarms = fallback
        if let (n, _) = intervals { alarms.notHeardIntervals = n }
        if let (d, _) = minimum { alarms.notHeardMinimum = d }
        return sink.problems.count == before ? alarms : nil
    }

    private func decodeStatus(_ table: ConfigTable?, root: ConfigTable) -> GatewayConfig.StatusSocket? {
        let fallback = GatewayConfig.StatusSocket(path: "/run/gatewayd/status.sock", group: nil)
        guard let table else { return fallback }
        let before = sink.problems.count
        var r = TableReader(table, sink)
        let socket = r.nonEmptyString("socket")
        let group = r.nonEmptyString("group")
        r.finish()
        var status = fallback
        if let (path, origin) = socket {
            if path.hasPrefix("/") {
                status.path = path
                if path.utf8.count > 107 { sink.add(origin, "is \(path.utf8.count) bytes long; a unix socket path has at most 107") }
            } else {
                sink.add(origin, "\"\(path)\" is not an absolute path; expected e.g. \"/run/gatewayd/status.sock\"")
            }
        }
        if let (name, origin) = group {
            status.group = name
            if options.checkPaths && getgrnam(name) == nil {
                sink.add(origin, "no group \"\(name)\" on this system; create it (groupadd \(name)) or leave group out")
            }
        }
        return sink.problems.count == before ? status : nil
    }

    // MARK: - Keys and other files

    /// Reads the wireless keys: the file must be private (no group or other bits) and parse as `ID KEY`
    /// lines. Problems never quote the file's content.
    /// A demo configuration's keys are the published test keys of public telegrams (seeds/demo-building/keys),
    /// checked out with the repository's file mode, so there the file may be readable by others.
    private func readKeys(path: String, origin: ConfigOrigin) -> WMBusKeyring? {
        guard checkSecretFile(path, origin: origin, what: "the meter keys", publicAllowed: demo) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            if isFile(path) { sink.add(origin, "cannot read \(path); run config check as the daemon's user or root") }
            return nil
        }
        switch WMBusKeyring.parse(String(decoding: data, as: UTF8.self)) {
        case .success(let ring): return ring
        case .failure(let e):
            sink.add(ConfigProblem(file: path, line: e.line, field: "keys_file",
                                   message: "expected 'ID KEY': an 8-digit meter id and 32 hex digits (AES-128), '#' for comments"))
            return nil
        }
    }

    /// A secret (keys, token, private key) may be read by its owner only. Missing files are a problem
    /// only when paths are checked. Returns whether the file exists and is private.
    @discardableResult
    private func checkSecretFile(_ path: String, origin: ConfigOrigin, what: String, publicAllowed: Bool = false) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if options.checkPaths { sink.add(origin, "\(path) does not exist; create it with mode 0600") }
            return false
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            sink.add(origin, "\(path) is not a regular file")
            return false
        }
        let mode = Int(info.st_mode & 0o777)
        if mode & 0o077 != 0 && !publicAllowed {
            sink.add(origin, "\(path) has mode \(Self.octal(mode)), so other users can read \(what); run: chmod 600 \(path)")
            return false
        }
        return true
    }

    // MARK: - Helpers

    /// A relative path is relative to the directory of the file that set it.
    package func resolve(_ path: String, _ origin: ConfigOrigin) -> String {
        if path.hasPrefix("/") { return path }
        let directory = Self.directoryPart(origin.file)
        return directory.isEmpty ? path : directory + "/" + path
    }

    package static func directoryPart(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private func fieldOrigin(_ t: ConfigTable, _ key: String) -> ConfigOrigin {
        t.entries[key]?.origin ?? t.origin
    }

    package func isFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    package func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    package func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    package func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    package static func octal(_ mode: Int) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    package static func isIdentifier(_ text: String, maximum: Int) -> Bool {
        guard let first = text.utf8.first, text.utf8.count <= maximum else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) }
        return alnum(first) && text.utf8.allSatisfy { alnum($0) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }

    /// "gatewayd.toml:12" for pointing at an earlier definition (the file's last path component).
    package static func place(_ origin: ConfigOrigin) -> String {
        let name = origin.file.split(separator: "/").last.map(String.init) ?? origin.file
        return "\(name):\(origin.line)"
    }

    /// `buses.mbus[0]` from `buses.mbus[0].name`-style paths.
    package static func pathOfTable(_ path: String) -> String { path }
}
