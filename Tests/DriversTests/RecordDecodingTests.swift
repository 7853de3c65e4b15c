import Testing
@testable import Drivers

/// Features of EN 13757-3 that the corpus does not cover, each from hand-built bytes.
@Suite("EN 13757-3 records")
struct RecordDecodingTests {
    @Test("a date's text: ISO 8601, zero-padded, whatever the fields hold (the one-buffer writer against plain padding)")
    func dateText() {
        #expect(MBusDateTime(year: 2014, month: 3, day: 13).description == "2014-03-13")
        #expect(MBusDateTime(year: 2021, month: 7, day: 2, hour: 22, minute: 45).description == "2021-07-02T22:45:00")
        var zoned = MBusDateTime(year: 2024, month: 12, day: 31, hour: 23, minute: 59, second: 59)
        zoned.utcOffsetMinutes = -90
        #expect(zoned.description == "2024-12-31T23:59:59-01:30")
        var g = SeededRandom(seed: 13)
        // Values a date keeps: Int32 years, MBusDateTime.fieldRange, offsets of ±32,767 minutes.
        let years = [Int(Int32.min), Int(Int32.max), -1, 0, 9, 10, 99, 100, 99_999]
        let fields = [0, 9, 10, 99, 100, 254]
        let offsets = [-32_767, 32_767, -1, 0, 59, 60, -90]
        for _ in 0..<500 {
            func pick(_ extremes: [Int], _ range: ClosedRange<Int>) -> Int {
                g.next() % 3 == 0 ? extremes[Int(g.next() % UInt64(extremes.count))]
                    : range.lowerBound + Int(g.next() % UInt64(range.upperBound - range.lowerBound + 1))
            }
            func any() -> Int { pick(fields, MBusDateTime.fieldRange) }
            var t = MBusDateTime(year: pick(years, -10_000...10_000), month: any(), day: any(), hour: any(), minute: any(), second: any())
            t.utcOffsetMinutes = g.next() % 2 == 0 ? pick(offsets, -32_767...32_767) : nil
            var expected = pad(t.year, 4) + "-" + pad(t.month, 2) + "-" + pad(t.day, 2)
            expected += "T" + pad(t.hour!, 2) + ":" + pad(t.minute!, 2) + ":" + pad(t.second!, 2)
            if let off = t.utcOffsetMinutes {
                expected += (off < 0 ? "-" : "+") + pad(Int(clamping: off.magnitude / 60), 2) + ":" + pad(Int(clamping: off.magnitude % 60), 2)
            }
            #expect(t.description == expected)
        }
    }

    @Test("a date is kept inline in 12 bytes; what its fields cannot hold is clamped, never wrapped")
    func dateDomain() {
        #expect(MemoryLayout<MBusDateTime>.size <= 12)
        // Inline in the value: no larger than the largest other payload (a String and an Int64).
        #expect(MemoryLayout<RecordValue>.size <= MemoryLayout<String>.size + MemoryLayout<Int64>.size + 1)
        var t = MBusDateTime(year: Int.max, month: 300, day: -4, hour: 255, minute: nil, second: 1_000)
        #expect(t.year == Int(Int32.max))
        #expect(t.month == 254 && t.day == 0)
        #expect(t.hour == 254, "an hour of 255 must not read as absent")
        #expect(t.minute == nil && t.second == 254)
        t.year = Int.min
        t.utcOffsetMinutes = Int.min
        #expect(t.year == Int(Int32.min))
        #expect(t.utcOffsetMinutes == -32_767, "the smallest offset must not read as absent")
        t.utcOffsetMinutes = nil
        #expect(t.utcOffsetMinutes == nil)
        t.isInvalid = true
        #expect(t.isInvalid && !t.isSummerTime)
        t.isSummerTime = true
        t.isInvalid = false
        #expect(!t.isInvalid && t.isSummerTime)
        // Every value the wire types can send survives: type F's largest year and every 5- and 6-bit field.
        for v in 0...63 {
            let d = MBusDateTime(year: 1900 + 100 * 3 + 127, month: v, day: v, hour: v, minute: v, second: v)
            #expect(d.year == 2327 && d.month == v && d.day == v && d.hour == v && d.minute == v && d.second == v)
        }
    }

    @Test("BCD of every size and both byte orders, valid or not, reads as digit by digit (random bytes against a plain reference)")
    func bcdAgainstReference() throws {
        /// EN 13757-3 type A read one digit at a time, most significant first.
        func reference(_ wire: [UInt8], msb: Bool) -> RecordValue {
            let ordered = msb ? wire : Array(wire.reversed())
            var digits: [Int] = ordered.flatMap { [Int($0 >> 4), Int($0 & 0x0F)] }
            let negative = digits[0] == 0xF
            if negative { digits[0] = 0 }
            if digits.allSatisfy({ $0 <= 9 }) {
                let v = digits.reduce(Int64(0)) { $0 * 10 + Int64($1) }
                return .bcd(negative ? -v : v)
            }
            var lenient: Int64 = 0
            for b in ordered { lenient = lenient &* 10 &+ (b >> 4 < 0xA ? Int64(b >> 4) : 0); lenient = lenient &* 10 &+ Int64(b & 0x0F) }
            return .invalidBCD(digits: Hex.encode(ordered), lenient: negative ? -lenient : lenient)
        }
        var g = SeededRandom(seed: 71)
        func byte() -> UInt8 {
            // Mostly valid digits, sometimes a sign or a digit above 9.
            switch g.next() % 10 {
            case 0: return UInt8(truncatingIfNeeded: g.next())
            case 1: return 0xF0 | UInt8(g.next() % 10)
            default: return UInt8(g.next() % 10) << 4 | UInt8(g.next() % 10)
            }
        }
        let fixed: [(dif: UInt8, size: Int)] = [(0x09, 1), (0x0A, 2), (0x0B, 3), (0x0C, 4), (0x0E, 6)]
        var checked = 0
        for _ in 0..<4_000 {
            let msb = g.next() % 2 == 0
            if g.next() % 2 == 0 {
                let (dif, size) = fixed[Int(g.next() % UInt64(fixed.count))]
                let wire = (0..<size).map { _ in byte() }
                let r = try RecordParser(mostSignificantByteFirst: msb).parse([dif, 0x13] + wire)
                #expect(r.records.first?.value == reference(wire, msb: msb), "DIF \(dif) \(Hex.encode(wire)) msb \(msb)")
            } else {
                let size = 1 + Int(g.next() % 9)  // LVAR C1h–C9h: 1 to 9 bytes
                let wire = (0..<size).map { _ in byte() }
                let r = try RecordParser(mostSignificantByteFirst: msb).parse([0x0D, 0x13, 0xC0 + UInt8(size)] + wire)
                #expect(r.records.first?.value == reference(wire, msb: msb), "LVAR \(size) \(Hex.encode(wire)) msb \(msb)")
            }
            checked += 1
        }
        #expect(checked == 4_000)
    }

    func record(_ hex: String, msb: Bool = false) throws -> DataRecord {
        let result = try RecordParser(mostSignificantByteFirst: msb).parse(try Hex.decode(hex))
        return try #require(result.records.first)
    }

    @Test("negative BCD: top nibble F")
    func negativeBCD() throws {
        let r = try record("0A 5A 34 F2")  // BCD4, flow temperature 0.1 °C, -234
        #expect(r.value == .bcd(-234))
        #expect(r.normalizedValue == -23.4)
        #expect(r.unit == "C")
    }

    @Test("DIFE chain: storage, tariff and subunit bits")
    func difeChain() throws {
        // DIF C4 (storage bit 1, 32-bit), DIFE 8F (storage +15<<1), DIFE 71 (subunit 1, tariff 3, storage 1<<5)
        let r = try record("C4 8F 71 13 01 00 00 00")
        #expect(r.storageNumber == 1 | 15 << 1 | 1 << 5)
        #expect(r.tariff == 3 << 2)
        #expect(r.subunit == 1 << 1)
        #expect(r.function == .instantaneous)
    }

    @Test("FB and FD extension tables")
    func extensionTables() throws {
        let mwh = try record("04 FB 01 05 00 00 00")  // 10^0 MWh
        #expect(mwh.quantity == "Energy")
        #expect(mwh.normalizedValue == 5_000_000)
        #expect(mwh.rawUnit == "MWh")
        let humidity = try record("02 FB 1A 2B 02")  // 0.1 %RH
        #expect(humidity.quantity == "Relative humidity")
        #expect(humidity.normalizedValue == 55.5)
        let volts = try record("02 FD 48 E6 00")  // 10^-1 V
        #expect(volts.quantity == "Voltage")
        #expect(volts.normalizedValue == 23)
        let amps = try record("02 FD 59 10 27")  // 10^-3 A
        #expect(amps.normalizedValue == 10)
        let fahrenheit = try record("02 FB 5A D4 03")  // flow temperature 0.1 °F: 98.0 °F
        #expect(abs(fahrenheit.normalizedValue! - 36.666666666666664) < 1e-9)
        #expect(fahrenheit.unit == "C")
        let battery = try record("02 FD 74 6D 01")  // remaining battery life 365 days
        #expect(battery.normalizedValue == Double(365 * 86400), "\(battery)")
    }

    @Test("combinable VIFEs: corrections, annotations, record errors, FC phases")
    func combinable() throws {
        let perHour = try record("02 96 22 10 00")  // volume 1e-1 m^3, per hour
        #expect(perHour.annotations == ["per hour"])
        let corrected = try record("02 93 73 10 00")  // volume l, ×10^-3
        #expect(corrected.normalizedValue == 0.000016)
        let errored = try record("02 93 15 00 00")
        #expect(errored.recordError == 0x15)
        #expect(!errored.isValid)
        let phase = try record("02 FD C8 FC 01 E6 00")  // voltage at phase L1
        #expect(phase.annotations == ["at phase L1"])
        let mfr = try record("02 FF 81 05 01 02")  // manufacturer VIF with two manufacturer VIFEs
        #expect(mfr.vif == .manufacturerSpecific)
        #expect(mfr.vifeCodes == [0x01, 0x05])
    }

    @Test("plain-text VIF, text after the VIF and before the VIFEs")
    func plainText() throws {
        let r = try record("02 FC 03 48 52 25 74 D4 11")
        #expect(r.vif == .plainText("%RH"))
        #expect(r.normalizedValue == 45.64)
        #expect(r.unit == "%RH")
    }

    @Test("variable length: text, BCD, negative BCD, binary")
    func lvar() throws {
        #expect(try record("0D FD 11 05 6F 6C 6C 65 48").value == .text("Hello"))
        #expect(try record("0D 13 C2 34 12").value == .bcd(1234))
        #expect(try record("0D 13 D2 34 12").value == .bcd(-1234))
        #expect(try record("0D 13 E2 34 12").value == .integer(0x1234))
        let sixteen = try record("0D FD 3B F0 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F")
        #expect(sixteen.value == .bytes(Array(0...15)))
        #expect(throws: DecodeError.self) { try record("0D 13 F7 00") }
    }

    @Test("dates and times: types G, F, I, J, K, L, M")
    func dates() throws {
        // G: 2014-03-13
        #expect(try record("02 6C CD 13").value == .dateTime(MBusDateTime(year: 2014, month: 3, day: 13)))
        // F: 2014-03-13 11:11, summer time flag
        let f = try record("04 6D 0B 8B CD 13")
        guard case .dateTime(let ft) = f.value else { Issue.record("not a date"); return }
        #expect(ft.description == "2014-03-13T11:11:00")
        #expect(ft.isSummerTime)
        // I: 2021-06-30 23:59:58
        let i = try record("06 6D 3A 3B 17 BE 26 00")
        guard case .dateTime(let it) = i.value else { Issue.record("not a date"); return }
        #expect(it.description == "2021-06-30T23:59:58")
        // J: time of day 12:34:56
        #expect(try record("03 6D 38 22 0C").value == .timeText("12:34:56"))
        // K: daylight saving rule (FD 72)
        if case .timeText(let k) = try record("04 FD 72 02 1F 03 41").value {
            #expect(k.hasPrefix("begin --03-31T02:00"))
        } else { Issue.record("type K not decoded") }
        // L: listening window (FD 73)
        if case .timeText(let l) = try record("0D FD 73 07 00 00 06 3C 00 10 0E").value {
            #expect(l.contains("duration 60 s"))
        } else { Issue.record("type L not decoded") }
        // M: type I plus a UTC offset of +1 h (4 quarter hours)
        let m = try record("0D 6D E7 3A 3B 17 BE 26 00 04")
        guard case .dateTime(let mt) = m.value else { Issue.record("not a date"); return }
        #expect(mt.description == "2021-06-30T23:59:58+01:00")
    }

    @Test("mode 2 (CI 76): multi-byte values most significant byte first")
    func msbFirst() throws {
        let r = try record("04 13 00 00 30 39", msb: true)
        #expect(r.value == .integer(12345))
        let header = try Hex.decode("12 34 56 78 2C 2D 01 07 05 00 00 00")
        let t = try TelegramDecoder.decodeApplicationLayer(ci: 0x76, data: header + (try Hex.decode("04 13 00 00 30 39")))
        #expect(t.header.identification?.digits == "12345678")
        #expect(t.header.manufacturer?.letters == "KAM")
        #expect(t.records.first?.normalizedValue == 12.345)
    }

    @Test("short header (7A) and no header (78)")
    func shortHeaders() throws {
        let t = try TelegramDecoder.decodeApplicationLayer(ci: 0x7A, data: try Hex.decode("2A 04 00 00 04 13 39 30 00 00"))
        #expect(t.header.accessNumber == 42)
        #expect(t.header.status?.powerLow == true)
        #expect(t.header.identification == nil)
        #expect(t.records.count == 1)
        let n = try TelegramDecoder.decodeApplicationLayer(ci: 0x78, data: try Hex.decode("04 13 39 30 00 00 2F 2F"))
        #expect(n.records.first?.normalizedValue == 12.345)
    }

    @Test("fixed data structure (CI 73): units, medium, BCD and binary counters")
    func fixedData() throws {
        // status 0x80: binary counters; units kWh (05) and m^3 (2C); medium heat (04)
        let t = try TelegramDecoder.decodeApplicationLayer(ci: 0x73, data: try Hex.decode("78 56 34 12 0A 80 05 6C 39 30 00 00 10 00 00 00"))
        #expect(t.header.deviceType == .heatOutlet)
        #expect(t.records[0].normalizedValue == 12_345_000)
        #expect(t.records[0].unit == "Wh")
        #expect(t.records[1].normalizedValue == 16)
        #expect(t.records[1].unit == "m^3")
        #expect(throws: DecodeError.self) {
            try TelegramDecoder.decodeApplicationLayer(ci: 0x73, data: [0x00])
        }
    }

    @Test("identity values")
    func identity() throws {
        #expect(ManufacturerCode("KAM")?.rawValue == 0x2C2D)
        #expect(ManufacturerCode(rawValue: 0x2C2D).letters == "KAM")
        #expect(ManufacturerCode(rawValue: 0).letters == "@@@")
        #expect(!ManufacturerCode(rawValue: 0).isValidFlagCode)
        #expect(ManufacturerCode("K4M") == nil)
        #expect(IdentificationNumber("06855817")?.rawValue == 0x0685_5817)
        #expect(IdentificationNumber(rawValue: 0x0500_023E).digits == "0500023E")
        #expect(!IdentificationNumber(rawValue: 0x0500_023E).isValidBCD)
        #expect(DeviceType(rawValue: 0x16).name == "Cold water")
        #expect(MeterStatus(rawValue: 0x14).flags == ["power low", "temporary error"])
    }

    @Test("application error report without a code")
    func applicationErrorWithoutCode() throws {
        let t = try TelegramDecoder.decode(try Hex.decode("68 03 03 68 08 01 70 79 16"))
        #expect(t.applicationError?.code == nil)
        #expect(t.applicationError?.message == "Unspecified error")
    }

    @Test("errors name the byte in the frame")
    func errorOffsets() throws {
        // The record's data is cut: byte 19 of the frame is where the data should start.
        let frame = RecordEncoderTests.frame(userData: try Hex.decode("78 56 34 12 2D 2C 01 04 00 00 00 00 0C 13 01 02"))
        do {
            _ = try TelegramDecoder.decode(frame)
            Issue.record("should fail")
        } catch {
            #expect(error.code == .prematureEndAtData)
            #expect(error.offset == 7 + 12 + 2)
        }
    }
}

enum RecordEncoderTests {
    static func frame(userData: [UInt8]) -> [UInt8] {
        FrameCodec.encode(.long(LongFrame(control: .rspUD, address: 1, controlInformation: 0x72, userData: userData)))
    }
}
