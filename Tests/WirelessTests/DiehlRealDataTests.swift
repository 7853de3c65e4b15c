import Testing
@testable import Drivers

/// Diehl's "real data" telegrams (CI 7Ah, configuration mode 16–31): records as sent or scrambled with the
/// PRIOS LFSR, a checksum in the configuration field. Vectors: wmbusmeters' sharky and hydrus tests (the
/// wmbus corpus's #324 and #139).
@Suite("Diehl real data")
struct DiehlRealDataTests {
    /// SHARKY 775 (HYD 20h), mode 21, scrambled with the second default key.
    static let sharky = "534424232004256092687A370045752235854DEEEA5939FAD81C25FEEF5A23C38FB9168493C563F08DB10BAF87F660FBA91296BA2397E8F4220B86D3A192FB51E0BFCF24DCE72118E0C75A9E89F43BDFE370824B"
    /// HYDRUS (HYD 8Bh), mode 24, sent unscrambled.
    static let hydrus = "1E4424238B06204790607A2A0010D80413DDC00000426CBF23441382BB0000"

    func decode(_ hex: String, keys: [IdentificationNumber: WMBusKey] = [:]) throws -> WirelessTelegram {
        var d = WirelessDecoder(keyring: WMBusKeyring(keys: keys))
        return try d.decode(try Hex.decode(hex), format: .noCRC)
    }

    func number(_ w: WirelessTelegram, _ quantity: String) -> Double? {
        w.telegram.records.first { $0.quantity == quantity }?.normalizedValue
    }

    @Test("a scrambled SHARKY telegram opens with a default key: 2651 kWh, 150.347 m3, 42.3/28.1 C")
    func sharkyDescrambled() throws {
        let w = try decode(Self.sharky)
        #expect(w.security.mode == 21)
        #expect(w.security.state == .descrambled)
        #expect(number(w, "Energy") == 2_651_000)
        #expect(number(w, "Volume") == 150.347)
        #expect(number(w, "Flow temperature") == 42.3)
        #expect(number(w, "Return temperature") == 28.1)
        #expect(w.telegram.header.identification == IdentificationNumber("68926025"))
    }

    @Test("an unscrambled HYDRUS telegram is read as sent, the checksum holding: 49.373 m3, 48.002 m3 on 2021-03-31")
    func hydrusAsSent() throws {
        let w = try decode(Self.hydrus)
        #expect(w.security.mode == 24)
        #expect(w.security.state == .none)
        #expect(w.telegram.records.compactMap(\.normalizedValue).prefix(1) == [49.373])
        #expect(w.telegram.records.contains { $0.storageNumber == 1 && $0.normalizedValue == 48.002 })
    }

    /// The SHARKY telegram with its records scrambled under `key` instead (the LFSR is an XOR stream, so
    /// descrambling plain bytes scrambles them).
    func rescrambled(with key: WMBusKey) throws -> [UInt8] {
        var bytes = try Hex.decode(Self.sharky)
        let plain = try #require(DiehlRealData.open(afterCI: bytes[11...], ci: 0x7A, linkBytes: Array(bytes[2..<10]), meterKey: nil))
        let afterCI = Array(bytes[11..<15]) + plain.records
        let scrambled = DiehlPriosCodec.descramble(afterCI, link: Array(bytes[2..<10]), ci: 0x7A, key: DiehlRealData.fold(key.bytes))
        bytes.replaceSubrange(15..., with: scrambled)
        return bytes
    }

    @Test("a meter's own key opens what the default keys do not; without it the telegram is 'no key'")
    func ownKey() throws {
        let key = try #require(WMBusKey(hex: "0123456789ABCDEF0011223344556677"))
        let bytes = try rescrambled(with: key)
        let id = try #require(IdentificationNumber("68926025"))
        var withKey = WirelessDecoder(keyring: WMBusKeyring(keys: [id: key]))
        let opened = try withKey.decode(bytes, format: .noCRC)
        #expect(opened.security.state == .decrypted)
        #expect(opened.telegram.records.first { $0.quantity == "Energy" }?.normalizedValue == 2_651_000)
        var without = WirelessDecoder(keyring: WMBusKeyring())
        let closed = try without.decode(bytes, format: .noCRC)
        #expect(closed.security.state == .noKey)
        #expect(closed.telegram.records.isEmpty)
    }

    @Test("a damaged byte fails the checksum: no candidate is taken, nothing is guessed")
    func damaged() throws {
        var bytes = try Hex.decode(Self.sharky)
        bytes[30] ^= 0x01
        let w = try decode(Hex.encode(bytes))
        #expect(w.security.state == .noKey)
        #expect(w.telegram.records.isEmpty)
        #expect(DiehlRealData.open(afterCI: bytes[11...], ci: 0x7A, linkBytes: Array(bytes[2..<10]), meterKey: nil) == nil)
    }

    @Test("only CI 7Ah SND-NR/SND-IR telegrams of the Diehl group in modes 16–31 are read so")
    func applies() throws {
        let hyd = try #require(ManufacturerCode("HYD"))
        #expect(DiehlRealData.applies(manufacturer: hyd, control: 0x44, ci: 0x7A, shortHeader: true, mode: 21))
        #expect(DiehlRealData.applies(manufacturer: try #require(ManufacturerCode("SPL")), control: 0x46, ci: 0x7A, shortHeader: true, mode: 31))
        #expect(!DiehlRealData.applies(manufacturer: hyd, control: 0x44, ci: 0x7A, shortHeader: true, mode: 15))
        #expect(!DiehlRealData.applies(manufacturer: hyd, control: 0x44, ci: 0x72, shortHeader: false, mode: 21))
        #expect(!DiehlRealData.applies(manufacturer: hyd, control: 0x08, ci: 0x7A, shortHeader: true, mode: 21))
        #expect(!DiehlRealData.applies(manufacturer: try #require(ManufacturerCode("KAM")), control: 0x44, ci: 0x7A, shortHeader: true, mode: 21))
    }

    @Test("any bytes after the CI give records or nil, never a trap")
    func total() {
        var g = SeededRandom(seed: 324)
        var opened = 0
        for _ in 0..<3_000 {
            let n = Int(g.next() % 80)
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            let link = (0..<Int(g.next() % 10)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            if DiehlRealData.open(afterCI: bytes[...], ci: 0x7A, linkBytes: link, meterKey: nil) != nil { opened += 1 }
        }
        // Random bytes rarely pass both the 7-bit checksum and a complete record parse.
        #expect(opened < 60, "\(opened) of 3000 random payloads were taken as records")
    }
}
