import PropertyBased
import Testing
@testable import Drivers


enum RecordGen {
    /// Primary VIFs whose values are plain numbers (no dates, no escapes).
    static let numericPrimaryVIFs: [UInt8] = Array(0x00...0x6B) + [0x6E, 0x6F] + Array(0x70...0x7A)
    static let numericFields: [DataField] = [.int8, .int16, .int24, .int32, .int48, .int64, .real32,
                                             .bcd2, .bcd4, .bcd6, .bcd8, .bcd12]
    /// Combinable VIFEs that are pure annotations or corrections (no FCh escape, no manufacturer switch).
    static let combinable: [UInt8] = Array(0x12...0x3F) + Array(0x40...0x7B) + [0x7D, 0x7E]

    static func spec(_ seed: UInt64) -> RecordEncoder.Spec {
        var r = SeededRandom(seed: seed)
        let field = numericFields[r.below(numericFields.count)]
        let vif: VIFCode
        switch r.below(10) {
        case 0: vif = .extensionFD(UInt8(r.below(0x80)))
        case 1: vif = .extensionFB(UInt8(r.below(0x80)))
        case 2: vif = .plainText(String(decoding: (0..<r.below(6)).map { _ in UInt8(0x41 + r.below(26)) }, as: UTF8.self))
        default: vif = .primary(numericPrimaryVIFs[r.below(numericPrimaryVIFs.count)])
        }
        // FD 70h/72h and FB escapes that mean dates are avoided: they change the value type on purpose.
        let safeVIF: VIFCode
        switch vif {
        case .extensionFD(let c) where [0x30, 0x70, 0x72, 0x73].contains(c): safeVIF = .extensionFD(0x3A)
        default: safeVIF = vif
        }
        let vifeCount = r.below(4)
        let vifes = (0..<vifeCount).map { _ in combinable[r.below(combinable.count)] }
        let value: RecordValue
        switch field {
        case .real32:
            value = .real(Double(Float(bitPattern: UInt32(truncatingIfNeeded: r.next()) & 0x7F7F_FFFF)))
        case .bcd2, .bcd4, .bcd6, .bcd8, .bcd12:
            let digits = 2 * field.size!
            var limit: Int64 = 1
            for _ in 0..<digits { limit *= 10 }
            if r.bool() {
                value = .bcd(Int64(r.next() % UInt64(limit)))
            } else {
                value = .bcd(-Int64(r.next() % UInt64(limit / 10 - 1) + 1))
            }
        default:
            let bits = 8 * field.size!
            let raw = r.next()
            value = .integer(bits == 64 ? Int64(bitPattern: raw) : Int64(bitPattern: raw << UInt64(64 - bits)) >> Int64(64 - bits))
        }
        return RecordEncoder.Spec(
            function: RecordFunction(rawValue: UInt8(r.below(4)))!,
            storageNumber: r.bool() ? UInt64(r.below(2)) : r.next() & ((1 << 41) - 1) >> UInt64(r.below(41)),
            tariff: r.bool() ? 0 : UInt32(r.next() & 0xFFFFF) >> UInt32(r.below(20)),
            subunit: r.bool() ? 0 : UInt16(r.next() & 0x3FF) >> UInt16(r.below(10)),
            dataField: field, vif: safeVIF, vifeCodes: vifes, value: value)
    }
}

@Suite("property tests")
struct PropertyTests {
    @Test("encode then decode gives the original record")
    func recordRoundTrip() async {
        await propertyCheck(count: 2000, input: Gen.uint64()) { seed in
            let spec = RecordGen.spec(seed)
            for msb in [false, true] {
                let bytes = try RecordEncoder.encode(spec, mostSignificantByteFirst: msb)
                let parsed = try RecordParser(mostSignificantByteFirst: msb).parse(bytes)
                try #require(parsed.records.count == 1, "seed \(seed): \(Hex.encode(bytes, separator: " "))")
                let r = parsed.records[0]
                #expect(r.function == spec.function)
                #expect(r.storageNumber == spec.storageNumber)
                #expect(r.tariff == spec.tariff)
                #expect(r.subunit == spec.subunit)
                #expect(r.dataField == spec.dataField)
                #expect(r.vif == spec.vif)
                #expect(Array(r.vifeCodes) == spec.vifeCodes)
                #expect(r.value == spec.value, "seed \(seed): \(Hex.encode(bytes, separator: " "))")
            }
        }
    }

    @Test("a telegram of generated records survives a full frame round trip")
    func telegramRoundTrip() async {
        await propertyCheck(count: 300, input: Gen.uint64().array(of: 0...12), Gen.uint32()) { seeds, id in
            let specs = seeds.map(RecordGen.spec)
            var header = TelegramHeader()
            header.identification = IdentificationNumber(rawValue: id)
            header.manufacturer = ManufacturerCode("GWD")
            header.version = 1
            header.deviceType = .heatOutlet
            header.accessNumber = UInt8(truncatingIfNeeded: id)
            header.status = MeterStatus(rawValue: 0)
            header.signature = 0
            guard let frame = try? RecordEncoder.responseFrame(address: 5, header: header, records: specs) else {
                return  // more than 252 bytes of user data: not a frame
            }
            let t = try TelegramDecoder.decode(frame)
            #expect(t.header.identification == header.identification)
            #expect(t.header.manufacturer?.letters == "GWD")
            #expect(t.records.map(\.value) == specs.map(\.value))
            #expect(t.records.map(\.storageNumber) == specs.map(\.storageNumber))
        }
    }

    @Test("dates round trip through types G, F and I")
    func dateRoundTrip() async {
        await propertyCheck(count: 500, input: Gen.int(in: 1981...2080), Gen.int(in: 1...12), Gen.int(in: 1...28),
                            Gen.int(in: 0...23), Gen.int(in: 0...59)) { year, month, day, hour, minute in
            let date = MBusDateTime(year: year, month: month, day: day)
            let g = try RecordEncoder.encode(.init(dataField: .int16, vif: .primary(0x6C), value: .dateTime(date)))
            #expect(try RecordParser().parse(g).records.first?.value == .dateTime(date))
            let f = MBusDateTime(year: year, month: month, day: day, hour: hour, minute: minute, second: 0)
            let fb = try RecordEncoder.encode(.init(dataField: .int32, vif: .primary(0x6D), value: .dateTime(f)))
            #expect(try RecordParser().parse(fb).records.first?.value == .dateTime(f))
            let i = MBusDateTime(year: year, month: month, day: day, hour: hour, minute: minute, second: (minute * 7) % 60)
            let ib = try RecordEncoder.encode(.init(dataField: .int48, vif: .primary(0x6D), value: .dateTime(i)))
            #expect(try RecordParser().parse(ib).records.first?.value == .dateTime(i))
        }
    }

    @Test("the decoder never traps on random bytes")
    func randomBytesNeverTrap() async {
        await propertyCheck(count: 3000, input: Gen.uint8().array(of: 0...300)) { bytes in
            _ = try? TelegramDecoder.decode(bytes)
            _ = try? FrameCodec.decode(bytes)
            if let ci = bytes.first {
                _ = try? TelegramDecoder.decodeApplicationLayer(ci: ci, data: Array(bytes.dropFirst()))
            }
            _ = try? RecordParser().parse(bytes)
            _ = try? RecordParser(mostSignificantByteFirst: true).parse(bytes)
        }
    }

    @Test("random bytes inside a valid long frame give records or a typed error, never a trap")
    func randomApplicationData() async {
        await propertyCheck(count: 3000, input: Gen.uint8().array(of: 0...240), Gen.int(in: 0...5)) { data, which in
            let ci: UInt8 = [0x72, 0x76, 0x7A, 0x78, 0x73, 0x70][which]
            let frame = FrameCodec.encode(.long(LongFrame(control: .rspUD, address: 1, controlInformation: ci, userData: data)))
            do {
                let t = try TelegramDecoder.decode(frame)
                for r in t.records {
                    _ = r.normalizedValue
                    _ = r.rawUnit
                    _ = r.problem
                }
                _ = TelegramJSONWriter().line(TelegramReport(t))
            } catch let error as DecodeError {
                #expect(error.offset >= 0 && error.offset <= frame.count, "\(error)")
            }
        }
    }
}
