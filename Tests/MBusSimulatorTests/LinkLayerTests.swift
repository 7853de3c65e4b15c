import Drivers
import Testing
@testable import MBusSimulator

/// The simulator through its pty, as the gateway's master sees it (EN 13757-2 / -3 behaviour).
@Suite("M-Bus slaves behind a pty")
struct LinkLayerTests {
    @Test("SND_NKE to a present slave is acknowledged with E5")
    func sndNKEIsAcknowledged() throws {
        let (bus, master) = try runningBus([try SimulatedSlave(primaryAddress: 5, hexFrames: [Meters.gwf])])
        defer { bus.stop() }
        master.send(.sndNKE(address: 5))
        #expect(master.frames(1) == [.ack])
        #expect(bus.counters.requestsSeen == 1)
        #expect(bus.counters.responsesSent(primaryAddress: 5) == 1)
    }

    @Test("REQ_UD2 returns the configured frame with the A field set to the primary address")
    func reqUD2ReturnsConfiguredFrame() throws {
        let slave = try SimulatedSlave(primaryAddress: 42, hexFrames: [Meters.waterStar])
        let (bus, master) = try runningBus([slave])
        defer { bus.stop() }
        master.send(.sndNKE(address: 42))
        #expect(master.frames(1) == [.ack])
        master.send(.reqUD2(address: 42, frameCountBit: true))
        let frames = master.frames(1)
        guard case .long(var expected) = try FrameCodec.decodeComplete(Meters.bytes(Meters.waterStar)) else {
            Issue.record("fixture is not a long frame")
            return
        }
        expected.address = 42  // the corpus capture came from address 11
        #expect(frames == [.long(expected)])
        let telegram = try TelegramDecoder.decode(try #require(frames.first))
        #expect(telegram.header.identification == IdentificationNumber("04990254"))
        #expect(telegram.primaryAddress == 42)
    }

    @Test("FCB: an unchanged FCB repeats the last telegram, a toggled one moves on and wraps")
    func frameCountBitRepeatsOrAdvances() throws {
        let slave = try SimulatedSlave(primaryAddress: 3, frames: try Meters.multiTelegram())
        let (bus, master) = try runningBus([slave])
        defer { bus.stop() }
        func read(fcb: Bool) -> Int64? {
            master.send(.reqUD2(address: 3, frameCountBit: fcb))
            return master.frames(1).first.flatMap(Meters.telegramNumber)
        }
        master.send(.sndNKE(address: 3))
        #expect(master.frames(1) == [.ack])
        #expect(read(fcb: true) == 1)
        #expect(read(fcb: false) == 2)
        #expect(read(fcb: false) == 2, "same FCB: the master missed telegram 2, so it comes again")
        #expect(read(fcb: true) == 3)
        #expect(read(fcb: false) == 1, "after the last telegram the readout starts over")
        // SND_NKE resets the link: the next FCB = 1 is new and the readout restarts.
        #expect(read(fcb: true) == 2)
        master.send(.sndNKE(address: 3))
        #expect(master.frames(1) == [.ack])
        #expect(read(fcb: true) == 1)
        let telegrams = try slave.frames.map { try TelegramDecoder.decode($0) }
        #expect(telegrams.map(\.moreRecordsFollow) == [true, true, false])
    }

    @Test("Selection by exact and wildcard secondary address")
    func selectBySecondaryAddress() throws {
        let ids = ["31425080", "31425081", "31425082"]
        let slaves = try ids.enumerated().map { k, id in
            try SimulatedSlave(primaryAddress: UInt8(10 + k), hexFrames: [Meters.gwf], identification: IdentificationNumber(id))
        }
        let (bus, master) = try runningBus(slaves)
        defer { bus.stop() }

        // Exact: one slave answers E5 and then answers REQ_UD2 to FDh with its own telegram.
        let exact = try #require(slaves[1].secondaryAddress).mask
        master.send(.selectSecondary(exact))
        #expect(master.frames(1) == [.ack])
        #expect(bus.selectedPrimaryAddresses == [11])
        master.send(.reqUD2(address: LinkAddress.networkLayer, frameCountBit: true))
        let answer = try TelegramDecoder.decode(try #require(master.frames(1).first))
        #expect(answer.header.identification == IdentificationNumber("31425081"))
        #expect(answer.primaryAddress == 11)

        // Wildcard on the last digit and the manufacturer: all three are selected, their E5s
        // superimpose into one.
        let wildcard = try #require(SecondaryAddressMask("3142508FFFFFFFFF"))
        master.send(.selectSecondary(wildcard))
        #expect(master.frames(1) == [.ack])
        #expect(bus.selectedPrimaryAddresses == [10, 11, 12])

        // A mask that matches nobody deselects everyone, and nobody answers.
        master.send(.selectSecondary(SecondaryAddressMask(identification: 0x9999_9999)))
        let silence = master.read(timeout: silenceTimeout(bus, requestBytes: 17))
        #expect(silence.bytes.isEmpty)
        #expect(bus.selectedPrimaryAddresses.isEmpty)

        // Manufacturer and device type are compared too (GWF, water).
        let gwf = try #require(ManufacturerCode("GWF")).rawValue
        master.send(.selectSecondary(SecondaryAddressMask(identification: 0x3142_5080, manufacturer: gwf, deviceType: 0x07)))
        #expect(master.frames(1) == [.ack])
        #expect(bus.selectedPrimaryAddresses == [10])

        // CI 56h deselects; the selected slave acknowledges first.
        master.send(.deselectSecondary())
        #expect(master.frames(1) == [.ack])
        #expect(bus.selectedPrimaryAddresses.isEmpty)
    }

    @Test("Two slaves answering the same request collide into bytes that are not a frame")
    func collisionGarblesDifferentFrames() throws {
        let a = try SimulatedSlave(primaryAddress: 7, hexFrames: [Meters.waterStar])
        let b = try SimulatedSlave(primaryAddress: 7, hexFrames: [Meters.nzr])
        let (bus, master) = try runningBus([a, b])
        defer { bus.stop() }
        master.send(.reqUD2(address: 7, frameCountBit: true))
        let longest = max(a.frames[0].count, b.frames[0].count)
        let received = master.read(timeout: .seconds(2)) { $0.count >= longest }
        #expect(received.bytes.count == longest, "aligned senders: one character per slot")
        let events = TestMaster.events(received.bytes)
        let longFrames = events.filter { if case .frame(.long) = $0 { return true } else { return false } }
        #expect(longFrames.isEmpty, "\(events)")
        // Same timing, so each character is the AND of both senders' characters.
        let anded = (0..<longest).map { i in (i < a.frames[0].count ? a.frames[0][i] : 0xFF) & (i < b.frames[0].count ? b.frames[0][i] : 0xFF) }
        #expect(received.bytes == anded)
        #expect(bus.counters.collisions == 1)
    }

    @Test("Identical E5 answers from several slaves superimpose into one clean E5")
    func identicalAcknowledgementsSuperimpose() throws {
        let slaves = try (0..<3).map { _ in try SimulatedSlave(primaryAddress: 9, hexFrames: [Meters.gwf]) }
        let (bus, master) = try runningBus(slaves)
        defer { bus.stop() }
        master.send(.sndNKE(address: 9))
        let received = master.read(timeout: silenceTimeout(bus))
        #expect(received.bytes == [0xE5])
        #expect(bus.counters.collisions == 2)
        #expect(bus.counters.responsesSent(primaryAddress: 9) == 3)
        #expect(bus.counters.framingErrors == 0 && bus.counters.parityErrors == 0)
    }

    @Test("A dead slave never answers; an unplugged one falls silent and answers again when plugged")
    func deadAndUnpluggedSlaves() throws {
        let dead = try SimulatedSlave(primaryAddress: 21, hexFrames: [Meters.gwf], behaviour: .dead)
        let live = try SimulatedSlave(primaryAddress: 22, hexFrames: [Meters.gwf])
        let (bus, master) = try runningBus([dead, live])
        defer { bus.stop() }
        master.send(.sndNKE(address: 21))
        master.send(.reqUD2(address: 21, frameCountBit: true))
        #expect(master.read(timeout: silenceTimeout(bus, requestBytes: 10)).bytes.isEmpty)
        #expect(bus.counters.requestsSeen == 2)

        #expect(bus.unplug(primaryAddress: 22))
        master.send(.sndNKE(address: 22))
        #expect(master.read(timeout: silenceTimeout(bus)).bytes.isEmpty)
        #expect(bus.plug(primaryAddress: 22))
        master.send(.sndNKE(address: 22))
        #expect(master.frames(1) == [.ack])
        #expect(bus.counters.responsesSent(primaryAddress: 21) == 0)
        #expect(bus.counters.injectedFaults == 1)
        #expect(!bus.unplug(primaryAddress: 99))
    }

    @Test("Broadcast FFh gets no answer; FEh gets every slave's answer")
    func broadcasts() throws {
        let slaves = try [1, 2].map { try SimulatedSlave(primaryAddress: UInt8($0), hexFrames: [Meters.gwf]) }
        let (bus, master) = try runningBus(slaves)
        defer { bus.stop() }
        master.send(.sndNKE(address: LinkAddress.broadcastNoReply))
        #expect(master.read(timeout: silenceTimeout(bus)).bytes.isEmpty)
        master.send(.sndNKE(address: LinkAddress.broadcastWithReply))
        #expect(master.frames(1) == [.ack])
        #expect(bus.counters.responsesSent == 2)
        master.send(.applicationReset(address: 2))
        #expect(master.frames(1) == [.ack])
    }

    @Test("Corrupted answers fail their checksum; the next one is clean")
    func checksumCorruption() throws {
        let (bus, master) = try runningBus([try SimulatedSlave(primaryAddress: 4, hexFrames: [Meters.gwf])])
        defer { bus.stop() }
        bus.corruptNextResponses(primaryAddress: 4, count: 1)
        master.send(.reqUD2(address: 4, frameCountBit: true))
        let broken = master.read(timeout: .seconds(2)) { $0.count >= 33 }
        let events = TestMaster.events(broken.bytes)
        guard case .skipped(_, let reason)? = events.first else {
            Issue.record("expected a skipped frame, got \(events)")
            return
        }
        #expect(reason.code == .checksumMismatch)
        // The master retries with the same FCB; the slave repeats the telegram, clean this time.
        master.send(.reqUD2(address: 4, frameCountBit: true))
        let frames = master.frames(1)
        #expect(frames.count == 1)
        #expect(bus.counters.corruptedResponses == 1)
        #expect(bus.counters.injectedFaults == 1)
    }

    @Test("Noise before an answer is skipped by the master's frame reader; noise alone arrives as sent")
    func noise() throws {
        let slave = try SimulatedSlave(primaryAddress: 6, hexFrames: [Meters.gwf], responseDelay: .milliseconds(20))
        let (bus, master) = try runningBus([slave])
        defer { bus.stop() }
        bus.injectNoiseBeforeNextResponse([0x00, 0x55, 0xAA])
        master.send(.reqUD2(address: 6, frameCountBit: true))
        let received = master.read(timeout: .seconds(2)) { $0.count >= 36 }
        #expect(Array(received.bytes.prefix(3)) == [0x00, 0x55, 0xAA])
        let events = TestMaster.events(received.bytes)
        #expect(events.count == 2)
        if case .skipped(let skipped, _)? = events.first { #expect(skipped == [0x00, 0x55, 0xAA]) }
        if case .frame(let frame)? = events.last { #expect(frame.encoded == slave.frames[0]) }

        bus.injectNoise([0x16, 0x68, 0x10])
        #expect(master.read(timeout: .seconds(2)) { $0.count >= 3 }.bytes == [0x16, 0x68, 0x10])
        bus.injectNoise(randomByteCount: 4, after: .milliseconds(5))
        #expect(master.read(timeout: .seconds(2)) { $0.count >= 4 }.bytes.count == 4)
        #expect(bus.counters.noiseBursts == 3)
        #expect(bus.counters.noiseBytes == 10)
    }

    @Test("Requests written byte by byte or back to back are each answered after their own wire time")
    func requestChunking() throws {
        let slaves = try [1, 2].map { try SimulatedSlave(primaryAddress: UInt8($0), hexFrames: [Meters.gwf]) }
        let (bus, master) = try runningBus(slaves, baudRate: 9600)
        defer { bus.stop() }
        for byte in MBusFrame.sndNKE(address: 1).encoded { master.send([byte]) }
        #expect(master.frames(1) == [.ack])

        let sent = master.send(MBusFrame.sndNKE(address: 1).encoded + MBusFrame.sndNKE(address: 2).encoded)
        let received = master.read(timeout: .seconds(2)) { $0.count >= 2 }
        #expect(received.bytes == [0xE5, 0xE5])
        // The second SND_NKE is on the wire after the first: it ends 10 characters after the write.
        let timing = LineTiming(baudRate: 9600)
        if received.times.count == 2 {
            #expect(received.times[1] - sent >= timing.duration(characters: 11) + timing.duration(bits: 11))
        }
        #expect(bus.counters.requestsSeen == 3)
    }

    @Test("A frame abandoned half-way is dropped once the line has been idle")
    func abandonedFrame() throws {
        let (bus, master) = try runningBus([try SimulatedSlave(primaryAddress: 1, hexFrames: [Meters.gwf])])
        defer { bus.stop() }
        master.send([0x68, 0x20, 0x20, 0x68])  // the header of a 38-byte frame that never comes
        #expect(master.read(timeout: .milliseconds(250)).bytes.isEmpty)
        master.send(.sndNKE(address: 1))
        #expect(master.frames(1) == [.ack])
        #expect(bus.counters.requestBytesDiscarded == 4)
        #expect(bus.counters.bytesReceived == 9)
    }

    @Test("stop() joins the thread and closes the pty; it can be called twice")
    func stopIsClean() throws {
        let bus = try MBusBusSimulator(slaves: [try SimulatedSlave(primaryAddress: 1, hexFrames: [Meters.gwf])], baudRate: 9600)
        try bus.start()
        #expect(throws: SimulatorError.self) { try bus.start() }
        let master = try TestMaster(path: bus.devicePath)
        master.send(.sndNKE(address: 1))
        #expect(master.frames(1) == [.ack])
        bus.stop()
        bus.stop()
        #expect(throws: SimulatorError.self) { try bus.start() }
    }
}
