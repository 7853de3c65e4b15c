/// The C-field of an EN 13757-2 frame.
///
/// Master to slave: bit 6 (PRM) set, bit 5 FCB, bit 4 FCV, low nibble the function.
/// Slave to master: bit 6 clear, bit 5 ACD, bit 4 DFC.
public struct ControlField: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Link reset (SND_NKE). Also used by a primary scan: a present slave answers E5.
    public static let sndNKE = ControlField(rawValue: 0x40)
    /// Send user data (SND_UD): select a slave, reset the application, set the baud rate.
    public static func sndUD(fcb: Bool) -> ControlField { ControlField(rawValue: fcb ? 0x73 : 0x53) }
    /// Request class 2 data (REQ_UD2): the ordinary readout.
    public static func reqUD2(fcb: Bool) -> ControlField { ControlField(rawValue: fcb ? 0x7B : 0x5B) }
    /// Request class 1 data (REQ_UD1): alarms, where a slave supports them.
    public static func reqUD1(fcb: Bool) -> ControlField { ControlField(rawValue: fcb ? 0x7A : 0x5A) }
    /// Respond user data (RSP_UD) with ACD and DFC clear.
    public static let rspUD = ControlField(rawValue: 0x08)

    /// True when the frame travels from master to slave (PRM bit).
    public var isFromMaster: Bool { rawValue & 0x40 != 0 }
    /// Frame count bit, toggled by the master on each successful REQ_UD2/SND_UD.
    public var frameCountBit: Bool { isFromMaster && rawValue & 0x20 != 0 }
    /// Frame count bit valid.
    public var frameCountValid: Bool { isFromMaster && rawValue & 0x10 != 0 }
    /// Access demand: the slave has class 1 data (alarms) waiting.
    public var accessDemand: Bool { !isFromMaster && rawValue & 0x20 != 0 }
    /// Data flow control: the slave cannot accept more data.
    public var dataFlowControl: Bool { !isFromMaster && rawValue & 0x10 != 0 }
    /// The function code, low nibble.
    public var function: UInt8 { rawValue & 0x0F }

    public var description: String {
        switch rawValue {
        case 0x40: return "SND_NKE"
        case 0x53, 0x73: return "SND_UD"
        case 0x5B, 0x7B: return "REQ_UD2"
        case 0x5A, 0x7A: return "REQ_UD1"
        case 0x08, 0x18, 0x28, 0x38: return "RSP_UD"
        default: return "C=" + Hex.encode([rawValue])
        }
    }
}

/// Special link-layer addresses (EN 13757-2, 5.5).
public enum LinkAddress {
    /// Highest primary address a slave may have.
    public static let maximumPrimary: UInt8 = 250
    /// Address of the slave selected by secondary addressing (network layer).
    public static let networkLayer: UInt8 = 0xFD
    /// Broadcast; all slaves answer (use only with one slave on the bus).
    public static let broadcastWithReply: UInt8 = 0xFE
    /// Broadcast; no slave answers.
    public static let broadcastNoReply: UInt8 = 0xFF
}

/// A short frame: `10 C A CS 16`.
public struct ShortFrame: Hashable, Sendable {
    public var control: ControlField
    public var address: UInt8
    public init(control: ControlField, address: UInt8) {
        self.control = control
        self.address = address
    }
}

/// A long frame `68 L L 68 C A CI data CS 16`; with no user data (L = 3) it is a control frame.
public struct LongFrame: Hashable, Sendable {
    public var control: ControlField
    public var address: UInt8
    /// The CI field: what the user data holds (EN 13757-3 / EN 13757-7).
    public var controlInformation: UInt8
    public var userData: [UInt8]

    public init(control: ControlField, address: UInt8, controlInformation: UInt8, userData: [UInt8]) {
        self.control = control
        self.address = address
        self.controlInformation = controlInformation
        self.userData = userData
    }

    /// A control frame is a long frame without user data.
    public var isControlFrame: Bool { userData.isEmpty }
}

/// An EN 13757-2 (FT 1.2) frame as it travels on the wired bus.
public enum MBusFrame: Hashable, Sendable {
    /// The single character E5h: acknowledgement.
    case ack
    case short(ShortFrame)
    case long(LongFrame)

    public static let ackByte: UInt8 = 0xE5
    public static let shortStart: UInt8 = 0x10
    public static let longStart: UInt8 = 0x68
    public static let stop: UInt8 = 0x16
    /// Largest L field: C + A + CI + 252 bytes of user data.
    public static let maximumLength: Int = 255

    /// Encoded size of a frame that starts with `start` and has length field `l`.
    static func encodedSize(longLength l: Int) -> Int { l + 6 }
}

// MARK: - Builders the master needs

extension MBusFrame {
    /// SND_NKE to a primary address: link reset, and the probe of a primary scan.
    public static func sndNKE(address: UInt8) -> MBusFrame {
        .short(ShortFrame(control: .sndNKE, address: address))
    }

    /// REQ_UD2 to a primary address (or FDh for the selected slave).
    public static func reqUD2(address: UInt8, frameCountBit: Bool) -> MBusFrame {
        .short(ShortFrame(control: .reqUD2(fcb: frameCountBit), address: address))
    }

    /// REQ_UD1: ask for class 1 data (alarm protocol).
    public static func reqUD1(address: UInt8, frameCountBit: Bool) -> MBusFrame {
        .short(ShortFrame(control: .reqUD1(fcb: frameCountBit), address: address))
    }

    /// SND_UD carrying arbitrary application data.
    public static func sndUD(
        address: UInt8, frameCountBit: Bool = false, controlInformation: UInt8, data: [UInt8] = []
    ) -> MBusFrame {
        .long(LongFrame(
            control: .sndUD(fcb: frameCountBit), address: address,
            controlInformation: controlInformation, userData: data))
    }

    /// Select a slave by secondary address (CI 52h to address FDh). Wildcards select many.
    public static func selectSecondary(_ mask: SecondaryAddressMask) -> MBusFrame {
        .sndUD(address: LinkAddress.networkLayer, controlInformation: ControlInformation.selectSlave,
               data: mask.encoded)
    }

    /// Application reset (CI 50h), optionally with a subcode selecting what to reset or read.
    public static func applicationReset(address: UInt8, subcode: UInt8? = nil) -> MBusFrame {
        .sndUD(address: address, controlInformation: ControlInformation.applicationReset,
               data: subcode.map { [$0] } ?? [])
    }

    /// Deselect all slaves selected by secondary address (CI 56h, EN 13757-3:2018).
    public static func deselectSecondary() -> MBusFrame {
        .sndUD(address: LinkAddress.networkLayer, controlInformation: ControlInformation.deselectSlave)
    }
}
