import Testing
@testable import Drivers

/// `VIFECodes` holds a record's VIFEs inline and derives the modifiers from them on each walk. These
/// tests hold it to what an array of codes and the parser's former walk (written out here) give.
@Suite("VIFE codes held inline")
struct VIFECodesTests {
    /// The parser's walk as it was when it kept `[VIFEModifier]` per record.
    static func referenceModifiers(_ codes: [UInt8], manufacturerVIF: Bool) -> [VIFEModifier] {
        var out: [VIFEModifier] = []
        var stopped = manufacturerVIF
        var escape = false
        for code in codes {
            if stopped { continue }
            if escape {
                out.append(VIFTable.combinableFC(code))
                escape = false
                continue
            }
            if code == 0x7C {
                escape = true
                continue
            }
            let m = VIFTable.combinable(code)
            if case .manufacturerSpecific = m { stopped = true }
            out.append(m)
        }
        return out
    }

    @Test("any 0 to 10 codes: the same bytes, count and order as an array, and the same modifiers as the old walk")
    func sameAsArray() {
        var g = SeededRandom(seed: 1013)
        // Codes the walk treats specially appear often: escapes, manufacturer-specific, compact profile.
        let special: [UInt8] = [0x7C, 0x7F, 0x13, 0x1E, 0x1F, 0x15, 0x70, 0x7D]
        for _ in 0..<5_000 {
            let n = Int(g.next() % 11)
            let codes: [UInt8] = (0..<n).map { _ in
                g.next() % 3 == 0 ? special[Int(g.next() % UInt64(special.count))] : UInt8(g.next() % 0x80)
            }
            let inline = VIFECodes(codes)
            #expect(Array(inline) == codes)
            #expect(inline.count == codes.count)
            #expect(inline.isEmpty == codes.isEmpty)
            #expect(inline.first == codes.first)
            #expect(inline == VIFECodes(codes))
            for manufacturer in [false, true] {
                let walked = Array(inline.modifiers(manufacturerVIF: manufacturer))
                let expected = Self.referenceModifiers(codes, manufacturerVIF: manufacturer)
                #expect(walked == expected, "codes \(codes), manufacturer VIF \(manufacturer)")
                #expect(inline.modifiers(manufacturerVIF: manufacturer).isEmpty == expected.isEmpty)
            }
        }
    }

    @Test("an eleventh code is refused, not wrapped into the first")
    func capacity() {
        var codes = VIFECodes((1...10).map { UInt8($0) })
        #expect(codes.append(0x55) == false)
        #expect(Array(codes) == (1...10).map { UInt8($0) })
        #expect(VIFECodes((0..<20).map { UInt8($0) }).count == 10)
    }

    @Test("a compact profile's elements lose the profile code, and only that code (not an escaped 13h, not after 7Fh)")
    func removingProfileCodes() {
        #expect(Array(VIFECodes([0x1F]).removingCompactProfileCodes(manufacturerVIF: false)) == [])
        #expect(Array(VIFECodes([0x22, 0x13, 0x70]).removingCompactProfileCodes(manufacturerVIF: false)) == [0x22, 0x70])
        // 7Ch 13h: the FCh table's 13h is not the inverse compact profile.
        #expect(Array(VIFECodes([0x7C, 0x13, 0x1E]).removingCompactProfileCodes(manufacturerVIF: false)) == [0x7C, 0x13])
        // After 7Fh the codes are the manufacturer's.
        #expect(Array(VIFECodes([0x7F, 0x1F]).removingCompactProfileCodes(manufacturerVIF: false)) == [0x7F, 0x1F])
        #expect(Array(VIFECodes([0x1F]).removingCompactProfileCodes(manufacturerVIF: true)) == [0x1F])
    }

    @Test("parsed records: the modifiers of a record with an FCh escape, a correction and a record error")
    func parsedRecord() throws {
        // DIF 04 (int32), VIF 83h (energy, Wh), VIFE FCh (escape to Table 16), 81h (at phase L1),
        // 75h (E111 0101: multiplicative correction 10^(5-6)), value 1.
        let r = try #require(try RecordParser().parse(Hex.decode("04 83 FC 81 75 01 00 00 00")).records.first)
        #expect(Array(r.vifeCodes) == [0x7C, 0x01, 0x75])
        #expect(Array(r.modifiers) == [.annotation("at phase L1"), .multiplicativeCorrection(exponent: -1)])
        #expect(r.normalizedValue == 0.1)
        let e = try #require(try RecordParser().parse(Hex.decode("02 FD 97 18 00 00")).records.first)
        #expect(e.recordError == 0x18)
    }
}
