import Drivers

/// Options of the readout pipeline.
public struct PipelineOptions: Sendable {
    public var deduplication: Deduplicator.Options
    /// Buffer readings of devices not in the registry (neighbours' meters). Off by default: their readings
    /// are personal data of other households (GDPR). Only the operator turns this on.
    public var uploadStrangers: Bool
    /// Wireless M-Bus keys (AES-128) by meter id.
    public var keyring: WMBusKeyring
    /// Normaliser of M-Bus and wireless M-Bus telegrams (per profile, generic EN 13757-3 otherwise).
    public var normaliser: any ReadingNormaliser
    public var modbusNormaliser: ModbusNormaliser
    /// When a registered device counts as silent (`not_heard` for radio meters, `no_answer` for wired meters
    /// and heat pumps).
    public var silence: SilenceWatch.Policy
    /// Readout interval per wired M-Bus or Modbus line (milliseconds): the interval a polled device on that
    /// line is judged by. Lines not listed: learned from the answers, as for radio meters.
    public var lineIntervals: [String: Int64]

    public init(deduplication: Deduplicator.Options = .init(), uploadStrangers: Bool = false, keyring: WMBusKeyring = WMBusKeyring(),
                normaliser: any ReadingNormaliser = EN13757Normaliser(), modbusNormaliser: ModbusNormaliser = ModbusNormaliser(),
                silence: SilenceWatch.Policy = SilenceWatch.Policy(), lineIntervals: [String: Int64] = [:]) {
        self.silence = silence
        self.lineIntervals = lineIntervals
        self.deduplication = deduplication
        self.uploadStrangers = uploadStrangers
        self.keyring = keyring
        self.normaliser = normaliser
        self.modbusNormaliser = modbusNormaliser
    }
}

/// The synchronous steps of the pipeline: decode → identify → validate → normalise → deduplicate → alarms.
/// A value type owned by `ReadingPipeline` (which adds the buffer); usable alone by benchmarks and tests.
///
/// `process` stages readings and changes the dedup and alarm state; when the buffer then refuses the
/// readings, `rollback` undoes exactly those changes, so the same telegram heard again is not taken for a
/// duplicate of something that was never stored.
public struct PipelineCore: Sendable {
    public private(set) var registry: DeviceRegistry
    public private(set) var options: PipelineOptions
    public private(set) var counters = PipelineCounters()
    public private(set) var alarms = AlarmTracker()
    public private(set) var deduplicator: Deduplicator
    private var wireless: WirelessDecoder
    /// Stamped on readings: false until the gateway's clock is synchronised.
    public var clockSynchronised = true
    /// When each meter's failed telegram was last tried against the building's other keys (at most hourly:
    /// one decode per key), bounded.
    private var forensicsTried: [IdentificationNumber: Int64] = [:]
    /// What the last try of the building's keys found per meter (the id whose row opens it, or nil), so the
    /// telegrams in between keep the same finding instead of flapping to a plain wrong key.
    private var forensicsOwner: [IdentificationNumber: IdentificationNumber?] = [:]
    /// Median RSSI per registered radio meter and receiver, and week-over-week fading (`signal_weaker`).
    public private(set) var reception = ReceptionStats()
    /// Registered radio meters heard, and which have fallen silent (`checkSilence`).
    public private(set) var presence: SilenceWatch

    public init(registry: DeviceRegistry, options: PipelineOptions = PipelineOptions(), startedAt: Int64 = 0) {
        self.registry = registry
        self.options = options
        presence = SilenceWatch(policy: options.silence, startedAt: startedAt)
        presence.watch(Self.watchedDevices(registry, lineIntervals: options.lineIntervals))
        deduplicator = Deduplicator(options: options.deduplication)
        wireless = WirelessDecoder(keyring: options.keyring)
        wireless.collectsFields = false  // the byte-by-byte walk is for `decode --analyze`, not the pipeline
        // Compact frames of meters whose profiles document their format decode from the first one heard.
        if let profiles = options.normaliser as? MeterProfileNormaliser { wireless.learn(formats: profiles.catalog.compactFormats) }
    }

    /// Staged result of one input.
    public struct Staged: Sendable {
        public var outcome: PipelineOutcome
        public var readings: [Reading] = []
        public var alarms: [Alarm] = []
        /// A stranger heard: identity and signal only, for `UnknownDevices`.
        public var sighting: (header: TelegramHeader, rssi: Int?)?
        /// Values not stored and why (non-finite, not convertible), already counted in `refusedValues`.
        public var refusals: [ValueRefusal] = []
        /// The registered device this input came from, when it was identified (also when it then failed to
        /// open or was refused): the frame journal keeps such inputs, never strangers'.
        public var device: String?
        var digest: (device: String, value: UInt64)?
        /// The dedup content digest of the values staged (`ContentDigest`), nil when nothing was staged:
        /// the frame journal's fingerprint, computed once per telegram for both.
        public var contentDigest: UInt64? { digest?.value }
        var alarmUndo: [(device: String, scope: String, state: [String: AlarmCondition]?)] = []

        /// Adds the alarm edges `other` staged for the same input (a cleared or raised condition of another
        /// scope), so they are stored and undone together.
        mutating func absorb(_ other: Staged) {
            readings += other.readings
            alarms += other.alarms
            alarmUndo += other.alarmUndo
            if case .buffered(let d, let n, let a) = outcome { outcome = .buffered(device: d, readings: n, alarms: a + other.alarms) }
        }
    }

    public mutating func replaceRegistry(_ r: DeviceRegistry) {
        registry = r
        reception.keep(only: Set(r.devices.map(\.key)))
        presence.watch(Self.watchedDevices(r, lineIntervals: options.lineIntervals))
    }

    /// Registered (not replaced) devices the gateway reads itself, with the interval each is judged by in
    /// milliseconds: a radio meter's registry `transmitInterval`, a polled device's line interval.
    static func watchedDevices(_ r: DeviceRegistry, lineIntervals: [String: Int64]) -> [String: Int64?] {
        var out: [String: Int64?] = [:]
        for d in r.devices where d.replacedBy == nil {
            let interval: Int64?
            switch d.bus {
            case .wirelessMBus: interval = d.transmitInterval.flatMap { $0 > 0 && $0 < 100_000_000 ? Int64($0) * 1000 : nil }
            case .wiredMBus, .modbus: interval = d.line.flatMap { lineIntervals[$0] }
            case .manual: continue
            }
            // updateValue: assigning a nil Int64? through the subscript would remove the key instead.
            out.updateValue(interval, forKey: d.key)
        }
        return out
    }

    /// Which radio meters fell silent or were heard again since the last check, staged as `not_heard` alarms
    /// (scope "presence"): raised once, cleared when the meter is heard again.
    public mutating func checkSilence(now: Int64) -> (change: SilenceWatch.Change, staged: [Staged]) {
        let change = presence.check(now: now)
        var staged: [Staged] = []
        for s in change.silenced {
            let bus = registry.device(key: s.device)?.bus ?? .wirelessMBus
            let since = s.neverHeard ? "since the gateway started" : "for \(SilenceWatch.words(s.silentFor))"
            let kind = bus == .wirelessMBus ? (s.intervalSource == "registry" ? "registered" : "usual") : "readout"
            let basis = s.interval.map { "\(presence.policy.intervals) × its \(kind) interval of \(SilenceWatch.words($0))" }
                ?? "the minimum of \(SilenceWatch.words(presence.policy.minimum))"
            let condition: AlarmCondition
            switch bus {
            case .wirelessMBus:
                condition = AlarmCondition(code: "not_heard", priority: .major, message: "not heard \(since) (more than \(basis)): check the meter's battery and radio module, and whether something now blocks its signal")
            case .wiredMBus:
                condition = AlarmCondition(code: "no_answer", priority: .major, message: "no answer \(since) (more than \(basis)): check the meter is connected to the line and its address")
            case .modbus, .manual:
                condition = AlarmCondition(code: "no_answer", priority: .major, message: "no answer \(since) (more than \(basis)): check the controller's power, its RS-485 or network wiring and its unit id")
            }
            staged.append(stage(conditions: [condition], device: s.device, scope: "presence", at: now, source: "gateway"))
        }
        for key in change.heardAgain {
            staged.append(stage(conditions: [], device: key, scope: "presence", at: now, source: "gateway"))
        }
        return (change, staged)
    }

    /// Registered radio meters (not replaced) neither heard since the start nor reported silent yet: what a
    /// run that stops after its first cycles (`gatewayd run --cycles`, the demo) still waits for.
    public func radioMetersAwaited() -> [String] {
        registry.devices.filter { d in
            d.bus == .wirelessMBus && d.replacedBy == nil && presence.lastHeard(d.key) == nil && !presence.silent.contains(d.key)
        }.map(\.key).sorted()
    }

    /// The alarms of a silence check were not stored: the next check raises (or clears) them again.
    public mutating func undoSilence(_ change: SilenceWatch.Change) { presence.undo(change) }

    /// New meter keys (a key added after commissioning found "no key"): the next telegram uses them. The
    /// decoder's cache of compact-frame formats stays; it does not depend on keys.
    public mutating func replaceKeyring(_ k: WMBusKeyring) {
        options.keyring = k
        wireless.keyring = k
        // New keys (a reload): what the old ones explained is tried afresh.
        forensicsTried.removeAll()
        forensicsOwner.removeAll()
    }

    public mutating func process(_ input: PipelineInput) -> Staged {
        identified = nil
        var staged: Staged
        switch input {
        case .wired(let w): staged = processWired(w)
        case .wireless(let w): staged = processWireless(w)
        case .modbus(let m): staged = processModbus(m)
        case .manual(let m): staged = processManual(m)
        }
        staged.device = identified
        return staged
    }

    /// The registered device of the input in progress (set where it counts as heard).
    private var identified: String?

    private mutating func heard(_ key: String, at t: Int64) {
        identified = key
        presence.heard(key, at: t)
    }

    /// The buffer did not store `staged`: forget its digest and restore the alarm state before it.
    public mutating func rollback(_ staged: Staged) {
        if let d = staged.digest { deduplicator.forget(device: d.device, digest: d.value) }
        for u in staged.alarmUndo.reversed() { alarms.restore(device: u.device, scope: u.scope, u.state) }
    }

    /// Counts a committed or refused store (the actor calls this after the buffer answered).
    public mutating func committed(_ staged: Staged, stored: Bool) {
        guard case .buffered(_, let n, let a) = staged.outcome else {
            // A refused telegram may still carry an alarm edge of its own (security_downgrade).
            if stored {
                counters.alarmsRaised += staged.alarms.filter { $0.state == .raised }.count
                counters.alarmsCleared += staged.alarms.filter { $0.state == .cleared }.count
            }
            return
        }
        if stored {
            counters.buffered += 1
            counters.bufferedReadings += n
            counters.alarmsRaised += a.filter { $0.state == .raised }.count
            counters.alarmsCleared += a.filter { $0.state == .cleared }.count
        } else {
            counters.bufferFailures += 1
        }
    }

    // MARK: steps

    mutating func processWired(_ w: WiredInput) -> Staged {
        counters.heard += 1
        let telegram: Telegram
        switch w.payload {
        case .telegram(let t):
            // A wired meter with TPL security (mode 5 or 7) is opened with the radio meters' keys file.
            do { telegram = try TelegramDecoder.open(t, keyring: options.keyring) } catch {
                counters.failed += 1
                return Staged(outcome: .failed("telegram on \(w.line) not opened: \(error)"))
            }
        case .frame(let bytes):
            do { telegram = try TelegramDecoder.decode(bytes, keyring: options.keyring) } catch {
                counters.failed += 1
                return Staged(outcome: .failed("telegram on \(w.line) not decoded: \(error)"))
            }
        }
        if let e = telegram.applicationError {
            counters.failed += 1
            return Staged(outcome: .failed("the meter at \(telegram.primaryAddress.map { "primary address \($0)" } ?? "?") on \(w.line) answered with an application error: \(e.message)"))
        }
        counters.decoded += 1
        let identified: Result<RegisteredDevice, RejectionReason>
        if telegram.header.identification == nil, let a = telegram.primaryAddress,
           let d = registry.devices.first(where: { $0.bus == .wiredMBus && $0.line == w.line && $0.primaryAddress == Int(a) && $0.replacedBy == nil }) {
            identified = .success(d)  // short header: the primary address on this line names it
        } else {
            identified = registry.identify(telegram.header, bus: .wiredMBus)
        }
        return identifiedTelegram(identified, telegram: telegram, wireless: nil, bus: .wiredMBus, source: "mbus:" + w.line,
                                  rssi: nil, receivedAt: w.receivedAt, flags: nil)
    }

    mutating func processWireless(_ w: WirelessInput) -> Staged {
        counters.heard += 1
        let wt: WirelessTelegram
        switch w.payload {
        case .telegram(let t): wt = t
        case .frame(let bytes, let format, let mode):
            do { wt = try wireless.decode(bytes, format: format, linkMode: mode) } catch {
                counters.failed += 1
                return keyFinding(bytes, format: format, error: error, dongle: w.dongle, receivedAt: w.receivedAt)
                    ?? Staged(outcome: .failed("radio telegram from \(w.dongle) not decoded: \(error)"))
            }
        }
        counters.decoded += 1
        return identifiedTelegram(registry.identify(wt.telegram.header, bus: .wirelessMBus), telegram: wt.telegram, wireless: wt, bus: .wirelessMBus,
                                  source: "wmbus:" + w.dongle, rssi: w.rssi, receivedAt: w.receivedAt, flags: w.alarmFlags)
    }

    mutating func identifiedTelegram(_ identified: Result<RegisteredDevice, RejectionReason>, telegram: Telegram, wireless: WirelessTelegram?,
                                     bus: BusKind, source: String, rssi: Int16?, receivedAt: Int64,
                                     flags: Set<MeterAlarmFlag>?) -> Staged {
        // Every reception of a registered radio meter counts for its receiver's signal picture, duplicates
        // from a second dongle included (they are dropped only later).
        var signal: Staged?
        if bus == .wirelessMBus, case .success(let d) = identified, let rssi,
           let (pair, fade) = reception.record(device: d.key, receiver: source, rssi: rssi, at: receivedAt) {
            let conditions = fade.map { f in
                [AlarmCondition(code: "signal_weaker", priority: .info,
                                message: "median signal at \(f.pair.receiver) fell from \(Int(f.weekAgo)) to \(Int(f.now)) dBm within a week: look for a new obstacle near the meter, a weak battery, or a moved receiver")]
            } ?? []
            signal = stage(conditions: conditions, device: d.key, scope: "signal:" + pair.receiver, at: receivedAt, source: source)
        }
        var staged = identifiedTelegramSteps(identified, telegram: telegram, wireless: wireless, bus: bus, source: source, rssi: rssi,
                                             receivedAt: receivedAt, flags: flags)
        if let signal, !signal.alarms.isEmpty { staged.absorb(signal) }
        return staged
    }

    mutating func identifiedTelegramSteps(_ identified: Result<RegisteredDevice, RejectionReason>, telegram: Telegram, wireless: WirelessTelegram?,
                                          bus: BusKind, source: String, rssi: Int16?, receivedAt: Int64,
                                          flags: Set<MeterAlarmFlag>?) -> Staged {
        var device: RegisteredDevice
        switch identified {
        case .success(let d):
            device = d
            // Heard, whatever follows (a wrong key or a refused value is a finding of its own, not silence).
            heard(d.key, at: receivedAt)
        case .failure(let reason):
            switch reason {
            case .notInRegistry, .otherBuilding:
                counters.unknown += 1
                var staged = Staged(outcome: .unknownDevice(reason))
                staged.sighting = (telegram.header, rssi.map(Int.init))
                guard options.uploadStrangers, let id = telegram.header.identification?.digits else { return staged }
                let m = telegram.header.manufacturer?.letters ?? "@@@"
                device = RegisteredDevice(key: "stranger:\(bus.rawValue):\(m):\(id)", bus: bus, identification: id, manufacturer: m)
                var stored = stage(device: device, telegram: telegram, wireless: wireless, source: source, rssi: rssi,
                                   receivedAt: receivedAt, flags: flags)
                stored.sighting = staged.sighting
                return stored
            default:
                counters.rejected += 1
                return Staged(outcome: .rejected(reason))
            }
        }
        if let wt = wireless, let found = downgrade(wt, device: device) {
            // Refused before normalising: nothing of its content is trusted, not even its status byte.
            counters.rejected += 1
            counters.securityDowngrades += 1
            let reason = RejectionReason.securityDowngrade(device: device.key, found: found)
            var staged = stage(conditions: [AlarmCondition(code: "security_downgrade", priority: .critical, message: reason.description)],
                               device: device.key, scope: "security", at: receivedAt, source: source)
            staged.outcome = .rejected(reason)
            return staged
        }
        if let wt = wireless, wt.security.state == .noKey || wt.security.state == .unsupportedMode {
            // Not decoded after all: its content stays encrypted. Every heard telegram is counted as
            // decoded or failed, never both (the pipeline fuzzer's oracle found it counted twice).
            counters.decoded -= 1
            counters.failed += 1
            let what = wt.security.state == .noKey
                ? "it is encrypted and no key is known for it: add its key (\(device.keyReference ?? "no key reference in the registry")) to the key file"
                : "it uses security mode \(wt.security.mode), which this gateway does not decrypt"
            let kind: KeyDiagnosis.Kind = wt.security.state == .noKey ? .noKey : .unsupportedMode
            counters.keyFindings[kind.rawValue, default: 0] += 1
            let d = KeyDiagnosis(kind: kind, meter: wt.meterAddress.identification)
            var staged = stage(conditions: [AlarmCondition(code: "decryption:" + kind.rawValue, priority: .major, message: d.advice)],
                               device: device.key, scope: "decryption", at: receivedAt, source: source)
            staged.outcome = .failed("\(device.key): \(what)")
            return staged
        }
        return stage(device: device, telegram: telegram, wireless: wireless, source: source, rssi: rssi, receivedAt: receivedAt, flags: flags)
    }

    /// A radio telegram that did not decode for a reason about keys (wrong key, a key filed under another
    /// meter, a failed MAC, cut short): counted by kind, and for a registered meter an alarm
    /// `decryption:KIND` that says what to do. Nil when the failure has nothing to do with keys.
    mutating func keyFinding(_ bytes: [UInt8], format: WMBusFrameFormat?, error: DecodeError, dongle: String, receivedAt: Int64) -> Staged? {
        guard error.code == .wrongKey || error.code == .macMismatch || error.code == .invalidEncryptedLength,
              let frame = try? WMBusFrameCodec.decode(bytes, format: format) else { return nil }
        let id = frame.address.identification
        // Trying the building's other keys costs a decode per key: once per meter and hour, in a bounded table.
        let last = forensicsTried[id]
        let tryOthers = last.map { receivedAt &- $0 >= 3_600_000 || receivedAt < $0 } ?? true
        if tryOthers {
            if forensicsTried.count >= 4096 {
                forensicsTried.removeAll(keepingCapacity: true)
                forensicsOwner.removeAll(keepingCapacity: true)
            }
            forensicsTried[id] = receivedAt
        }
        guard var d = KeyForensics.diagnose(bytes, format: format, error: error, telegram: nil, keyring: options.keyring,
                                            tryOtherKeys: tryOthers && !options.keyring.keys.isEmpty) else { return nil }
        if tryOthers {
            forensicsOwner[id] = .some(d.keyFiledUnder)
        } else if d.kind == .wrongKey || d.kind == .macFailure, case .some(.some(let owner)) = forensicsOwner[id] {
            // Between two tries the swapped row found last time still explains the failure.
            d = KeyDiagnosis(kind: .keyOfAnotherMeter, meter: d.meter, keyFiledUnder: owner)
        }
        counters.keyFindings[d.kind.rawValue, default: 0] += 1
        let outcome = PipelineOutcome.failed("radio telegram of \(d.meter.digits) from \(dongle) not opened: \(d.advice)")
        var header = TelegramHeader()
        header.identification = d.meter
        header.manufacturer = frame.address.manufacturer
        guard case .success(let device) = registry.identify(header, bus: .wirelessMBus) else { return Staged(outcome: outcome) }
        heard(device.key, at: receivedAt)
        // A swapped key and a plain wrong key of the same meter are one alarm that changes its words: the code
        // stays "decryption:<kind>", so a new kind clears the old one.
        var staged = stage(conditions: [AlarmCondition(code: "decryption:" + d.kind.rawValue, priority: .major, message: d.advice)],
                           device: device.key, scope: "decryption", at: receivedAt, source: "wmbus:" + dongle)
        staged.outcome = outcome
        return staged
    }

    /// What gives a telegram away as forged or downgraded, or nil when its security is what the device's
    /// registration calls for. A meter "must encrypt" when the key file holds its key or the registry names
    /// one: then a telegram in the clear (mode 0), or one that announces mode 5/7 but carries plain data
    /// (nothing decrypted, nothing authenticated), is refused. A genuine telegram clears the alarm again.
    func downgrade(_ wt: WirelessTelegram, device: RegisteredDevice) -> String? {
        let mustEncrypt = device.keyReference != nil
            || wt.telegram.header.identification.map { options.keyring.keys[$0] != nil } == true
        guard mustEncrypt else { return nil }
        return wt.security.downgrade.map { "the telegram " + $0 }
    }

    mutating func stage(device: RegisteredDevice, telegram: Telegram, wireless: WirelessTelegram?, source: String, rssi: Int16?,
                        receivedAt: Int64, flags: Set<MeterAlarmFlag>?) -> Staged {
        var n = options.normaliser.normalise(NormaliserInput(telegram: telegram, wireless: wireless, device: device))
        if let flags {
            n.alarmFlags.formUnion(flags)
            n.evaluatesFlags = true
        }
        var staged = finish(device: device.key, n, access: telegram.header.accessNumber, source: source, rssi: rssi, receivedAt: receivedAt)
        // A telegram that opened ends a decryption alarm (wrong key, swapped key, no key) raised before.
        if let wt = wireless, wt.security.state == .decrypted, case .buffered = staged.outcome,
           alarms.snapshot(device: device.key, scope: "decryption") != nil {
            staged.absorb(stage(conditions: [], device: device.key, scope: "decryption", at: receivedAt, source: source))
        }
        // An authentic telegram of a device that must encrypt ends a downgrade alarm raised before.
        if let wt = wireless, wt.security.state == .decrypted, case .buffered = staged.outcome,
           alarms.snapshot(device: device.key, scope: "security") != nil {
            staged.absorb(stage(conditions: [], device: device.key, scope: "security", at: receivedAt, source: source))
        }
        return staged
    }

    mutating func processModbus(_ m: ModbusInput) -> Staged {
        counters.heard += 1
        counters.decoded += 1
        let device: RegisteredDevice
        switch registry.identifyModbus(line: m.line, unit: m.reading.unit, reported: m.reading.identities) {
        case .success(let d):
            device = d
            heard(d.key, at: m.receivedAt)
        case .failure(let reason):
            if case .noModbusDevice = reason { counters.unknown += 1; return Staged(outcome: .unknownDevice(reason)) }
            counters.rejected += 1
            return Staged(outcome: .rejected(reason))
        }
        let n = options.modbusNormaliser.normalise(m.reading, device: device)
        return finish(device: device.key, n, source: "modbus:\(m.line)#\(m.reading.unit)", rssi: nil, receivedAt: m.receivedAt)
    }

    mutating func processManual(_ m: ManualReading) -> Staged {
        counters.manual += 1
        guard m.value.value.isFinite else {
            counters.refusedValues += 1
            return Staged(outcome: .failed("\(m.device): value \(m.value.value) is not a finite number: not stored"))
        }
        let r = reading(m.device, m.value, status: 0, source: m.source, rssi: nil, receivedAt: m.receivedAt)
        return Staged(outcome: .buffered(device: m.device, readings: 1, alarms: []), readings: [r])
    }

    /// Deduplicate, evaluate alarms, make readings.
    mutating func finish(device: String, _ normalised: NormalisedTelegram, access: UInt8? = nil, source: String, rssi: Int16?, receivedAt: Int64) -> Staged {
        // The one gate before the buffer: a value that is not finite (a NaN real, an overflowing scale) is
        // refused alone and counted; SQLite would store NaN as NULL and refuse the whole transaction, and JSON
        // cannot carry it. Every normaliser (generic, profile, Modbus, manual) passes here.
        var n = normalised
        var refusals = n.refused
        if n.values.contains(where: { !$0.value.isFinite }) {
            for v in n.values where !v.value.isFinite {
                refusals.append(ValueRefusal(quantity: v.quantity, reason: "value \(v.value) is not a finite number (raw \(v.raw))"))
            }
            n.values.removeAll { !$0.value.isFinite }
        }
        counters.refusedValues += refusals.count
        var staged = finishFinite(device: device, n, access: access, source: source, rssi: rssi, receivedAt: receivedAt)
        staged.refusals = refusals
        return staged
    }

    private mutating func finishFinite(device: String, _ n: NormalisedTelegram, access: UInt8?, source: String, rssi: Int16?, receivedAt: Int64) -> Staged {
        let digest = ContentDigest.of(n)
        if deduplicator.isDuplicate(device: device, digest: digest, access: access, at: receivedAt) {
            counters.deduplicated += 1
            return Staged(outcome: .duplicate(device: device))
        }
        var staged = Staged(outcome: .failed(""))
        staged.digest = (device, digest)
        var edges: [Alarm] = []
        func evaluate(_ scope: String, _ conditions: [AlarmCondition]) {
            let before = alarms.snapshot(device: device, scope: scope)
            let e = alarms.update(device: device, scope: scope, conditions: conditions, at: receivedAt, source: source)
            if !e.isEmpty {
                staged.alarmUndo.append((device, scope, before))
                edges += e
            }
        }
        if let s = n.statusByte { evaluate("status", AlarmConditions.status(s)) }
        if n.evaluatesFlags { evaluate("flags", n.alarmFlags.sorted { $0.rawValue < $1.rawValue }.map(\.condition)) }
        evaluate("faults", n.extraConditions)

        var readings: [Reading] = []
        readings.reserveCapacity(n.values.count + edges.count)
        for v in n.values { readings.append(reading(device, v, status: n.status, source: source, rssi: rssi, receivedAt: receivedAt)) }
        for a in edges { readings.append(a.reading(clockSynchronised: clockSynchronised)) }
        staged.outcome = .buffered(device: device, readings: n.values.count, alarms: edges)
        staged.readings = readings
        staged.alarms = edges
        return staged
    }

    func reading(_ device: String, _ v: NormalisedValue, status: UInt16, source: String, rssi: Int16?, receivedAt: Int64) -> Reading {
        Reading(device: device, quantity: v.quantity, value: v.value, unit: v.unit, raw: v.raw, meterTime: v.meterTime,
                receivedAt: receivedAt, clockSynchronised: clockSynchronised, storage: v.storage, tariff: v.tariff,
                subunit: v.subunit, source: source, rssi: rssi, status: status, readingClass: v.readingClass)
    }

    /// Alarm edges from elsewhere (line health from the scheduler, buffer events), staged like a telegram's.
    public mutating func stage(conditions: [AlarmCondition], device: String, scope: String, at: Int64, source: String) -> Staged {
        let before = alarms.snapshot(device: device, scope: scope)
        let edges = alarms.update(device: device, scope: scope, conditions: conditions, at: at, source: source)
        var staged = Staged(outcome: .buffered(device: device, readings: 0, alarms: edges))
        staged.alarms = edges
        staged.readings = edges.map { $0.reading(clockSynchronised: clockSynchronised) }
        if !edges.isEmpty { staged.alarmUndo = [(device, scope, before)] }
        return staged
    }
}

extension SecurityReport {
    /// What makes this telegram's security less than a meter with a key must use (for "the telegram …"),
    /// or nil when it is not less: the pipeline and commissioning judge with this one rule.
    package var downgrade: String? {
        switch state {
        case .none: "came in the clear (security mode \(mode))"
        case .alreadyDecrypted: "announces security mode \(mode) but carries plain data"
        // Diehl's published default keys protect nothing: a meter registered with its own key must use it.
        case .descrambled: "opened with a published default key (security mode \(mode)), not with the meter's key"
        case .decrypted, .noKey, .unsupportedMode: nil
        }
    }
}
