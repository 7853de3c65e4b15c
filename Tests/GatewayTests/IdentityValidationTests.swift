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

    @Test("bit 15 of the manufacturer field (Apator radio modules send APA as 8601h) is not a broken code")
    func manufacturerBit15() throws {
        #expect(IdentityValidation.problems(in: header(id: 0x4000_0000, manufacturer: 0x8601)).isEmpty)
        // ...but the letters under it must still be a code.
        #expect(IdentityValidation.problems(in: header(id: 0x4000_0000, manufacturer: 0x8000)) == [.invalidManufacturerCode("@@@")])
        // And the registry files such a telegram under the meter registered as APA.
        let registry = try DeviceRegistry(RegistryDocument(gateway: "gw", building: "1", devices: [
            RegisteredDevice(key: "wmbus:APA:40000000", bus: .wirelessMBus, identification: "40000000", manufacturer: "APA")]))
        guard case .success(let d) = registry.identify(header(id: 0x4000_0000, manufacturer: 0x8601), bus: .wirelessMBus) else {
            Issue.record("an APA allocator with bit 15 set was not identified")
            return
        }
        #expect(d.key == "wmbus:APA:40000000")
    }

    @Test func missing() {
        #expect(IdentityValidation.problems(in: header(id: nil, manufacturer: nil)) == [.missingIdentification])
    }

    @Test func sqliteIsThere() {
        #expect(SQLiteLibrary.version.hasPrefix("3."))
        #expect(SQLiteLibrary.isThreadSafe)
    }
}
