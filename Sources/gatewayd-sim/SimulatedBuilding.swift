import Agent
import CLISupport
import Drivers
import Foundation
import Gateway
import ArgumentParser

/// A generated building for commissioning tests and benchmarks: a registry, keys, a radio capture for
/// the simulated iM871A, slave files for the simulated M-Bus lines, a heat-pump profile with a serial
/// register for the simulated Modbus lines, a configuration tying them together, and `truth.json`:
/// what commissioning must find (which devices are silent, which keys are wrong, which signals weak…).
///
/// Radio telegrams are the meter profiles' own test telegrams (real meters) with new ids, and mode 5
/// telegrams encrypted here for the devices with keys. Wired answers are real REQ_UD2 answers from the
/// demo building's slave file with new ids. Everything is deterministic for a given seed.
struct SimulatedBuilding {
    struct Spec: Hashable, Sendable {
        var floors = 10
        var unitsPerFloor = 8
        /// Radio devices per unit: heat-cost allocators and one water meter (400 = 80 units × 5).
        var allocatorsPerUnit = 4
        var waterMetersPerUnit = 1
        var silent = 20
        var wrongKey = 5
        /// Encrypted meters whose rows in the key file are swapped pairwise (an even number).
        var swappedKeys = 2
        var weak = 10
        /// Every n-th allocator sends encrypted (mode 5).
        var encryptEvery = 4
        var wiredMeters = 60
        var wiredLines = 2
        var wiredMissing = 3
        var heatPumps = 2
        var serialMismatches = 1
        var strangers = 30
        /// Meters wired to the first line but not in the registry (found only by `--blind-scan`).
        var wiredStrangers = 2
        /// Each transmitting device is in the capture this often (RSSI differs each time).
        var rounds = 3
        /// Gap between radio telegrams in the simulator.
        var radioIntervalMilliseconds = 10
        var mbusBaud = 2400
        var seed: UInt64 = 0x0C0_FFEE
    }

    /// What commissioning must find; written as truth.json.
    struct Truth: Codable, Hashable, Sendable {
        struct Device: Codable, Hashable, Sendable {
            var key: String
            var bus: String
            var unit: String?
            var floor: String
            var kind: String
            var transmits: Bool
            var decryption: String
            var serialMatch: String
            /// Radio: the RSSI samples in the order sent.
            var rssi: [Double]?
            var telegrams: Int
            /// The unit of the first billing value, when the device is read.
            var readingUnit: String?
            /// For a swapped key: the meter whose row holds this meter's key.
            var keyFiledUnder: String?
        }
        var expected = 0
        var heard = 0
        var missing = 0
        var wrongKey = 0
        var weak = 0
        var serialMismatch = 0
        var strangers = 0
        var devices: [Device] = []
        var strangerIDs: [String] = []
        var wiredStrangerIDs: [String] = []
        var weakFloors: [String: Int] = [:]
    }

    let spec: Spec

    /// Writes the building into `directory` (created) and returns the truth. `portalURL` is the uplink
    /// endpoint written into the configuration (demo mode replaces it by its own sink anyway).
    func write(to directory: String, profilesDirectory: String) throws -> Truth {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var rng = SeededRandom(seed: spec.seed)
        let catalog = try ProfileCatalog.load(directory: profilesDirectory)
        let templates = try Self.templates(catalog)
        var truth = Truth()
        var devices: [RegisteredDevice] = []
        var keyLines: [String] = []
        var radio: [(bytes: [UInt8], rssi: Double, mode: String, round: Int)] = []

        // Units "1.01" … "10.08".
        var units: [(floor: Int, unit: String)] = []
        for f in 1...spec.floors {
            for u in 1...spec.unitsPerFloor { units.append((f, "\(f).\(u < 10 ? "0" : "")\(u)")) }
        }

        // Radio devices.
        struct RadioDevice {
            var key: String, unit: String, floor: Int, kind: String, telegram: [UInt8]?, encrypted: Bool
            var id: IdentificationNumber, address: WMBusAddress?, manufacturer: String
        }
        var radioDevices: [RadioDevice] = []
        var allocatorCount = 0, waterCount = 0
        for (floor, unit) in units {
            for _ in 0..<spec.allocatorsPerUnit {
                let id = IdentificationNumber(Self.digits(40_000_000 + allocatorCount))!
                let encrypted = spec.encryptEvery > 0 && allocatorCount % spec.encryptEvery == spec.encryptEvery - 1
                let t = templates.allocators[allocatorCount % templates.allocators.count]
                let manufacturer = encrypted ? "QDS" : t.manufacturer
                radioDevices.append(RadioDevice(key: "wmbus:\(manufacturer):\(id.digits)", unit: unit, floor: floor, kind: "heat-cost allocator",
                                                telegram: encrypted ? nil : ProfileTelegramEncoder.withIdentification(t.bytes, id),
                                                encrypted: encrypted, id: id,
                                                address: WMBusAddress(manufacturer: ManufacturerCode("QDS")!, identification: id, version: 0x34,
                                                                      deviceType: .heatCostAllocator),
                                                manufacturer: manufacturer))
                allocatorCount += 1
            }
            for _ in 0..<spec.waterMetersPerUnit {
                let id = IdentificationNumber(Self.digits(50_000_000 + waterCount))!
                let t = templates.water[waterCount % templates.water.count]
                radioDevices.append(RadioDevice(key: "wmbus:\(t.manufacturer):\(id.digits)", unit: unit, floor: floor, kind: "water meter",
                                                telegram: ProfileTelegramEncoder.withIdentification(t.bytes, id), encrypted: false, id: id,
                                                address: nil, manufacturer: t.manufacturer))
                waterCount += 1
            }
        }
        // Who is silent, who has a wrong key, who is weak: disjoint sets, weak ones on the top floors
        // (far from the plant room, where a repeater would go).
        var order = Array(radioDevices.indices)
        rng.shuffle(&order)
        let topFloors = Set([spec.floors, spec.floors - 1])
        let weakSet = Set(order.filter { topFloors.contains(radioDevices[$0].floor) && !radioDevices[$0].encrypted }.prefix(spec.weak))
        let wrongKeySet = Set(order.filter { radioDevices[$0].encrypted && !weakSet.contains($0) }.prefix(spec.wrongKey))
        let silentSet = Set(order.filter { !weakSet.contains($0) && !wrongKeySet.contains($0) }.prefix(spec.silent))
        // Pairs of transmitting encrypted meters whose keys the key file holds under each other's id.
        let swappable = order.filter { radioDevices[$0].encrypted && !weakSet.contains($0) && !wrongKeySet.contains($0) && !silentSet.contains($0) }
        // Whole pairs only: a small building may have fewer encrypted meters than asked for.
        let swapList = Array(swappable.prefix(min(max(0, spec.swappedKeys), swappable.count) / 2 * 2))
        var swapPartner: [Int: Int] = [:]
        for p in stride(from: 0, to: swapList.count, by: 2) {
            swapPartner[swapList[p]] = swapList[p + 1]
            swapPartner[swapList[p + 1]] = swapList[p]
        }
        var keyLineOf: [Int: Int] = [:]

        // HCA records for the encrypted ones (QUNDIS Q caloric layout: current, set day, dates).
        let records = try Hex.decode("0b6e9700004b6e700200426c9f2ccb086e970000c2086cbe26326cffff046d2d16a227")
        for (i, d) in radioDevices.enumerated() {
            devices.append(RegisteredDevice(key: d.key, bus: .wirelessMBus, unit: d.unit, identification: d.id.digits, manufacturer: d.manufacturer,
                                            medium: d.kind, keyReference: d.encrypted ? d.id.digits : nil))
            var telegram = d.telegram
            if d.encrypted {
                let key = WMBusKey((0..<16).map { _ in UInt8(truncatingIfNeeded: rng.next()) })!
                // A wrong key on file: the meter's key with one byte changed, as when a key list is mixed up.
                var onFile = key.bytes
                if wrongKeySet.contains(i) { onFile[0] ^= 0x5A }
                keyLineOf[i] = keyLines.count
                keyLines.append("\(d.id.digits) \(Hex.encode(onFile, separator: ""))")
                telegram = ProfileTelegramEncoder.modeFive(address: d.address!, accessNumber: UInt8(truncatingIfNeeded: i), records: records, key: key)
            }
            let transmits = !silentSet.contains(i)
            let base: Double = weakSet.contains(i) ? Double(-99 - Int(rng.next() % 5)) : Double(-60 - Int(rng.next() % 28))
            let samples = (0..<spec.rounds).map { r in base + Double([0, -2, 2, -1, 1][r % 5]) }
            if transmits, let telegram {
                for (r, s) in samples.enumerated() { radio.append((telegram, s, "t1", r)) }
            }
            let keyIsWrong = wrongKeySet.contains(i) || swapPartner[i] != nil
            let decryption = !transmits ? "not_applicable" : (keyIsWrong ? "wrong_key" : (d.encrypted ? "decrypted" : "plain"))
            truth.devices.append(.init(key: d.key, bus: "wmbus", unit: d.unit, floor: "\(d.floor)", kind: d.kind, transmits: transmits,
                                       decryption: decryption, serialMatch: transmits ? "match" : "not_checked",
                                       rssi: transmits ? samples : nil, telegrams: transmits ? spec.rounds : 0,
                                       readingUnit: transmits && !keyIsWrong ? (d.kind == "water meter" ? "m3" : "hca") : nil,
                                       keyFiledUnder: swapPartner[i].map { radioDevices[$0].id.digits }))
            if weakSet.contains(i) { truth.weakFloors["\(d.floor)", default: 0] += 1 }
        }

        // Swap the key-file rows of each pair: each meter's key filed under the other's id.
        for (i, j) in swapPartner where i < j {
            guard let li = keyLineOf[i], let lj = keyLineOf[j] else { continue }
            let ki = keyLines[li].split(separator: " ")[1], kj = keyLines[lj].split(separator: " ")[1]
            keyLines[li] = "\(radioDevices[i].id.digits) \(kj)"
            keyLines[lj] = "\(radioDevices[j].id.digits) \(ki)"
        }

        // Strangers: the neighbours' meters, heard but not ours. A few are known to the portal elsewhere.
        var elsewhere: [DeviceElsewhere] = []
        for n in 0..<spec.strangers {
            let id = IdentificationNumber(Self.digits(70_000_000 + n))!
            let t = n % 2 == 0 ? templates.allocators[n % templates.allocators.count] : templates.water[n % templates.water.count]
            guard let bytes = ProfileTelegramEncoder.withIdentification(t.bytes, id) else { continue }
            let base = Double(-84 - Int(rng.next() % 16))
            for r in 0..<spec.rounds { radio.append((bytes, base - Double(r), "t1", r)) }
            truth.strangerIDs.append(id.digits)
            if n % 6 == 0 { elsewhere.append(DeviceElsewhere(identification: id.digits, manufacturer: t.manufacturer, building: "next door, no. 9")) }
        }

        // Wired heat meters: real answers with new ids, `wiredLines` lines, the last `wiredMissing` never answer.
        let frames = try Self.wiredTemplates(catalog)
        var slaveFiles: [[[String: Any]]] = Array(repeating: [], count: spec.wiredLines)
        let perLine = (spec.wiredMeters + spec.wiredLines - 1) / max(1, spec.wiredLines)
        var missingWired = Set<Int>()
        var wiredOrder = Array(0..<spec.wiredMeters)
        rng.shuffle(&wiredOrder)
        missingWired = Set(wiredOrder.prefix(spec.wiredMissing))
        for n in 0..<spec.wiredMeters {
            let line = n / perLine
            let lineName = "mbus-\(Character(UnicodeScalar(UInt8(97 + line))))"
            let id = Self.digits(60_000_000 + n)
            let template = frames[n % frames.count]
            let (floor, unit) = units[n % units.count]
            let key = "mbus:\(template.manufacturer):\(id)"
            devices.append(RegisteredDevice(key: key, bus: .wiredMBus, unit: unit, identification: id, manufacturer: template.manufacturer,
                                            primaryAddress: n % perLine + 1, line: lineName, medium: "heat"))
            let answers = !missingWired.contains(n)
            if answers {
                slaveFiles[line].append(["name": "heat meter \(unit)", "primary": n % perLine + 1, "id": id, "frames": [template.hex]])
            }
            truth.devices.append(.init(key: key, bus: "mbus", unit: unit, floor: "\(floor)", kind: "heat meter", transmits: answers,
                                       decryption: "not_applicable", serialMatch: answers ? "match" : "not_checked", rssi: nil,
                                       telegrams: answers ? 1 : 0, readingUnit: answers ? template.readingUnit : nil))
        }
        for n in 0..<(spec.wiredLines > 0 ? spec.wiredStrangers : 0) {
            // Answers on the wire, unknown to the registry: a meter someone connected without registering it.
            let id = Self.digits(69_000_000 + n)
            slaveFiles[0].append(["name": "unregistered meter \(n + 1)", "primary": 200 + n, "id": id, "frames": [frames[n % frames.count].hex]])
            truth.wiredStrangerIDs.append(id)
        }
        for (i, slaves) in slaveFiles.enumerated() {
            let doc: [String: Any] = ["comment": ["generated by gatewayd-sim building: real REQ_UD2 answers (libmbus corpus, BSD) with new ids"],
                                      "baudRate": spec.mbusBaud, "slaves": slaves]
            try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: directory + "/mbus-\(Character(UnicodeScalar(UInt8(97 + i)))).json"))
        }

        // Heat pumps: one profile (with a serial register) served per line; the registry holds another
        // serial for the last `serialMismatches` of them, as when two pumps' addresses were swapped.
        let profileID = "simulated-heat-pump"
        let reportedSerial = "SIM-HP-00000001"
        try Self.heatPumpProfile(id: profileID, serial: reportedSerial)
            .write(to: URL(fileURLWithPath: directory + "/\(profileID).json"))
        var modbusTOML = ""
        for n in 0..<spec.heatPumps {
            let mismatch = n >= spec.heatPumps - spec.serialMismatches
            let serial = mismatch ? "SIM-HP-\(Self.digits(n + 2))" : reportedSerial
            let line = "rs485-\(n + 1)"
            let key = "modbus:heat-pump-\(n + 1)"
            devices.append(RegisteredDevice(key: key, bus: .modbus, modbusUnit: 1, line: line, profile: profileID, serial: serial))
            truth.devices.append(.init(key: key, bus: "modbus", unit: nil, floor: "-", kind: "heat pump", transmits: true,
                                       decryption: "not_applicable", serialMatch: mismatch ? "mismatch" : "match", rssi: nil, telegrams: 1,
                                       readingUnit: "kWh"))
            modbusTOML += """

                [[buses.modbus]]
                name = "\(line)"
                simulator = true
                response_timeout = "1s"

                [[buses.modbus.devices]]
                name = "heat-pump-\(n + 1)"
                unit = 1
                profile = "\(profileID).json"

                """
        }

        // The capture: round by round, each round in a shuffled order, like meters sending on their own clocks.
        var lines = ["# generated by gatewayd-sim building (seed \(spec.seed)): real meter telegrams with new ids; see truth.json"]
        var t = 0
        for r in 0..<spec.rounds {
            var round = radio.filter { $0.round == r }
            rng.shuffle(&round)
            for e in round {
                let ms = t * spec.radioIntervalMilliseconds
                lines.append("2026-11-21T08:\(Self.two(ms / 60_000 % 60)):\(Self.two(ms / 1000 % 60)).\(Self.three(ms % 1000))Z \(e.mode) \(Int(e.rssi)) \(Hex.encode(e.bytes, separator: ""))")
                t += 1
            }
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/radio.txt", atomically: true, encoding: .utf8)

        let registry = RegistryDocument(gateway: "gw-sim-0500", building: "simulated 500", devices: devices, elsewhere: elsewhere)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(registry).write(to: URL(fileURLWithPath: directory + "/registry.json"))
        let keysPath = directory + "/keys"
        try (keyLines.joined(separator: "\n") + "\n").write(toFile: keysPath, atomically: true, encoding: .utf8)
        chmod(keysPath, 0o600)

        var toml = """
            # Generated by `gatewayd-sim building`: \(truth.devices.count) devices on simulated buses (no hardware).
            # Commission it with: gatewayd commission --config \(directory)/gatewayd.toml --listen 2m
            gateway_id = "gw-sim-0500"
            building = "simulated 500"
            demo = true
            keys_file = "keys"

            """
        for i in 0..<spec.wiredLines {
            let name = "mbus-\(Character(UnicodeScalar(UInt8(97 + i))))"
            toml += """

                [[buses.mbus]]
                name = "\(name)"
                simulator = true
                slaves = "\(name).json"
                baud = \(spec.mbusBaud)
                addressing = "secondary"

                """
        }
        toml += """

            [[buses.wmbus]]
            name = "wmbus-1"
            type = "im871a"
            link_mode = "c1t1"
            simulator = true
            replay = "radio.txt"
            simulator_interval = "\(spec.radioIntervalMilliseconds)ms"
            simulator_loop = false

            """
        toml += modbusTOML
        toml += """

            [buffer]
            path = "\(directory)/state/buffer.sqlite"

            [uplink]
            transport = "https"
            endpoint = "http://127.0.0.1:18080/api/v1"
            insecure = true

            [registry]
            source = "file"
            file = "registry.json"

            [metrics]
            enabled = false

            [status]
            socket = "\(directory)/state/status.sock"

            """
        try toml.write(toFile: directory + "/gatewayd.toml", atomically: true, encoding: .utf8)

        truth.expected = truth.devices.count
        truth.heard = truth.devices.filter(\.transmits).count
        truth.missing = truth.expected - truth.heard
        truth.wrongKey = truth.devices.filter { $0.decryption == "wrong_key" }.count
        truth.weak = weakSet.count
        truth.serialMismatch = truth.devices.filter { $0.serialMatch == "mismatch" }.count
        truth.strangers = truth.strangerIDs.count
        try encoder.encode(truth).write(to: URL(fileURLWithPath: directory + "/truth.json"))
        return truth
    }

    // MARK: - Templates

    struct RadioTemplate {
        var bytes: [UInt8]
        var manufacturer: String
    }

    /// Plain test telegrams of the allocator and water-meter profiles (no key, no preceding frame).
    static func templates(_ catalog: ProfileCatalog) throws -> (allocators: [RadioTemplate], water: [RadioTemplate]) {
        var allocators: [RadioTemplate] = [], water: [RadioTemplate] = []
        for p in catalog.profiles.sorted(by: { $0.id < $1.id }) where p.category == "heat_cost_allocator" || p.category == "water" {
            for t in p.tests where t.key == nil && (t.preceding ?? []).isEmpty {
                let bytes = try Hex.decode(t.hex)
                // Plain telegrams only: the devices this building encrypts are made here with their keys.
                var decoder = WirelessDecoder()
                guard bytes.count > 11, let frame = try? WMBusFrameCodec.decode(bytes, format: .noCRC),
                      let decoded = try? decoder.decode(frame), decoded.security.state == .none else { continue }
                // The building gives each device a new id: only telegrams that stay the same meter with another
                // id qualify (not those whose bytes are scrambled or checked with the address, or whose meter
                // id sits behind a radio adapter's).
                let probe = IdentificationNumber("12345678")!
                var check = WirelessDecoder()
                guard let movedBytes = ProfileTelegramEncoder.withIdentification(bytes, probe), let moved = try? check.decode(movedBytes),
                      moved.meterAddress.identification == probe, moved.recordError == nil,
                      let reading = catalog.evaluate(moved), reading.profileID == p.id, reading.problems.isEmpty,
                      IdentityValidation.problems(in: moved.telegram.header).isEmpty else { continue }
                // What the truth promises the commissioning report shows: a reading in the billing unit, and for an
                // allocator a set-day value, as the report picks them from the normalised values.
                let normalised = MeterProfileNormaliser(catalog: catalog).normalise(NormaliserInput(
                    telegram: moved.telegram, wireless: moved,
                    device: RegisteredDevice(key: "probe", bus: .wirelessMBus, identification: probe.digits, manufacturer: frame.address.manufacturer.letters)))
                let (current, setDay) = CommissioningSession.readingAndSetDay(normalised.values.filter { $0.value.isFinite })
                guard current?.unit == (p.category == "water" ? "m3" : "hca"), p.category == "water" || setDay != nil else { continue }
                let template = RadioTemplate(bytes: bytes, manufacturer: frame.address.manufacturer.letters)
                if p.category == "water" { water.append(template) } else { allocators.append(template) }
                break
            }
        }
        guard !allocators.isEmpty, !water.isEmpty else {
            throw CLIError("the meter profiles have no plain allocator or water-meter test telegrams to build a building from")
        }
        return (allocators, water)
    }

    struct WiredTemplate {
        var hex: String
        var manufacturer: String
        /// The unit of the reading the commissioning report shows for it (a profile may convert Wh to kWh).
        var readingUnit: String
    }

    /// Heat meters' answers from the demo building's slave file (one telegram each).
    static func wiredTemplates(_ catalog: ProfileCatalog) throws -> [WiredTemplate] {
        guard let dir = ConfigChoice.demoBuildingDirectory() else { throw CLIError("seeds/demo-building not found; set GATEWAYD_SEEDS") }
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/mbus-slaves.json"))
        guard let doc = try JSONSerialization.jsonObject(with: data) as? [String: Any], let slaves = doc["slaves"] as? [[String: Any]] else {
            throw CLIError("\(dir)/mbus-slaves.json is not a slave file")
        }
        var out: [WiredTemplate] = []
        for s in slaves {
            guard let frames = s["frames"] as? [String], frames.count == 1, (s["behaviour"] as? String ?? "normal") == "normal",
                  let bytes = try? Hex.decode(frames[0]), let t = try? TelegramDecoder.decode(bytes),
                  let m = t.header.manufacturer?.letters,
                  t.header.deviceType == DeviceType.heatOutlet || t.header.deviceType == DeviceType.heatInlet
            else { continue }
            // Only answers whose first record is energy: a heat meter's billing value.
            guard t.records.first.map({ $0.quantity.lowercased().contains("energy") }) ?? false else { continue }
            let device = RegisteredDevice(key: "probe", bus: .wiredMBus, identification: t.header.identification?.digits, manufacturer: m)
            let normalised = MeterProfileNormaliser(catalog: catalog).normalise(NormaliserInput(telegram: t, wireless: nil, device: device))
            guard let unit = CommissioningSession.readingAndSetDay(normalised.values.filter { $0.value.isFinite }).reading?.unit else { continue }
            out.append(WiredTemplate(hex: frames[0], manufacturer: m, readingUnit: unit))
        }
        guard !out.isEmpty else { throw CLIError("no heat-meter answers in \(dir)/mbus-slaves.json") }
        return out
    }

    /// A heat pump with a serial-number register, for the simulator only (no real product's map).
    static func heatPumpProfile(id: String, serial: String) throws -> Data {
        var chars = Array(serial.utf8)
        while chars.count < 16 { chars.append(0) }
        let words = (0..<8).map { Int(chars[2 * $0]) << 8 | Int(chars[2 * $0 + 1]) }
        let doc: [String: Any] = [
            "id": id,
            "name": "Simulated heat pump with a serial-number register (test building only; not a real product's map)",
            "manufacturer": "simulated",
            "source": ["generated by gatewayd-sim building"],
            "numbering": "PDU addresses",
            "serial": "Modbus TCP, unit 1",
            "limits": ["maxRegisters": 100, "gapFill": 4],
            "groups": [["name": "fast", "intervalSeconds": 60]],
            "registers": [
                ["name": "serial_number", "label": "Serial number", "kind": "holding", "address": 100, "type": "string", "count": 8, "group": "fast"],
                ["name": "heat_produced", "label": "Heat produced", "kind": "input", "address": 0, "type": "u32", "scale": 0.1, "unit": "kWh",
                 "quantity": "energy", "group": "fast"],
                ["name": "electricity_consumed", "label": "Electricity consumed", "kind": "input", "address": 2, "type": "u32", "scale": 0.1,
                 "unit": "kWh", "quantity": "energy", "group": "fast"],
                ["name": "flow_temperature", "label": "Flow temperature", "kind": "input", "address": 4, "type": "i16", "scale": 0.1, "unit": "°C",
                 "quantity": "temperature", "group": "fast"],
                ["name": "return_temperature", "label": "Return temperature", "kind": "input", "address": 5, "type": "i16", "scale": 0.1, "unit": "°C",
                 "quantity": "temperature", "group": "fast"],
            ],
            "identity": ["units": [["role": "monoblock", "serial": "serial_number"]]],
            "test": [
                "unit": 1,
                "dump": ["holding": [["address": 100, "values": words]], "input": [["address": 0, "values": [0, 12345, 0, 3456, 352, 301]]]],
                "expected": ["serial_number": serial, "heat_produced": 1234.5, "electricity_consumed": 345.6, "flow_temperature": 35.2,
                             "return_temperature": 30.1],
                "alarms": [String](),
            ],
        ]
        return try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
    }

    static func digits(_ n: Int) -> String {
        let s = String(n % 100_000_000)
        return String(repeating: "0", count: 8 - s.count) + s
    }

    private static func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    private static func three(_ n: Int) -> String { n < 10 ? "00\(n)" : (n < 100 ? "0\(n)" : "\(n)") }
}


/// `gatewayd-sim building`: writes a generated building (registry, keys, captures, slave files,
/// configuration, truth) to commission against with no hardware.
struct SimulateBuilding: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "building",
        abstract: "Generate a simulated building (500 devices by default) to run `gatewayd commission` against.",
        discussion: """
            400 radio devices in 80 units on 10 floors (20 silent, 5 with a wrong key on file, 2 whose key-file rows are swapped, 10 weak on the top \
            floors), 60 wired heat meters on 2 M-Bus lines (3 never answer), 2 heat pumps (one whose registry \
            serial does not match) and 30 strangers. truth.json lists what commissioning must find.
            """)

    @Option(help: "Directory to write the building into (created).")
    var out: String

    @Option(help: "Gap between simulated radio telegrams, in milliseconds (the simulator still keeps each telegram's airtime).")
    var radioIntervalMs: Int = 10

    @Option(help: "Seed for the generator (the same seed gives the same building).")
    var seed: UInt64 = 0x0C0_FFEE

    @Option(help: "Radio devices that never send.")
    var silent: Int = 20

    @Option(help: "Encrypted allocators whose key on file is wrong.")
    var wrongKeys: Int = 5

    @Option(help: "Radio devices with a weak signal (on the top two floors).")
    var weak: Int = 10

    @Option(help: "Wired meters that never answer.")
    var wiredMissing: Int = 3

    @Option(help: "M-Bus line speed of the simulated lines.")
    var baud: Int = 2400

    func validate() throws {
        for (name, n) in [("--silent", silent), ("--wrong-keys", wrongKeys), ("--weak", weak), ("--wired-missing", wiredMissing)] where n < 0 {
            throw ValidationError("\(name) cannot be negative")
        }
        if ![300, 600, 1200, 2400, 4800, 9600, 19200, 38400].contains(baud) { throw ValidationError("--baud must be an M-Bus speed, 300 to 38400") }
    }

    func run() throws {
        let found: String?
        do { found = try ProfileCatalog.defaultDirectory() } catch { throw CLIError(error.message) }
        guard let profiles = found else {
            throw CLIError("no wireless meter profiles found (profiles/wmbus); set GATEWAYD_PROFILES to the profiles root, holding wmbus/ and modbus/")
        }
        var spec = SimulatedBuilding.Spec()
        spec.radioIntervalMilliseconds = max(1, radioIntervalMs)
        spec.seed = seed
        spec.silent = silent
        spec.wrongKey = wrongKeys
        spec.weak = weak
        spec.wiredMissing = wiredMissing
        spec.mbusBaud = baud
        let directory = URL(fileURLWithPath: out).standardizedFileURL.path
        let truth = try SimulatedBuilding(spec: spec).write(to: directory, profilesDirectory: profiles)
        print("""
            simulated building in \(directory): \(truth.expected) expected devices (\(truth.missing) silent or missing, \
            \(truth.wrongKey) wrong keys, \(truth.weak) weak, \(truth.serialMismatch) serial mismatch) and \(truth.strangers) strangers
            commission it: gatewayd commission --config \(directory)/gatewayd.toml --listen 2m
            """)
    }
}
