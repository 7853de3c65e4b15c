import Testing
@testable import Drivers

/// TPL security (modes 5 and 7) on wired M-Bus long frames, opened with the radio meters' keys.
@Suite("wired TPL security")
struct WiredSecurityTests {
    static let key = WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")!
    static let other = WMBusKey(hex: "0F0E0D0C0B0A09080706050403020100")!
    // Volume 12345.678 m3 (BCD), error flags 0, as the plain records of the frames below.
    static let records: [UInt8] = [0x0C, 0x13, 0x78, 0x56, 0x34, 0x12, 0x02, 0xFD, 0x17, 0x00, 0x00]

    static func cbcEncrypt(_ plain: [UInt8], key: WMBusKey, iv: [UInt8]) -> [UInt8] {
        var previous = iv
        var out: [UInt8] = []
        for start in stride(from: 0, to: plain.count, by: 16) {
            let block = zip(plain[start..<(start + 16)], previous).map { $0 ^ $1 }
            previous = WMBusAES.encryptBlock(block, key: key.symmetric)
            out += previous
        }
        return out
    }

    /// A RSP_UD long frame of meter 12345678 (KAM, version 1, water), access number 55h, whose records
    /// are encrypted in `mode` (5: IV from the header; 7: IV 0 with configuration extension `cfe`).
    static func frame(mode: Int, key: WMBusKey, cfe: UInt8 = 0x00, plain: Bool = false) -> [UInt8] {
        var body = [UInt8(0x2F), 0x2F] + records
        while body.count % 16 != 0 { body.append(0x2F) }
        let blocks = UInt8(body.count / 16)
        let header: [UInt8] = [0x78, 0x56, 0x34, 0x12, 0x2D, 0x2C, 0x01, 0x07, 0x55, 0x00, blocks << 4, UInt8(mode)]
        let iv: [UInt8] = mode == 5 ? [0x2D, 0x2C, 0x78, 0x56, 0x34, 0x12, 0x01, 0x07] + [UInt8](repeating: 0x55, count: 8) : [UInt8](repeating: 0, count: 16)
        let sealed = plain ? body : cbcEncrypt(body, key: key, iv: iv)
        let user: [UInt8] = [0x08, 0x01, 0x72] + header + (mode == 7 ? [cfe] : []) + sealed
        let checksum = user.reduce(UInt8(0)) { $0 &+ $1 }
        return [0x68, UInt8(user.count), UInt8(user.count), 0x68] + user + [checksum, 0x16]
    }

    static func ring(_ k: WMBusKey) -> WMBusKeyring {
        WMBusKeyring(keys: [IdentificationNumber("12345678")!: k])
    }

    @Test("mode 5: sealed without a key, opened with the meter's key into the same records as plain")
    func modeFive() throws {
        let bytes = Self.frame(mode: 5, key: Self.key)
        let t = try TelegramDecoder.decode(bytes)
        #expect(t.sealed?.mode == 5 && t.records.isEmpty, "no garbage records from ciphertext")
        let opened = try TelegramDecoder.decode(bytes, keyring: Self.ring(Self.key))
        #expect(opened.sealed == nil && opened.securityMode == 5)
        #expect(opened.records.map(\.value) == [.bcd(12345678), .integer(0)])
        #expect(opened.records.first?.normalizedValue == 12345.678)
        #expect(opened.header.identification == IdentificationNumber("12345678"))
    }

    @Test("a wrong key and a missing key are typed errors that say what to do")
    func wrongAndMissingKey() throws {
        let bytes = Self.frame(mode: 5, key: Self.key)
        do {
            _ = try TelegramDecoder.decode(bytes, keyring: Self.ring(Self.other))
            Issue.record("a wrong key opened the frame")
        } catch {
            #expect(error.code == .wrongKey)
        }
        do {
            _ = try TelegramDecoder.decode(bytes, keyring: WMBusKeyring())
            Issue.record("no key opened the frame")
        } catch {
            #expect(error.code == .noKey)
            #expect(error.message.contains("keys file"))
        }
    }

    @Test("mode 7 with a persistent key opens; with KDF-A it is refused as unsupported on wired frames")
    func modeSeven() throws {
        let opened = try TelegramDecoder.decode(Self.frame(mode: 7, key: Self.key), keyring: Self.ring(Self.key))
        #expect(opened.records.first?.normalizedValue == 12345.678)
        do {
            _ = try TelegramDecoder.decode(Self.frame(mode: 7, key: Self.key, cfe: 0x10), keyring: Self.ring(Self.key))
            Issue.record("KDF-A accepted")
        } catch {
            #expect(error.code == .unsupportedSecurityMode)
        }
    }

    @Test("announced as encrypted but already plain (2F2F) decodes without a key")
    func alreadyPlain() throws {
        let t = try TelegramDecoder.decode(Self.frame(mode: 5, key: Self.key, plain: true))
        #expect(t.sealed == nil && t.securityMode == 5)
        #expect(t.records.first?.normalizedValue == 12345.678)
    }

    @Test("any sealed bytes with any key: a telegram or a typed error, never a trap")
    func totality() throws {
        var rng = SystemRandomNumberGenerator()
        let base = Self.frame(mode: 5, key: Self.key)
        for _ in 0..<2000 {
            var user = Array(base[4..<(base.count - 2)])
            let n = Int.random(in: 0..<user.count, using: &rng)
            for _ in 0..<3 { user[Int.random(in: 3..<user.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            user = Array(user.prefix(max(3, n)))
            let checksum = user.reduce(UInt8(0)) { $0 &+ $1 }
            let bytes = [0x68, UInt8(user.count), UInt8(user.count), 0x68] + user + [checksum, 0x16]
            _ = try? TelegramDecoder.decode(bytes, keyring: Self.ring(Self.key))
        }
    }
}
