/// What a named codec may know of the telegram besides its bytes: the meter's address (scrambling keys
/// are derived from it), the CI and the access number.
public struct CodecContext: Sendable {
    public var address: WMBusAddress
    /// The link layer's address as sent (for codecs that key on the radio address, not the meter's).
    public var linkAddress: WMBusAddress
    public var controlInformation: UInt8
    public var accessNumber: UInt8?

    public init(address: WMBusAddress, linkAddress: WMBusAddress, controlInformation: UInt8, accessNumber: UInt8?) {
        self.address = address
        self.linkAddress = linkAddress
        self.controlInformation = controlInformation
        self.accessNumber = accessNumber
    }

    init(_ w: WirelessTelegram) {
        self.init(address: w.meterAddress, linkAddress: w.frame.address, controlInformation: w.telegram.controlInformation,
                  accessNumber: w.tpl?.accessNumber)
    }
}

/// What a codec made of the bytes.
public enum CodecResult: Hashable, Sendable {
    /// The bytes the layout's fields read.
    case bytes([UInt8])
    /// The bytes are not of this codec's kind (another sub-format): the layout is skipped quietly.
    case notApplicable
    /// The bytes are of this kind but damaged (a check byte is wrong): a problem in the reading.
    case failure(String)
}

/// A pure, total transformation of a layout's bytes. Any input gives a result, never a trap.
public typealias ProfileCodec = @Sendable (ArraySlice<UInt8>, CodecContext) -> CodecResult

/// The codecs a profile may name in a layout's `codec`: what cannot be data (descrambling, unpacking),
/// each with its own tests. Everything else stays in the profile files.
public enum ProfileCodecs {
    public static let named: [String: ProfileCodec] = [
        "diehl_prios": DiehlPriosCodec.codec,
        "apator_tags": ApatorTagsCodec.codec,
        "bmeters_rfm_tx1": BMetersRFMTX1Codec.codec,
        "apator_na1": ApatorNA1Codec.codec,
    ]
}
