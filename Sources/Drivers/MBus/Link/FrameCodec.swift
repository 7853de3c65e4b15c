/// Why bytes are not a valid EN 13757-2 frame.
///
/// Codes are static members, so adding one never breaks a caller that switches on the ones it knows.
public struct FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// The first byte is not E5h, 10h or 68h.
        public static let invalidStartByte = Code(name: "invalid_start_byte")
        /// The two L fields of a long frame differ, or the second 68h is missing.
        public static let invalidHeader = Code(name: "invalid_header")
        /// L is below 3 (C, A and CI are mandatory).
        public static let invalidLength = Code(name: "invalid_length")
        /// The checksum byte does not match the arithmetic sum.
        public static let checksumMismatch = Code(name: "checksum_mismatch")
        /// The byte after the checksum is not 16h.
        public static let missingStopByte = Code(name: "missing_stop_byte")
    }

    public let code: Code
    /// Byte offset, from the frame's first byte, where the problem was found.
    public let offset: Int
    public let message: String

    public var description: String { "\(message) (at byte \(offset))" }
}

/// What the frame decoder found at the start of a buffer.
public enum FrameDecodeResult: Hashable, Sendable {
    /// A complete frame and the number of bytes it used.
    case frame(MBusFrame, consumed: Int)
    /// The buffer holds the start of a frame; at least this many more bytes are needed.
    case needMoreBytes(Int)
}

/// EN 13757-2 frame codec. Pure: no I/O and no state. Serial transports and simulators feed it.
public enum FrameCodec {
    /// Decodes the frame at the start of `bytes`.
    ///
    /// A partial frame answers `.needMoreBytes(n)`, so the caller can keep reading without guessing.
    public static func decode(_ bytes: some RandomAccessCollection<UInt8>) throws(FrameError) -> FrameDecodeResult {
        switch try scan(bytes) {
        case .ack: return .frame(.ack, consumed: 1)
        case .short(let f): return .frame(.short(f), consumed: 5)
        case .long(let control, let address, let ci, let userData, let consumed):
            let start = bytes.index(bytes.startIndex, offsetBy: userData.lowerBound)
            let end = bytes.index(bytes.startIndex, offsetBy: userData.upperBound)
            return .frame(.long(LongFrame(control: control, address: address, controlInformation: ci,
                                          userData: Array(bytes[start..<end]))), consumed: consumed)
        case .needMoreBytes(let n): return .needMoreBytes(n)
        }
    }

    /// What `scan` found: a frame, with a long frame's user data as a range of offsets into the input
    /// (so a caller that only reads it need not copy it), or how many bytes are missing.
    enum Scan {
        case ack
        case short(ShortFrame)
        case long(control: ControlField, address: UInt8, controlInformation: UInt8, userData: Range<Int>, consumed: Int)
        case needMoreBytes(Int)
    }

    /// Checks the frame at the start of `bytes` (start byte, lengths, checksum, stop byte) without
    /// copying anything out of it.
    static func scan(_ bytes: some RandomAccessCollection<UInt8>) throws(FrameError) -> Scan {
        guard let first = bytes.first else { return .needMoreBytes(1) }
        let base = bytes.startIndex
        @inline(__always) func at(_ i: Int) -> UInt8 { bytes[bytes.index(base, offsetBy: i)] }
        let count = bytes.count

        switch first {
        case MBusFrame.ackByte:
            return .ack

        case MBusFrame.shortStart:
            guard count >= 5 else { return .needMoreBytes(5 - count) }
            let c = at(1), a = at(2)
            let sum = c &+ a
            guard at(3) == sum else {
                throw FrameError(
                    code: .checksumMismatch, offset: 3,
                    message: "short frame checksum is \(hex(at(3))), the bytes add up to \(hex(sum))")
            }
            guard at(4) == MBusFrame.stop else {
                throw FrameError(code: .missingStopByte, offset: 4,
                                 message: "short frame ends with \(hex(at(4))) instead of 16")
            }
            return .short(ShortFrame(control: ControlField(rawValue: c), address: a))

        case MBusFrame.longStart:
            if count >= 2, Int(at(1)) < 3 {
                throw FrameError(code: .invalidLength, offset: 1,
                                 message: "long frame length \(at(1)) is below 3 (C, A and CI are mandatory)")
            }
            guard count >= 4 else { return .needMoreBytes(4 - count) }
            let l = Int(at(1))
            guard at(2) == at(1) else {
                throw FrameError(code: .invalidHeader, offset: 2,
                                 message: "long frame length fields differ: \(at(1)) and \(at(2))")
            }
            guard at(3) == MBusFrame.longStart else {
                throw FrameError(code: .invalidHeader, offset: 3,
                                 message: "long frame header has \(hex(at(3))) where the second 68 belongs")
            }
            let total = MBusFrame.encodedSize(longLength: l)
            guard count >= total else { return .needMoreBytes(total - count) }
            var sum: UInt8 = 0
            var i = bytes.index(base, offsetBy: 4)
            let end = bytes.index(i, offsetBy: l)
            while i != end {
                sum &+= bytes[i]
                bytes.formIndex(after: &i)
            }
            let checksum = at(4 + l)
            guard checksum == sum else {
                throw FrameError(code: .checksumMismatch, offset: 4 + l,
                                 message: "long frame checksum is \(hex(checksum)), the bytes add up to \(hex(sum))")
            }
            guard at(5 + l) == MBusFrame.stop else {
                throw FrameError(code: .missingStopByte, offset: 5 + l,
                                 message: "long frame ends with \(hex(at(5 + l))) instead of 16")
            }
            return .long(control: ControlField(rawValue: at(4)), address: at(5), controlInformation: at(6),
                         userData: 7..<(4 + l), consumed: total)

        default:
            throw FrameError(code: .invalidStartByte, offset: 0,
                             message: "\(hex(first)) cannot start a frame (expected E5, 10 or 68)")
        }
    }

    /// Decodes a buffer that must hold exactly one frame (a captured telegram, a test vector).
    public static func decodeComplete(_ bytes: [UInt8]) throws(FrameError) -> MBusFrame {
        switch try decode(bytes) {
        case .frame(let frame, let consumed):
            guard consumed == bytes.count else {
                throw FrameError(
                    code: .invalidLength, offset: consumed,
                    message: "\(bytes.count - consumed) bytes follow the end of the frame")
            }
            return frame
        case .needMoreBytes(let n):
            throw FrameError(
                code: .invalidLength, offset: bytes.count,
                message: "the frame is truncated: \(n) more bytes expected")
        }
    }

    /// Encodes a frame for the wire.
    ///
    /// A long frame with more than 252 bytes of user data cannot exist; it is a programming error.
    public static func encode(_ frame: MBusFrame) -> [UInt8] {
        switch frame {
        case .ack:
            return [MBusFrame.ackByte]
        case .short(let f):
            return [MBusFrame.shortStart, f.control.rawValue, f.address, f.control.rawValue &+ f.address, MBusFrame.stop]
        case .long(let f):
            precondition(f.userData.count <= MBusFrame.maximumLength - 3, "M-Bus user data is at most 252 bytes")
            let l = UInt8(3 + f.userData.count)
            var out: [UInt8] = []
            out.reserveCapacity(Int(l) + 6)
            out.append(contentsOf: [MBusFrame.longStart, l, l, MBusFrame.longStart,
                                    f.control.rawValue, f.address, f.controlInformation])
            out.append(contentsOf: f.userData)
            var sum = f.control.rawValue &+ f.address &+ f.controlInformation
            for b in f.userData { sum &+= b }
            out.append(sum)
            out.append(MBusFrame.stop)
            return out
        }
    }
}

@inline(__always) func hex(_ b: UInt8) -> String { Hex.encode([b]) }

extension MBusFrame {
    /// The frame as bytes for the wire.
    public var encoded: [UInt8] { FrameCodec.encode(self) }
}
