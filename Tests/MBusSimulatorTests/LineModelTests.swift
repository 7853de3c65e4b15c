import Drivers
import Testing
@testable import MBusSimulator

/// The line model without a pty: bit-level superposition and the UART that receives it.
@Suite("Line superposition and UART")
struct LineModelTests {
    let timing = LineTiming(baudRate: 2400)

    @Test("One sender comes through unchanged, each byte due at the end of its stop bit")
    func singleSender() {
        let bytes: [UInt8] = [0x68, 0x00, 0xFF, 0xE5, 0x16, 0x01, 0x80]
        let start: Int64 = 1_000_000_000
        let received = UARTReceiver.receive([Transmission(source: .slave(0), start: start, bytes: bytes)], timing)
        #expect(received.map(\.value) == bytes)
        // Never early, and no drift: each deadline is within a nanosecond of the exact instant.
        for (k, character) in received.enumerated() {
            let exact = start + timing.duration(characters: k + 1)
            #expect(character.deadline >= exact && character.deadline - exact <= 1)
        }
        #expect(received.allSatisfy { !$0.framingError && !$0.parityError })
    }

    @Test("Aligned senders give the bitwise AND of their bytes")
    func alignedSendersAND() {
        let a: [UInt8] = [0x68, 0x51, 0x51, 0x68]
        let b: [UInt8] = [0x68, 0x0F, 0x32, 0x68, 0x08]
        let received = UARTReceiver.receive([Transmission(source: .slave(0), start: 0, bytes: a),
                                             Transmission(source: .slave(1), start: 0, bytes: b)], timing)
        #expect(received.map(\.value) == [0x68, 0x01, 0x10, 0x68, 0x08])
        // The parity bits are ANDed too: 51h (parity 1) & 0Fh (parity 0) leaves 01h with parity 0, an
        // error; 51h & 32h (both parity 1) leaves 10h with parity 1, which happens to be right.
        #expect(received.map(\.parityError) == [false, true, false, false, false])
        #expect(received.allSatisfy { !$0.framingError })
    }

    @Test("Identical E5s less than half a bit apart are received as one E5; further apart they garble")
    func offsetAcknowledgements() {
        let third = timing.bitTime / 3
        let close = UARTReceiver.receive([Transmission(source: .slave(0), start: 0, bytes: [0xE5]),
                                          Transmission(source: .slave(1), start: third, bytes: [0xE5])], timing)
        #expect(close.map(\.value) == [0xE5])
        #expect(!close[0].framingError && !close[0].parityError)

        let apart = UARTReceiver.receive([Transmission(source: .slave(0), start: 0, bytes: [0xE5]),
                                          Transmission(source: .slave(1), start: 3 * timing.bitTime / 2, bytes: [0xE5])], timing)
        #expect(apart.map(\.value) != [0xE5])
    }

    @Test("Senders that do not overlap are received one after the other")
    func separateSenders() {
        let second = timing.duration(characters: 3)
        let received = UARTReceiver.receive([Transmission(source: .slave(1), start: second, bytes: [0x10, 0x20]),
                                             Transmission(source: .noise, start: 0, bytes: [0xAA])], timing)
        #expect(received.map(\.value) == [0xAA, 0x10, 0x20])
    }

    @Test("BusLine hands characters out by deadline and counts overlapping transmissions as collisions")
    func busLine() {
        var line = BusLine(timing: timing)
        let first = line.transmit([Transmission(source: .slave(0), start: 0, bytes: [0xE5, 0xE5])])
        let second = line.transmit([Transmission(source: .slave(1), start: 0, bytes: [0xE5]),
                                    Transmission(source: .slave(2), start: timing.bitTime / 4, bytes: [0xE5])])
        #expect(first == 0 && second == 2)
        #expect(line.nextDeadline == timing.characterTime)
        let early = line.takeDue(now: timing.characterTime - 1)
        #expect(early.isEmpty)
        let due = line.takeDue(now: 10 * timing.characterTime)
        #expect(due.map(\.value) == [0xE5, 0xE5])
        #expect(line.nextDeadline == nil)
        // After the burst, a new transmission starts a new one.
        let later = line.transmit([Transmission(source: .noise, start: 20 * timing.characterTime, bytes: [0x00])])
        #expect(later == 0)
        #expect(line.burst.count == 1)
    }
}

/// The slaves' link layer as a value, request by request.
@Suite("Slave link layer")
struct SlaveLinkTests {
    func slaves(_ list: [SimulatedSlave]) -> BusSlaves {
        BusSlaves(links: list.map { SlaveLink(slave: $0, responseDelay: 1) })
    }

    @Test("SND_NKE and select to FDh: selection survives REQ_UD2, ends with SND_NKE to FDh or a non-matching select")
    func selectionLifetime() throws {
        let slave = try SimulatedSlave(primaryAddress: 1, frames: try Meters.multiTelegram(identification: "12345678"))
        var bus = slaves([slave])
        let mask = try #require(slave.secondaryAddress).mask
        #expect(bus.replies(to: .selectSecondary(mask)).map(\.bytes) == [[0xE5]])
        #expect(bus.replies(to: .reqUD2(address: 0xFD, frameCountBit: true)).count == 1)
        #expect(bus.links[0].isSelected)
        #expect(bus.replies(to: .sndNKE(address: 0xFD)).map(\.bytes) == [[0xE5]])
        #expect(!bus.links[0].isSelected)
        #expect(bus.replies(to: .reqUD2(address: 0xFD, frameCountBit: false)).isEmpty)
        _ = bus.replies(to: .selectSecondary(mask))
        #expect(bus.replies(to: .selectSecondary(SecondaryAddressMask(identification: 0x1234_5679))).isEmpty)
        #expect(!bus.links[0].isSelected)
    }

    @Test("A selection restarts the readout, so a master's FCB = 1 after the select gets telegram 1")
    func selectionResetsFrameCount() throws {
        let slave = try SimulatedSlave(primaryAddress: 1, frames: try Meters.multiTelegram())
        var bus = slaves([slave])
        let mask = try #require(slave.secondaryAddress).mask
        func read(_ fcb: Bool) throws -> Int64? {
            let bytes = try #require(bus.replies(to: .reqUD2(address: 0xFD, frameCountBit: fcb)).first).bytes
            return Meters.telegramNumber(try FrameCodec.decodeComplete(bytes))
        }
        _ = bus.replies(to: .selectSecondary(mask))
        #expect(try read(true) == 1)
        _ = bus.replies(to: .selectSecondary(mask))
        #expect(try read(true) == 1)
        #expect(try read(false) == 2)
    }

    @Test("Wildcards: F nibbles, FFFFh manufacturer, FFh version and device type")
    func maskMatching() throws {
        let address = SecondaryAddress(identification: IdentificationNumber("31425082")!, manufacturer: ManufacturerCode("ZRM")!,
                                       version: 0x81, deviceType: .heatOutlet)
        #expect(address.isSelected(by: SecondaryAddressMask()))
        #expect(address.isSelected(by: address.mask))
        #expect(address.isSelected(by: SecondaryAddressMask("3142508FFFFFFFFF")!))
        #expect(address.isSelected(by: SecondaryAddressMask("F1F2F0F2FFFF81FF")!))
        #expect(!address.isSelected(by: SecondaryAddressMask("3142508FFFFF80FF")!))
        #expect(!address.isSelected(by: SecondaryAddressMask("31425083FFFFFFFF")!))
        #expect(!address.isSelected(by: SecondaryAddressMask(identification: 0xFFFF_FFFF, manufacturer: ManufacturerCode("KAM")!.rawValue)))
        #expect(!address.isSelected(by: SecondaryAddressMask(identification: 0xFFFF_FFFF, deviceType: 0x07)))
    }

    @Test("Header overrides rewrite every frame, in the frame's byte order, with a valid checksum")
    func headerOverrides() throws {
        let slave = try SimulatedSlave(primaryAddress: 8, frames: try Meters.multiTelegram(),
                                       identification: IdentificationNumber("31425083"), manufacturer: ManufacturerCode("ZRM"))
        for frame in slave.frames {
            let telegram = try TelegramDecoder.decode(frame)
            #expect(telegram.header.identification == IdentificationNumber("31425083"))
            #expect(telegram.header.manufacturer == ManufacturerCode("ZRM"))
            #expect(telegram.primaryAddress == 8)
        }
        #expect(slave.secondaryAddress?.description == "314250836A4D0D04")
        #expect(throws: SimulatorError.self) { try SimulatedSlave(primaryAddress: 251, hexFrames: [Meters.gwf]) }
        #expect(throws: SimulatorError.self) { try SimulatedSlave(primaryAddress: 1, hexFrames: ["10 5B 01 5C 16"]) }
        #expect(throws: SimulatorError.self) { try SimulatedSlave(primaryAddress: 1, hexFrames: ["68 03 03 68 08 01 72 7C 17"]) }
    }
}
