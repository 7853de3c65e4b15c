/// A CUL or nanoCUL with culfw in wireless M-Bus mode: an ASCII line protocol. The host sends a command and
/// CR LF; the stick answers in lines ending CR LF. `V` gives the version ("V 1.67 nanoCUL868"), `X21`
/// appends link quality and RSSI to every received packet, `brs`, `brt` and `brc` start S, T or C mode
/// (answered "SMODE", "TMODE", "CMODE"; C mode exists in culfw r571 only and also hears T), `brx` stops.
/// A telegram is a line `b` (format A) or `bY` (format B) followed by the whole frame in hex, L-field and
/// every link-layer CRC included, then the LQI and RSSI bytes; RSSI in dBm is the signed byte / 2 − 74.
///
/// Sources, read as facts: culfw r571 (clib/rf_mbus.c, clib/rf_receive.c, via the oktett-8/culfw mirror),
/// FHEM 00_CUL.pm, wmbusmeters src/wmbus_cul.cc and its wiki page nanoCUL.md (two real lines, whose CRCs
/// the tests check).
public enum CUL {
    public static func command(_ text: String) -> [UInt8] { Array((text + "\r\n").utf8) }

    public static func version() -> [UInt8] { command("V") }
    /// Link quality and RSSI after each packet.
    public static func reportSignal() -> [UInt8] { command("X21") }
    public static func stop() -> [UInt8] { command("brx") }

    /// The command and the answer that confirms it for a receive mode; nil for one culfw has no mode for.
    public static func mode(_ m: DongleLinkMode) -> (command: [UInt8], answer: String) {
        switch m {
        case .s1: (command("brs"), "SMODE")
        case .t1: (command("brt"), "TMODE")
        // culfw's C mode hears C1 (both formats) and T1.
        case .c1, .c1t1: (command("brc"), "CMODE")
        }
    }

    public static func rssiDBm(_ raw: UInt8) -> Double { Double(Int8(bitPattern: raw)) / 2 - 74 }

    public static func rawRSSI(dBm: Double) -> UInt8 {
        let v = ((dBm.isFinite ? dBm : -128) + 74) * 2
        return UInt8(bitPattern: Int8(clamping: Int(v.rounded())))
    }

    /// A telegram line's content after `b`/`bY`: the frame with its CRCs checked and removed (L-first, L
    /// counting the bytes after it) and the RSSI. The two signal bytes are recognised by the length the
    /// L-field gives, so a stick without `X21` works too.
    public static func telegram(line: String, lineNumber: Int = 0) throws(DongleError) -> (bytes: [UInt8], rssiDBm: Double?) {
        var text = Substring(line)
        guard text.first == "b" else { throw DongleError(.invalidLine, "culfw line \(lineNumber) is not a telegram (no 'b')", offset: lineNumber) }
        text = text.dropFirst()
        var format = WMBusFrameFormat.a
        if text.first == "Y" {
            format = .b
            text = text.dropFirst()
        }
        let all: [UInt8]
        do throws(Hex.ParseError) { all = try Hex.decode(text) } catch {
            throw DongleError(.invalidLine, "culfw line \(lineNumber): telegram hex: \(error.reason)", offset: lineNumber)
        }
        guard let l = all.first, l >= 9 else {
            throw DongleError(.invalidLine, "culfw line \(lineNumber): a telegram of \(all.count) bytes cannot hold L, C, M and A", offset: lineNumber)
        }
        let frameLength = format == .a ? WMBusFrameCodec.formatALength(l: Int(l)) : Int(l) + 1
        let signal: (lqi: UInt8, rssi: UInt8)?
        switch all.count - frameLength {
        case 0: signal = nil
        case 2: signal = (all[all.count - 2], all[all.count - 1])
        default:
            throw DongleError(.invalidLength, "culfw line \(lineNumber): the L-field gives a \(frameLength)-byte frame (format \(format == .a ? "A" : "B")), the line holds \(all.count) bytes: cut short (nanoCULs truncate telegrams of more than about 148 bytes)", offset: lineNumber)
        }
        let wire = Array(all.prefix(frameLength))
        let frame: WMBusFrame
        do { frame = try WMBusFrameCodec.decode(wire, format: format) } catch {
            throw DongleError(.checksumMismatch, "culfw line \(lineNumber): \(error.message)", offset: lineNumber)
        }
        let address = frame.addressBytes.count == 8 ? frame.addressBytes : frame.address.wireBytes
        let stripped = [UInt8(truncatingIfNeeded: 9 + frame.payload.count), frame.control.rawValue] + address + frame.payload
        return (stripped, signal.map { rssiDBm($0.rssi) })
    }
}

/// Splits a culfw byte stream into lines (CR LF, LF or CR), bounded: a line without an end longer than
/// `maximumLine` is reported and dropped.
public struct CULLineReader: DongleStreamDecoder {
    public enum Event: Hashable, Sendable {
        case line(String)
        case skipped(bytes: [UInt8], reason: DongleError)
    }

    /// A format A frame of L = 255 is 291 bytes: 582 hex digits, the prefix and the signal bytes.
    public static let maximumLine = 600

    private var current: [UInt8] = []
    private var pending: [Event] = []
    private var overlong = false

    public init() {}

    public var pendingByteCount: Int { current.count }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        for b in bytes {
            if b == 0x0D || b == 0x0A {
                if overlong {
                    overlong = false
                } else if !current.isEmpty {
                    // Text from a serial line: anything not printable ASCII makes it garbage, not a line.
                    if current.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
                        pending.append(.line(String(decoding: current, as: UTF8.self)))
                    } else {
                        pending.append(.skipped(bytes: current, reason: DongleError(.noise, "a culfw line with \(current.filter { $0 < 0x20 || $0 >= 0x7F }.count) bytes that are not printable text")))
                    }
                }
                current.removeAll(keepingCapacity: true)
                continue
            }
            guard !overlong else { continue }
            current.append(b)
            if current.count > Self.maximumLine {
                pending.append(.skipped(bytes: current, reason: DongleError(.invalidLength, "a culfw line longer than \(Self.maximumLine) bytes without an end")))
                current.removeAll(keepingCapacity: true)
                overlong = true
            }
        }
    }

    public mutating func next() -> Event? { pending.isEmpty ? nil : pending.removeFirst() }

    public mutating func finish() -> Event? {
        if let e = next() { return e }
        guard !current.isEmpty else { return nil }
        defer { current.removeAll() }
        return .skipped(bytes: current, reason: DongleError(.truncated, "the stream ended inside a culfw line"))
    }
}
