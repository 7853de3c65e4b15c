import Drivers
import Foundation
import Gateway
import Logging
import Synchronization

/// One commissioning run: every bus of the configuration at once, each in its own task, all feeding
/// one `CommissioningSession`. Radio dongles listen for the whole window; wired lines are verified
/// meter by meter (two passes: a meter may miss one select); heat pumps are read and, while silent,
/// asked again every few seconds.
package final class CommissioningRun: Sendable {
    package let config: GatewayConfig
    package let demo: DemoBuilding
    package let listenSeconds: Int
    package let full: Bool
    package let blindScan: Bool
    package let logger: Logger
    private let session: Mutex<CommissioningSession>
    /// Wired lines and Modbus lines still working through their first pass (by name): the run may end
    /// early only when this is empty. Removing a name twice is harmless, so every way out of a line's
    /// task can say "first pass over".
    private let inFirstPass = Mutex<Set<String>>([])
    private let endpoints: BusEndpoints

    package init(config: GatewayConfig, registry: DeviceRegistry, keyring: WMBusKeyring, catalog: ProfileCatalog?, demo: DemoBuilding,
         options: CommissioningOptions, listenSeconds: Int, full: Bool, blindScan: Bool, logger: Logger) {
        self.config = config
        self.demo = demo
        self.listenSeconds = listenSeconds
        self.full = full
        self.blindScan = blindScan
        self.logger = logger
        endpoints = BusEndpoints(demo: demo)
        session = Mutex(CommissioningSession(registry: registry, keyring: keyring, catalog: catalog, startedAt: unixMilliseconds(),
                                             listenSeconds: listenSeconds, options: options))
    }

    /// Runs the window; `draw` gets the progress at most once a second (the CLI's live view).
    package func run(stop: StopFlag, draw: @Sendable (CommissioningProgress, Duration, [String]) -> Void) async -> CommissioningReport {
        let registry = session.withLock { $0.registry }
        let started = ContinuousClock.now
        let deadline = started + .seconds(listenSeconds)
        unconfiguredBuses(registry)
        var tasks: [Task<Void, Never>] = []
        for dongle in config.buses.wmbus {
            tasks.append(Task { await self.listen(dongle) })
        }
        for line in config.buses.mbus {
            let devices = registry.devices.filter { $0.bus == .wiredMBus && $0.line == line.name && $0.replacedBy == nil }
            inFirstPass.withLock { _ = $0.insert(line.name) }
            tasks.append(Task { await self.verify(line, devices: devices, deadline: deadline) })
        }
        for line in config.buses.modbus {
            inFirstPass.withLock { _ = $0.insert(line.name) }
            tasks.append(Task { await self.probe(line, registry: registry, deadline: deadline) })
        }

        var ended = CommissioningReport.EndReason.windowOver
        var lastDraw = ContinuousClock.now - .seconds(2)
        while true {
            if stop.isSet { ended = .interrupted; break }
            if ContinuousClock.now >= deadline { break }
            let (done, progress) = session.withLock { ($0.everythingHeard, $0.progress) }
            if done && !full && inFirstPass.withLock({ $0.isEmpty }) { ended = .allHeard; break }
            if ContinuousClock.now - lastDraw >= .seconds(1) {
                draw(progress, ContinuousClock.now - started, busStates())
                lastDraw = ContinuousClock.now
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        for t in tasks { t.cancel() }
        // A wired line finishes the select in progress (a transaction is never cut in half).
        for t in tasks { await t.value }
        return session.withLock { $0.report(finishedAt: unixMilliseconds(), endedBecause: ended, gatewayID: config.gatewayID) }
    }

    private func busStates() -> [String] {
        session.withLock { $0.busStates.map { "\($0.name) \($0.state)" } }
    }

    /// Registry devices on lines this configuration does not have cannot be checked: say so per device.
    private func unconfiguredBuses(_ registry: DeviceRegistry) {
        let wired = Set(config.buses.mbus.map(\.name))
        let modbus = Set(config.buses.modbus.map(\.name))
        session.withLock { s in
            for d in registry.devices where d.replacedBy == nil {
                if d.bus == .wiredMBus, !wired.contains(d.line ?? "") {
                    s.wiredSilent(key: d.key, line: d.line ?? "-", error: "its line \(d.line ?? "(none)") is not in the configuration")
                }
                if d.bus == .modbus, !modbus.contains(d.line ?? "") {
                    s.heatPumpSilent(key: d.key, error: "its line \(d.line ?? "(none)") is not in the configuration")
                }
            }
            if config.buses.wmbus.isEmpty, registry.devices.contains(where: { $0.bus == .wirelessMBus }) {
                s.bus("no dongle", kind: BusKind.wirelessMBus.rawValue, state: "no wireless dongle in the configuration")
            }
        }
    }

    /// How long a silent device waits before it is asked again, on every bus: long enough for a meter busy
    /// with its own measurement or a controller still booting, short next to the window.
    package static let askAgainAfter: Duration = .seconds(5)

    private func firstPassOver(_ line: String) {
        inFirstPass.withLock { _ = $0.remove(line) }
    }

    /// Asks every device once, then the silent ones again every `askAgainAfter` until they answer, the
    /// window ends or the run is stopped: the same for wired meters and heat pumps. `ask` answers whether
    /// the device answered. The line is completed when its first pass is over (also with no devices);
    /// `afterFirstPass` runs then (the blind scan), before the silent devices are asked again.
    private func askUntilAnswered<Device: Sendable>(_ devices: [Device], line: String, deadline: ContinuousClock.Instant,
                                                     ask: (Device) async -> Bool, afterFirstPass: () async -> Void = {}) async {
        /// One pass: the devices that did not answer (and those the stop or the deadline left unasked).
        func pass(_ devices: [Device]) async -> [Device] {
            var silent: [Device] = []
            for device in devices {
                // Between devices, never inside a transaction: a stop does not cut a frame in half.
                if Task.isCancelled || ContinuousClock.now >= deadline { silent.append(device); continue }
                if !(await ask(device)) { silent.append(device) }
            }
            return silent
        }
        var pending = await pass(devices)
        if !Task.isCancelled { session.withLock { $0.busCompleted(line, at: unixMilliseconds()) } }
        await afterFirstPass()
        firstPassOver(line)
        while !pending.isEmpty && !Task.isCancelled && ContinuousClock.now < deadline {
            try? await Task.sleep(for: Self.askAgainAfter)
            pending = await pass(pending)
        }
    }

    // MARK: - Radio

    private func listen(_ dongle: GatewayConfig.WMBusDongleConfig) async {
        let name = dongle.name
        switch endpoints.receiver(dongle) {
        case .failure(let why):
            session.withLock { $0.bus(name, kind: BusKind.wirelessMBus.rawValue, state: why.description) }
        case .success(let receiver):
            session.withLock { $0.bus(name, kind: BusKind.wirelessMBus.rawValue, state: "starting") }
            await listen(name, receiver.events(name: name))
        }
    }

    /// A dongle session or an rtl_wmbus pipeline: the same events.
    private func listen(_ name: String, _ events: AsyncStream<DongleEvent>) async {
        var heardOne = false
        for await event in events {
            if Task.isCancelled { break }
            switch event {
            case .telegram(let t):
                session.withLock { s in
                    // An rtl_wmbus pipeline has no handshake: its first telegram is what shows it works.
                    if !heardOne { s.bus(name, kind: BusKind.wirelessMBus.rawValue, state: "ok") }
                    s.heard(t, bus: name)
                }
                heardOne = true
            case .state(let state):
                let text: String
                switch state {
                case .ready: text = "ok"
                default: text = state.description
                }
                session.withLock { $0.bus(name, kind: BusKind.wirelessMBus.rawValue, state: text) }
            case .problem:
                break
            }
        }
    }

    // MARK: - Wired M-Bus

    private func verify(_ line: GatewayConfig.MBusLineConfig, devices: [RegisteredDevice], deadline: ContinuousClock.Instant) async {
        let name = line.name
        defer { firstPassOver(name) }
        let kind = BusKind.wiredMBus.rawValue
        session.withLock { $0.bus(name, kind: kind, state: "starting") }
        let endpoint: BusEndpoint
        switch endpoints.wired(line) {
        case .success(let e): endpoint = e
        case .failure(let why):
            failAll(devices, line: name, why: why.description)
            return
        }
        let bus: MBusLine
        do {
            bus = try MBusLine(endpoint: endpoint, options: line.lineOptions)
        } catch {
            session.withLock { $0.bus(name, kind: kind, state: "cannot open \(endpoint): \(error)") }
            failAll(devices, line: name, why: "line \(name) could not be opened")
            return
        }
        session.withLock { $0.bus(name, kind: kind, state: "ok") }
        await askUntilAnswered(devices, line: name, deadline: deadline, ask: { device in
            await ask(bus, device, line: name, addressing: line.addressing)
        }, afterFirstPass: {
            guard blindScan && !Task.isCancelled else { return }
            do {
                let found = try await bus.scanSecondary()
                session.withLock { s in
                    let known = Set(devices.compactMap(\.identification))
                    for meter in found.found {
                        guard let t = meter.telegram, let id = t.header.identification?.digits, !known.contains(id) else { continue }
                        s.wiredAnswer(t, line: name)
                    }
                }
            } catch {
                logger.warning("blind scan stopped", metadata: ["line": "\(name)", "error": "\(error)"])
            }
        })
        await bus.close()
    }

    /// Reads one registered meter by the address the daemon will use on this line; true when it answered
    /// as itself.
    private func ask(_ bus: MBusLine, _ device: RegisteredDevice, line: String, addressing: GatewayConfig.MBusLineConfig.Addressing) async -> Bool {
        let address: MeterAddress
        switch addressing.address(of: device) {
        case .success(let a): address = a
        case .failure(let why):
            session.withLock { $0.wiredSilent(key: device.key, line: line, error: why.description) }
            return false
        }
        switch address {
        case .secondary:
            // A select that two meters answer is a finding of its own (a duplicate or wildcard identification).
            // Secondary addressing is chosen only for a meter whose identification parses.
            guard let text = device.identification, let id = IdentificationNumber(text) else { return false }
            let expected = ExpectedMeter(identification: id, manufacturer: device.manufacturer.flatMap { ManufacturerCode($0) })
            do {
                let report = try await bus.verify([expected], read: true)
                if let t = report.found.first?.telegram {
                    return session.withLock { s in
                        s.wiredAnswer(t, line: line)
                        return s.isHeard(device.key)
                    }
                } else if let collision = report.collisions.first {
                    session.withLock { $0.wiredSilent(key: device.key, line: line, error: collision) }
                } else {
                    session.withLock { $0.wiredSilent(key: device.key, line: line, error: "no answer to its selection by secondary address \(text)") }
                }
            } catch {
                session.withLock { $0.wiredSilent(key: device.key, line: line, error: "\(error)") }
            }
            return false
        case .primary(let p):
            do {
                let readout = try await bus.read(.primary(p))
                let heard = readout.assembled.header.identification?.digits
                session.withLock { $0.wiredAnswer(readout.assembled, line: line) }
                // A primary address answered by another meter leaves this one unheard, with the reason.
                if let registered = device.identification, let heard, heard != registered {
                    session.withLock { $0.wiredSilent(key: device.key, line: line,
                                                      error: "primary address \(p) answered as meter \(heard), not \(registered): two meters share the address, or the registry has the wrong one") }
                    return false
                }
                return session.withLock { $0.isHeard(device.key) }
            } catch {
                session.withLock { $0.wiredSilent(key: device.key, line: line, error: "no answer at primary address \(p): \(error)") }
                return false
            }
        }
    }

    private func failAll(_ devices: [RegisteredDevice], line: String, why: String) {
        session.withLock { s in
            s.bus(line, kind: BusKind.wiredMBus.rawValue, state: why)
            for d in devices { s.wiredSilent(key: d.key, line: line, error: why) }
        }
    }

    // MARK: - Modbus

    private func probe(_ line: GatewayConfig.ModbusLineConfig, registry: DeviceRegistry, deadline: ContinuousClock.Instant) async {
        let name = line.name
        defer { firstPassOver(name) }
        let kind = BusKind.modbus.rawValue
        session.withLock { $0.bus(name, kind: kind, state: "starting") }
        let keys = line.devices.map { registry.device(line: name, unit: $0.unit)?.key }
        let endpoint: ModbusEndpoint
        switch endpoints.modbus(line) {
        case .success(let e): endpoint = e
        case .failure(let why):
            session.withLock { s in
                s.bus(name, kind: kind, state: why.description)
                for key in keys.compactMap({ $0 }) { s.heatPumpSilent(key: key, error: why.description) }
            }
            return
        }
        let bus: ModbusLine
        do {
            bus = try ModbusLine(endpoint: endpoint, options: line.options)
        } catch {
            session.withLock { s in
                s.bus(name, kind: kind, state: "cannot open \(endpoint): \(error)")
                for key in keys.compactMap({ $0 }) { s.heatPumpSilent(key: key, error: "line \(name) could not be opened") }
            }
            return
        }
        session.withLock { $0.bus(name, kind: kind, state: "ok") }
        var registered: [(GatewayConfig.ModbusDeviceConfig, String)] = []
        for (device, key) in zip(line.devices, keys) {
            guard let key else {
                logger.warning("heat pump in the configuration but not in the registry", metadata: ["line": "\(name)", "unit": "\(device.unit)"])
                continue
            }
            registered.append((device, key))
        }
        await askUntilAnswered(registered, line: name, deadline: deadline, ask: { pair in
            let (device, key) = pair
            do {
                let reading = try await bus.read(profile: device.profile, unit: device.unit)
                session.withLock { $0.heatPump(key: key, reading: reading) }
                return true
            } catch {
                session.withLock { $0.heatPumpSilent(key: key, error: "\(error)") }
                return false
            }
        })
        await bus.close()
    }
}
