import Testing
@testable import Drivers

/// Apator NA-1 (APA 14h, water): a manufacturer layer (CI A0h) with one AES-128-CBC block of its own,
/// opened in the decoder, unpacked by the codec `apator_na1`. Vector: the wmbus corpus's apatorna1
/// telegram (#40, all-zero key; wmbusmeters apatorna1.xmq, test vector only).
@Suite("Apator NA-1")
struct ApatorNA1Tests {
    static let vector = "1C440106813591041407A0020134813C00486734067DB0111C30188137"
    static let ownKey = WMBusKey(hex: "4D1F0A77C3E2915B08A6D2F1C0E3B794")!

    func decode(_ bytes: [UInt8], keys: [IdentificationNumber: WMBusKey] = [:]) throws -> WirelessTelegram {
        var d = WirelessDecoder(keyring: WMBusKeyring(keys: keys))
        return try d.decode(bytes, format: .noCRC)
    }

    /// The vector with its encrypted block re-encrypted under `key` (one CBC block: E(plain ⊕ IV)).
    static func rekeyed(_ key: WMBusKey) throws -> [UInt8] {
        var bytes = try Hex.decode(vector)
        var d = WirelessDecoder(keyring: WMBusKeyring(keys: [:]))
        let plain = try #require(try d.decode(bytes, format: .noCRC).manufacturerPayload)
        let iv = Array(bytes[2..<10]) + [UInt8](repeating: plain[0], count: 8)
        let cipher = WMBusAES.encryptBlock(zip(plain[2..<18], iv).map { $0 ^ $1 }, key: key.symmetric)
        bytes.replaceSubrange(13..<29, with: cipher)
        return bytes
    }

    static func le(_ b: [UInt8], _ at: Int, _ n: Int) -> UInt64 {
        (0..<n).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }

    static func values(_ w: WirelessTelegram) throws -> [UInt8] {
        let payload = try #require(w.manufacturerPayload)
        guard case .bytes(let out) = ApatorNA1Codec.decode(payload[...]) else {
            Issue.record("the codec did not read \(Hex.encode(payload))")
            return []
        }
        return out
    }

    @Test("the corpus telegram opens with the all-zero key (descrambled): 689.152 m3, 662.325 m3 375 h before 2024-10-16 12:04")
    func vectorOpens() throws {
        let w = try decode(try Hex.decode(Self.vector))
        #expect(w.security.state == .descrambled)
        #expect(w.manufacturerPayload?[2] == 0x2F)
        let out = try Self.values(w)
        #expect(out.count == ApatorNA1Codec.outputLength)
        #expect(Self.le(out, 0, 8) == 689_152)   // litres
        #expect(Self.le(out, 8, 8) == 662_325)
        #expect(Self.le(out, 20, 2) == 375)       // hours
        let meter = Array(out[16..<20]).withUnsafeBufferPointer { MBusDateTime.typeF($0) }
        let historic = Array(out[22..<26]).withUnsafeBufferPointer { MBusDateTime.typeF($0) }
        #expect([meter.year, meter.month, meter.day, meter.hour, meter.minute] == [2024, 10, 16, 12, 4])
        #expect([historic.year, historic.month, historic.day, historic.hour, historic.minute] == [2024, 9, 30, 21, 4])
        #expect(!meter.isInvalid && out[26] == 0x00 && out[27] == 0x80)  // current OK, historic minimum flow
    }

    @Test("a meter with its own key: opened with it (decrypted); without it no key; with another key, told to check the key")
    func ownKey() throws {
        let bytes = try Self.rekeyed(Self.ownKey)
        let id = IdentificationNumber("04913581")!
        let opened = try decode(bytes, keys: [id: Self.ownKey])
        #expect(opened.security.state == .decrypted)
        #expect(Self.le(try Self.values(opened), 0, 8) == 689_152)

        let none = try decode(bytes)
        #expect(none.security.state == .noKey)
        #expect(ApatorNA1Codec.decode(none.manufacturerPayload![...]) == .notApplicable)
        #expect(none.fields.contains { $0.meaning.contains("add its key") })

        let wrong = try decode(bytes, keys: [id: WMBusKey(hex: "00112233445566778899AABBCCDDEEFF")!])
        #expect(wrong.security.state == .unsupportedMode)
        #expect(wrong.fields.contains { $0.meaning.contains("check the key") })
    }

    @Test("only APA version 14h water meters on CI A0h/A1h; others stay raw manufacturer payloads")
    func applicability() throws {
        let address = { (m: String, v: UInt8, t: UInt8) in
            WMBusAddress(manufacturer: ManufacturerCode(m)!, identification: IdentificationNumber("04913581")!, version: v, deviceType: DeviceType(rawValue: t))
        }
        #expect(ApatorNA1.applies(address: address("APA", 0x14, 0x07), ci: 0xA0))
        #expect(ApatorNA1.applies(address: address("APA", 0x14, 0x07), ci: 0xA1))
        #expect(!ApatorNA1.applies(address: address("APA", 0x14, 0x07), ci: 0xA2))
        #expect(!ApatorNA1.applies(address: address("APA", 0x15, 0x07), ci: 0xA0))
        #expect(!ApatorNA1.applies(address: address("APA", 0x14, 0x06), ci: 0xA0))
        #expect(!ApatorNA1.applies(address: address("APT", 0x14, 0x07), ci: 0xA0))
        // The same bytes from version 15h: reported raw, nothing opened.
        var other = try Hex.decode(Self.vector)
        other[8] = 0x15
        let w = try decode(other)
        #expect(w.security.state == .none && w.manufacturerPayload?[2] != 0x2F)
    }

    @Test("a damaged encrypted byte or a short payload opens with no key; nothing is guessed")
    func damage() throws {
        var damaged = try Hex.decode(Self.vector)
        damaged[20] ^= 0x01
        let w = try decode(damaged)
        #expect(w.security.state == .noKey)
        #expect(ApatorNA1Codec.decode(w.manufacturerPayload![...]) == .notApplicable)
        let short = Array(try Hex.decode(Self.vector).dropLast(2))
        var s = short
        s[0] = UInt8(s.count - 1)
        let t = try decode(s)
        #expect(t.security.state == .none)
        #expect(t.fields.contains { $0.meaning.contains("the format needs 18") })
    }

    @Test("the codec is total: 5,000 random payloads give 28 bytes, not-applicable or a named failure; a historic reading above the total is damage")
    func totality() {
        var rng = SystemRandomNumberGenerator()
        for i in 0..<5_000 {
            var p = (0..<Int.random(in: 0...24, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if i % 2 == 0, p.count > 2 { p[2] = 0x2F }
            switch ApatorNA1Codec.decode(p[...]) {
            case .bytes(let out): #expect(out.count == ApatorNA1Codec.outputLength)
            case .notApplicable: #expect(p.count < 18 || p[2] != 0x2F)
            case .failure(let why): #expect(why.contains("historic"))
            }
        }
        // Total 16 l (count 16, step 1 l), historic delta 4 × 1 + 1 = 5 l... then 2^2 ≪ more: delta 4096 l.
        var p = [UInt8](repeating: 0, count: 18)
        p[2] = 0x2F
        p[3] = 0x00; p[4] = 0x01          // total: (1 << 8 >> 8) × 16 = 16 l
        p[14] = 0x04                      // delta: 4 << 10 = 4096 l
        #expect(ApatorNA1Codec.decode(p[...]) == .failure("the last historic reading is 4096 l less than a total of 16 l: damaged or wrongly opened"))
    }

    @Test("meter times become type F dates that read back to the same minute, 2000 to 2136; before 2000 is invalid")
    func typeF() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let s = Int64.random(in: 0...Int64(UInt32.max), using: &rng)
            let b = ApatorNA1Codec.typeF(secondsSince2000: s)
            let t = b.withUnsafeBufferPointer { MBusDateTime.typeF($0) }
            let unix = s + 946_684_800
            let (y, m, d) = CivilCalendar.date(days: Int(unix / 86_400))
            #expect(!t.isInvalid)
            #expect([t.year, t.month, t.day, t.hour, t.minute] == [y, m, d, Int(unix % 86_400 / 3600), Int(unix % 3600 / 60)])
        }
        #expect(ApatorNA1Codec.typeF(secondsSince2000: -1) == [0x80, 0, 0, 0])
        // The shared encoder sets the hundred-year bits: without them 2090 would read back as 1990.
        let late = MBusDateTime(year: 2090, month: 6, day: 1, hour: 12, minute: 30).typeFBits
        let back = (0..<4).map { UInt8(truncatingIfNeeded: late >> (8 * UInt32($0))) }.withUnsafeBufferPointer { MBusDateTime.typeF($0) }
        #expect(back.year == 2090 && back.month == 6 && back.day == 1 && back.hour == 12 && back.minute == 30)
    }
}
