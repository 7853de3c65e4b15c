/// TPL security on wired M-Bus (EN 13757-7, OMS Vol. 2): a long-header answer (CI 72h) whose
/// configuration field announces security mode 5 (AES-128-CBC, IV from the meter address and access
/// number) or mode 7 (AES-128-CBC with IV 0 and a persistent key; a configuration extension byte follows
/// the header). The records stay sealed until `TelegramDecoder.open(_:keyring:)` is given the key, from
/// the same keys file as the radio meters.
public struct SealedRecords: Hashable, Sendable {
    public var mode: Int
    /// The 12-byte long header as sent.
    public var header: [UInt8]
    /// The bytes after the header (for mode 7 the configuration extension byte first).
    public var body: [UInt8]
    /// Where the header starts in the frame, for error offsets.
    public var errorOffsetBase: Int
    /// Encrypted 16-byte blocks the configuration field announces (0: all whole blocks).
    public var blocks: Int
}

extension DecodeError.Code {
    /// An encrypted telegram and no key for its meter.
    public static let noKey = DecodeError.Code(name: "no_key")
    /// A security mode this decoder does not implement.
    public static let unsupportedSecurityMode = DecodeError.Code(name: "unsupported_security_mode")
}

extension TelegramDecoder {
    /// Decodes a frame and opens its TPL security with the keyring (nothing to open: the telegram as is).
    public static func decode(_ bytes: [UInt8], keyring: WMBusKeyring) throws(DecodeError) -> Telegram {
        try open(try decode(bytes), keyring: keyring)
    }

    /// The telegram with its sealed records decrypted and parsed.
    public static func open(_ t: Telegram, keyring: WMBusKeyring) throws(DecodeError) -> Telegram {
        guard let s = t.sealed else { return t }
        guard let id = t.header.identification else { return t }
        guard let key = keyring.key(for: id) else {
            throw DecodeError(code: .noKey, offset: s.errorOffsetBase + 12,
                              message: "the meter \(id) encrypts its data (security mode \(s.mode)) and there is no key for it: add it to the keys file or give --key")
        }
        return try open(t, s, key: key)
    }

    static func open(_ t: Telegram, _ s: SealedRecords, key: WMBusKey) throws(DecodeError) -> Telegram {
        let extra = s.mode == 7 ? 1 : 0
        guard s.body.count >= extra else {
            throw DecodeError(code: .headerTooShort, offset: s.errorOffsetBase + 12, message: "security mode 7 needs its configuration extension byte")
        }
        if s.mode == 7, let cfe = s.body.first, (cfe >> 4) & 0x03 != 0 {
            throw DecodeError(code: .unsupportedSecurityMode, offset: s.errorOffsetBase + 12,
                              message: "security mode 7 with key derivation (KDF-A) needs a message counter that wired frames do not carry; only a persistent key is supported")
        }
        let available = s.body.count - extra
        let count = s.blocks == 0 ? available - available % 16 : s.blocks * 16
        guard count <= available, count % 16 == 0 else {
            throw DecodeError(code: .invalidEncryptedLength, offset: s.errorOffsetBase + 12 + extra,
                              message: "the configuration field announces \(s.blocks) encrypted blocks (\(count) bytes), \(available) bytes remain")
        }
        let cipher = s.body[extra..<(extra + count)]
        let h = s.header
        let iv: [UInt8] = s.mode == 5
            ? [h[4], h[5], h[0], h[1], h[2], h[3], h[6], h[7]] + [UInt8](repeating: h[8], count: 8)
            : [UInt8](repeating: 0, count: 16)
        guard let plain = WMBusAES.cbcDecrypt(cipher, key: key, iv: iv), plain.count >= 2, plain[0] == 0x2F, plain[1] == 0x2F else {
            throw DecodeError(code: .wrongKey, offset: s.errorOffsetBase + 12 + extra,
                              message: "the key for \(t.header.identification.map { "\($0)" } ?? "the meter") does not decrypt this frame (no 2F2F check bytes after security mode \(s.mode)): wrong key")
        }
        var data = h
        data += plain
        data += s.body[(extra + count)...]
        var opened = try decodeApplicationLayer(ci: t.controlInformation, data: data, errorOffsetBase: s.errorOffsetBase, opening: true)
        opened.control = t.control
        opened.primaryAddress = t.primaryAddress
        opened.securityMode = s.mode
        return opened
    }

    /// The security mode of a long header's configuration field (bits 12–8), LSB-first headers only.
    static func securityMode(_ header: UnsafeBufferPointer<UInt8>) -> (mode: Int, blocks: Int) {
        let config = UInt16(header[10]) | UInt16(header[11]) << 8
        return (Int((config >> 8) & 0x1F), Int((config >> 4) & 0x0F))
    }
}
