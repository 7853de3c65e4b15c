import Drivers
import Foundation

/// Settings that decide what counts as a problem.
public struct CommissioningOptions: Hashable, Sendable {
    /// A radio device whose median signal is below this (dBm) is reported as weak. -95 dBm leaves some
    /// margin above the sensitivity of the usual dongles (about -105 to -110 dBm in T1/C1), because a
    /// door closed or a cupboard filled later takes 5 to 10 dB.
    public var weakSignalBelow: Double
    /// RSSI samples kept per device for the chart.
    public var maximumSamples: Int
    /// Values shown per device.
    public var maximumValues: Int

    public init(weakSignalBelow: Double = -95, maximumSamples: Int = 48, maximumValues: Int = 4) {
        self.weakSignalBelow = weakSignalBelow
        self.maximumSamples = max(1, maximumSamples)
        self.maximumValues = max(1, maximumValues)
    }
}

/// Where commissioning stands, for the live view: per floor, and in total.
public struct CommissioningProgress: Hashable, Sendable {
    public struct Floor: Hashable, Sendable {
        public var floor: String
        public var expected = 0
        public var heard = 0
        public var wrongKey = 0
        public var noKey = 0
        public var weak = 0
        public var serialMismatch = 0
        /// The weakest median RSSI heard on this floor.
        public var weakestRSSI: Double?
        /// The median RSSI of each radio device heard on this floor (for "-91 … -68 dBm").
        public var medians: [Double] = []
        /// Keys of the devices not heard yet, registry order.
        public var missing: [String] = []

        public init(floor: String) { self.floor = floor }
    }

    public var floors: [Floor]
    public var summary: CommissioningReport.Summary

    public init(floors: [Floor], summary: CommissioningReport.Summary) {
        self.floors = floors
        self.summary = summary
    }
}

/// The tally of one commissioning run: the registry's expectations on one side, everything heard,
/// read or probed on the other. Pure: the command feeds it events from the buses and asks it for the
/// live view and the report. Radio telegrams are decoded here (with the building's keys), so that a
/// wrong key, a missing key and a plain telegram are told apart the same way for every dongle.
public struct CommissioningSession: Sendable {
    public let registry: DeviceRegistry
    public let options: CommissioningOptions
    public let startedAt: Int64
    public let listenSeconds: Int

    private var decoder: WirelessDecoder
    private let normaliser: any ReadingNormaliser
    private let catalog: ProfileCatalog?
    /// Expected devices in registry order, and their index by key.
    private var results: [CommissioningReport.DeviceResult]
    private var index: [String: Int]
    private var rssiSamples: [String: [Double]] = [:]
    private var allRSSI: [String: [Double]] = [:]
    private var heatPumps: [String: CommissioningReport.HeatPumpResult] = [:]
    private var unknown: [String: CommissioningReport.UnknownDevice] = [:]
    private var buses: [String: CommissioningReport.BusResult] = [:]
    private var busOrder: [String] = []
    private var telegrams = 0
    /// Milliseconds since the start when each bus was done (see `BusResult.completedAfterSeconds`).
    private var completedAt: [String: Int64] = [:]
    /// When the last radio device was heard for the first time, milliseconds since the start.
    private var lastNewRadioDevice: Int64?
    /// Radio telegrams that did not decode at all (not even the link layer).
    public private(set) var undecodable = 0
    /// Devices whose failed telegram was already tried against the other keys.
    private var forensicsTried: Set<String> = []
    /// Meters whose key is in the key file: they must not be heard in the clear.
    private let keyed: Set<IdentificationNumber>

    public init(registry: DeviceRegistry, keyring: WMBusKeyring, catalog: ProfileCatalog?, startedAt: Int64, listenSeconds: Int,
                options: CommissioningOptions = CommissioningOptions()) {
        self.registry = registry
        self.options = options
        self.startedAt = startedAt
        self.listenSeconds = listenSeconds
        self.catalog = catalog
        decoder = WirelessDecoder(keyring: keyring)
        decoder.collectsFields = false
        decoder.learn(formats: catalog?.compactFormats ?? [])
        keyed = Set(keyring.keys.keys)
        normaliser = catalog.map { MeterProfileNormaliser(catalog: $0) } ?? EN13757Normaliser()
        var results: [CommissioningReport.DeviceResult] = []
        for d in registry.devices where d.bus.isReadAutomatically && d.replacedBy == nil {
            var r = CommissioningReport.DeviceResult(
                key: d.key, bus: d.bus.rawValue, unit: d.unit, floor: Self.floor(of: d.unit), identification: d.identification,
                manufacturer: d.manufacturer, kind: Self.kind(of: d), line: d.line)
            if d.bus == .modbus {
                heatPumps[d.key] = CommissioningReport.HeatPumpResult(
                    key: d.key, line: d.line ?? "-", modbusUnit: d.modbusUnit ?? 0, profile: d.profile, registeredSerial: d.serial)
            }
            r.profile = d.bus == .modbus ? d.profile : nil
            results.append(r)
        }
        self.results = results
        index = Dictionary(results.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// "4" for unit "4.12", "EG" for "EG.3"; "-" without a unit.
    public static func floor(of unit: String?) -> String {
        guard let unit, !unit.isEmpty else { return "-" }
        return String(unit.split(separator: ".", maxSplits: 1).first ?? Substring(unit))
    }

    public static func kind(of d: RegisteredDevice) -> String {
        if d.bus == .modbus { return "heat pump" }
        if let m = d.medium, !m.isEmpty { return m == "heat" ? "heat meter" : (m.hasSuffix("water") ? m + " meter" : m) }
        return d.bus == .wiredMBus ? "M-Bus meter" : "radio meter"
    }

    /// The expected devices, in registry order (for the command to plan its wired selects).
    public var expected: [CommissioningReport.DeviceResult] { results }

    // MARK: - Events

    /// A bus started, failed or stopped; `state` is "ok" or what is wrong in words.
    public mutating func bus(_ name: String, kind: String, state: String) {
        if buses[name] == nil {
            busOrder.append(name)
            let expected = results.filter { busKind($0) == kind && ($0.line == nil || $0.line == name || kind == "wmbus") }.count
            buses[name] = CommissioningReport.BusResult(name: name, kind: kind, state: state, expected: expected, heard: 0, telegrams: 0)
        } else {
            buses[name]?.state = state
        }
    }

    private func busKind(_ r: CommissioningReport.DeviceResult) -> String { r.bus }

    /// A wired or Modbus line finished its first full pass at `at` (Unix milliseconds).
    public mutating func busCompleted(_ name: String, at: Int64) {
        if completedAt[name] == nil { completedAt[name] = at - startedAt }
    }

    /// One radio telegram as a dongle delivered it.
    public mutating func heard(_ t: ReceivedTelegram, bus: String) {
        telegrams += 1
        buses[bus]?.telegrams += 1
        let rssi = t.rssiDBm
        switch Self.decode(&decoder, t) {
        case .success(let w):
            let header = w.telegram.header
            switch registry.identify(header, bus: .wirelessMBus) {
            case .success(let device):
                guard let i = index[device.key] else { return }
                var decryption: CommissioningReport.Decryption
                switch w.security.state {
                case .none: decryption = .plain
                case .decrypted, .alreadyDecrypted, .descrambled: decryption = .decrypted
                case .noKey: decryption = .noKey
                case .unsupportedMode: decryption = .unsupported
                }
                markHeard(i, bus: bus, rssi: rssi, serial: .match, detail: nil, at: t.receivedAt.millisecondsSince1970)
                // As the daemon's pipeline: a meter that must encrypt, heard in the clear (or announcing a mode
                // but carrying plain data), is a finding and its values are not taken.
                let mustEncrypt = device.keyReference != nil || header.identification.map { keyed.contains($0) } == true
                if mustEncrypt, let downgrade = w.security.downgrade {
                    results[i].securityDowngrade = "a telegram " + downgrade
                    return
                }
                // A device that was opened once stays "decrypted" even if a later telegram is of a plain kind; and a
                // plain telegram (installation, status) does not hide a wrong or missing key seen before.
                let previous = results[i].decryption
                let refused = previous == .wrongKey || previous == .noKey || previous == .unsupported
                if decryption == .decrypted || (previous != .decrypted && !(decryption == .plain && refused)) {
                    results[i].decryption = decryption
                }
                if decryption == .plain || decryption == .decrypted { takeValues(i, telegram: w.telegram, wireless: w, device: device) }
            case .failure(.manufacturerMismatch(let id, let registered, let heardCode)):
                if let i = results.firstIndex(where: { $0.identification == id && $0.bus == BusKind.wirelessMBus.rawValue }) {
                    markHeard(i, bus: bus, rssi: rssi, serial: .mismatch,
                              detail: "id \(id) heard from manufacturer \(heardCode), the registry says \(registered)")
                } else {
                    stranger(identification: id, manufacturer: heardCode, type: header.deviceType?.name ?? "?", rssi: rssi, on: bus)
                }
            case .failure(let why):
                stranger(identification: header.identification?.digits ?? "?", manufacturer: header.manufacturer?.letters ?? "?",
                         type: header.deviceType?.name ?? "?", rssi: rssi, on: bus, note: Self.note(why))
            }
        case .failure(let error):
            // The link layer may still be readable: a wrong key is a fact about a known device.
            guard let frame = try? t.frame() else {
                undecodable += 1
                return
            }
            let a = frame.address
            var header = TelegramHeader()
            header.identification = a.identification
            header.manufacturer = a.manufacturer
            header.version = a.version
            header.deviceType = a.deviceType
            guard case .success(let device) = registry.identify(header, bus: .wirelessMBus), let i = index[device.key] else {
                stranger(identification: a.identification.digits, manufacturer: a.manufacturer.letters, type: a.deviceType.name, rssi: rssi, on: bus)
                return
            }
            markHeard(i, bus: bus, rssi: rssi, serial: .match, detail: nil, at: t.receivedAt.millisecondsSince1970)
            if error.code == .wrongKey || error.code == .macMismatch {
                if results[i].decryption != .decrypted { results[i].decryption = .wrongKey }
                // Once per device: does another key of the building open it (swapped rows of the key file)?
                if forensicsTried.insert(device.key).inserted,
                   let d = KeyForensics.diagnose(t.bytes, format: .noCRC, error: error, telegram: nil, keyring: decoder.keyring),
                   d.kind == .keyOfAnotherMeter {
                    results[i].keyFiledUnder = d.keyFiledUnder?.digits
                }
            } else if results[i].error == nil {
                results[i].error = "telegram not decodable: \(error.message)"
            }
        }
    }

    /// A wired meter answered (a registry-assisted select and REQ_UD2, or a blind scan's find).
    public mutating func wiredAnswer(_ telegram: Telegram, line: String) {
        telegrams += 1
        buses[line]?.telegrams += 1
        let header = telegram.header
        switch registry.identify(header, bus: .wiredMBus) {
        case .success(let device):
            guard let i = index[device.key] else { return }
            markHeard(i, bus: line, rssi: nil, serial: .match, detail: device.line.map { $0 == line ? nil : "registered on \($0), found on \(line)" } ?? nil)
            results[i].error = nil
            takeValues(i, telegram: telegram, wireless: nil, device: device)
        case .failure(.manufacturerMismatch(let id, let registered, let heardCode)):
            if let i = results.firstIndex(where: { $0.identification == id && $0.bus == BusKind.wiredMBus.rawValue }) {
                markHeard(i, bus: line, rssi: nil, serial: .mismatch,
                          detail: "meter \(id) answers as manufacturer \(heardCode), the registry says \(registered)")
                results[i].error = nil
            }
        case .failure(let why):
            stranger(identification: header.identification?.digits ?? "?", manufacturer: header.manufacturer?.letters ?? "?",
                     type: header.deviceType?.name ?? "?", rssi: nil, on: line, note: Self.note(why))
        }
    }

    /// A wired meter in the registry did not answer its selection.
    public mutating func wiredSilent(key: String, line: String, error: String) {
        guard let i = index[key], !results[i].heard else { return }
        results[i].error = error
    }

    /// Whether the expected device `key` has been heard (false for a key the registry does not expect).
    public func isHeard(_ key: String) -> Bool {
        guard let i = index[key] else { return false }
        return results[i].heard
    }

    /// A heat pump answered its profile's read.
    public mutating func heatPump(key: String, reading: ModbusReading) {
        guard let i = index[key], var hp = heatPumps[key] else { return }
        telegrams += 1
        buses[hp.line]?.telegrams += 1
        hp.answered = true
        hp.error = nil
        hp.identity = reading.identities.map { CommissioningReport.ReportedSerial(role: $0.role, serial: $0.serial) }
        let values = reading.values.compactMap { v -> CommissioningReport.Value? in
            guard case .number(let n) = v.value else { return nil }
            return CommissioningReport.Value(name: v.name, value: n, unit: v.unit ?? "")
        }
        hp.values = Array(values.prefix(options.maximumValues))
        let serial: CommissioningReport.SerialMatch
        var detail: String?
        switch registry.identifyModbus(line: hp.line, unit: hp.modbusUnit, reported: reading.identities) {
        case .success:
            let reported = reading.identities.contains { !($0.serial ?? "").isEmpty }
            serial = reported ? .match : .unverified
            if !reported { detail = "the device does not report its serial over Modbus; the registry's is assumed" }
        case .failure(.serialMismatch(_, let got, let want)):
            serial = .mismatch
            detail = "reports serial \(got), the registry expects \(want)"
        case .failure(.serialPattern(_, let profile, let problem)):
            serial = .mismatch
            detail = "\(problem) (profile \(profile))"
        case .failure(let why):
            serial = .mismatch
            detail = "\(why)"
        }
        hp.serialMatch = serial
        hp.serialDetail = detail
        heatPumps[key] = hp
        markHeard(i, bus: hp.line, rssi: nil, serial: serial, detail: detail)
        results[i].error = nil
        results[i].values = hp.values
        // The meter-like value (energy) is the heat pump's "reading"; a temperature is not.
        results[i].reading = values.first { ["kwh", "mwh", "wh", "gj"].contains($0.unit.lowercased()) } ?? hp.values.first
    }

    public mutating func heatPumpSilent(key: String, error: String) {
        guard let i = index[key], !results[i].heard else { return }
        heatPumps[key]?.error = error
        results[i].error = error
    }

    // MARK: - Questions

    /// Each bus and its state ("ok", or what is wrong), in the order they started: the live view's line.
    public var busStates: [(name: String, state: String)] {
        busOrder.compactMap { name in buses[name].map { (name, $0.state) } }
    }

    /// Every expected device has been heard (wrong keys and mismatches included: they were heard).
    public var everythingHeard: Bool { results.allSatisfy(\.heard) }

    public var progress: CommissioningProgress {
        var floors: [String: CommissioningProgress.Floor] = [:]
        var order: [String] = []
        for r in results {
            if floors[r.floor] == nil {
                floors[r.floor] = CommissioningProgress.Floor(floor: r.floor)
                order.append(r.floor)
            }
            floors[r.floor]!.expected += 1
            if r.heard { floors[r.floor]!.heard += 1 } else { floors[r.floor]!.missing.append(r.key) }
            if r.decryption == .wrongKey { floors[r.floor]!.wrongKey += 1 }
            if r.decryption == .noKey { floors[r.floor]!.noKey += 1 }
            if r.serialMatch == .mismatch { floors[r.floor]!.serialMismatch += 1 }
            if let median = median(of: r.key) { floors[r.floor]!.medians.append(median) }
            if let median = median(of: r.key), median < options.weakSignalBelow {
                floors[r.floor]!.weak += 1
                floors[r.floor]!.weakestRSSI = min(floors[r.floor]!.weakestRSSI ?? median, median)
            }
        }
        return CommissioningProgress(floors: Self.sortFloors(order).compactMap { floors[$0] }, summary: summary)
    }

    public var summary: CommissioningReport.Summary {
        var s = CommissioningReport.Summary()
        s.expected = results.count
        s.heard = results.filter(\.heard).count
        s.missing = s.expected - s.heard
        s.wrongKey = results.filter { $0.decryption == .wrongKey }.count
        s.noKey = results.filter { $0.decryption == .noKey }.count
        s.serialMismatch = results.filter { $0.serialMatch == .mismatch }.count
        s.weakSignal = results.filter { r in median(of: r.key).map { $0 < options.weakSignalBelow } ?? false }.count
        s.unknownNearby = unknown.count
        s.telegrams = telegrams
        return s
    }

    /// The report as of now.
    public func report(finishedAt: Int64, endedBecause: CommissioningReport.EndReason, gatewayID: String? = nil) -> CommissioningReport {
        var devices = results
        for i in devices.indices {
            if let all = allRSSI[devices[i].key], !all.isEmpty {
                let sorted = all.sorted()
                devices[i].rssi = CommissioningReport.SignalStatistics(
                    best: sorted.last!, worst: sorted.first!, median: Self.median(sorted), samples: rssiSamples[devices[i].key] ?? [])
            }
        }
        let unknownList = unknown.values.sorted {
            ($0.telegrams, $1.identification, $1.manufacturer) > ($1.telegrams, $0.identification, $0.manufacturer)
        }
        let pumps = results.compactMap { heatPumps[$0.key] }
        var busList = busOrder.compactMap { buses[$0] }
        for b in busList.indices {
            let name = busList[b].name
            let kind = busList[b].kind
            let mine = devices.filter { $0.bus == kind && (kind == BusKind.wirelessMBus.rawValue || $0.line == name) }
            busList[b].expected = mine.count
            busList[b].heard = mine.filter(\.heard).count
            if kind == BusKind.wirelessMBus.rawValue {
                // The radio is done when every device that was going to be heard was: the last first telegram.
                busList[b].completedAfterSeconds = busList[b].heard == 0 ? nil : lastNewRadioDevice.map { Double($0) / 1000 }
            } else {
                busList[b].completedAfterSeconds = completedAt[name].map { Double($0) / 1000 }
            }
        }
        let gateway = gatewayID ?? registry.gateway
        return CommissioningReport(
            format: CommissioningReport.currentFormat,
            id: "commissioning-\(gateway)-\(Self.compactTimestamp(startedAt))",
            gateway: gateway, building: registry.building,
            startedAt: Self.iso8601(startedAt), finishedAt: Self.iso8601(finishedAt),
            listenSeconds: listenSeconds, endedBecause: endedBecause, summary: summary,
            devices: devices, heatPumps: pumps, unknownDevices: unknownList,
            findings: CommissioningFindings.findings(devices: devices, heatPumps: pumps, unknown: unknownList, buses: busList, options: options),
            buses: busList, weakSignalBelow: options.weakSignalBelow)
    }

    // MARK: - Internals

    private mutating func markHeard(_ i: Int, bus: String, rssi: Double?, serial: CommissioningReport.SerialMatch, detail: String?,
                                    at: Int64? = nil) {
        if !results[i].heard {
            buses[bus]?.heard += 1
            if let at { lastNewRadioDevice = max(lastNewRadioDevice ?? 0, at - startedAt) }
        }
        results[i].heard = true
        results[i].telegrams += 1
        // A mismatch, once seen, is what the installer must know about.
        if results[i].serialMatch != .mismatch {
            results[i].serialMatch = serial
            results[i].serialDetail = detail
        }
        if let rssi, rssi.isFinite {
            let key = results[i].key
            allRSSI[key, default: []].append(rssi)
            if rssiSamples[key, default: []].count < options.maximumSamples { rssiSamples[key, default: []].append(rssi) }
        }
    }

    private mutating func takeValues(_ i: Int, telegram: Telegram, wireless: WirelessTelegram?, device: RegisteredDevice) {
        // The first decoded values are the record: later telegrams only fill what is still missing.
        guard results[i].reading == nil || results[i].setDay == nil else { return }
        let normalised = normaliser.normalise(NormaliserInput(telegram: telegram, wireless: wireless, device: device))
        // The profile is looked up once per device (the normaliser has just evaluated it for the values).
        if results[i].profile == nil {
            // A wired long-header answer is read by the same meter's radio profile (as the normaliser does).
            results[i].profile = (wireless ?? WirelessTelegram(wired: telegram)).flatMap { catalog?.evaluate($0)?.profileID } ?? "generic EN 13757-3"
        }
        let values = normalised.values.filter { $0.value.isFinite }
        if results[i].values.isEmpty {
            results[i].values = values.prefix(options.maximumValues).map { .init(name: $0.quantity, value: $0.value, unit: $0.unit) }
        }
        let (reading, setDay) = Self.readingAndSetDay(values)
        if results[i].reading == nil, let v = reading { results[i].reading = .init(name: v.quantity, value: v.value, unit: v.unit) }
        if results[i].setDay == nil, let v = setDay { results[i].setDay = .init(name: v.quantity, value: v.value, unit: v.unit) }
    }

    /// The value the report shows as a device's reading (a current billing quantity if there is one) and its
    /// set-day value (the profile's, else a billing quantity at storage 1).
    public static func readingAndSetDay(_ values: [NormalisedValue]) -> (reading: NormalisedValue?, setDay: NormalisedValue?) {
        let reading = values.first(where: { $0.readingClass == .routine && $0.storage == 0 && isBillingQuantity($0) })
            ?? values.first(where: { $0.readingClass == .routine && $0.storage == 0 })
        let setDay = values.first(where: { $0.readingClass == .setDay }) ?? values.first(where: { $0.storage == 1 && isBillingQuantity($0) })
        return (reading, setDay)
    }

    /// Energy, volume and allocation units are what a bill is made of (not temperatures or flows).
    static func isBillingQuantity(_ v: NormalisedValue) -> Bool {
        let u = v.unit.lowercased()
        return u == "wh" || u == "kwh" || u == "mwh" || u == "j" || u == "gj" || u == "m3" || u == "m^3" || u == "l" || u == "hca" || u == "units"
            || v.quantity.lowercased().contains("energy") || v.quantity.lowercased().contains("volume") || v.quantity.lowercased().contains("allocat")
    }

    private mutating func stranger(identification: String, manufacturer: String, type: String, rssi: Double?, on bus: String, note: String? = nil) {
        let key = manufacturer + identification
        var u = unknown[key] ?? CommissioningReport.UnknownDevice(
            identification: identification, manufacturer: manufacturer, type: type, telegrams: 0, bestRssi: nil, lastRssi: nil, note: note,
            heardOn: bus)
        u.telegrams += 1
        if let rssi, rssi.isFinite {
            u.lastRssi = rssi
            u.bestRssi = max(u.bestRssi ?? rssi, rssi)
        }
        if u.note == nil { u.note = note }
        unknown[key] = u
    }

    /// Only what identifies another building; a plain "not in the registry" needs no note.
    static func note(_ why: RejectionReason) -> String? {
        switch why {
        case .otherBuilding(_, let building, _): return "registered in building \(building)"
        case .replaced(_, let on, let by): return "replaced on \(on) by \(by)"
        default: return nil
        }
    }

    private func median(of key: String) -> Double? {
        guard let all = allRSSI[key], !all.isEmpty else { return nil }
        return Self.median(all.sorted())
    }

    static func median(_ sorted: [Double]) -> Double {
        let n = sorted.count
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }

    /// Numeric floors in numeric order ("2" before "10"), then the rest by name, "-" last.
    static func sortFloors(_ floors: [String]) -> [String] {
        floors.sorted { a, b in
            if a == "-" || b == "-" { return b == "-" && a != "-" }
            switch (Int(a), Int(b)) {
            case (let x?, let y?): return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: return a < b
            }
        }
    }

    /// Outside closures: typed throws inside closures trips the compiler.
    private static func decode(_ decoder: inout WirelessDecoder, _ t: ReceivedTelegram) -> Result<WirelessTelegram, DecodeError> {
        do {
            return .success(try decoder.decode(t.bytes, format: .noCRC, linkMode: t.linkMode))
        } catch {
            return .failure(error)
        }
    }

    static func iso8601(_ ms: Int64) -> String {
        Date(timeIntervalSince1970: Double(ms) / 1000).formatted(.iso8601)
    }

    /// "20261121T101500Z": safe in file names and ids.
    static func compactTimestamp(_ ms: Int64) -> String {
        Date(timeIntervalSince1970: Double(ms) / 1000)
            .formatted(Date.ISO8601FormatStyle(dateSeparator: .omitted, dateTimeSeparator: .standard, timeSeparator: .omitted))
    }
}
