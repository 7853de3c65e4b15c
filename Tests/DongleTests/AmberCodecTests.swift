import Drivers
import Testing

@Suite("Amber CMD codec")
struct AmberCodecTests {
    @Test func checksumIsXorOfAllBytes() {
        // CMD_GET_REQ of the whole parameter memory, as Amber's manual and wmbusmeters send it.
        #expect(Amber.get(position: 0x00, count: 0x80) == [0xFF, 0x0A, 0x02, 0x00, 0x80, 0x77])
        #expect(Amber.setMode(.t1) == [0xFF, 0x04, 0x01, 0x08, 0xF2])
        #expect(Amber.setMode(.c1) == [0xFF, 0x04, 0x01, 0x0E, 0xF4])
        #expect(Amber.setMode(.c1t1)[3] == 0x09)
        #expect(Amber.querySerialNumber() == [0xFF, 0x0B, 0x00, 0xF4])
    }

    @Test func rssiIsTwosComplementHalfDecibels() {
        #expect(Amber.rssiDBm(0x00) == -74)
        #expect(Amber.rssiDBm(0x7F) == -10.5)
        #expect(Amber.rssiDBm(0x80) == -138)
        #expect(Amber.rssiDBm(0xD0) == -98)
        for dBm in stride(from: -130.0, through: -20, by: 0.5) {
            #expect(Amber.rssiDBm(Amber.rawRSSI(dBm: dBm)) == dBm)
        }
    }

    @Test func responsesParse() throws {
        #expect(try Amber.serialNumber(AmberMessage(command: 0x8B, payload: [0x00, 0x12, 0x34, 0x56])) == "00123456")
        #expect(try Amber.firmwareVersion(AmberMessage(command: 0x8C, payload: [1, 6, 2])) == "1.6.2")
        let p = try Amber.parameters(AmberMessage(command: 0x8A, payload: [69, 1, 1]))
        #expect(p.position == 69 && p.values == [1])
        #expect(throws: DongleError.self) { try Amber.parameters(AmberMessage(command: 0x8A, payload: [69, 3, 1])) }
        #expect(throws: DongleError.self) { try Amber.serialNumber(AmberMessage(command: 0x8C, payload: [1, 2, 3, 4])) }
    }

    @Test func framedIndicationsAndConfirmations() {
        let telegrams = Fixtures.take(3)
        var input: [UInt8] = []
        for t in telegrams {
            input += Amber.encode(AmberMessage(command: Amber.dataIndication, payload: Array(t.dropFirst()) + [0xD0]))
        }
        input += [0xFF, 0x84, 0x01, 0x00, 0xFF ^ 0x84 ^ 0x01]
        let events = StreamVerifier.verify(input) { AmberFrameReader(rssiAppended: true) }
        #expect(events.count == 4)
        for (e, t) in zip(events, telegrams) {
            #expect(e == .telegram(bytes: t, rssi: 0xD0, framed: true))
        }
        #expect(events.last == .command(AmberMessage(command: 0x84, payload: [0x00])))
    }

    /// Transparent mode: raw L-first telegrams, confirmations framed between them, an L-field of FFh.
    @Test func framingClashIsResolvedByTheSecondByte() {
        let real = Fixtures.take(2)
        // A 256-byte telegram: L = FFh, C = 44h (SND-NR), M = "KAM", bytes FFh inside the data.
        var long: [UInt8] = [0xFF, 0x44, 0x2D, 0x2C, 0x78, 0x56, 0x34, 0x12, 0x01, 0x07, 0x7A]
        while long.count < 256 { long.append(long.count % 3 == 0 ? 0xFF : UInt8(long.count & 0xFF)) }
        let confirmation = Amber.encode(AmberMessage(command: Amber.setModeRequest | 0x80, payload: [0]))
        let serial = Amber.encode(AmberMessage(command: Amber.serialNumberRequest | 0x80, payload: [0, 0x12, 0x34, 0x56]))
        let input = real[0] + [0xC8] + confirmation + long + [0xB0] + serial + real[1] + [0x90]
        let events = StreamVerifier.verify(input) { AmberFrameReader(rssiAppended: true) }
        #expect(events == [
            .telegram(bytes: real[0], rssi: 0xC8, framed: false),
            .command(AmberMessage(command: 0x84, payload: [0])),
            .telegram(bytes: long, rssi: 0xB0, framed: false),
            .command(AmberMessage(command: 0x8B, payload: [0, 0x12, 0x34, 0x56])),
            .telegram(bytes: real[1], rssi: 0x90, framed: false),
        ])
    }

    @Test func noiseAndBadChecksumsAreSkippedAndReported() {
        let t = Fixtures.take(1)[0]
        let good = Amber.encode(AmberMessage(command: Amber.dataIndication, payload: Array(t.dropFirst())))
        var bad = Amber.encode(AmberMessage(command: 0x8B, payload: [1, 2, 3, 4]))
        bad[bad.count - 1] ^= 0x55
        let input: [UInt8] = [0x01, 0x02, 0x03] + good + bad + good + [0x00]
        let events = StreamVerifier.verify(input) { AmberFrameReader(rssiAppended: false) }
        var telegrams = 0
        var codes: [DongleError.Code] = []
        for e in events {
            switch e {
            case .telegram(let bytes, let rssi, _):
                #expect(bytes == t && rssi == nil)
                telegrams += 1
            case .skipped(_, let reason): codes.append(reason.code)
            case .command(let m): Issue.record("unexpected \(m)")
            }
        }
        #expect(telegrams == 2)
        #expect(codes.first == .noise)
        #expect(codes.contains(.checksumMismatch))
    }

    @Test func rawTelegramNeedsLettersInItsMField() {
        // L = 20h, C = 44h, but M = FFFFh: noise that looks like a telegram start.
        let input: [UInt8] = [0x20, 0x44, 0xFF, 0xFF] + Array(repeating: 0, count: 6)
        let events = StreamVerifier.verify(input) { AmberFrameReader(rssiAppended: false) }
        #expect(!events.isEmpty)
        for e in events {
            guard case .skipped = e else {
                Issue.record("\(e) from noise")
                continue
            }
        }
    }
}
