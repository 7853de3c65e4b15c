/// Apator's NA-1 radio overlay for water meters (APA, version 14h, device type 07h) sends a manufacturer
/// application layer (CI A0h or A1h) that encrypts itself: after the CI come the access number, a plain
/// frame status byte, then 16 bytes of AES-128-CBC whose IV is the link layer's M and A fields followed by
/// the access number eight times (the EN 13757-7 mode 5 IV). The first plain byte is 2Fh, the only check
/// the format carries.
///
/// Keys tried, in order: the meter's key from the keys file, then the all-zero key (the key of the public
/// test telegram). A telegram that opens only with the all-zero key has no confidentiality and is reported
/// `descrambled`, like a maker's published default key; a meter registered with its own key that opens
/// only so is a security downgrade (`SecurityReport.downgrade` in Gateway).
///
/// One check byte means one wrong key in 256 passes it; the values then go through the profile's and the
/// normaliser's plausibility checks like any others. `ApatorNA1Codec` reads the opened bytes.
///
/// Sources: wmbusmeters `drivers/src/apatorna1.xmq` (GPL-3.0-or-later, commit 4dedd717): detection, the
/// byte layout and the `tpl_aes_cbc_iv` transform over bytes 2–17; its test telegram is a test vector
/// (key all zero). Facts only, no code copied.
public enum ApatorNA1 {
    public enum Opening: Equatable, Sendable {
        case meterKey
        /// The all-zero key: readable by anyone.
        case defaultKey
    }

    /// The key of the public test telegram, tried when the meter's own does not open it.
    public static let defaultKey = WMBusKey([UInt8](repeating: 0, count: 16))!

    /// Bytes after the CI that the format needs: access number, frame status, 16 encrypted bytes.
    public static let minimumLength = 18

    /// Does a manufacturer application layer use the format?
    /// Asked of every telegram with a manufacturer CI (Techem's A0h–A2h among them), so it compares numbers,
    /// never the manufacturer's letters as text.
    public static func applies(address: WMBusAddress, ci: UInt8) -> Bool {
        (ci == 0xA0 || ci == 0xA1) && address.version == 0x14 && address.deviceType.rawValue == 0x07
            && address.manufacturer == manufacturer
    }

    static let manufacturer = ManufacturerCode("APA")!

    /// The payload with its 16 encrypted bytes replaced by the plain ones, and the key that opened them;
    /// nil when it is too short or no key gives the 2Fh check byte.
    ///
    /// - Parameters:
    ///   - payload: the bytes after the CI.
    ///   - linkBytes: M and A (8 bytes) exactly as received.
    public static func open(payload: ArraySlice<UInt8>, linkBytes: [UInt8], meterKey: WMBusKey?) -> (payload: [UInt8], opening: Opening)? {
        guard payload.count >= minimumLength, linkBytes.count == 8 else { return nil }
        let start = payload.startIndex
        let iv = linkBytes + [UInt8](repeating: payload[start], count: 8)
        let cipher = payload[(start + 2)..<(start + 18)]
        var candidates: [(WMBusKey, Opening)] = []
        if let meterKey { candidates.append((meterKey, .meterKey)) }
        if meterKey != defaultKey { candidates.append((defaultKey, .defaultKey)) }
        for (key, opening) in candidates {
            guard let plain = WMBusAES.cbcDecrypt(cipher, key: key, iv: iv), plain.first == 0x2F else { continue }
            var out = Array(payload)
            out.replaceSubrange(2..<18, with: plain)
            return (out, opening)
        }
        return nil
    }
}
