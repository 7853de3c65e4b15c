import Testing
@testable import Drivers

@Suite("bmeters_rfm_tx1 codec")
struct RFMTX1CodecTests {
    static let address = WMBusAddress(manufacturer: ManufacturerCode("BMT")!, identification: IdentificationNumber("74737271")!, version: 5, deviceType: .water)

    @Test("the scrambled volume and the BCD clock of the RFM-TX1 test telegram")
    func vector() throws {
        // Payload after the CI 7Ah header of the wmbusmeters rfmtx1.xmq test telegram (test vector only), access number A5h.
        let payload = try Hex.decode("1115F78184AB0F1D1E200000005904103103208047004A48")
        let ctx = CodecContext(address: Self.address, linkAddress: Self.address, controlInformation: 0x7A, accessNumber: 0xA5)
        #expect(BMetersRFMTX1Codec.codec(payload[...], ctx) == .bytes([0x60, 0x85, 0x18, 0x00, 59, 4, 10, 31, 3, 20]))
        // Another access number selects another table row: the same bytes no longer give 188.56 m3.
        var other = ctx
        other.accessNumber = 0xA6
        #expect(BMetersRFMTX1Codec.codec(payload[...], other) != .bytes([0x60, 0x85, 0x18, 0x00, 59, 4, 10, 31, 3, 20]))
        other.accessNumber = nil
        #expect(BMetersRFMTX1Codec.codec(payload[...], other) == .notApplicable)
    }

    @Test("any bytes: bytes or not applicable, never a trap")
    func totality() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            let n = Int.random(in: 0..<40, using: &rng)
            let b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let ctx = CodecContext(address: Self.address, linkAddress: Self.address, controlInformation: 0x7A, accessNumber: UInt8.random(in: 0...255, using: &rng))
            switch BMetersRFMTX1Codec.codec(b[...], ctx) {
            case .bytes(let out): #expect(out.count == 10)
            case .notApplicable: #expect(n < 19)
            case .failure: Issue.record("no failure case")
            }
        }
    }
}
