/// Diehl group "real data" telegrams: CI 7Ah (short TPL header) from DME, EWT, HYD, SAP or SPL, sent with
/// SND-NR or SND-IR, whose TPL security mode is one of the maker's own (16–31: bit 12 of the configuration
/// field). SHARKY heat meters and HYDRUS water meters send them.
///
/// The bytes after the configuration field are EN 13757-3 records, either as they are or scrambled with
/// the 32-bit LFSR of the PRIOS format (`DiehlPriosCodec.descramble`: same register, same seed from the M
/// and A bytes as sent and the CI, access number, status and low configuration byte), keyed with the meter's
/// own key or one of Diehl's two published default keys. The high byte of the configuration field, bit 4
/// masked (EFh), is a checksum of the plain bytes: their sum, low 8 bits, with bit 4 cleared.
///
/// A reading is accepted only when the checksum holds *and* the bytes parse as records to the end. The
/// checksum alone has 7 bits, so one wrong candidate in 128 would pass it; garbage that also parses as a
/// complete record structure is far rarer. Candidates are tried in a fixed order: the bytes as sent, the
/// meter's key, then the default keys.
///
/// Sources: wmbusmeters `src/manufacturer_specificities.cc` (detectDiehlFrameInterpretation: REAL_DATA for
/// CI 7Ah with bit 12 of the configuration field; decodeDiehlLfsr with the CHECKSUM_AND_0XEF check against
/// the high configuration byte; the Diehl manufacturer list; key folding), GPL-3.0-or-later, commit
/// 05b98700: read as facts, no code copied. Test vector: the wmbus corpus's SHARKY telegram (#324, mode 21,
/// scrambled with the second default key) and HYDRUS telegram (#139, mode 24, sent unscrambled).
public enum DiehlRealData {
    /// Manufacturers of the Diehl group that use the format.
    public static let manufacturers: Set<String> = ["DME", "EWT", "HYD", "SAP", "SPL"]

    /// How the records were recovered.
    public enum Opening: Equatable, Sendable {
        /// Sent unscrambled; the checksum holds on the bytes as sent.
        case asSent
        /// Descrambled with the meter's own key.
        case meterKey
        /// Descrambled with one of Diehl's published default keys (no confidentiality: the keys are public).
        case defaultKey
    }

    /// Does a telegram use the format? `mode` is the TPL security mode (bits 12–8 of the configuration field).
    public static func applies(manufacturer: ManufacturerCode, control: UInt8, ci: UInt8, shortHeader: Bool, mode: Int) -> Bool {
        shortHeader && ci == 0x7A && (control == 0x44 || control == 0x46) && (16...31).contains(mode)
            && manufacturers.contains(manufacturer.letters)
    }

    /// The records of a real-data telegram, and how they were recovered; nil when no candidate passes both
    /// checks (a meter key that is not known here, or not this format).
    ///
    /// - Parameters:
    ///   - afterCI: the bytes after the CI: access number, status, the two configuration bytes, then the data.
    ///   - linkBytes: M and A (8 bytes) exactly as received.
    ///   - meterKey: the meter's key from the keys file; its first 8 bytes are folded to the 32-bit key.
    public static func open(afterCI: ArraySlice<UInt8>, ci: UInt8, linkBytes: [UInt8], meterKey: WMBusKey?) -> (records: [UInt8], opening: Opening)? {
        let payload = Array(afterCI)
        guard payload.count > 4, linkBytes.count == 8 else { return nil }
        let check = payload[3] & 0xEF
        let sent = Array(payload[4...])
        if accepts(sent, check: check) { return (sent, .asSent) }
        var keys: [(UInt32, Opening)] = []
        if let meterKey { keys.append((fold(meterKey.bytes), .meterKey)) }
        keys += DiehlPriosCodec.defaultKeys.map { ($0, .defaultKey) }
        for (key, opening) in keys {
            let plain = DiehlPriosCodec.descramble(payload, link: linkBytes, ci: ci, key: key)
            if accepts(plain, check: check) { return (plain, opening) }
        }
        return nil
    }

    /// A key of 8 or more bytes as the 32-bit LFSR key: its first two big-endian words XORed.
    static func fold(_ bytes: [UInt8]) -> UInt32 {
        guard bytes.count >= 8 else { return 0 }
        func be(_ i: Int) -> UInt32 {
            UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
        }
        return be(0) ^ be(4)
    }

    /// The checksum of plain bytes (the sum's low byte, bit 4 cleared).
    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        var sum: UInt8 = 0
        for b in bytes { sum &+= b }
        return sum & 0xEF
    }

    static func accepts(_ bytes: [UInt8], check: UInt8) -> Bool {
        guard !bytes.isEmpty, checksum(bytes) == check else { return false }
        return (try? RecordParser().parse(bytes)) != nil
    }
}
