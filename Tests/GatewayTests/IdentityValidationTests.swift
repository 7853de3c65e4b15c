import Testing
import Drivers
@testable import Gateway

@Suite("identity validation")
struct IdentityValidationTests {
    func header(id: UInt32?, manufacturer: UInt16?) -> TelegramHeader {
        var h = TelegramHeader()
        h.identification = id.map(IdentificationNumber.init(rawValue:))
        h.manufacturer = manufacturer.map(ManufacturerCode.init(rawValue:))
        return h
    }

    @Test func wellFormed() {
        #expect(IdentityValidation.problems(in: header(id: 0x0685_5817, manufacturer: 0x2C2D)).isEmpty)
    }

    @Test func brokenSerialAndManufacturer() {
        // electricity-meter-2 in the corpus: id 050002E5, manufacturer @@@ (0000h)
        let p = IdentityValidation.problems(in: header(id: 0x0500_02E5, manufacturer: 0))
        #expect(p == [.identificationNotBCD("050002E5"), .invalidManufacturerCode("@@@")])
        #expect(p[0].description.contains("not 8 decimal digits"))
    }

    @Test func missing() {
        #expect(IdentityValidation.problems(in: header(id: nil, manufacturer: nil)) == [.missingIdentification])
    }

    @Test func sqliteIsThere() {
        #expect(SQLiteLibrary.version.hasPrefix("3."))
        #expect(SQLiteLibrary.isThreadSafe)
    }
}
