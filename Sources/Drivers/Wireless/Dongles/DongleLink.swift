/// The wM-Bus USB receivers gatewayd talks to.
public enum DongleKind: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case im871a, im170a, amb8465, amb8665

    public enum Family: String, Hashable, Sendable {
        /// IMST's HCI (A5h framing, CRC16).
        case hci
        /// Amber's CMD protocol (FFh framing, XOR checksum).
        case amber
    }

    public var family: Family {
        switch self {
        case .im871a, .im170a: return .hci
        case .amb8465, .amb8665: return .amber
        }
    }

    /// The factory UART speed: 57600 baud for IMST, 9600 for Amber, both 8N1.
    public var defaultBaudRate: Int { family == .hci ? 57600 : 9600 }

    public var displayName: String {
        switch self {
        case .im871a: return "iM871A"
        case .im170a: return "iM170A"
        case .amb8465: return "AMB8465"
        case .amb8665: return "AMB8665"
        }
    }

    /// The other protocol family's flag, for "try --type …" hints.
    var otherFamilyHint: String { family == .hci ? "amb8465" : "im871a" }

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

struct HCILink: DongleLink {
    var reader = HCIFrameReader()
    var family: DongleKind.Family { .hci }
    var pendingByteCount: Int { reader.pendingByteCount }

    static func key(endpoint: UInt8, messageID: UInt8) -> UInt16 { UInt16(endpoint) << 8 | UInt16(messageID) }

    mutating func decode(_ bytes: [UInt8]) -> [LinkOutput] {
        reader.append(bytes)
        return reader.drain().map(Self.output)
    }

    mutating func flush() -> [LinkOutput] {
        var out = reader.drain().map(Self.output)
        if let e = reader.finish() { out.append(Self.output(e)) }
        return out
    }

    static func output(_ e: HCIFrameReader.Event) -> LinkOutput {
        switch e {
        case .message(let m):
            if m.endpoint == HCI.radioLink && m.messageID == HCI.wmbusMessageIndication {
                guard m.payload.count >= 9 else {
                    return .problem(DongleError(.invalidLength, "WMBUSMSG_IND of \(m.payload.count) bytes cannot hold C, M and A"))
                }
                return .telegram(bytes: [UInt8(m.payload.count)] + m.payload, rssiDBm: m.rssi.map(HCI.rssiDBm))
            }
            return .response(key: key(endpoint: m.endpoint, messageID: m.messageID), payload: m.payload)
        case .skipped(let bytes, let reason):
            return .problem(DongleError(reason.code, "skipped \(bytes.count) bytes: \(reason.message)", offset: reason.offset))
        }
    }
}

struct AmberLink: DongleLink {
    var reader = AmberFrameReader(rssiAppended: true)
    var family: DongleKind.Family { .amber }
    var pendingByteCount: Int { reader.pendingByteCount }

    mutating func decode(_ bytes: [UInt8]) -> [LinkOutput] {
        reader.append(bytes)
        return reader.drain().map(Self.output)
    }

    mutating func flush() -> [LinkOutput] {
        var out = reader.drain().map(Self.output)
        if let e = reader.finish() { out.append(Self.output(e)) }
        return out
    }

    static func output(_ e: AmberFrameReader.Event) -> LinkOutput {
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
