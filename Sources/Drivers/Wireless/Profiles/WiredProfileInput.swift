/// Meter profiles for wired M-Bus answers: a long-header telegram (CI 72h) carries the same identity
/// (manufacturer, id, version, device type) and the same EN 13757-3 records as a radio telegram, so the
/// profile that knows the meter's radio telegrams knows its wired answers too. The wired telegram is
/// presented to the evaluator as a radio telegram with a long TPL header and no link-layer bytes.
extension WirelessTelegram {
    /// Nil for telegrams without a long header (no identity to detect by) and for sealed ones.
    /// `recordBytes`: the bytes the records were parsed from (after the 12-byte header), for layouts that
    /// read a record's raw data; nil when unknown (an opened encrypted frame).
    public init?(wired t: Telegram, recordBytes: [UInt8]? = nil) {
        guard t.sealed == nil, let id = t.header.identification, let man = t.header.manufacturer,
              let version = t.header.version, let type = t.header.deviceType else { return nil }
        let address = WMBusAddress(manufacturer: man, identification: id, version: version, deviceType: type)
        let frame = WMBusFrame(format: .noCRC, control: WMBusControlField(rawValue: t.control?.rawValue ?? 0x08), address: address,
                               payload: [], payloadOffsets: [], payloadStart: 0, linkMode: nil)
        var tpl = TransportHeader(ci: t.controlInformation, kind: .long, accessNumber: t.header.accessNumber,
                                  status: t.header.status?.rawValue, configuration: t.header.signature,
                                  configurationExtension: nil, meterAddress: address)
        if t.isMostSignificantByteFirst { tpl.configuration = nil }
        var security = SecurityReport()
        security.mode = t.securityMode
        security.state = t.securityMode == 0 ? .none : .decrypted
        self.init(frame: frame, ell: nil, afl: nil, tpl: tpl, security: security, telegram: t, compactFrame: nil,
                  manufacturerPayload: nil, fields: [], recordError: nil, recordBytes: recordBytes)
    }

    /// A wired frame's bytes as a profile input: decoded, opened with the keyring, and presented as above.
    public static func wired(_ bytes: [UInt8], keyring: WMBusKeyring = WMBusKeyring()) throws(DecodeError) -> WirelessTelegram? {
        let t = try TelegramDecoder.decode(bytes, keyring: keyring)
        // User data of a long frame: after 68 L L 68 C A CI; the records follow the 12-byte long header.
        var records: [UInt8]?
        if t.securityMode == 0, bytes.count >= 4 + 3 + 12 + 2, bytes[0] == 0x68 {
            records = Array(bytes[(7 + 12)..<(bytes.count - 2)])
        }
        return WirelessTelegram(wired: t, recordBytes: records)
    }
}
