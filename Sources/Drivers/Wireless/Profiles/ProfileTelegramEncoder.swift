#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import _CryptoExtras

/// Builds telegrams for simulators, tests and the benchmark: a meter's telegram for another id, and
/// security mode 5 encryption (OMS Vol. 2: AES-128-CBC, IV = M-field, A-field, 8 × access number).
public enum ProfileTelegramEncoder {
    /// The same telegram (L-field first, no CRCs) for meter `id`: the link address, and a long TPL
    /// header's address when it names the same meter. Nil when the bytes are no wM-Bus telegram.
    public static func withIdentification(_ bytes: [UInt8], _ id: IdentificationNumber) -> [UInt8]? {
        guard bytes.count >= 11 else { return nil }
        var out = bytes
        let old = Array(bytes[4..<8])
        let new = [UInt8(id.rawValue & 0xFF), UInt8((id.rawValue >> 8) & 0xFF), UInt8((id.rawValue >> 16) & 0xFF), UInt8(id.rawValue >> 24)]
        out.replaceSubrange(4..<8, with: new)
        if out[10] == 0x72, out.count >= 15, Array(out[11..<15]) == old { out.replaceSubrange(11..<15, with: new) }
        return out
    }

    /// A short-header (CI 7Ah) telegram in security mode 5: `records` (EN 13757-3 records) after the 2F2F
    /// check bytes, padded with 2Fh to whole blocks and encrypted.
    public static func modeFive(control: WMBusControlField = WMBusControlField(rawValue: 0x44), address: WMBusAddress,
                                accessNumber: UInt8, status: UInt8 = 0, records: [UInt8], key: WMBusKey) -> [UInt8]? {
        var plain: [UInt8] = [0x2F, 0x2F] + records
        while plain.count % 16 != 0 { plain.append(0x2F) }
        let blocks = plain.count / 16
        guard blocks <= 15 else { return nil }
        let iv = address.wireBytes + [UInt8](repeating: accessNumber, count: 8)
        guard let ivValue = try? AES._CBC.IV(ivBytes: iv),
              let cipher = try? AES._CBC.encrypt(plain, using: SymmetricKey(data: key.bytes), iv: ivValue, noPadding: true) else { return nil }
        let cf: [UInt8] = [UInt8(blocks << 4), 0x05]
        let payload: [UInt8] = [0x7A, accessNumber, status] + cf + [UInt8](cipher)
        return WMBusFrameCodec.encode(control: control, address: address, payload: payload, format: .noCRC)
    }
}
