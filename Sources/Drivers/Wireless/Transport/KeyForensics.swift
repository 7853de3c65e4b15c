/// Why a radio telegram could not be read, told apart the way an installer needs it: a wrong key, a key
/// that belongs to another meter of the building (two rows of the key list swapped), a compact frame
/// waiting for its full frame, a truncated telegram, a failed MAC (wrong key or tampering), no key, or a
/// security mode this gateway does not decrypt.
public struct KeyDiagnosis: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        case wrongKey = "wrong_key"
        case keyOfAnotherMeter = "key_of_another_meter"
        case compactFrameWaiting = "compact_frame_waiting"
        case truncated
        case macFailure = "mac_failure"
        case noKey = "no_key"
        case unsupportedMode = "unsupported_mode"
    }

    public var kind: Kind
    /// The meter the telegram came from.
    public var meter: IdentificationNumber
    /// For `keyOfAnotherMeter`: the meter under whose id the key list holds the key that opens this telegram.
    public var keyFiledUnder: IdentificationNumber?

    public init(kind: Kind, meter: IdentificationNumber, keyFiledUnder: IdentificationNumber? = nil) {
        self.kind = kind
        self.meter = meter
        self.keyFiledUnder = keyFiledUnder
    }

    /// What to do, in a technician's words.
    public var advice: String {
        let m = meter.digits
        switch kind {
        case .wrongKey:
            return "the key on file for \(m) does not open its telegrams, and no other key of the building does: ask the supplier for the meter's key (check the id on the meter's label)"
        case .keyOfAnotherMeter:
            return "the key filed under \(keyFiledUnder?.digits ?? "another meter") opens the telegrams of \(m): the two rows of the key list are probably swapped; file that key under \(m) (and check the other meter's row)"
        case .compactFrameWaiting:
            return "\(m) sends compact frames whose format comes in a full frame it sends less often: wait for it (usually minutes to hours), or give its profile the format (compactFormats)"
        case .truncated:
            return "the telegram of \(m) arrived cut short (weak signal or a collision): nothing to change unless it keeps happening, then move the receiver or add a repeater"
        case .macFailure:
            return "the authentication code (MAC) of \(m)'s telegram does not match: a wrong key, or a telegram altered on the way; if the key is right, look for a forger nearby"
        case .noKey:
            return "\(m) encrypts and no key is on file for it: add its key to the key file"
        case .unsupportedMode:
            return "\(m) uses a security mode this gateway does not decrypt: ask the supplier to configure mode 5 or 7 (OMS)"
        }
    }

    public var description: String { "\(kind.rawValue): \(advice)" }
}

public enum KeyForensics {
    /// Diagnoses a telegram `decoder` refused with `error`, or one it decoded whose content stayed closed
    /// (`telegram`). With `tryOtherKeys`, a wrong key or a failed MAC is tried against every other key of
    /// `keyring` (the building's keys): the one that opens it names the swapped row. That costs one decode
    /// per key, so callers limit how often they ask (per meter and hour). Nil when nothing is wrong with
    /// the keys (a plain or decrypted telegram, a garbled frame).
    public static func diagnose(_ bytes: [UInt8], format: WMBusFrameFormat?, error: DecodeError?, telegram: WirelessTelegram?,
                                keyring: WMBusKeyring, tryOtherKeys: Bool = true) -> KeyDiagnosis? {
        if let w = telegram {
            let meter = w.meterAddress.identification
            switch w.security.state {
            case .noKey: return KeyDiagnosis(kind: .noKey, meter: meter)
            case .unsupportedMode: return KeyDiagnosis(kind: .unsupportedMode, meter: meter)
            case .none, .decrypted, .alreadyDecrypted, .descrambled:
                if let c = w.compactFrame, !c.resolved { return KeyDiagnosis(kind: .compactFrameWaiting, meter: meter) }
                return nil
            }
        }
        guard let error, let frame = try? WMBusFrameCodec.decode(bytes, format: format) else { return nil }
        let meter = longHeaderIdentity(frame) ?? frame.address.identification
        switch error.code {
        case .wrongKey, .macMismatch:
            if tryOtherKeys, let owner = otherKeyOpening(bytes, format: format, meter: meter, keyring: keyring) {
                return KeyDiagnosis(kind: .keyOfAnotherMeter, meter: meter, keyFiledUnder: owner)
            }
            return KeyDiagnosis(kind: error.code == .wrongKey ? .wrongKey : .macFailure, meter: meter)
        case .invalidEncryptedLength, .truncatedFrame, .headerTooShort, .prematureEndAtDIF, .prematureEndAtVIF, .prematureEndAtData:
            return KeyDiagnosis(kind: .truncated, meter: meter)
        default:
            return nil
        }
    }

    /// The id in a long TPL header (CI 72h, 8Bh…: a radio adapter in front of a meter), which is the one the
    /// key list files the key under; nil for a short header.
    static func longHeaderIdentity(_ frame: WMBusFrame) -> IdentificationNumber? {
        let p = frame.payload
        guard let ci = p.first, ci == 0x72 || ci == 0x8B || ci == 0x53 || ci == 0x5B, p.count >= 5 else { return nil }
        let raw = UInt32(p[1]) | UInt32(p[2]) << 8 | UInt32(p[3]) << 16 | UInt32(p[4]) << 24
        return IdentificationNumber(rawValue: raw)
    }

    /// The id under which `keyring` files a key (not the meter's own) that decrypts the telegram.
    static func otherKeyOpening(_ bytes: [UInt8], format: WMBusFrameFormat?, meter: IdentificationNumber,
                                keyring: WMBusKeyring) -> IdentificationNumber? {
        let own = keyring.keys[meter]
        // Sorted: the same answer every time, whatever the dictionary's order.
        for (id, key) in keyring.keys.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where id != meter && key != own {
            var decoder = WirelessDecoder(keyring: WMBusKeyring(defaultKey: key))
            decoder.collectsFields = false
            if let w = try? decoder.decode(bytes, format: format), w.security.state == .decrypted { return id }
        }
        return nil
    }
}
