/// Why bytes could not be decoded as an M-Bus telegram.
///
/// `offset` counts bytes from the start of the frame, so a technician can find the spot in the hex.
public struct DecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }

        // Link layer
        public static let invalidStartByte = Code(name: "invalid_start_byte")
        public static let invalidHeader = Code(name: "invalid_header")
        public static let invalidLength = Code(name: "invalid_length")
        public static let checksumMismatch = Code(name: "checksum_mismatch")
        public static let missingStopByte = Code(name: "missing_stop_byte")
        public static let truncatedFrame = Code(name: "truncated_frame")
        /// An ACK, a short frame, or a frame from master to slave: not a meter's answer.
        public static let notAResponse = Code(name: "not_a_response")

        // Application layer
        public static let unsupportedCI = Code(name: "unsupported_ci")
        public static let headerTooShort = Code(name: "header_too_short")
        public static let invalidFixedDataLength = Code(name: "invalid_fixed_data_length")
        public static let prematureEndAtDIF = Code(name: "premature_end_at_dif")
        public static let prematureEndAtVIF = Code(name: "premature_end_at_vif")
        public static let prematureEndAtData = Code(name: "premature_end_at_data")
        public static let tooManyDIFEs = Code(name: "too_many_difes")
        public static let tooManyVIFEs = Code(name: "too_many_vifes")
        public static let invalidPlainTextVIF = Code(name: "invalid_plain_text_vif")
        public static let reservedDIF = Code(name: "reserved_dif")
        public static let reservedLVAR = Code(name: "reserved_lvar")
    }

    public let code: Code
    public let offset: Int
    public let message: String

    public init(code: Code, offset: Int, message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    public var description: String { "\(message) (\(code), byte \(offset))" }
}

extension DecodeError {
    init(_ frameError: FrameError) {
        let code: Code
        switch frameError.code {
        case .invalidStartByte: code = .invalidStartByte
        case .invalidHeader: code = .invalidHeader
        case .checksumMismatch: code = .checksumMismatch
        case .missingStopByte: code = .missingStopByte
        default: code = .invalidLength
        }
        self.init(code: code, offset: frameError.offset, message: frameError.message)
    }
}

/// The meter's status byte (EN 13757-3:2018, Table 9).
public struct MeterStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public var applicationBusy: Bool { rawValue & 0x03 == 0x01 }
    public var applicationError: Bool { rawValue & 0x03 == 0x02 }
    public var abnormalCondition: Bool { rawValue & 0x03 == 0x03 }
    public var powerLow: Bool { rawValue & 0x04 != 0 }
    public var permanentError: Bool { rawValue & 0x08 != 0 }
    public var temporaryError: Bool { rawValue & 0x10 != 0 }
    /// Bits 5–7, manufacturer specific.
    public var manufacturerBits: UInt8 { rawValue >> 5 }

    /// The flags in words, empty when all is well.
    public var flags: [String] {
        var f: [String] = []
        if applicationBusy { f.append("application busy") }
        if applicationError { f.append("application error") }
        if abnormalCondition { f.append("abnormal condition / alarm") }
        if powerLow { f.append("power low") }
        if permanentError { f.append("permanent error") }
        if temporaryError { f.append("temporary error") }
        if manufacturerBits != 0 { f.append("manufacturer bits " + Hex.encode([manufacturerBits << 5])) }
        return f
    }

    public var description: String { flags.isEmpty ? "OK" : flags.joined(separator: ", ") }
}

/// The fixed part of the application layer: who sent the telegram and in what state.
public struct TelegramHeader: Hashable, Sendable {
    /// Identification number (serial). From the long header, or from the link layer for short headers.
    public var identification: IdentificationNumber?
    public var manufacturer: ManufacturerCode?
    public var version: UInt8?
    public var deviceType: DeviceType?
    public var accessNumber: UInt8?
    public var status: MeterStatus?
    /// The signature / configuration word (encryption mode lives here in wireless M-Bus).
    public var signature: UInt16?

    public init() {}
}

/// An application error report (CI 70h): the meter understood the request and says why it cannot answer.
public struct ApplicationErrorReport: Hashable, Sendable {
    /// Nil when the meter sent CI 70h with no error byte.
    public var code: ApplicationErrorCode?
    /// Any bytes after the error code (manufacturer-specific detail).
    public var detail: [UInt8]

    public var message: String { (code ?? ApplicationErrorCode(rawValue: 0)).description }
}

/// A decoded M-Bus telegram: link information, header and data records.
public struct Telegram: Hashable, Sendable {
    public var control: ControlField?
    /// Primary address from the link layer (wired M-Bus).
    public var primaryAddress: UInt8?
    public var controlInformation: UInt8
    public var header: TelegramHeader
    public var records: [DataRecord]
    /// Manufacturer-specific data after DIF 0Fh or 1Fh, in wire order.
    public var manufacturerData: [UInt8]?
    /// DIF 1Fh: the meter has more records; read again (multi-telegram readout).
    public var moreRecordsFollow: Bool
    /// Set for CI 70h.
    public var applicationError: ApplicationErrorReport?
    /// CI 76h/77h: multi-byte values are sent most significant byte first (EN 1434-3 mode 2).
    public var isMostSignificantByteFirst: Bool
    /// Records encrypted by TPL security (mode 5 or 7) that no key has opened yet; `records` is empty then.
    public var sealed: SealedRecords?
    /// The TPL security mode the records were sent with (0: none), also after they were opened.
    public var securityMode: Int = 0

    public init(controlInformation: UInt8) {
        self.controlInformation = controlInformation
        header = TelegramHeader()
        records = []
        moreRecordsFollow = false
        isMostSignificantByteFirst = false
    }

    /// A telegram of parsed records, which it takes over.
    init(controlInformation: UInt8, header: TelegramHeader, parsed: consuming RecordParser.Result,
         mostSignificantByteFirst: Bool, securityMode: Int) {
        self.controlInformation = controlInformation
        self.header = header
        records = parsed.records
        manufacturerData = parsed.manufacturerData
        moreRecordsFollow = parsed.moreRecordsFollow
        isMostSignificantByteFirst = mostSignificantByteFirst
        self.securityMode = securityMode
    }
}
