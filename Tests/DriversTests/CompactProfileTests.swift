import Testing
@testable import Drivers

/// EN 13757-3 Annex F compact profiles expanded into records with storage numbers and dates.
@Suite("compact profiles")
struct CompactProfileTests {
    static func records(_ hex: String) throws -> [DataRecord] {
        try RecordParser().parse(try Hex.decode(hex)).records
    }

    static func values(_ rs: [DataRecord], quantity: String) -> [UInt64: String] {
        var out: [UInt64: String] = [:]
        for r in rs where r.quantity == quantity && CompactProfile.kind(r) == nil {
            switch r.value {
            case .integer(let v), .bcd(let v): out[r.storageNumber] = String(v)
            case .dateTime(let t): out[r.storageNumber] = t.description
            default: break
            }
        }
        return out
    }

    @Test("a monthly compact profile of a Techem FHKV data IV: elements from the end, one month apart, month ends kept")
    func monthlyCompact() throws {
        // The decrypted records of the wmbusmeters fhkvdataiv test telegram (GPL-3.0-or-later; test vector only):
        // HCA now, set day 1 value and date, base value and base date at storage 8, then 8D 04 EE 1F: an HCA
        // compact profile at storage 8, spacing 72h (increments, months, 16-bit elements) FEh (one month).
        let rs = try Self.records("036E0200 00 436E1900 00 426C9F2C 83046E000000 82046C7F2A 8D04EE1F1E72FE" +
                                  String(repeating: "0000", count: 12) + "03001600")
        let hca = Self.values(rs, quantity: "H.C.A.")
        let dates = Self.values(rs, quantity: "Time point (date)")
        #expect(hca[9] == "22" && dates[9] == "2019-11-30")
        #expect(hca[10] == "3" && dates[10] == "2019-12-31")
        #expect(dates[12] == "2020-02-29", "a month end stays a month end, leap years included")
        #expect(hca[22] == "0" && dates[22] == "2020-12-31")
        #expect(hca[23] == nil, "14 elements, storage 9–22")
        #expect(hca[8] == "0" && dates[8] == "2019-10-31", "the base records stay")
    }

    @Test("an inverse profile of increments becomes absolute values, youngest first, stepping back in time")
    func inverseIncrements() throws {
        // Volume 13h at storage 1 = 1000 l with date 2021-03-31; inverse compact profile (VIFE 13h) of 8-bit
        // increments (control 71h: increments, days/months, 1-byte elements; FEh: one month): 10, 20, FF (end).
        let rs = try Self.records("4413E8030000 426CBF23 4D9313" + "05" + "71FE0A14FF")
        let vol = Self.values(rs, quantity: "Volume")
        let dates = Self.values(rs, quantity: "Time point (date)")
        #expect(vol[2] == "990" && dates[2] == "2021-02-28")
        #expect(vol[3] == "970" && dates[3] == "2021-01-31")
        #expect(vol[4] == nil, "all bits set ends an incremental profile")
    }

    @Test("absolute values in a compact profile with register numbers: from the start, hourly, FF skipped")
    func registersHourly() throws {
        // Storage 2: date and time 2021-06-01 10:00 (type F), power 2Bh; profile 1Eh with absolute 16-bit
        // values (control 22h: absolute, hours, 16-bit), spacing 1 hour: 100, FFFF (no value), 300.
        let rs = try Self.records("84016D000AA126 84012B00000000 8D01AB1E08" + "2201" + "6400FFFF2C01")
        let power = rs.filter { $0.quantity == "Power" && CompactProfile.kind($0) == nil && $0.storageNumber > 2 }
        #expect(power.map(\.storageNumber) == [3, 4])
        #expect(power.map(\.value) == [.integer(100), .integer(300)])
        let times = rs.filter { $0.storageNumber == 3 || $0.storageNumber == 4 }.compactMap { r -> String? in
            if case .dateTime(let t) = r.value { return t.description } else { return nil }
        }
        #expect(times == ["2021-06-01T11:00:00", "2021-06-01T12:00:00"])
    }

    @Test("reserved spacing or element types expand nothing; half months step to the 1st and 16th")
    func reservedAndHalfMonth() throws {
        // Spacing value FBh is reserved.
        var rs = try Self.records("4413E8030000 4D931303" + "71FB0A")
        #expect(rs.count == 2)
        // Element data field Dh (variable length) cannot be packed.
        rs = try Self.records("4413E8030000 4D931303" + "7DFE0A")
        #expect(rs.count == 2)
        let d = MBusDateTime(year: 2021, month: 1, day: 31)
        #expect(CompactProfile.step(d, .halfMonth, backwards: false) == MBusDateTime(year: 2021, month: 2, day: 1))
        #expect(CompactProfile.step(MBusDateTime(year: 2021, month: 2, day: 3), .halfMonth, backwards: false) == MBusDateTime(year: 2021, month: 2, day: 16))
        #expect(CompactProfile.step(MBusDateTime(year: 2021, month: 2, day: 3), .halfMonth, backwards: true) == MBusDateTime(year: 2021, month: 1, day: 16))
        #expect(CompactProfile.step(MBusDateTime(year: 2020, month: 12, day: 31, hour: 23, minute: 30), .seconds(3600), backwards: false)
                == MBusDateTime(year: 2021, month: 1, day: 1, hour: 0, minute: 30))
    }

    @Test("any bytes in a compact profile record: records or nothing, never a trap")
    func totality() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let n = Int.random(in: 0..<40, using: &rng)
            let payload = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let vif = [UInt8(0x93), 0xEE, 0xAB, 0x86][Int.random(in: 0..<4, using: &rng)]
            let profile = [UInt8(0x13), 0x1E, 0x1F][Int.random(in: 0..<3, using: &rng)]
            let base: [UInt8] = [0x44, vif & 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0x42, 0x6C, UInt8.random(in: 0...255, using: &rng), UInt8.random(in: 0...255, using: &rng)]
            let bytes = base + [0x4D, vif, profile, UInt8(n)] + payload
            _ = try? RecordParser().parse(bytes)
        }
    }
}
