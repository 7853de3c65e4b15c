/// CI fields of the wireless layers (EN 13757-7:2018 Table 2, EN 13757-4).
public enum WirelessCI {
    public static let ellShort: UInt8 = 0x8C
    public static let ellLong: UInt8 = 0x8D
    public static let ellShortWithReceiver: UInt8 = 0x8E
    public static let ellLongWithReceiver: UInt8 = 0x8F
    public static let afl: UInt8 = 0x90
    public static let compactFrameNoHeader: UInt8 = 0x79
    /// EN 13757-7 Table 2: compact frames behind a long (73h) or short (7Bh) TPL header. On the radio 73h is
    /// never the wired fixed data structure.
    public static let compactFrameLongHeader: UInt8 = 0x73
    public static let compactFrameShortHeader: UInt8 = 0x7B
    static func isCompact(_ ci: UInt8) -> Bool { ci == compactFrameNoHeader || ci == compactFrameLongHeader || ci == compactFrameShortHeader }
    /// Manufacturer-specific application layers.
    public static let manufacturerSpecific: ClosedRange<UInt8> = 0xA0...0xB7
}

/// Extended link layer (EN 13757-4, 13.2.7; CI 8Ch–8Fh).
public struct ExtendedLinkLayer: Hashable, Sendable {
    public var ci: UInt8
    /// CC-field: B D S H P A R X.
    public var communicationControl: UInt8
    public var accessNumber: UInt8
    /// CI 8Eh/8Fh: the address of the receiver the meter talks to.
    public var receiver: WMBusAddress?
    /// CI 8Dh/8Fh: session number (ENC bits 31–29, time 28–4, session 3–0).
    public var sessionNumber: UInt32?
    /// CI 8Dh/8Fh: CRC over the payload after it, sent encrypted along with the payload.
    public var payloadCRC: UInt16?

    /// ENC field of the session number: 0 none, 1 AES-128-CTR, others reserved.
    public var encryption: UInt8 { sessionNumber.map { UInt8($0 >> 29) } ?? 0 }

    /// Header bytes after the CI (the payload CRC of 8Dh/8Fh is counted with the payload).
    static func headerLength(_ ci: UInt8) -> Int {
        switch ci {
        case 0x8C: return 2
        case 0x8D: return 6
        case 0x8E: return 10
        default: return 14
        }
    }
}

/// Authentication and fragmentation layer (EN 13757-7, 6; CI 90h).
public struct AuthenticationLayer: Hashable, Sendable {
    /// AFL.FCL: fragment control.
    public var fragmentControl: UInt16
    /// AFL.MCL: message control (authentication type in bits 3–0).
    public var messageControl: UInt8?
    /// AFL.KI: key information.
    public var keyInformation: UInt16?
    /// AFL.MCR: message counter.
    public var messageCounter: UInt32?
    /// AFL.MAC as sent.
    public var mac: [UInt8]?
    /// AFL.ML: message length.
    public var messageLength: UInt16?
    /// Offset of AFL.MCL in the payload, to compute the MAC over the bytes as sent.
    var messageControlIndex: Int?

    public var moreFragments: Bool { fragmentControl & 0x4000 != 0 }
    public var fragmentID: UInt8 { UInt8(fragmentControl & 0xFF) }

    /// AES-CMAC truncated to this many bytes (EN 13757-7 Table 6); nil for no or unknown authentication.
    static func macLength(authenticationType at: UInt8) -> Int? {
        switch at {
        case 3: return 2
        case 4: return 4
        case 5: return 8
        case 6: return 12
        case 7: return 16
        default: return nil
        }
    }
}

/// The transport layer header (EN 13757-7, 7.5; CI 72h long, 7Ah short, 78h/79h none).
public struct TransportHeader: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable { case none, short, long }
    public var ci: UInt8
    public var kind: Kind
    public var accessNumber: UInt8?
    public var status: UInt8?
    /// Configuration field, bits: B A S M M M M M N N N N C C R H.
    public var configuration: UInt16?
    /// Configuration field extension (security mode 7 and up).
    public var configurationExtension: UInt8?
    /// Long header: the meter behind a radio adapter.
    public var meterAddress: WMBusAddress?

    /// Security mode (bits 12–8 of the configuration field).
    public var securityMode: Int { configuration.map { Int(($0 >> 8) & 0x1F) } ?? 0 }
    /// Number of encrypted 16-byte blocks (bits 7–4).
    public var encryptedBlocks: Int { configuration.map { Int(($0 >> 4) & 0x0F) } ?? 0 }
    /// Mode 7: key derivation function (CFE bits 5–4): 0 persistent key, 1 KDF-A.
    public var keyDerivation: Int { configurationExtension.map { Int(($0 >> 4) & 0x03) } ?? 0 }
    /// Header bytes after the CI, including the CFE when present.
    public var length: Int {
        let base = kind == .long ? 12 : kind == .short ? 4 : 0
        return base + (configurationExtension == nil ? 0 : 1)
    }

    /// Security modes whose configuration field carries a CFE byte (EN 13757-7 7.7.5–7.7.8).
    static func hasExtension(mode: Int) -> Bool { mode == 7 || mode == 8 || mode == 9 || mode == 10 }
}

/// What security did to a telegram, in words a technician can act on.
public struct SecurityReport: Hashable, Sendable {
    public enum State: String, Hashable, Sendable {
        /// Nothing was encrypted.
        case none
        /// Decrypted with the given key; the 2F2F check bytes (or the ELL payload CRC) confirmed it.
        case decrypted
        /// The header announces encryption, but the payload is already plain (a dongle or tool decrypted it).
        case alreadyDecrypted = "already_decrypted"
        /// A maker's scrambling undone with its published default keys (Diehl's real-data LFSR), or a
        /// maker's layer opened with the all-zero key (Apator NA-1): readable, but with no confidentiality,
        /// since anyone has the keys.
        case descrambled
        /// Encrypted and no key is known for this meter: only the header is readable.
        case noKey = "no_key"
        /// A security mode this decoder does not implement.
        case unsupportedMode = "unsupported_mode"
    }
    public enum MAC: String, Hashable, Sendable {
        case verified
        /// There is a MAC but no key (or the payload came already decrypted) to check it with.
        case notChecked = "not_checked"
    }

    /// TPL security mode (0, 5, 7, …).
    public var mode: Int = 0
    /// The ELL encrypted with AES-128-CTR.
    public var ellEncrypted = false
    public var state: State = .none
    public var mac: MAC?
}

/// A field of the telegram for `gatewayd decode --analyze`: where it is in the input and what it means.
public struct WirelessField: Hashable, Sendable {
    public var layer: String
    public var name: String
    /// Offsets in the received bytes (CRCs of format A/B frames lie between, not inside, these).
    public var offset: Int
    public var bytes: [UInt8]
    public var meaning: String
}

/// A compact frame (CI 79h): values without their DIF/VIF, which come from an earlier full frame.
public struct CompactFrameInfo: Hashable, Sendable {
    public var formatSignature: UInt16
    public var fullFrameCRC: UInt16
    /// False when no full frame with this format signature has been seen yet.
    public var resolved: Bool
    /// The values after signature and CRC, as sent (a meter profile may know their layout by signature).
    public var values: [UInt8] = []
}

/// A decoded wireless M-Bus telegram: every layer, the security outcome, and the EN 13757-3 records.
public struct WirelessTelegram: Hashable, Sendable {
    public var frame: WMBusFrame
    public var ell: ExtendedLinkLayer?
    public var afl: AuthenticationLayer?
    public var tpl: TransportHeader?
    public var security: SecurityReport
    /// Header (identity from the link layer, or from the long TPL header) and records.
    public var telegram: Telegram
    public var compactFrame: CompactFrameInfo?
    /// CI A0h–B7h: the manufacturer's own layout after the CI, reported raw.
    public var manufacturerPayload: [UInt8]?
    /// Layer by layer, byte by byte.
    public var fields: [WirelessField]
    /// Records stopped decoding here (proprietary bytes after standard records); `telegram` holds the
    /// records before it.
    public var recordError: DecodeError?
    /// The plain (decrypted) bytes the records were parsed from; `DataRecord.offset` counts from index 0.
    /// Meter profiles read manufacturer-specific records from here. Nil for compact frames and
    /// telegrams without records.
    public var recordBytes: [UInt8]?

    /// The meter's identity: the long TPL header's when there is one (radio adapters), else the link layer's.
    public var meterAddress: WMBusAddress { tpl?.meterAddress ?? frame.address }
}

extension DecodeError.Code {
    /// Decryption with the given key does not give the 2F2F check bytes (or the ELL payload CRC).
    public static let wrongKey = DecodeError.Code(name: "wrong_key")
    /// The AFL MAC does not match the message: wrong key or a tampered / corrupted telegram.
    public static let macMismatch = DecodeError.Code(name: "mac_mismatch")
    /// An unencrypted ELL payload whose CRC does not match.
    public static let payloadCRCMismatch = DecodeError.Code(name: "payload_crc_mismatch")
    /// More fragments follow (AFL): put the fragments together with `AFLReassembler` first.
    public static let fragmented = DecodeError.Code(name: "fragmented_message")
    /// Encrypted bytes do not fit the telegram, or are not whole 16-byte blocks.
    public static let invalidEncryptedLength = DecodeError.Code(name: "invalid_encrypted_length")
}
