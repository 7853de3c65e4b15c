import Testing
@testable import Drivers

/// Issue 17, item 2: a telegram that does not open is told apart as a wrong key, a key filed under another
/// meter (swapped rows), a truncated telegram, no key, or a compact frame waiting for its full frame.
@Suite("key forensics")
struct KeyForensicsTests {
    static let a = IdentificationNumber("41000001")!
    static let b = IdentificationNumber("41000002")!
    static let keyA = WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")!
    static let keyB = WMBusKey(hex: "F0E0D0C0B0A090807060504030201000")!
    static let records: [UInt8] = [0x0C, 0x13, 0x45, 0x23, 0x01, 0x00]  // volume 12.345 m3

    static func telegram(from id: IdentificationNumber, key: WMBusKey) -> [UInt8] {
        let address = WMBusAddress(manufacturer: ManufacturerCode("QDS")!, identification: id, version: 0x37, deviceType: .water)
        return ProfileTelegramEncoder.modeFive(address: address, accessNumber: 0x42, records: records, key: key)!
    }

    static func diagnose(_ bytes: [UInt8], _ ring: WMBusKeyring, tryOthers: Bool = true) -> KeyDiagnosis? {
        var d = WirelessDecoder(keyring: ring)
        do {
            let w = try d.decode(bytes, format: .noCRC)
            return KeyForensics.diagnose(bytes, format: .noCRC, error: nil, telegram: w, keyring: ring, tryOtherKeys: tryOthers)
        } catch {
            return KeyForensics.diagnose(bytes, format: .noCRC, error: error, telegram: nil, keyring: ring, tryOtherKeys: tryOthers)
        }
    }

    @Test("swapped rows: the key filed under the other meter opens it, and the finding names that meter")
    func swapped() {
        let ring = WMBusKeyring(keys: [Self.a: Self.keyB, Self.b: Self.keyA])
        let d = Self.diagnose(Self.telegram(from: Self.a, key: Self.keyA), ring)
        #expect(d?.kind == .keyOfAnotherMeter && d?.meter == Self.a && d?.keyFiledUnder == Self.b)
        #expect(d?.advice.contains("41000002") == true && d?.advice.contains("swapped") == true)
        // Without trying the others (rate limited), it is a plain wrong key.
        #expect(Self.diagnose(Self.telegram(from: Self.a, key: Self.keyA), ring, tryOthers: false)?.kind == .wrongKey)
    }

    @Test("a wrong key no other key fixes; no key; the right key: nothing to say")
    func wrongNoKeyRight() {
        let t = Self.telegram(from: Self.a, key: Self.keyA)
        #expect(Self.diagnose(t, WMBusKeyring(keys: [Self.a: Self.keyB]))?.kind == .wrongKey)
        #expect(Self.diagnose(t, WMBusKeyring())?.kind == .noKey)
        #expect(Self.diagnose(t, WMBusKeyring(keys: [Self.a: Self.keyA, Self.b: Self.keyB])) == nil)
    }

    @Test("a telegram cut inside its encrypted blocks is truncated, not a wrong key")
    func truncated() {
        var t = Self.telegram(from: Self.a, key: Self.keyA)
        t.removeLast(5)
        t[0] = UInt8(t.count - 1)
        let d = Self.diagnose(t, WMBusKeyring(keys: [Self.a: Self.keyA]))
        #expect(d?.kind == .truncated, "\(String(describing: d))")
    }

    @Test("every kind has advice that names the meter")
    func advice() {
        for kind in KeyDiagnosis.Kind.allCases {
            #expect(KeyDiagnosis(kind: kind, meter: Self.a).advice.contains("41000001"))
        }
    }
}
