import Foundation
import Testing
@testable import Drivers


private func telegram(_ hex: String) throws -> WirelessTelegram {
    var d = WirelessDecoder(keyring: WMBusKeyring())
    return try d.decode(try Hex.decode(hex), format: .noCRC)
}

private func le(_ b: [UInt8], _ at: Int, _ n: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in (at..<(at + n)).reversed() { v = v << 8 | UInt64(b[i]) }
    return v
}

/// The named codecs of `ProfileCodecs`: known vectors from the sources, damaged input, and random input
/// (a codec is total: any bytes give a result, never a trap).
@Suite("profile codecs")
struct CodecTests {
    @Test("the codecs are registered by name")
    func registered() {
        #expect(ProfileCodecs.named["diehl_prios"] != nil)
        #expect(ProfileCodecs.named["apator_tags"] != nil)
    }

    // MARK: diehl_prios

    /// wmbusmeters izarv2.xmq / driver_izar.cc test telegrams: total and last-month litres, billing date bytes.
    static let priosVectors: [(hex: String, total: UInt64, lastMonth: UInt64, date: [UInt8])] = [
        ("1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC", 3488, 3486, [0x7E, 0x29]),
        ("2944A511780729662366A20118001378D3B3DB8CEDD77731F25832AAF3DA8CADF9774EA673172E8C61F2", 16760, 11840, [0x7E, 0x2B]),
        // DME with its A-field in Diehl order that the frame reader keeps in the standard order (type 20h is defined).
        ("1944A511780779194820A121170013355F8EDB2D03C6912B1E37", 4366, 0, [0x9F, 0x2C]),
        ("1944304c9c5824210c04a363140013716577ec59e8663ab0d31c", 38944, 38691, [0xA1, 0x22]),
        ("1944304CDEFFE420CC01A263120013258F907B0AFF12529AC33B", 159832, 157760, [0xA1, 0x22]),
        ("19442423860775035048A251520015BEB6B2E1ED623A18FC74A5", 521602, 519147, [0xAF, 0x2B]),
    ]

    @Test("PRIOS default keys fold to DFD109E8h and B71F0AE8h")
    func priosKeys() {
        #expect(DiehlPriosCodec.defaultKeys == [0xDFD1_09E8, 0xB71F_0AE8])
    }

    @Test("PRIOS test telegrams descramble to the marker, total, last-month volume and date")
    func priosVectorsDecode() throws {
        for v in Self.priosVectors {
            let w = try telegram(v.hex)
            let payload = try #require(w.manufacturerPayload)
            guard case .bytes(let out) = DiehlPriosCodec.decode(payload[...], CodecContext(w)) else {
                Issue.record("no plain text for \(v.hex)")
                continue
            }
            #expect(out.count == payload.count)
            #expect(Array(out[0..<4]) == Array(payload[0..<4]))
            #expect(out[4] == 0x4B)
            #expect(le(out, 5, 4) == v.total)
            #expect(le(out, 9, 4) == v.lastMonth)
            #expect(Array(out[13..<15]) == v.date)
        }
    }

    @Test("PRIOS: the descrambling is its own inverse for a given header")
    func priosInvolution() {
        var rng = SeededRandom(seed: 1)
        for _ in 0..<200 {
            let n = Int.random(in: 5...40, using: &rng)
            let payload = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let link = (0..<8).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let key = UInt32.random(in: 0...UInt32.max, using: &rng)
            let ci = UInt8.random(in: 0xA0...0xA7, using: &rng)
            let once = DiehlPriosCodec.descramble(payload, link: link, ci: ci, key: key)
            let twice = DiehlPriosCodec.descramble(Array(payload[0..<4]) + once, link: link, ci: ci, key: key)
            #expect(twice == Array(payload[4...]))
        }
    }

    @Test("PRIOS: another CI is not applicable; a short or damaged payload is a failure")
    func priosRejects() throws {
        let w = try telegram(Self.priosVectors[1].hex)
        let payload = try #require(w.manufacturerPayload)
        var context = CodecContext(w)
        context.controlInformation = 0x7A
        #expect(DiehlPriosCodec.decode(payload[...], context) == .notApplicable)
        context.controlInformation = 0xA2
        if case .failure = DiehlPriosCodec.decode(payload[0..<4], context) {} else { Issue.record("4 bytes accepted") }
        if case .failure = DiehlPriosCodec.decode(ArraySlice<UInt8>(), context) {} else { Issue.record("no bytes accepted") }
        var damaged = payload
        damaged[4] ^= 0x01   // the scrambled marker
        if case .failure = DiehlPriosCodec.decode(damaged[...], context) {} else { Issue.record("damaged marker accepted") }
    }

    @Test("PRIOS: random payloads, addresses and CIs never trap")
    func priosRandom() {
        var rng = SeededRandom(seed: 2)
        for _ in 0..<3000 {
            let n = Int.random(in: 0...80, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let address = WMBusAddress(manufacturer: ManufacturerCode(rawValue: UInt16.random(in: 0...UInt16.max, using: &rng)),
                                       identification: IdentificationNumber(rawValue: UInt32.random(in: 0...UInt32.max, using: &rng)),
                                       version: UInt8.random(in: 0...255, using: &rng),
                                       deviceType: DeviceType(rawValue: UInt8.random(in: 0...255, using: &rng)))
            let ci = Bool.random(using: &rng) ? UInt8.random(in: 0xA0...0xA7, using: &rng) : UInt8.random(in: 0...255, using: &rng)
            let context = CodecContext(address: address, linkAddress: address, controlInformation: ci, accessNumber: nil)
            let start = n > 0 ? Int.random(in: 0...min(3, n), using: &rng) : 0
            switch DiehlPriosCodec.decode(bytes[start...], context) {
            case .bytes(let out):
                #expect(out.count == n - start)
                #expect(out[4] == 0x4B)
            case .notApplicable:
                #expect(!(0xA0...0xA7).contains(ci))
            case .failure:
                break
            }
        }
    }

    // MARK: apator_tags

    /// wmbusmeters apator162.xmq test telegrams (0Fh-led manufacturer data, with event registers 80h–87h among
    /// the registers): total litres, days since first run (FFFFh: not sent) and history length.
    static let apatorVectors: [(hex: String, total: UInt64, days: UInt64, history: UInt8)] = [
        ("2E4401064052030205077A2D0020852F2F0F334DA39A00000071011ABF0D00039A0D00A01053850310CECC0D008943", 904398, 0xFFFF, 2),
        ("6E4401062020202005077A9A0060852F2F0F0A734393CC0000435B0183001A54E06F630291342510030F00007B013E0B00003E0B00003E0B00003E0B00003E0B00003E0B00003E0B0000650000003D0000003D0000003D00000000000000A0910CB003FFFFFFFFFFFFFFFFFFFFA62B", 3843, 347, 12),
        ("704401060404040405077A0E0060852F2F0F766DFB96010000430600808F67DB8F67DB01010000102F1F01007B01000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000A05F5C1804FFFFFFFFFFFFFFFFFFFF26BCD649", 73519, 6, 12),
        ("5E4401061202960405077A790050852F2F0F78A599983B0200435000805771165771160103000010653A00007919321E0000620000006200000000000000000000000000000000000000000000000000000000000000A0422C6004FFFF2FBF", 14949, 80, 10),
        ("3E4401061405410305077A190030852F2F0F86B4B89529020040C6C1B4F0F3F341555942FA701000F00101000010BC780000FFFFFFFFFFFFFFFFFFFFFF2483", 30908, 0xFFFF, 0),
        ("6E4401060336530005077A210060852F2F0F141F539A12000243EE0E84E3BDD9B6593A040500001082C800007C01B2C4000064C10000B3BD00000DB900000EB500009FB0000054AB0000EDA30000A39D0000BF980000E394000038900000488B0000A034CB8C04FFFFFFFFFFFFFA8A", 51330, 3822, 13),
    ]

    @Test("EN 13757-4 CRC of \"123456789\" is C2B7h")
    func apatorCRC() {
        #expect(ApatorTagsCodec.crc(Array("123456789".utf8)) == 0xC2B7)
    }

    @Test("Apator 162 test telegrams: total, days, history, a complete walk")
    func apatorVectorsDecode() throws {
        for v in Self.apatorVectors {
            let w = try telegram(v.hex)
            let data = try #require(w.telegram.manufacturerData)
            guard case .bytes(let out) = ApatorTagsCodec.decode(data[...]) else {
                Issue.record("no registers for \(v.hex)")
                continue
            }
            #expect(out.count == ApatorTagsCodec.outputLength)
            #expect(Array(out[0..<7]) == Array(data[0..<7]))
            #expect(out[7] == 0)
            #expect(le(out, 8, 4) == v.total)
            #expect(le(out, 12, 2) == v.days)
            #expect(out[16] == v.history)
            for slot in Int(v.history)..<13 { #expect(le(out, 18 + 4 * slot, 4) == 0xFFFF_FFFF) }
        }
        // The newest history value of 'Wasser5' and its oldest (13th).
        let w = try telegram(Self.apatorVectors[5].hex)
        guard case .bytes(let out) = ApatorTagsCodec.decode(try #require(w.telegram.manufacturerData)[...]) else { return }
        #expect(le(out, 18, 4) == 50354)
        #expect(le(out, 18 + 4 * 12, 4) == 35656)
    }

    @Test("Apator: a wrong check word is a failure (the hand-edited wmbusmeters copy of 'NewAndOld')")
    func apatorDamaged() throws {
        let w = try telegram("4E4401068686140005077A350040852F2F0F005B599600000010AA66000041545A42850BD800437D037301C5500000564B00009E4600006A410000A01778EC03FFFFFFFFFFFFFFFFFFFFFFFFFFE393")
        let data = try #require(w.telegram.manufacturerData)
        if case .failure = ApatorTagsCodec.decode(data[...]) {} else { Issue.record("a wrong check word accepted") }
        if case .failure = ApatorTagsCodec.decode(data[0..<8]) {} else { Issue.record("8 bytes accepted") }
    }

    /// Builds header + registers + FF padding + check word, as the meter does.
    static func stream(header: [UInt8], registers: [UInt8], padding: Int) -> [UInt8] {
        var d = header + registers + [UInt8](repeating: 0xFF, count: padding)
        let c = ApatorTagsCodec.crc([0x0F] + d)
        d += [UInt8(c >> 8), UInt8(c & 0xFF)]
        return d
    }

    @Test("Apator: generated streams give their total; an unknown tag ends the walk")
    func apatorGenerated() {
        var rng = SeededRandom(seed: 3)
        let known: [UInt8] = [0x00, 0x01, 0x11, 0x40, 0x41, 0x42, 0x44, 0x80, 0x85, 0x8A, 0x8B, 0x8E, 0xA0, 0xA2, 0xA3, 0xB2, 0xC3, 0xF0]
        for _ in 0..<300 {
            let header = (0..<7).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let total = UInt32.random(in: 0..<UInt32.max, using: &rng)
            var regs = [UInt8]()
            for _ in 0..<Int.random(in: 0...4, using: &rng) {
                let tag = known.randomElement(using: &rng)!
                regs.append(tag)
                regs += (0..<ApatorTagsCodec.registerSize(tag)!).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            regs += [0x10, UInt8(total & 0xFF), UInt8(total >> 8 & 0xFF), UInt8(total >> 16 & 0xFF), UInt8(total >> 24)]
            let d = Self.stream(header: header, registers: regs, padding: Int.random(in: 0...12, using: &rng))
            guard case .bytes(let out) = ApatorTagsCodec.decode(d[...]) else {
                Issue.record("generated stream refused: \(Hex.encode(d))")
                continue
            }
            #expect(out[7] == 0)
            #expect(le(out, 8, 4) == UInt64(total))
        }
        let d = Self.stream(header: [0, 0, 0, 0, 0, 0, 0], registers: [0x43, 0x10, 0x00, 0x99, 0x01, 0x10, 1, 2, 3, 4], padding: 2)
        guard case .bytes(let out) = ApatorTagsCodec.decode(d[...]) else { Issue.record("refused"); return }
        #expect(out[7] == 1)
        #expect(out[70] == 0x99)
        #expect(le(out, 12, 2) == 16)
        #expect(le(out, 8, 4) == 0xFFFF_FFFF)
    }

    @Test("Apator: random bytes never trap and always give 72 bytes or a failure")
    func apatorRandom() {
        var rng = SeededRandom(seed: 4)
        for _ in 0..<3000 {
            let n = Int.random(in: 0...120, using: &rng)
            var d = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half of them with a valid check word, so the register walk runs on random registers.
            if n >= 9, Bool.random(using: &rng) {
                d = Self.stream(header: Array(d[0..<7]), registers: Array(d[7..<(n - 2)]), padding: 0)
            }
            let start = n > 0 ? Int.random(in: 0...min(2, n), using: &rng) : 0
            switch ApatorTagsCodec.decode(d[start...]) {
            case .bytes(let out):
                #expect(out.count == ApatorTagsCodec.outputLength)
                #expect(out[7] <= 2)
                #expect(out[16] <= 13)
            case .notApplicable:
                Issue.record("apator_tags never says not applicable")
            case .failure:
                break
            }
        }
    }
}
