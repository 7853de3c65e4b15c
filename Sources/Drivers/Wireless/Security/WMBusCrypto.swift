#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import _CryptoExtras

/// An AES-128 key for a meter (OMS: one key per meter, 16 bytes).
public struct WMBusKey: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(_ bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// 32 hex digits; separators as `Hex.decode` accepts them.
    public init?(hex: String) {
        guard let b = try? Hex.decode(hex) else { return nil }
        self.init(b)
    }

    var symmetric: SymmetricKey { SymmetricKey(data: bytes) }

    /// Never print a key in full: logs travel.
    public var description: String { Hex.encode(bytes.prefix(2)) + "…" }
}

/// AES modes used by EN 13757-7 / OMS Vol. 2, on swift-crypto (`AES` block and `_CryptoExtras` modes).
/// Key sizes are fixed by `WMBusKey`, so the only failures left are lengths, checked before each call.
enum WMBusAES {
    /// One AES-128 block encryption (the forward permutation). `block` must have 16 bytes.
    static func encryptBlock(_ block: [UInt8], key: SymmetricKey) -> [UInt8] {
        var b = block
        do { try AES.permute(&b, key: key) } catch { return [UInt8](repeating: 0, count: 16) }
        return b
    }

    /// AES-128-CBC decryption without padding; `data.count` must be a multiple of 16.
    static func cbcDecrypt(_ data: ArraySlice<UInt8>, key: WMBusKey, iv: [UInt8]) -> [UInt8]? {
        guard data.count % 16 == 0, iv.count == 16 else { return nil }
        if data.isEmpty { return [] }
        guard let ivValue = try? AES._CBC.IV(ivBytes: iv),
              let out = try? AES._CBC.decrypt(Array(data), using: key.symmetric, iv: ivValue, noPadding: true)
        else { return nil }
        return [UInt8](out)
    }

    /// AES-128-CTR with a full 16-byte initial counter block (any length).
    static func ctr(_ data: ArraySlice<UInt8>, key: WMBusKey, counterBlock: [UInt8]) -> [UInt8]? {
        guard counterBlock.count == 16 else { return nil }
        if data.isEmpty { return [] }
        guard let nonce = try? AES._CTR.Nonce(nonceBytes: counterBlock),
              let out = try? AES._CTR.decrypt(Array(data), using: key.symmetric, nonce: nonce)
        else { return nil }
        return [UInt8](out)
    }
}

/// AES-CMAC (RFC 4493, NIST SP 800-38B) on the AES-128 block of swift-crypto.
public enum AESCMAC {
    public static func mac(key: [UInt8], message: some Collection<UInt8>) -> [UInt8] {
        guard key.count == 16 else { return [] }
        let k = SymmetricKey(data: key)
        let l = WMBusAES.encryptBlock([UInt8](repeating: 0, count: 16), key: k)
        let k1 = doubled(l)
        let k2 = doubled(k1)
        let m = Array(message)
        let blocks = max(1, (m.count + 15) / 16)
        let complete = !m.isEmpty && m.count % 16 == 0
        var x = [UInt8](repeating: 0, count: 16)
        for n in 0..<blocks {
            var block = [UInt8](repeating: 0, count: 16)
            let start = 16 * n
            let end = min(start + 16, m.count)
            for i in start..<end { block[i - start] = m[i] }
            if n == blocks - 1 {
                if complete {
                    for i in 0..<16 { block[i] ^= k1[i] }
                } else {
                    block[end - start] = 0x80
                    for i in 0..<16 { block[i] ^= k2[i] }
                }
            }
            for i in 0..<16 { x[i] ^= block[i] }
            x = WMBusAES.encryptBlock(x, key: k)
        }
        return x
    }

    /// Multiplication by x in GF(2^128) (RFC 4493, 2.3: left shift, XOR 87h on carry).
    static func doubled(_ b: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        var carry: UInt8 = 0
        for i in stride(from: 15, through: 0, by: -1) {
            out[i] = b[i] << 1 | carry
            carry = b[i] >> 7
        }
        if carry != 0 { out[15] ^= 0x87 }
        return out
    }
}
