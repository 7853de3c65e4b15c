import Foundation
import Testing
@testable import Drivers

@Suite("wireless JSON and analysis")
struct ReportTests {
    @Test("JSON carries the documented wireless keys")
    func json() throws {
        var d = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")))
        let w = try d.decode(try Hex.decode(VectorTests.f3))
        let line = WirelessReport.json(w)
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["id"] as? String == "12345678")
        #expect(object["manufacturer"] as? String == "ELS")
        let link = try #require(object["link"] as? [String: Any])
        #expect(link["manufacturer"] as? String == "RAD")
        #expect(link["format"] as? String == "no_crc")
        let security = try #require(object["security"] as? [String: Any])
        #expect(security["mode"] as? Int == 7)
        #expect(security["state"] as? String == "decrypted")
        #expect(security["mac"] as? String == "verified")
        #expect((object["afl"] as? [String: Any])?["message_counter"] as? Int == 0x0AB3)
        #expect((object["records"] as? [[String: Any]])?.isEmpty == false)
        let analysis = WirelessReport.analysis(w)
        #expect(analysis.contains("KDF-A"))
        #expect(analysis.contains("AFL"))
    }
}
