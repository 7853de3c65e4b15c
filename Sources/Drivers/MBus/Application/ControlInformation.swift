/// CI field values used on the wired bus (EN 13757-3:2018 Table 2, EN 13757-7).
public enum ControlInformation {
    // Master to slave
    public static let applicationReset: UInt8 = 0x50
    public static let dataSend: UInt8 = 0x51
    public static let selectSlave: UInt8 = 0x52
    public static let deselectSlave: UInt8 = 0x56
    public static let synchronizeSlave: UInt8 = 0x5C
    public static let setBaudRate300: UInt8 = 0xB8

    // Slave to master
    public static let applicationError: UInt8 = 0x70
    public static let variableDataLongHeader: UInt8 = 0x72
    public static let fixedData: UInt8 = 0x73
    public static let variableDataMSBFirst: UInt8 = 0x76
    public static let fixedDataMSBFirst: UInt8 = 0x77
    public static let variableDataNoHeader: UInt8 = 0x78
    public static let variableDataShortHeader: UInt8 = 0x7A
}

/// The application error codes of CI 70h (EN 13757-3:2018, Table 28).
public struct ApplicationErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public var description: String {
        switch rawValue {
        case 0x00: return "Unspecified error"
        case 0x01: return "Unimplemented CI-Field"
        case 0x02: return "Buffer too long, truncated"
        case 0x03: return "Too many records"
        case 0x04: return "Premature end of record"
        case 0x05: return "More than 10 DIFE's"
        case 0x06: return "More than 10 VIFE's"
        case 0x07: return "Reserved"
        case 0x08: return "Application busy"
        case 0x09: return "Too many readouts"
        default: return "Reserved application error (" + Hex.encode([rawValue]) + ")"
        }
    }

    /// What a technician should do about it.
    public var advice: String {
        switch rawValue {
        case 0x01: return "the meter does not understand this request; check the CI field the master sends"
        case 0x02, 0x03: return "select a smaller data set (SND_UD) or read with multi-telegram readout"
        case 0x08: return "the meter is busy; retry later"
        case 0x09: return "the meter limits readouts per period; read less often"
        default: return "see the meter's manual for this error"
        }
    }
}
