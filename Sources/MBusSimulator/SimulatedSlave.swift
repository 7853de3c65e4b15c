import Drivers

/// One meter on the simulated bus: its primary address, the telegrams it answers REQ_UD2 with, and
/// how it misbehaves.
///
/// The frames are kept exactly as they go on the wire: the A field is set to the primary address and
/// the header carries the identification and manufacturer overrides, with the checksum recomputed.
public struct SimulatedSlave: Hashable, Sendable {
    public enum Behaviour: String, Hashable, Sendable, Codable, CaseIterable {
        /// Answers at its response delay (default: 11 bit times + 3 ms).
        case normal
        /// Answers near the end of the response window, unless a delay is given.
        case slow
        /// Listed in the registry but never answers (broken, unpowered or wrongly wired).
        case dead
    }

    /// A name for people: the meter model or the corpus frame it came from.
    public var name: String
    public let primaryAddress: UInt8
    /// RSP_UD frames answered in turn (multi-telegram readout), as sent on the wire.
    public let frames: [[UInt8]]
    /// From the first frame's long header; nil when it has none (CI other than 72h/76h), so the
    /// slave cannot be selected.
    public let secondaryAddress: SecondaryAddress?
    public var behaviour: Behaviour
    /// Time from the end of the request to the first start bit of the answer; nil means the
    /// behaviour's default. Checked against the response window of the bus's baud rate.
    public var responseDelay: Duration?

    /// - Parameters:
    ///   - frames: complete long frames (68 L L 68 ... 16); each but the last should end its records
    ///     with DIF 1Fh, but they are taken as given.
    ///   - identification, manufacturer: rewrite the long header of every frame (CI 72h/76h), to make
    ///     several meters from one capture.
    public init(primaryAddress: UInt8, frames: [[UInt8]], identification: IdentificationNumber? = nil,
                manufacturer: ManufacturerCode? = nil, behaviour: Behaviour = .normal,
                responseDelay: Duration? = nil, name: String? = nil) throws(SimulatorError) {
        guard primaryAddress <= LinkAddress.maximumPrimary else {
            throw SimulatorError(.invalidSlave, "primary address \(primaryAddress) is above 250")
        }
        guard !frames.isEmpty else {
            throw SimulatorError(.invalidSlave, "slave \(primaryAddress) has no response frame")
        }
        var onWire: [[UInt8]] = []
        var firstHeader: SecondaryAddress? = nil
        for (k, bytes) in frames.enumerated() {
            let decoded: MBusFrame
            do {
                decoded = try FrameCodec.decodeComplete(bytes)
            } catch {
                throw SimulatorError(.invalidSlave, "frame \(k + 1) of slave \(primaryAddress) is not a valid frame: \(error)")
            }
            guard case .long(var frame) = decoded else {
                throw SimulatorError(.invalidSlave, "frame \(k + 1) of slave \(primaryAddress) is not a long frame (RSP_UD)")
            }
            frame.address = primaryAddress
            if identification != nil || manufacturer != nil {
                frame = try Self.rewriteHeader(frame, identification: identification, manufacturer: manufacturer,
                                               what: "frame \(k + 1) of slave \(primaryAddress)")
            }
            if k == 0 { firstHeader = SecondaryAddress(longHeaderOf: frame) }
            onWire.append(FrameCodec.encode(.long(frame)))
        }
        self.primaryAddress = primaryAddress
        self.frames = onWire
        self.secondaryAddress = firstHeader
        self.behaviour = behaviour
        self.responseDelay = responseDelay
        self.name = name ?? firstHeader.map { "\($0.manufacturer) \($0.identification)" } ?? "slave \(primaryAddress)"
    }

    /// Frames given as hex text ("68 1F 1F 68 ...", spaces optional).
    public init(primaryAddress: UInt8, hexFrames: [String], identification: IdentificationNumber? = nil,
                manufacturer: ManufacturerCode? = nil, behaviour: Behaviour = .normal,
                responseDelay: Duration? = nil, name: String? = nil) throws(SimulatorError) {
        var frames: [[UInt8]] = []
        for (k, text) in hexFrames.enumerated() {
            do {
                frames.append(try Hex.decode(text))
            } catch {
                throw SimulatorError(.invalidSlave, "frame \(k + 1) of slave \(primaryAddress): \(error)")
            }
        }
        try self.init(primaryAddress: primaryAddress, frames: frames, identification: identification,
                      manufacturer: manufacturer, behaviour: behaviour, responseDelay: responseDelay, name: name)
    }

    /// Writes identification and manufacturer into a long header, in the byte order its CI says.
    static func rewriteHeader(_ frame: LongFrame, identification: IdentificationNumber?, manufacturer: ManufacturerCode?,
                              what: String) throws(SimulatorError) -> LongFrame {
        let msbFirst: Bool
        switch frame.controlInformation {
        case ControlInformation.variableDataLongHeader: msbFirst = false
        case ControlInformation.variableDataMSBFirst: msbFirst = true
        default:
            throw SimulatorError(.invalidSlave, "\(what) has CI \(Hex.encode([frame.controlInformation])), not a long header (72h/76h) to rewrite")
        }
        guard frame.userData.count >= 12 else {
            throw SimulatorError(.invalidSlave, "\(what) is shorter than a long header")
        }
        func put(_ value: UInt32, bytes: Int, at offset: Int, into data: inout [UInt8]) {
            for k in 0..<bytes {
                let shift = UInt32(8 * (msbFirst ? bytes - 1 - k : k))
                data[offset + k] = UInt8(truncatingIfNeeded: value >> shift)
            }
        }
        var out = frame
        if let id = identification { put(id.rawValue, bytes: 4, at: 0, into: &out.userData) }
        if let m = manufacturer { put(UInt32(m.rawValue), bytes: 2, at: 4, into: &out.userData) }
        return out
    }
}
