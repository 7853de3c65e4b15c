/// The wM-Bus USB receivers gatewayd talks to.
public enum DongleKind: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case im871a, im170a, amb8465, amb8665, iu891a, cul

    public enum Family: String, Hashable, Sendable {
        /// IMST's HCI (A5h framing, CRC16).
        case hci
        /// Amber's CMD protocol (FFh framing, XOR checksum).
        case amber
        /// IMST's second HCI (SLIP framing, CRC-16/X-25): iU891A.
        case slip
        /// culfw's ASCII lines: CUL, nanoCUL.
        case culfw
    }

    public var family: Family {
        switch self {
        case .im871a, .im170a: return .hci
        case .amb8465, .amb8665: return .amber
        case .iu891a: return .slip
        case .cul: return .culfw
        }
    }

    /// The factory UART speed, 8N1: 57600 baud for the iM871A, 9600 for Amber, 115200 for the iU891A and
    /// 38400 for culfw (the last two are USB CDC devices that ignore it).
    public var defaultBaudRate: Int {
        switch family {
        case .hci: 57600
        case .amber: 9600
        case .slip: 115_200
        case .culfw: 38400
        }
    }

    public var displayName: String {
        switch self {
        case .im871a: return "iM871A"
        case .im170a: return "iM170A"
        case .amb8465: return "AMB8465"
        case .amb8665: return "AMB8665"
        case .iu891a: return "iU891A"
        case .cul: return "CUL"
        }
    }

    /// The other protocol family's flag, for "try --type …" hints.
    var otherFamilyHint: String { family == .hci ? "amb8465" : "im871a" }

    /// `--type` values, for messages.
    public static var typeNames: String { allCases.map(\.rawValue).joined(separator: ", ") }

    public var description: String { displayName }
}

/// What a session found at the device path after its handshake.
public struct DongleIdentity: Hashable, Sendable, CustomStringConvertible {
    public var kind: DongleKind
    public var path: String
    public var firmware: String
    /// The module's unique id (HCI) or serial number (Amber), hex.
    public var serialNumber: String
    public var linkMode: DongleLinkMode

    public init(kind: DongleKind, path: String, firmware: String, serialNumber: String, linkMode: DongleLinkMode) {
        self.kind = kind
        self.path = path
        self.firmware = firmware
        self.serialNumber = serialNumber
        self.linkMode = linkMode
    }

    public var description: String {
        "\(kind) (firmware \(firmware), serial \(serialNumber)) at \(path), listening \(linkMode)"
    }
}

/// What a protocol's stream decoder gives a session.
enum LinkOutput: Sendable {
    /// A response, keyed by `DongleLink.responseKey`.
    case response(key: UInt16, payload: [UInt8])
    case telegram(bytes: [UInt8], rssiDBm: Double?)
    case problem(DongleError)
}

/// One protocol family behind a session: how to ask, and how to read what comes back.
protocol DongleLink: Sendable {
    var family: DongleKind.Family { get }
    mutating func decode(_ bytes: [UInt8]) -> [LinkOutput]
    /// After a silence: reports a half-received message or garbage run instead of waiting for more.
    mutating func flush() -> [LinkOutput]
    var pendingByteCount: Int { get }
}

/// A stream decoder that can say how many bytes wait for the rest of a message.
protocol PendingBytes {
    var pendingByteCount: Int { get }
}

extension HCIFrameReader: PendingBytes {}
extension AmberFrameReader: PendingBytes {}
extension IU891FrameReader: PendingBytes {}
extension CULLineReader: PendingBytes {}

/// A link whose stream decoder's events map one to one onto link outputs: the append, drain and flush
/// every protocol family shares, written once.
protocol StreamLink: DongleLink {
    associatedtype Reader: DongleStreamDecoder & PendingBytes
    var reader: Reader { get set }
    mutating func output(_ e: Reader.Event) -> LinkOutput
}

extension StreamLink {
    var pendingByteCount: Int { reader.pendingByteCount }

    mutating func decode(_ bytes: [UInt8]) -> [LinkOutput] {
        reader.append(bytes)
        return drainOutputs()
    }

    mutating func flush() -> [LinkOutput] {
        var out = drainOutputs()
        if let e = reader.finish() { out.append(output(e)) }
        return out
    }

    private mutating func drainOutputs() -> [LinkOutput] {
        var out: [LinkOutput] = []
        while let e = reader.next() { out.append(output(e)) }
        return out
    }
}

struct HCILink: StreamLink {
    var reader = HCIFrameReader()
    var family: DongleKind.Family { .hci }

    static func key(endpoint: UInt8, messageID: UInt8) -> UInt16 { UInt16(endpoint) << 8 | UInt16(messageID) }

    func output(_ e: HCIFrameReader.Event) -> LinkOutput {
        switch e {
        case .message(let m):
            if m.endpoint == HCI.radioLink && m.messageID == HCI.wmbusMessageIndication {
                guard m.payload.count >= 9 else {
                    return .problem(DongleError(.invalidLength, "WMBUSMSG_IND of \(m.payload.count) bytes cannot hold C, M and A"))
                }
                return .telegram(bytes: [UInt8(m.payload.count)] + m.payload, rssiDBm: m.rssi.map(HCI.rssiDBm))
            }
            return .response(key: Self.key(endpoint: m.endpoint, messageID: m.messageID), payload: m.payload)
        case .skipped(let bytes, let reason):
            return .problem(DongleError(reason.code, "skipped \(bytes.count) bytes: \(reason.message)", offset: reason.offset))
        }
    }
}

struct AmberLink: StreamLink {
    var reader = AmberFrameReader(rssiAppended: true)
    var family: DongleKind.Family { .amber }

    func output(_ e: AmberFrameReader.Event) -> LinkOutput {
        switch e {
        case .command(let m):
            return .response(key: UInt16(m.command), payload: m.payload)
        case .telegram(let bytes, let rssi, _):
            return .telegram(bytes: bytes, rssiDBm: rssi.map(Amber.rssiDBm))
        case .skipped(let bytes, let reason):
            return .problem(DongleError(reason.code, "skipped \(bytes.count) bytes: \(reason.message)", offset: reason.offset))
        }
    }
}

struct IU891Link: StreamLink {
    var reader = IU891FrameReader()
    var family: DongleKind.Family { .slip }

    static func key(sap: UInt8, messageID: UInt8) -> UInt16 { UInt16(sap) << 8 | UInt16(messageID) }

    func output(_ e: IU891FrameReader.Event) -> LinkOutput {
        switch e {
        case .message(let m):
            if m.sap == IU891.wmbusGateway && m.messageID == IU891.receivedTelegram {
                do {
                    let t = try IU891.telegram(m.payload)
                    return .telegram(bytes: t.bytes, rssiDBm: t.rssiDBm)
                } catch {
                    return .problem(error)
                }
            }
            return .response(key: Self.key(sap: m.sap, messageID: m.messageID), payload: m.payload)
        case .skipped(let bytes, let reason):
            return .problem(DongleError(reason.code, "skipped \(bytes.count) bytes: \(reason.message)", offset: reason.offset))
        }
    }
}

struct CULLink: StreamLink {
    var reader = CULLineReader()
    var lineNumber = 0
    var family: DongleKind.Family { .culfw }

    /// Response keys: the version line, the answer to a mode command, any other text.
    static let versionKey: UInt16 = 1
    static let modeKey: UInt16 = 2
    static let textKey: UInt16 = 0

    mutating func output(_ e: CULLineReader.Event) -> LinkOutput {
        lineNumber += 1
        switch e {
        case .line(let line):
            if line.hasPrefix("b") {
                do {
                    let t = try CUL.telegram(line: line, lineNumber: lineNumber)
                    return .telegram(bytes: t.bytes, rssiDBm: t.rssiDBm)
                } catch {
                    return .problem(error)
                }
            }
            if line.hasPrefix("V ") { return .response(key: Self.versionKey, payload: Array(line.utf8)) }
            if ["SMODE", "TMODE", "CMODE", "OFF"].contains(line) { return .response(key: Self.modeKey, payload: Array(line.utf8)) }
            return .response(key: Self.textKey, payload: Array(line.utf8))
        case .skipped(let bytes, let reason):
            return .problem(DongleError(reason.code, "skipped \(bytes.count) bytes: \(reason.message)", offset: reason.offset))
        }
    }
}
