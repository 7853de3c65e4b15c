/// One line of rtl_wmbus output (the software-defined receiver for an RTL2832U stick):
///
///     T1;1;1;2019-02-09 07:14:18.000;117;102;94740459;0x4944...
///
/// Fields: mode (T1, C1, S1), CRC ok (0/1), decoding ok (3-out-of-6 for T1, block format for C1; 0/1),
/// timestamp (local time of the receiving host, taken as UTC here), packet RSSI and current RSSI (relative
/// dB, not calibrated to dBm), the meter id, and the telegram in hex without CRCs, L-field first.
public struct RTLWMBusLine: Hashable, Sendable {
    public var linkMode: WMBusLinkMode
    public var crcOK: Bool
    public var decodingOK: Bool
    public var timestamp: DongleTimestamp
    public var packetRSSI: Double
    public var currentRSSI: Double
    public var meterID: String
    public var bytes: [UInt8]

    /// Parses one line (without its line break). `lineNumber` goes into errors.
    public static func parse(_ line: some StringProtocol, lineNumber: Int) throws(DongleError) -> RTLWMBusLine {
        let fields = String(line).split(separator: ";", omittingEmptySubsequences: false).map { $0.trimmingSpaces() }
        func fail(_ why: String) -> DongleError {
            DongleError(.invalidLine, "rtl_wmbus line \(lineNumber): \(why); expected MODE;CRC_OK;DECODE_OK;YYYY-MM-DD hh:mm:ss.fff;RSSI;RSSI;ID;0xHEX", offset: lineNumber)
        }
        guard fields.count == 8 else { throw fail("\(fields.count) fields instead of 8") }
        let mode: WMBusLinkMode
        switch fields[0].uppercased() {
        case "T1": mode = .t1
        case "C1": mode = .c1
        case "S1": mode = .s1
        default: throw fail("mode \"\(fields[0])\" is not T1, C1 or S1")
        }
        func flag(_ s: Substring, _ name: String) throws(DongleError) -> Bool {
            switch s {
            case "0": return false
            case "1": return true
            default: throw fail("\(name) \"\(s)\" is not 0 or 1")
            }
        }
        let crc = try flag(fields[1], "CRC flag")
        let decoding = try flag(fields[2], "decoding flag")
        guard let timestamp = DongleTimestamp(text: fields[3]) else { throw fail("timestamp \"\(fields[3])\" is not YYYY-MM-DD hh:mm:ss.fff") }
        guard let packet = Double(fields[4]), packet.isFinite else { throw fail("packet RSSI \"\(fields[4])\" is not a number") }
        guard let current = Double(fields[5]), current.isFinite else { throw fail("current RSSI \"\(fields[5])\" is not a number") }
        let hexText = fields[7].hasPrefix("0x") || fields[7].hasPrefix("0X") ? fields[7].dropFirst(2) : fields[7]
        guard !hexText.isEmpty, hexText.utf8.allSatisfy({ Self.isHexDigit($0) }) else {
            throw fail("telegram \"\(fields[7].prefix(40))\" is not 0x and hex digits")
        }
        let bytes: [UInt8]
        do throws(Hex.ParseError) {
            bytes = try Hex.decode(hexText)
        } catch {
            throw fail("telegram hex: \(error.reason)")
        }
        guard bytes.count >= 10 else { throw fail("telegram of \(bytes.count) bytes cannot hold L, C, M and A") }
        return RTLWMBusLine(linkMode: mode, crcOK: crc, decodingOK: decoding, timestamp: timestamp, packetRSSI: packet,
                            currentRSSI: current, meterID: String(fields[6]), bytes: bytes)
    }

    static func isHexDigit(_ c: UInt8) -> Bool {
        (48...57).contains(c) || (65...70).contains(c) || (97...102).contains(c)
    }

    /// The telegram, when rtl_wmbus checked its CRCs; nil for a line with a CRC or decoding failure.
    public func receivedTelegram(receiver: String = "rtl_wmbus") -> ReceivedTelegram? {
        guard crcOK && decodingOK else { return nil }
        return ReceivedTelegram(bytes: bytes, rssiDBm: nil, receivedAt: timestamp, linkMode: linkMode, receiver: receiver)
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}

/// Splits a byte stream (stdin, a pipe from rtl_wmbus or `rtl_433 -F json`) into lines and parses them: a
/// line starting with `{` as rtl_433 JSON (`RTL433JSON`), any other as rtl_wmbus. Blank lines and
/// lines starting with `#` are ignored; rtl_wmbus' own diagnostics on stdout are reported as invalid lines.
public struct RTLWMBusLineReader: DongleStreamDecoder {
    public enum Event: Hashable, Sendable {
        case line(RTLWMBusLine)
        case invalid(DongleError)
    }

    private var pending: [UInt8] = []
    /// Bytes of `pending` already searched for a line break, so byte-by-byte input is not rescanned.
    private var scanned = 0
    private var lineNumber = 0
    private var discardingLongLine = false
    /// Longer lines are reported and dropped (a telegram is at most 256 bytes, 512 hex digits).
    public static let maximumLineLength = 4096

    public init() {}

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        pending.append(contentsOf: bytes)
    }

    public mutating func next() -> Event? {
        while true {
            guard let newline = pending[scanned...].firstIndex(of: UInt8(ascii: "\n")) else {
                scanned = pending.count
                if pending.count > Self.maximumLineLength && !discardingLongLine {
                    discardingLongLine = true
                    pending.removeAll(keepingCapacity: true)
                    scanned = 0
                    lineNumber += 1
                    return .invalid(DongleError(.invalidLine, "rtl_wmbus line \(lineNumber) is longer than \(Self.maximumLineLength) bytes: not rtl_wmbus output?", offset: lineNumber))
                }
                if discardingLongLine {
                    pending.removeAll(keepingCapacity: true)
                    scanned = 0
                }
                return nil
            }
            let line = Array(pending[..<newline])
            pending.removeSubrange(...newline)
            scanned = 0
            if discardingLongLine {
                discardingLongLine = false
                continue
            }
            lineNumber += 1
            // The same verdict as when the line arrives in pieces without its break.
            if line.count > Self.maximumLineLength {
                return .invalid(DongleError(.invalidLine, "rtl_wmbus line \(lineNumber) is longer than \(Self.maximumLineLength) bytes: not rtl_wmbus output?", offset: lineNumber))
            }
            if let e = event(line) { return e }
        }
    }

    private func event(_ line: [UInt8]) -> Event? {
        let text = String(decoding: line, as: UTF8.self)
        let trimmed = Substring(text).trimmingSpaces()
        if trimmed.isEmpty || trimmed.hasPrefix("#") { return nil }
        do {
            // rtl_433 -F json: one object per line; other decoders' lines are skipped.
            if trimmed.hasPrefix("{") { return try RTL433JSON.parse(trimmed, lineNumber: lineNumber).map(Event.line) }
            return .line(try RTLWMBusLine.parse(trimmed, lineNumber: lineNumber))
        } catch {
            return .invalid(error)
        }
    }

    /// At the end of the stream: a last line without a line break is still a line.
    public mutating func finish() -> Event? {
        if discardingLongLine {
            discardingLongLine = false
            pending.removeAll()
            scanned = 0
            return nil
        }
        guard !pending.isEmpty else { return nil }
        let line = pending
        pending.removeAll()
        scanned = 0
        lineNumber += 1
        return event(line)
    }
}
