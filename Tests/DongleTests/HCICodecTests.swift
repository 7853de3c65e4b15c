import Drivers
import Testing

@Suite("IMST HCI codec")
struct HCICodecTests {
    @Test func crcIsX25() {
        // The catalogue check value of CRC-16/X-25.
        #expect(HCI.crc16(Array("123456789".utf8)) == 0x906E)
    }

    @Test func requestsHaveTheDocumentedBytes() {
        #expect(HCI.ping() == [0xA5, 0x01, 0x01, 0x00])
        #expect(HCI.getDeviceInfo() == [0xA5, 0x01, 0x0F, 0x00])
        // NVM flag off, IIFlag1 link mode, T1 = 03h, IIFlag2 RSSI + timestamp, both on.
        #expect(HCI.setConfiguration(linkMode: .t1) == [0xA5, 0x01, 0x03, 0x06, 0x00, 0x02, 0x03, 0x30, 0x01, 0x01])
        #expect(HCI.setConfiguration(linkMode: .c1t1)[6] == 0x0A)
        #expect(HCI.setConfiguration(linkMode: .c1)[6] == 0x06)
        #expect(HCI.setConfiguration(linkMode: .s1)[6] == 0x00)
    }

    @Test func encodesCRCLowByteFirst() {
        #expect(HCI.encode(HCIMessage(endpoint: 1, messageID: 2, hasCRC: true)) == [0xA5, 0x81, 0x02, 0x00, 0x4C, 0xA3])
        #expect(HCI.encode(HCIMessage(endpoint: 1, messageID: 4, payload: [0], hasCRC: true)) == [0xA5, 0x81, 0x04, 0x01, 0x00, 0xB2, 0xB7])
    }

    @Test func decodesAnIndicationWithAllAttachments() throws {
        let telegram = Fixtures.take(1)[0]
        let bytes = HCI.encode(HCIMessage(endpoint: HCI.radioLink, messageID: HCI.wmbusMessageIndication,
                                          payload: Array(telegram.dropFirst()), timestamp: 0x0102_0304, rssi: 205, hasCRC: true))
        #expect(bytes[1] == 0xE2)
        guard case .message(let m, let consumed) = try HCI.decode(bytes[...]) else {
            Issue.record("a complete message asks for more bytes")
            return
        }
        #expect(consumed == bytes.count)
        #expect(m.timestamp == 0x0102_0304)
        #expect(m.rssi == 205)
        #expect([UInt8(m.payload.count)] + m.payload == telegram)
        let frame = try WMBusFrameCodec.decode([UInt8(m.payload.count)] + m.payload, format: .noCRC)
        #expect(frame.address.wireBytes == Array(telegram[2..<10]))
    }

    @Test func prefixesAskForMoreAndCorruptionIsTyped() throws {
        let bytes = HCI.encode(HCIMessage(endpoint: 1, messageID: 2, payload: [1, 2, 3], hasCRC: true))
        for n in 1..<bytes.count {
            guard case .needMoreBytes(let more) = try HCI.decode(bytes[0..<n]) else {
                Issue.record("prefix of \(n) bytes decoded")
                continue
            }
            #expect(more > 0)
        }
        var bad = bytes
        bad[5] ^= 0x01
        #expect(throws: DongleError.self) { try HCI.decode(bad[...]) }
        do {
            _ = try HCI.decode(bad[...])
        } catch {
            #expect(error.code == .checksumMismatch)
        }
        do {
            _ = try HCI.decode([0xA5, 0x07, 0x01, 0x00][...])
            Issue.record("endpoint 7 accepted")
        } catch {
            #expect(error.code == .unknownMessage)
        }
        do {
            _ = try HCI.decode([0xA5, 0x02, 0x09, 0x00][...])
            Issue.record("radio link message 9 accepted")
        } catch {
            #expect(error.code == .unknownMessage)
        }
    }

    @Test func rssiFollowsTheSi1002Curve() {
        #expect(HCI.rssiDBm(205) == -20)
        #expect(HCI.rssiDBm(45) == -100)
        #expect(HCI.rssiDBm(246) == 0)
        #expect(HCI.rssiDBm(255) == 0)
        for dBm in stride(from: -120.0, through: -10, by: 0.5) {
            #expect(HCI.rssiDBm(HCI.rawRSSI(dBm: dBm)) == dBm)
        }
    }

    @Test func deviceInfoAndConfigurationParse() throws {
        let info = try HCI.DeviceInfo.parse([0x33, 0x00, 0x15, 0x17, 0x78, 0x56, 0x34, 0x12])
        #expect(info.moduleName == "iM871A")
        #expect(info.firmware == "1.5")
        #expect(info.uniqueID == 0x1234_5678)
        #expect(info.supportsCombinedC1T1)
        #expect(try HCI.DeviceInfo.parse([0x36, 0, 0x13, 0, 0, 0, 0, 0]).moduleName == "iM170A")
        #expect(throws: DongleError.self) { try HCI.DeviceInfo.parse([0x33, 0x00]) }
        let config = try HCI.Configuration.parse([0x03, 0x00, 0x03, 0x30, 0x01, 0x00])
        #expect(config.linkMode == .t1)
        #expect(config.rssiAttached == true)
        #expect(config.timestampAttached == false)
        // Manufacturer (2 bytes) and id (4) sized right: the link mode after them is not misread.
        let wide = try HCI.Configuration.parse([0x1A, 0x06, 0x2D, 0x2C, 0x78, 0x56, 0x34, 0x12])
        #expect(wide.linkMode == .c1)
        #expect(throws: DongleError.self) { try HCI.Configuration.parse([0x12, 0x00]) }
    }

    @Test func readerIsIndependentOfChunkingAndResynchronises() {
        let telegrams = Fixtures.take(4)
        var input: [UInt8] = [0x00, 0x13, 0x37]
        var expected: [[UInt8]] = []
        for (i, t) in telegrams.enumerated() {
            input += HCI.encode(HCIMessage(endpoint: HCI.radioLink, messageID: HCI.wmbusMessageIndication, payload: Array(t.dropFirst()),
                                           rssi: UInt8(100 + i), hasCRC: i % 2 == 0))
            expected.append(t)
            if i == 1 { input += [0xA5, 0x0F, 0x99, 0x42] }   // endpoint 0Fh: garbage with a start byte
            if i == 2 { input += HCI.encode(HCIMessage(endpoint: 1, messageID: 2, hasCRC: true)) }
        }
        input += [0xA5, 0x81]   // cut short by the end of the stream
        let events = StreamVerifier.verify(input) { HCIFrameReader() }
        var got: [[UInt8]] = []
        var skips: [DongleError.Code] = []
        var responses = 0
        for e in events {
            switch e {
            case .message(let m) where m.messageID == HCI.wmbusMessageIndication:
                got.append([UInt8(m.payload.count)] + m.payload)
            case .message(let m):
                #expect(m.messageID == HCI.pingResponse)
                responses += 1
            case .skipped(_, let reason):
                skips.append(reason.code)
            }
        }
        #expect(got == expected)
        #expect(responses == 1)
        #expect(skips == [.noise, .unknownMessage, .truncated])
    }
}
