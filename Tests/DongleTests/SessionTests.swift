import DongleSimulator
import Drivers
import Foundation
import MBusSimulator
import Testing

/// Sessions against the simulators over pseudo-terminals. Waits have generous limits that only guard
/// against a hanging test; nothing asserts how long anything took.
@Suite("Dongle sessions", .serialized)
struct SessionTests {
    static let fast = DongleSimulatorTiming(interval: .seconds(1), acceleration: 25)

    static func configuration(_ path: String, kind: DongleKind?, mode: DongleLinkMode) -> DongleConfiguration {
        DongleConfiguration(path: path, kind: kind, linkMode: mode, responseTimeout: .milliseconds(400), attempts: 2,
                            initialBackoff: .milliseconds(50), maximumBackoff: .milliseconds(200), idleResync: .milliseconds(150))
    }

    static func simulated(_ telegrams: [[UInt8]], modes: [WMBusLinkMode] = [.t1, .c1]) -> [SimulatedTelegram] {
        telegrams.enumerated().map { i, t in SimulatedTelegram(bytes: t, rssiDBm: -60 - Double(i) * 2.5, linkMode: modes[i % modes.count]) }
    }

    @Test func im871aDeliversTelegramsAndSurvivesReplug() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let telegrams = Fixtures.take(5)
        let sim = IM871ASimulator(telegrams: Self.simulated(Array(telegrams[0..<3])), linkPath: dir + "/im871a", timing: Self.fast)
        try sim.start()
        defer { sim.stop() }

        let dongle = WMBusDongle(Self.configuration(sim.devicePath, kind: .im871a, mode: .c1t1))
        let log = EventLog(dongle.events())
        #expect(await log.wait { $0.telegrams.count >= 3 })
        let first = log.telegrams
        #expect(first.map(\.bytes) == Array(telegrams[0..<3]))
        // RSSI through the raw byte and back, within the byte's half-dB resolution.
        for (i, t) in first.enumerated() {
            let rssi = try #require(t.rssiDBm)
            #expect(abs(rssi - (-60 - Double(i) * 2.5)) <= 0.5)
            #expect(t.linkMode == nil)   // C1+T1: the module does not say which
            #expect(t.receiver == "iM871A \(sim.devicePath)")
            _ = try t.frame()
        }
        guard case .ready(let identity)? = log.states.first(where: { if case .ready = $0 { return true } else { return false } }) else {
            Issue.record("no ready state: \(log.states)")
            return
        }
        #expect(identity.kind == .im871a)
        #expect(identity.firmware == "1.5")
        #expect(identity.serialNumber == "01502A17")
        #expect(identity.linkMode == .c1t1)

        // Unplug: the session says so and waits; telegrams sent meanwhile are queued at the meter side.
        sim.unplug()
        #expect(await log.wait { $0.states.contains { if case .unplugged = $0 { return true } else { return false } } })
        sim.enqueue(Self.simulated(Array(telegrams[3..<5])))
        try sim.replug()
        #expect(await log.wait { $0.telegrams.count >= 5 })
        #expect(log.telegrams.map(\.bytes) == telegrams)
        #expect(log.readyCount == 2)
        let counters = sim.counters
        // Configured again after the replug (the RAM setting was lost), never written to NVM.
        #expect(counters.modeChanges == 2)
        #expect(counters.nonVolatileWrites == 0)
        #expect(counters.unplugs == 1 && counters.replugs == 1)
        // Graceful shutdown ends the stream with the last state.
        dongle.stop()
        #expect(await log.wait { $0.states.last == .stopped })
        await log.stop()
    }

    @Test func amb8465DeliversTelegramsAndSurvivesReplug() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let telegrams = Fixtures.take(4)
        let sim = AMB8465Simulator(telegrams: Self.simulated(Array(telegrams[0..<2]), modes: [.t1]), linkPath: dir + "/amb8465", timing: Self.fast)
        try sim.start()
        defer { sim.stop() }
        let dongle = WMBusDongle(Self.configuration(sim.devicePath, kind: .amb8465, mode: .t1))
        let log = EventLog(dongle.events())
        #expect(await log.wait { $0.telegrams.count >= 2 })
        #expect(log.telegrams.map(\.bytes) == Array(telegrams[0..<2]))
        #expect(log.telegrams.allSatisfy { $0.linkMode == .t1 })
        #expect(log.telegrams.first?.rssiDBm == -60)
        #expect(log.telegrams.last?.rssiDBm == -62.5)

        sim.unplug()
        #expect(await log.wait { $0.states.contains { if case .unplugged = $0 { return true } else { return false } } })
        sim.enqueue(Self.simulated(Array(telegrams[2..<4]), modes: [.t1]))
        try sim.replug()
        #expect(await log.wait { $0.telegrams.count >= 4 })
        #expect(log.telegrams.map(\.bytes) == telegrams)
        guard case .ready(let identity)? = log.states.last(where: { if case .ready = $0 { return true } else { return false } }) else {
            Issue.record("no ready state")
            return
        }
        #expect(identity.serialNumber == "00123456")
        #expect(identity.firmware == "1.6.2")
        #expect(sim.counters.modeChanges == 2)
        #expect(sim.counters.nonVolatileWrites == 0)
        await log.stop()
    }

    /// Transparent mode without RSSI: raw L-first telegrams with framed confirmations in between.
    @Test func amb8465TransparentModeWithoutRSSI() async throws {
        let telegrams = Fixtures.take(3)
        let sim = AMB8465Simulator(telegrams: Self.simulated(telegrams, modes: [.c1]), timing: Self.fast,
                                   commandOutput: false, rssiEnabled: false)
        try sim.start()
        defer { sim.stop() }
        let log = EventLog(WMBusDongle(Self.configuration(sim.devicePath, kind: .amb8665, mode: .c1)).events())
        #expect(await log.wait { $0.telegrams.count >= 3 })
        #expect(log.telegrams.map(\.bytes) == telegrams)
        #expect(log.telegrams.allSatisfy { $0.rssiDBm == nil && $0.linkMode == .c1 })
        #expect(log.problems.isEmpty)
        await log.stop()
    }

    @Test func telegramsInAnotherModeAreNotHeard() async throws {
        let telegrams = Fixtures.take(4)
        let sim = IM871ASimulator(telegrams: Self.simulated(telegrams, modes: [.t1, .c1]), timing: Self.fast)
        try sim.start()
        defer { sim.stop() }
        let log = EventLog(WMBusDongle(Self.configuration(sim.devicePath, kind: .im871a, mode: .t1)).events())
        #expect(await log.wait { _ in sim.pendingTelegrams == 0 && sim.counters.delivered + sim.counters.notHeard == 4 })
        #expect(await log.wait { $0.telegrams.count >= 2 })
        #expect(log.telegrams.map(\.bytes) == [telegrams[0], telegrams[2]])
        #expect(sim.counters.notHeard == 2)
        await log.stop()
    }

    @Test func noiseOnTheLineIsReportedAndSkipped() async throws {
        let telegrams = Fixtures.take(2)
        let sim = IM871ASimulator(telegrams: Self.simulated([telegrams[0]]), timing: Self.fast)
        try sim.start()
        defer { sim.stop() }
        let log = EventLog(WMBusDongle(Self.configuration(sim.devicePath, kind: .im871a, mode: .c1t1)).events())
        #expect(await log.wait { $0.telegrams.count >= 1 })
        sim.injectNoise([0x13, 0x37, 0xA5, 0x0E, 0x00])
        #expect(await log.wait { !$0.problems.isEmpty })
        sim.enqueue(Self.simulated([telegrams[1]]))
        #expect(await log.wait { $0.telegrams.count >= 2 })
        #expect(log.telegrams.map(\.bytes) == telegrams)
        await log.stop()
    }

    @Test func autoDetectionNamesWhatItFound() async throws {
        let imst = IM871ASimulator()
        let amber = AMB8465Simulator()
        try imst.start()
        try amber.start()
        defer {
            imst.stop()
            amber.stop()
        }
        let a = EventLog(WMBusDongle(Self.configuration(imst.devicePath, kind: nil, mode: .t1)).events())
        let b = EventLog(WMBusDongle(Self.configuration(amber.devicePath, kind: nil, mode: .t1)).events())
        #expect(await a.wait { $0.readyCount == 1 })
        #expect(await b.wait { $0.readyCount == 1 })
        let kinds = [a, b].compactMap { log -> DongleKind? in
            for case .ready(let identity) in log.states { return identity.kind }
            return nil
        }
        #expect(kinds == [.im871a, .amb8465])
        #expect(imst.receiveMode == .t1 && amber.receiveMode == .t1)
        await a.stop()
        await b.stop()
    }

    @Test func wrongTypeSaysWhatToTry() async throws {
        let amber = AMB8465Simulator()
        try amber.start()
        defer { amber.stop() }
        let log = EventLog(WMBusDongle(Self.configuration(amber.devicePath, kind: .im871a, mode: .t1)).events())
        #expect(await log.wait { log in log.states.contains { if case .failed = $0 { return true } else { return false } } })
        guard case .failed(let error)? = log.states.first(where: { if case .failed = $0 { return true } else { return false } }) else { return }
        #expect(error.code == .timeout)
        #expect(error.message.contains("HCI ping"))
        #expect(error.message.contains("try --type amb8465"))
        await log.stop()
    }

    @Test func oldFirmwareCannotListenToC1AndT1() async throws {
        let sim = IM871ASimulator(firmwareVersion: 0x13)
        try sim.start()
        defer { sim.stop() }
        let log = EventLog(WMBusDongle(Self.configuration(sim.devicePath, kind: .im871a, mode: .c1t1)).events())
        #expect(await log.wait { log in log.states.contains { if case .failed = $0 { return true } else { return false } } })
        guard case .failed(let error)? = log.states.first(where: { if case .failed = $0 { return true } else { return false } }) else { return }
        #expect(error.code == .unsupported)
        #expect(error.message.contains("--mode c1"))
        await log.stop()
    }

    @Test func missingDeviceIsReportedAsUnpluggedUntilItAppears() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/later"
        let log = EventLog(WMBusDongle(Self.configuration(path, kind: .amb8465, mode: .t1)).events())
        #expect(await log.wait { $0.states.contains { if case .unplugged(let p, _) = $0 { return p == path } else { return false } } })
        let sim = AMB8465Simulator(telegrams: Self.simulated(Fixtures.take(1), modes: [.t1]), linkPath: path, timing: Self.fast)
        try sim.start()
        defer { sim.stop() }
        #expect(await log.wait { $0.telegrams.count == 1 })
        await log.stop()
    }
}

@Suite("Dongle identification")
struct IdentifyTests {
    @Test func identifyDetectsWithoutASession() async throws {
        let sim = IM871ASimulator(moduleType: HCI.moduleIM170A, firmwareVersion: 0x14, uniqueID: 0xCAFE_F00D)
        try sim.start()
        defer { sim.stop() }
        let config = DongleConfiguration(path: sim.devicePath, kind: nil, linkMode: .t1, responseTimeout: .milliseconds(400), attempts: 1)
        // An iM170A is an HCI module but has no T1: it is found, and its refusal is typed.
        switch await WMBusDongle(config).identify() {
        case .success(let identity): Issue.record("iM170A accepted T1: \(identity)")
        case .failure(let error):
            #expect(error.code == .rejected)
            #expect(error.message.contains("iM170A"))
        }
        let missing = DongleConfiguration(path: "/nonexistent/dongle", kind: .im871a, linkMode: .t1)
        switch await WMBusDongle(missing).identify() {
        case .success: Issue.record("a missing path identified")
        case .failure(let error):
            #expect(error.code == .transport)
            #expect(error.transport?.code == .deviceMissing)
            // A dongle's hint, not a wired converter's: the technician looks for the right stick.
            #expect(error.message.contains("wM-Bus dongle") && error.message.contains("gatewayd devices"))
            #expect(!error.message.contains("level converter"))
        }
    }
}

@Suite("Dongle node changes")
struct NodeChangeTests {
    /// A quick replug can put a new device behind the same link before the old one reports an error;
    /// the session notices the link names another node and starts over on it.
    @Test func linkRepointedToAnotherDongle() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = Fixtures.take(2)
        let first = IM871ASimulator(telegrams: SessionTests.simulated([t[0]]), timing: SessionTests.fast, uniqueID: 1)
        let second = IM871ASimulator(telegrams: SessionTests.simulated([t[1]]), timing: SessionTests.fast, uniqueID: 2)
        try first.start()
        try second.start()
        defer {
            first.stop()
            second.stop()
        }
        let link = dir + "/by-id"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: try #require(first.terminalPath))
        let dongle = WMBusDongle(SessionTests.configuration(link, kind: .im871a, mode: .c1t1))
        let log = EventLog(dongle.events())
        #expect(await log.wait { $0.telegrams.count == 1 })
        // Atomically point the link at the second dongle, as udev does.
        try FileManager.default.createSymbolicLink(atPath: dir + "/next", withDestinationPath: try #require(second.terminalPath))
        #expect(rename(dir + "/next", link) == 0)
        #expect(await log.wait { $0.telegrams.count == 2 })
        #expect(log.telegrams.map(\.bytes) == t)
        let serials = log.states.compactMap { if case .ready(let i) = $0 { return i.serialNumber } else { return nil } }
        #expect(serials == ["00000001", "00000002"])
        #expect(log.states.contains { if case .unplugged(_, let reason) = $0 { return reason.contains("another device") } else { return false } })
        dongle.stop()
        await log.stop()
    }
}

@Suite("Dongle reopen backoff", .serialized)
struct ReopenBackoffTests {
    @Test func doublesUpToTheCapAndStartsOverAfterSuccess() {
        var b = ReopenBackoff(initial: .seconds(1), maximum: .seconds(30))
        #expect((0..<8).map { _ in b.failed() } == [1, 2, 4, 8, 16, 30, 30, 30].map(Duration.seconds))
        b.succeeded()
        #expect(b.failed() == .seconds(1))
    }

    /// An absent dongle is tried once per wait on the session's clock: with the clock standing still,
    /// no attempt follows, and the waits grow to the cap. When the dongle reappears and then goes again,
    /// the waits start over from the first.
    @Test func absentDongleIsRetriedOnTheClockWithGrowingWaits() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/im871a-absent"
        let clock = ManualClock()
        let dongle = WMBusDongle(DongleConfiguration(path: path, kind: .im871a, linkMode: .c1t1, responseTimeout: .milliseconds(400)),
                                 clock: clock)
        let log = EventLog(dongle.events())
        var waits: [Duration] = []
        for attempt in 1...9 {
            let wait = try #require(await clock.nextSleep(), "the session never went to sleep after attempt \(attempt)")
            // Asleep after exactly `attempt` opens: nothing spins while the clock stands still.
            #expect(await dongle.openAttempts == attempt)
            waits.append(wait)
            if attempt < 9 { clock.advance(by: wait) }
        }
        #expect(waits == [1, 2, 4, 8, 16, 30, 30, 30, 30].map(Duration.seconds))
        #expect(log.states.contains { if case .unplugged(let p, _) = $0 { return p == path } else { return false } })

        // The dongle comes back while the session sleeps: the next attempt finds it.
        let sim = IM871ASimulator(linkPath: path, timing: SessionTests.fast)
        try sim.start()
        defer { sim.stop() }
        clock.advance(by: .seconds(30))
        #expect(await log.wait { $0.readyCount == 1 })

        // Pulled again: a first short pause, then the waits start over from one second.
        sim.unplug()
        var after: [Duration] = []
        for _ in 0..<3 {
            let wait = try #require(await clock.nextSleep())
            after.append(wait)
            clock.advance(by: wait)
        }
        #expect(after == [1, 1, 2].map(Duration.seconds))

        // stop() cuts a pause short without the clock moving.
        _ = await clock.nextSleep()
        dongle.stop()
        #expect(await log.wait { $0.states.last == .stopped })
        await log.stop()
    }
}
