// The whole readout path under hostile bytes: decode -> identify -> security check -> profile ->
// normaliser -> dedup -> alarms -> readings, as `PipelineCore` runs it in the daemon.
//
// Shared by the libFuzzer target (Fuzz/pipeline-fuzz, built by `scripts/fuzz.sh pipeline-fuzz`) and the
// regression test that replays every kept input on each `swift test` (GatewayTests). Not linked into the
// gatewayd binary.
//
// Every input gets a registry made for it: whatever identity the bytes decode to is registered (on the bus
// the bytes came by, with a shipped profile where one detects it, and with a key for odd access numbers),
// so that the fuzzer reaches the normalisers instead of stopping at "not in the registry".
import Drivers
import Foundation
import Gateway

public enum PipelineFuzzing {
    /// One AES key for every keyed meter: seeds encrypted with it decrypt, so mode 5/7 paths are covered.
    public static let key = WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")!

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The shipped wM-Bus profiles (profiles/wmbus) and Modbus profiles (profiles/modbus), loaded once.
    public static let meterProfiles: ProfileCatalog = {
        (try? ProfileCatalog.load(directory: root.appendingPathComponent("profiles/wmbus").path)) ?? ProfileCatalog()
    }()

    public static let modbusProfiles: [ModbusProfile] = {
        let dir = root.appendingPathComponent("profiles/modbus")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return names.compactMap { try? ModbusProfile.load(path: dir.appendingPathComponent($0).path) }
    }()

    /// What one run saw, for the regression test's accounting.
    public struct Outcome: Sendable {
        public var outcomes: [PipelineOutcome] = []
        public var readings = 0
        public var counters = PipelineCounters()
    }

    /// Runs `bytes` through the path chosen by its first byte. Never traps (that is the property under
    /// test); `fatalError`s below are oracles for broken promises, not input handling.
    @discardableResult
    public static func run(_ bytes: [UInt8]) -> Outcome {
        guard let selector = bytes.first else { return Outcome() }
        let body = Array(bytes.dropFirst())
        switch selector % 4 {
        case 0: return wired(body)
        case 1: return radio(body, fitted: false)
        case 2: return radio(body, fitted: true)
        default: return modbus(body, pick: Int(selector / 4))
        }
    }

    static func wired(_ frame: [UInt8]) -> Outcome {
        var devices: [RegisteredDevice] = []
        var keys: [IdentificationNumber: WMBusKey] = [:]
        if let t = try? TelegramDecoder.decode(frame) {
            // Wired TPL security: frames sealed with the fuzz key open, and the profiles read wired answers.
            if let n = t.header.identification { keys[n] = key }
            if let opened = try? TelegramDecoder.open(t, keyring: WMBusKeyring(keys: keys)),
               let w = WirelessTelegram(wired: opened, recordBytes: frame.count >= 21 && opened.securityMode == 0 ? Array(frame[19..<(frame.count - 2)]) : nil) {
                _ = meterProfiles.evaluate(w)
            }
            if let id = t.header.identification?.digits, IdentificationNumber(id) != nil, let m = t.header.manufacturer?.letters,
               ManufacturerCode(m)?.isValidFlagCode == true {
                devices.append(RegisteredDevice(key: "mbus:\(m):\(id)", bus: .wiredMBus, identification: id, manufacturer: m, line: "line-1"))
            } else if let a = t.primaryAddress {
                devices.append(RegisteredDevice(key: "mbus:line-1:\(a)", bus: .wiredMBus, primaryAddress: Int(a), line: "line-1"))
            }
        }
        let input = PipelineInput.wired(WiredInput(.frame(frame), line: "line-1", receivedAt: 1_780_000_000_000))
        return exercise(devices: devices, keys: keys, inputs: [input, input])
    }

    static func radio(_ raw: [UInt8], fitted: Bool) -> Outcome {
        var frame = raw
        if fitted {
            guard frame.count >= 10, frame.count <= 256 else { return Outcome() }
            frame[0] = UInt8(truncatingIfNeeded: frame.count - 1)
        }
        let format: WMBusFrameFormat? = fitted ? .noCRC : nil
        var devices: [RegisteredDevice] = []
        var keys: [IdentificationNumber: WMBusKey] = [:]
        // Register what the bytes decode to: the link layer's address and the TPL's, where it has its own.
        var addresses: [WMBusAddress] = []
        var decoder = WirelessDecoder(keyring: WMBusKeyring(defaultKey: key))
        if let w = try? decoder.decode(frame, format: format) {
            addresses.append(w.frame.address)
            if let id = w.telegram.header.identification, let m = w.telegram.header.manufacturer {
                addresses.append(WMBusAddress(manufacturer: m, identification: id, version: w.telegram.header.version ?? 0,
                                              deviceType: w.telegram.header.deviceType ?? .water))
            }
        }
        for a in addresses where a.manufacturer.isValidFlagCode && IdentificationNumber(a.identification.digits) != nil {
            let key = "wmbus:\(a.manufacturer.letters):\(a.identification.digits)"
            guard !devices.contains(where: { $0.key == key }) else { continue }
            // Half the meters "must encrypt" (key on file), so the downgrade check sees plain telegrams too.
            let keyed = a.identification.rawValue & 1 == 1
            if keyed { keys[a.identification] = Self.key }
            devices.append(RegisteredDevice(key: key, bus: .wirelessMBus, identification: a.identification.digits,
                                            manufacturer: a.manufacturer.letters, profile: meterProfiles.profile(for: a)?.id,
                                            keyReference: keyed ? "fuzz" : nil))
        }
        let input = PipelineInput.wireless(WirelessInput(.frame(frame, format: format, linkMode: .t1), dongle: "fuzz", rssi: -70,
                                                         receivedAt: 1_780_000_000_000))
        return exercise(devices: devices, keys: keys, inputs: [input, input])
    }

    static func modbus(_ body: [UInt8], pick: Int) -> Outcome {
        guard !modbusProfiles.isEmpty else { return Outcome() }
        let profile = modbusProfiles[pick % modbusProfiles.count]
        let registers = profile.registers.filter { $0.kind.isRegister }
        let requests = profile.plan(registers)
        // The input's bytes become the register words, request after request; too short leaves a block unread.
        var offset = 0
        let blocks: [[UInt16]?] = requests.map { r in
            guard offset + 2 * r.count <= body.count else { return nil }
            defer { offset += 2 * r.count }
            return (0..<r.count).map { UInt16(body[offset + 2 * $0]) << 8 | UInt16(body[offset + 2 * $0 + 1]) }
        }
        let reading = profile.decode(registers, requests: requests, words: blocks, unit: 1)
        let device = RegisteredDevice(key: "modbus:fuzz:1", bus: .modbus, modbusUnit: 1, line: "rs485-1", profile: profile.id)
        let input = PipelineInput.modbus(ModbusInput(reading, line: "rs485-1", receivedAt: 1_780_000_000_000))
        return exercise(devices: [device], keys: [:], inputs: [input, input])
    }

    static func exercise(devices: [RegisteredDevice], keys: [IdentificationNumber: WMBusKey], inputs: [PipelineInput]) -> Outcome {
        guard let registry = try? DeviceRegistry(RegistryDocument(gateway: "gw-fuzz", building: "fuzz", devices: devices)) else {
            return Outcome()
        }
        let options = PipelineOptions(keyring: WMBusKeyring(keys: keys), normaliser: MeterProfileNormaliser(catalog: meterProfiles),
                                      modbusNormaliser: ModbusNormaliser())
        var core = PipelineCore(registry: registry, options: options)
        var out = Outcome()
        var ledger = SetDayLedger()
        var latest: Int64 = 0
        for (n, input) in inputs.enumerated() {
            let staged = core.process(input)
            check(staged)
            // Billing-day proof over hostile set-day readings: at most one proof per device, all finite.
            let captures = ledger.newCaptures(in: staged.readings)
            guard Set(captures.map(\.reading.device)).count == captures.count, captures.allSatisfy({ $0.reading.value.isFinite }) else {
                fatalError("set-day proof: duplicate or non-finite: \(captures.map(\.reading))")
            }
            ledger.apply(captures)
            latest = max(latest, staged.readings.map(\.receivedAt).max() ?? latest)
            // The first as stored, the second as refused by the buffer: both bookkeeping paths run.
            if n == 0 { core.committed(staged, stored: true) } else { core.rollback(staged); core.committed(staged, stored: false) }
            out.outcomes.append(staged.outcome)
            out.readings += staged.readings.count
            _ = staged.outcome.description
        }
        // The same inputs received at hostile times (a replayed support bundle carries any receive time), kept
        // in a frame journal, and the inputs a replay rebuilds from that journal through the pipeline again.
        var journal = FrameJournal(capacity: 4)
        for (n, input) in inputs.enumerated() {
            let moved = input.received(at: n % 2 == 0 ? Int64.max : Int64.min)
            let staged = core.process(moved)
            check(staged)
            core.committed(staged, stored: true)
            journal.record(moved, device: staged.device, outcome: staged.outcome, readings: staged.readings.count, digest: staged.contentDigest)
        }
        for entry in journal.entries {
            guard let again = JournalReplay.input(entry) else { continue }
            let staged = core.process(again)
            check(staged)
            core.committed(staged, stored: true)
        }
        // Silence checks at hostile times (the last reception, far future, far past): staged alarms only.
        for now in [latest, latest &+ 86_400_000 &* 30, Int64.max, Int64.min] {
            let (_, staged) = core.checkSilence(now: now)
            for s in staged { check(s) }
        }
        _ = core.reception.snapshot()
        out.counters = core.counters
        let c = core.counters
        guard c.decoded + c.failed == c.heard, c.decoded >= c.unknown + c.rejected + c.deduplicated else {
            fatalError("pipeline counters do not add up: \(c)")
        }
        return out
    }

    /// Oracles: what reaches the buffer is finite, dated sanely and names its device.
    static func check(_ staged: PipelineCore.Staged) {
        for r in staged.readings {
            guard r.value.isFinite else { fatalError("a non-finite value reached the buffer: \(r)") }
            guard !r.device.isEmpty, !r.quantity.isEmpty else { fatalError("a reading without device or quantity: \(r)") }
            _ = r.raw.utf8.count
        }
        if case .rejected(.securityDowngrade) = staged.outcome, staged.readings.contains(where: { $0.readingClass != .alarm }) {
            fatalError("a downgraded telegram's values were staged")
        }
    }
}

extension PipelineInput {
    /// The same input with another receive time.
    func received(at t: Int64) -> PipelineInput {
        switch self {
        case .wired(var w): w.receivedAt = t; return .wired(w)
        case .wireless(var w): w.receivedAt = t; return .wireless(w)
        case .modbus(var m): m.receivedAt = t; return .modbus(m)
        case .manual(var m): m.receivedAt = t; return .manual(m)
        }
    }
}
