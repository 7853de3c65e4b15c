import Foundation
import Testing
@testable import Drivers

private func bytes(_ hex: String) -> [UInt8] { try! Hex.decode(hex) }

/// Published test vectors: RFC 4493 (AES-CMAC), OMS Vol. 2 Annex N (security mode 5),
/// CEN/TR 17167:2018 F.3 (security mode 7 with AFL and KDF-A), and the EN 13757-4 CRC.
@Suite("wireless M-Bus vectors")
struct VectorTests {
    // MARK: RFC 4493, section 4

    static let cmacKey = bytes("2b7e151628aed2a6abf7158809cf4f3c")
    static let cmacMessage = bytes("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710")

    @Test("RFC 4493 AES-CMAC examples 1-4", arguments: [
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ])
    func cmac(length: Int, expected: String) {
        #expect(AESCMAC.mac(key: Self.cmacKey, message: Self.cmacMessage.prefix(length)) == bytes(expected))
    }

    @Test("RFC 4493 subkeys K1 and K2")
    func subkeys() {
        let l = bytes("7df76b0c1ab899b33e42f047b91b546f")
        #expect(AESCMAC.doubled(l) == bytes("fbeed618357133667c85e08f7236a8de"))
        #expect(AESCMAC.doubled(AESCMAC.doubled(l)) == bytes("f7ddac306ae266ccf90bc11ee46d513b"))
    }

    // MARK: CRC

    @Test("CRC-16/EN-13757 check value")
    func crcCheck() {
        #expect(WMBusCRC.compute(Array("123456789".utf8)) == 0xC2B7)
    }

    // MARK: OMS Vol. 2 Annex N

    /// N.2.1: wM-Bus gas meter, security profile A (mode 5, short header).
    static let n21 = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3"

    @Test("OMS Annex N.2.1: mode 5, short header")
    func modeFiveShort() throws {
        var d = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "0102030405060708090A0B0C0D0E0F11")))
        let w = try d.decode(bytes(Self.n21))
        #expect(w.security.state == .decrypted)
        #expect(w.security.mode == 5)
        #expect(w.telegram.header.manufacturer?.letters == "ELS")
        #expect(w.telegram.header.identification?.digits == "12345678")
        #expect(w.telegram.header.deviceType == .gas)
        #expect(w.telegram.header.accessNumber == 0x2A)
        let volume = try #require(w.telegram.records.first)
        #expect(volume.unit == "m^3")
        #expect(volume.normalizedValue == 28504.27)
        #expect(w.telegram.records.count == 3)
        if case .dateTime(let t) = w.telegram.records[1].value {
            #expect(t.description == "2008-05-31T23:50:00")
        } else {
            Issue.record("record 2 is not a date: \(w.telegram.records[1].value)")
        }
    }

    @Test("wrong key is a typed error, no key a state, already decrypted is recognised")
    func keyStates() throws {
        var wrong = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")))
        #expect(throws: DecodeError.self) { try wrong.decode(bytes(Self.n21)) }
        do {
            _ = try wrong.decode(bytes(Self.n21))
        } catch {
            #expect(error.code == .wrongKey)
            #expect(error.offset == 15)  // L, C, M, A (10), CI, ACC, ST, CF (5): the first encrypted byte
        }
        var none = WirelessDecoder()
        let w = try none.decode(bytes(Self.n21))
        #expect(w.security.state == .noKey)
        #expect(w.telegram.records.isEmpty)
        #expect(w.telegram.header.identification?.digits == "12345678")

        // The same telegram with its payload already decrypted (as some dongles and tools store it).
        var right = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "0102030405060708090A0B0C0D0E0F11")))
        _ = try right.decode(bytes(Self.n21))
        var plainTelegram = bytes(Self.n21)
        let key = try #require(WMBusKey(hex: "0102030405060708090A0B0C0D0E0F11"))
        let iv = Array(plainTelegram[2..<10]) + [UInt8](repeating: 0x2A, count: 8)
        let plain = try #require(WMBusAES.cbcDecrypt(plainTelegram[15...], key: key, iv: iv))
        plainTelegram.replaceSubrange(15..., with: plain)
        var noKey = WirelessDecoder()
        let p = try noKey.decode(plainTelegram)
        #expect(p.security.state == .alreadyDecrypted)
        #expect(p.telegram.records.first?.normalizedValue == 28504.27)
    }

    /// N.5.3: heat-cost allocator behind a radio adapter: short ELL, long header, mode 5, one encrypted block.
    @Test("OMS Annex N.5.3: ELL + long header, partial encryption")
    func modeFiveLong() throws {
        let hex = "304493444433221155378C00757288776655934455080004100500DFE2A782146D1513581CD2F83F39040CFD1078563412"
        var d = WirelessDecoder(keyring: WMBusKeyring(keys: [IdentificationNumber("55667788")!: WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")!]))
        let w = try d.decode(bytes(hex))
        #expect(w.ell?.accessNumber == 0x75)
        #expect(w.frame.address.identification.digits == "11223344")
        #expect(w.telegram.header.identification?.digits == "55667788")
        #expect(w.telegram.header.manufacturer?.letters == "QDS")
        #expect(w.telegram.header.deviceType == .heatCostAllocator)
        #expect(w.security.state == .decrypted)
        let values = w.telegram.records.map(\.value)
        #expect(values.count == 4)
        #expect(values.first == .bcd(1234))
        #expect(w.telegram.records[1].storageNumber == 1)
        #expect(values[2] == .bcd(23456))
        #expect(values[3] == .bcd(12345678))
    }

    // MARK: CEN/TR 17167:2018 F.3, security mode 7

    static let f3 = "53082448443322110337" + "8E80753A63665544330A31" + "900F002C25B30A0000AF5D74DF73A600D9"
        + "7278563412931533037500200710" + "9058475F4BC91DF878B80A1B0F98B629" + "024AAC727942BFC549233C0140829B93"

    @Test("CEN/TR 17167 F.3: mode 7 key derivation")
    func modeSevenKeys() throws {
        let master = try #require(WMBusKey(hex: "000102030405060708090A0B0C0D0E0F"))
        let id = try #require(IdentificationNumber("12345678"))
        #expect(ModeSeven.derive(master, constant: 0x00, counter: 0x0AB3, id: id)?.bytes == bytes("ECCF39D475D730B8284FDFDC1995D52F"))
        #expect(ModeSeven.derive(master, constant: 0x01, counter: 0x0AB3, id: id)?.bytes == bytes("C9CD19FF5A9AAD5A6BBDA13BD2C4C7AD"))
    }

    @Test("CEN/TR 17167 F.3: ELL with receiver, AFL with MAC, mode 7")
    func modeSeven() throws {
        var d = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")))
        let w = try d.decode(bytes(Self.f3))
        #expect(w.frame.address.manufacturer.letters == "RAD")
        #expect(w.ell?.receiver?.manufacturer.letters == "XYZ")
        #expect(w.ell?.receiver?.identification.digits == "33445566")
        #expect(w.afl?.messageCounter == 0x0AB3)
        #expect(w.security.mode == 7)
        #expect(w.security.mac == .verified)
        #expect(w.security.state == .decrypted)
        #expect(w.telegram.header.identification?.digits == "12345678")
        #expect(w.telegram.header.manufacturer?.letters == "ELS")
        #expect(w.telegram.records.contains { $0.unit == "m^3" && $0.normalizedValue == 28504.27 })

        // One flipped bit in the ciphertext: the MAC catches it.
        var bad = bytes(Self.f3)
        bad[bad.count - 1] ^= 0x01
        do {
            _ = try d.decode(bad)
            Issue.record("a corrupted mode 7 telegram decoded")
        } catch {
            #expect(error.code == .macMismatch)
        }
        var noKey = WirelessDecoder()
        let n = try noKey.decode(bytes(Self.f3))
        #expect(n.security.state == .noKey)
        #expect(n.security.mac == .notChecked)
    }

    // MARK: ELL AES-128-CTR (Kamstrup)

    @Test("ELL AES-128-CTR with payload CRC")
    func ellCounterMode() throws {
        let body = "442D2C113134273302" + "8D20E9603A1020" + "08C67C819AAE99B4DE753AA136EF64917ED9D8B2E2D35840BDEA173B8FE14CCE3F1406B7CF"
        let frame = [UInt8(body.count / 2)] + bytes(body)
        var d = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "0102030405060708090A0B0C0D0E0F10")))
        let w = try d.decode(frame)
        #expect(w.ell?.encryption == 1)
        #expect(w.security.ellEncrypted)
        #expect(w.security.state == .decrypted)
        #expect(w.telegram.header.manufacturer?.letters == "KAM")
        #expect(!w.telegram.records.isEmpty)
        var wrong = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "0102030405060708090A0B0C0D0E0F11")))
        #expect(throws: DecodeError.self) { try wrong.decode(frame) }
        var none = WirelessDecoder()
        #expect(try none.decode(frame).security.state == .noKey)
    }

    // MARK: Format A and B

    static let address = WMBusAddress(manufacturer: ManufacturerCode("KAM")!, identification: IdentificationNumber("12345678")!,
                                      version: 0x1B, deviceType: .water)

    @Test("format A and B: CRCs check, are removed, and a corrupted byte is found", arguments: [WMBusFrameFormat.a, .b])
    func blockCRCs(format: WMBusFrameFormat) throws {
        for length in [0, 1, 5, 6, 15, 16, 17, 100, 116, 117, 118, 200, 240] {
            let payload = [0x78] + (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            guard payload.count + (format == .b ? 13 : 9) <= 255 else { continue }
            let encoded = WMBusFrameCodec.encode(control: WMBusControlField(rawValue: 0x44), address: Self.address, payload: payload, format: format)
            let f = try WMBusFrameCodec.decode(encoded, format: format)
            #expect(f.payload == payload, "length \(length)")
            #expect(f.address == Self.address)
            let auto = try WMBusFrameCodec.decode(encoded)
            #expect(auto.format == format, "length \(length): recognised as \(auto.format)")
            // Every single-byte corruption after the L-field is caught by a CRC.
            for i in 1..<encoded.count {
                var bad = encoded
                bad[i] ^= 0x10
                do {
                    _ = try WMBusFrameCodec.decode(bad, format: format)
                    Issue.record("format \(format) length \(length): corruption at \(i) passed")
                } catch {
                    #expect(error.code == .crcMismatch)
                }
            }
            // Offsets of payload bytes point into the input, past the CRCs.
            for k in payload.indices { #expect(encoded[f.inputOffset(ofPayloadIndex: k)] == payload[k]) }
        }
    }

    @Test("the corpus's format B frame checks")
    func corpusFormatB() throws {
        let hex = "2F46C5141731425431087A0A0B00002F2F046D28344535036E000000426C5E34436E000000317F1A346D00335B340186"
        let f = try WMBusFrameCodec.decode(bytes(hex))
        #expect(f.format == .b)
        var bad = bytes(hex)
        bad[20] ^= 1
        #expect(throws: DecodeError.self) { try WMBusFrameCodec.decode(bad, format: .b) }
    }

    @Test("truncated and oversized inputs give typed errors")
    func lengths() {
        for hex in ["", "08", "0944", "0A442D2C", "0F442D2C12345678", String(repeating: "FF", count: 300)] {
            #expect(throws: DecodeError.self) { _ = try WMBusFrameCodec.decode(bytes(hex)) }
        }
    }

    // MARK: totality

    @Test("random and mutated telegrams never trap")
    func totality() throws {
        var rng = SeededRandom(seed: 0x5EED)
        var d = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")))
        let seeds = [Self.n21, Self.f3, "304493444433221155378C00757288776655934455080004100500DFE2A782146D1513581CD2F83F39040CFD1078563412"].map(bytes)
        for n in 0..<20_000 {
            var b: [UInt8]
            if n % 2 == 0 {
                b = (0..<Int(rng.next() % 80)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if !b.isEmpty { b[0] = UInt8(truncatingIfNeeded: b.count - 1) }
            } else {
                b = seeds[n % seeds.count]
                for _ in 0..<(1 + rng.next() % 3) { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
                if rng.next() % 4 == 0 { b.removeLast(Int(rng.next() % UInt64(b.count))) }
            }
            _ = try? d.decode(b)
            _ = try? d.decode(b, format: .a)
            _ = try? d.decode(b, format: .b)
        }
    }
}

