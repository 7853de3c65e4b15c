/// Parses the data records of an EN 13757-3 variable data structure. Pure and total: every byte
/// string gives records or a typed error. Shared by wired and wireless M-Bus.
public struct RecordParser: Sendable {
    /// EN 13757-3 allows at most 10 DIFEs and 10 VIFEs per record.
    public static let maximumDIFEs = 10
    public static let maximumVIFEs = 10

    public struct Result: Sendable {
        public var records: [DataRecord]
        public var manufacturerData: [UInt8]?
        public var moreRecordsFollow: Bool
    }

    /// Mode 2 (CI 76h): multi-byte values most significant byte first.
    public var mostSignificantByteFirst: Bool
    /// Added to offsets in errors, so they count from the start of the frame.
    public var errorOffsetBase: Int

    public init(mostSignificantByteFirst: Bool = false, errorOffsetBase: Int = 0) {
        self.mostSignificantByteFirst = mostSignificantByteFirst
        self.errorOffsetBase = errorOffsetBase
    }

    public func parse(_ data: [UInt8]) throws(DecodeError) -> Result {
        try data.withUnsafeBufferPointer { (buffer) throws(DecodeError) -> Result in
            try parse(buffer)
        }
    }

    public func parse(_ data: UnsafeBufferPointer<UInt8>) throws(DecodeError) -> Result {
        var records: [DataRecord] = []
        records.reserveCapacity(16)
        // The tables once per structure, not once per record (each global access checks its initialiser).
        let kinds = VIFTable.kinds
        let functions = RecordFunction.all, dataFields = DataField.all
        // Compact profiles are rare; only a structure that holds one is walked again to expand it.
        var holdsCompactProfile = false
        var i = 0
        let n = data.count
        while i < n {
            let recordStart = i
            let dif = data[i]
            i += 1
            if dif == 0x2F { continue }  // idle filler
            if dif == 0x0F || dif == 0x1F {
                return Result(records: holdsCompactProfile ? CompactProfile.expand(records) : records,
                              manufacturerData: Array(data[i..<n]), moreRecordsFollow: dif == 0x1F)
            }
            if dif & 0x0F == 0x0F {
                // 3Fh–6Fh are reserved, 7Fh is a master's global readout request, and 8Fh+ have no meaning.
                throw error(.reservedDIF, recordStart, "DIF \(hex(dif)) is reserved or only valid from master to slave")
            }

            // DIB: DIF and DIFEs
            var storage = UInt64((dif & 0x40) >> 6)
            var tariff: UInt32 = 0
            var subunit: UInt16 = 0
            var ext = dif & 0x80 != 0
            var difeCount = 0
            while ext {
                guard i < n else { throw error(.prematureEndAtDIF, i, "the record at byte \(recordStart + errorOffsetBase) ends inside its DIFEs") }
                guard difeCount < Self.maximumDIFEs else { throw error(.tooManyDIFEs, i, "more than \(Self.maximumDIFEs) DIFEs in one record") }
                let dife = data[i]
                i += 1
                storage |= UInt64(dife & 0x0F) << (1 + 4 * UInt64(difeCount))
                tariff |= UInt32((dife & 0x30) >> 4) << (2 * UInt32(difeCount))
                subunit |= UInt16((dife & 0x40) >> 6) << UInt16(difeCount)
                difeCount += 1
                ext = dife & 0x80 != 0
            }
            let function = functions[Int((dif & 0x30) >> 4)]
            let dataField = dataFields[Int(dif & 0x0F)]

            // VIB: VIF and VIFEs
            guard i < n else { throw error(.prematureEndAtVIF, i, "the record at byte \(recordStart + errorOffsetBase) has no VIF") }
            let vifByte = data[i]
            i += 1
            var vifeCount = 0
            var vifCode: VIFCode
            // How the data reads (number, date, text) is all the parser needs to know of the VIF's meaning.
            var kind = ValueKind.numeric
            var extended = vifByte & 0x80 != 0
            switch vifByte & 0x7F {
            case 0x7B, 0x7D:
                guard vifByte & 0x80 != 0 else {
                    // 7Bh/7Dh without the extension bit are not defined; report them, do not guess.
                    vifCode = .primary(vifByte)
                    break
                }
                guard i < n else { throw error(.prematureEndAtVIF, i, "VIF \(hex(vifByte)) must be followed by a VIFE") }
                let code = data[i]
                i += 1
                vifeCount += 1
                extended = code & 0x80 != 0
                vifCode = vifByte == 0xFB ? .extensionFB(code & 0x7F) : .extensionFD(code & 0x7F)
                kind = kinds[(vifByte == 0xFB ? VIFTable.extensionFBBase : VIFTable.extensionFDBase) + Int(code & 0x7F)]
            case 0x7C:
                // Plain-text unit: length and ASCII (reversed) follow the VIF, before any VIFE.
                guard i < n else { throw error(.prematureEndAtVIF, i, "plain-text VIF without its length byte") }
                let length = Int(data[i])
                guard length <= 0xBF else {
                    throw error(.invalidPlainTextVIF, i, "plain-text VIF length \(hex(data[i])) is not a text length")
                }
                i += 1
                guard i + length <= n else {
                    throw error(.prematureEndAtVIF, i, "plain-text VIF announces \(length) characters, \(n - i) bytes remain")
                }
                let text = Self.reversedText(data, i, length, reversed: !mostSignificantByteFirst)
                i += length
                vifCode = .plainText(text)
            case 0x7E:
                vifCode = .any
            case 0x7F:
                vifCode = .manufacturerSpecific
            default:
                vifCode = .primary(vifByte & 0x7F)
                kind = kinds[Int(vifByte & 0x7F)]
            }

            var vifeCodes = VIFECodes()
            while extended {
                guard i < n else { throw error(.prematureEndAtVIF, i, "the record at byte \(recordStart + errorOffsetBase) ends inside its VIFEs") }
                guard vifeCount < Self.maximumVIFEs else { throw error(.tooManyVIFEs, i, "more than \(Self.maximumVIFEs) VIFEs in one record") }
                let vife = data[i]
                i += 1
                vifeCount += 1
                extended = vife & 0x80 != 0
                vifeCodes.append(vife & 0x7F)
            }
            // What the codes mean is read from them when asked (DataRecord.modifiers); the parser only needs
            // to know whether one makes this record a compact profile (EN 13757-3 Annex F).
            // (7Fh/FFh is the manufacturer VIF; compared as a byte, since comparing VIFCodes copies them.)
            let compactProfile = !vifeCodes.isEmpty
                && CompactProfile.kind(vifeCodes, manufacturerVIF: vifByte & 0x7F == 0x7F) != nil
            if compactProfile { holdsCompactProfile = true }

            // Data
            let value: RecordValue
            if let size = dataField.size {
                guard i + size <= n else {
                    throw error(.prematureEndAtData, i, "the record at byte \(recordStart + errorOffsetBase) needs \(size) data bytes, \(n - i) remain")
                }
                value = decodeFixed(data, i, dataField, kind)
                i += size
            } else {
                // Variable length (LVAR)
                guard i < n else { throw error(.prematureEndAtData, i, "variable-length record without its LVAR byte") }
                let lvar = data[i]
                let lvarOffset = i
                i += 1
                let length: Int
                switch lvar {
                case 0x00...0xBF: length = Int(lvar)
                case 0xC0...0xC9: length = Int(lvar - 0xC0)
                case 0xD0...0xD9: length = Int(lvar - 0xD0)
                case 0xE0...0xEF: length = Int(lvar - 0xE0)
                case 0xF0...0xF4: length = 4 * Int(lvar - 0xEC)
                case 0xF5: length = 48
                case 0xF6: length = 64
                default: throw error(.reservedLVAR, lvarOffset, "LVAR \(hex(lvar)) is reserved")
                }
                guard i + length <= n else {
                    throw error(.prematureEndAtData, i, "variable-length data announces \(length) bytes, \(n - i) remain")
                }
                // A compact profile's data is a header and packed elements, never text: kept as sent and
                // expanded into records below (CompactProfile).
                if lvar <= 0xBF && compactProfile {
                    value = .bytes(Array(data[i..<(i + length)]))
                } else {
                    value = decodeVariable(data, i, length, lvar, kind)
                }
                i += length
            }

            records.append(DataRecord(
                offset: recordStart, function: function, storageNumber: storage, tariff: tariff, subunit: subunit,
                dataField: dataField, vif: vifCode, vifeCodes: vifeCodes, value: value))
        }
        return Result(records: holdsCompactProfile ? CompactProfile.expand(records) : records,
                      manufacturerData: nil, moreRecordsFollow: false)
    }

    @inline(__always) private func error(_ code: DecodeError.Code, _ offset: Int, _ message: String) -> DecodeError {
        DecodeError(code: code, offset: offset + errorOffsetBase, message: message)
    }

    // MARK: - Values

    /// Reads `size` bytes as an unsigned integer in wire order.
    @inline(__always) private func unsigned(_ d: UnsafeBufferPointer<UInt8>, _ at: Int, _ size: Int) -> UInt64 {
        var v: UInt64 = 0
        if mostSignificantByteFirst {
            for k in 0..<size { v = v << 8 | UInt64(d[at + k]) }
        } else {
            var k = size - 1
            while k >= 0 {
                v = v << 8 | UInt64(d[at + k])
                k -= 1
            }
        }
        return v
    }

    @inline(__always) private func signed(_ d: UnsafeBufferPointer<UInt8>, _ at: Int, _ size: Int) -> Int64 {
        let u = unsigned(d, at, size)
        let shift = UInt64(64 - 8 * size)
        return Int64(bitPattern: u << shift) >> Int64(shift)
    }

    /// BCD in wire order; top nibble Fh makes it negative (EN 13757-3, Annex A, type A).
    private func bcd(_ d: UnsafeBufferPointer<UInt8>, _ at: Int, _ size: Int) -> RecordValue {
        // Up to 8 bytes (every fixed BCD field, most LVAR ones), all digits at once: read as one number,
        // most significant digit on top, checked and converted in registers.
        if (1...8).contains(size) {
            var x = unsigned(d, at, size)
            let top = UInt64(8 * size - 4)
            let negative = (x >> top) & 0xF == 0xF
            if negative { x &= ~(0xF << top) }
            // A digit above 9 has bit 3 set and bit 2 or bit 1: shifted onto bit 3 of the same digit.
            if x & (x << 1 | x << 2) & 0x8888_8888_8888_8888 == 0 {
                // Pairs of digits into bytes, bytes into 16-bit lanes, then 32, then the whole.
                x = (x & 0x0F0F_0F0F_0F0F_0F0F) &+ (x >> 4 & 0x0F0F_0F0F_0F0F_0F0F) &* 10
                x = (x & 0x00FF_00FF_00FF_00FF) &+ (x >> 8 & 0x00FF_00FF_00FF_00FF) &* 100
                x = (x & 0x0000_FFFF_0000_FFFF) &+ (x >> 16 & 0x0000_FFFF_0000_FFFF) &* 10_000
                x = (x & 0xFFFF_FFFF) &+ (x >> 32) &* 100_000_000
                // At most 16 digits: below 10^16, well inside Int64.
                let value = Int64(bitPattern: x)
                return .bcd(negative ? -value : value)
            }
        }
        var value: Int64 = 0
        var negative = false
        var valid = true
        for k in 0..<size {
            let b = mostSignificantByteFirst ? d[at + k] : d[at + size - 1 - k]
            var hi = b >> 4
            let lo = b & 0x0F
            if k == 0 && hi == 0xF {
                negative = true
                hi = 0
            }
            if hi > 9 || lo > 9 { valid = false }
            value = value * 100 + Int64(hi) * 10 + Int64(lo)
        }
        guard valid else {
            var digits: [UInt8] = []
            // libmbus's reading of such digits: a high nibble above 9 counts 0, a low nibble its value.
            var lenient: Int64 = 0
            for k in 0..<size {
                let b = mostSignificantByteFirst ? d[at + k] : d[at + size - 1 - k]
                digits.append(b)
                lenient = lenient &* 10 &+ (b >> 4 < 0xA ? Int64(b >> 4) : 0)
                lenient = lenient &* 10 &+ Int64(b & 0x0F)
            }
            return .invalidBCD(digits: Hex.encode(digits), lenient: negative ? -lenient : lenient)
        }
        return .bcd(negative ? -value : value)
    }

    private func decodeFixed(_ d: UnsafeBufferPointer<UInt8>, _ at: Int, _ field: DataField, _ kind: ValueKind) -> RecordValue {
        // Dates and times are compound types chosen by VIF and size, not numbers.
        switch (kind, field) {
        case (.date, .int16):
            return .dateTime(MBusDateTime.typeG(d[at], d[at + 1]))
        case (.dateTime, .int32), (.date, .int32):
            return .dateTime(MBusDateTime.typeF(slice(d, at, 4)))
        case (.dateTime, .int48):
            return .dateTime(MBusDateTime.typeI(slice(d, at, 6)))
        case (.dateTime, .int24), (.timeOfDay, .int24):
            return .timeText(MBusDateTime.typeJ(slice(d, at, 3)))
        case (.daylightSaving, .int32):
            return .timeText(MBusDateTime.typeK(slice(d, at, 4)))
        default:
            break
        }
        switch field {
        case .noData, .selectionForReadout, .variableLength, .special:
            return .none
        case .int8: return .integer(signed(d, at, 1))
        case .int16: return .integer(signed(d, at, 2))
        case .int24: return .integer(signed(d, at, 3))
        case .int32: return .integer(signed(d, at, 4))
        case .int48: return .integer(signed(d, at, 6))
        case .int64: return .integer(signed(d, at, 8))
        case .real32:
            return .real(Double(Float(bitPattern: UInt32(truncatingIfNeeded: unsigned(d, at, 4)))))
        case .bcd2: return bcd(d, at, 1)
        case .bcd4: return bcd(d, at, 2)
        case .bcd6: return bcd(d, at, 3)
        case .bcd8: return bcd(d, at, 4)
        case .bcd12: return bcd(d, at, 6)
        }
    }

    private func decodeVariable(_ d: UnsafeBufferPointer<UInt8>, _ at: Int, _ length: Int, _ lvar: UInt8, _ kind: ValueKind) -> RecordValue {
        switch lvar {
        case 0x00...0xBF:
            if kind == .listeningWindow { return .timeText(MBusDateTime.typeL(slice(d, at, length))) }
            return .text(Self.reversedText(d, at, length, reversed: !mostSignificantByteFirst))
        case 0xC0...0xC9, 0xD0...0xD9:
            if length == 0 { return .bcd(0) }
            let v = bcd(d, at, length)
            if lvar >= 0xD0, case .bcd(let x) = v { return .bcd(-x) }
            return v
        default:
            // Type M: date and time (type I) followed by a signed offset from UTC in 15-minute steps.
            if kind == .dateTime, length == 7 {
                var t = MBusDateTime.typeI(slice(d, at, 6))
                t.utcOffsetMinutes = Int(Int8(bitPattern: d[at + 6])) * 15
                return .dateTime(t)
            }
            if length > 0 && length <= 8 {
                return .integer(signed(d, at, length))
            }
            return .bytes(Array(d[at..<(at + length)]))
        }
    }

    @inline(__always) private func slice(_ d: UnsafeBufferPointer<UInt8>, _ at: Int, _ size: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: d[at..<(at + size)])
    }

    /// Text in LVAR fields and plain-text VIFs is sent last character first in mode 1.
    static func reversedText(_ d: UnsafeBufferPointer<UInt8>, _ at: Int, _ length: Int, reversed: Bool) -> String {
        var chars = [UInt8](repeating: 0, count: length)
        for k in 0..<length {
            chars[k] = reversed ? d[at + length - 1 - k] : d[at + k]
        }
        // Meters pad with NUL or spaces; neither belongs in the value.
        while let last = chars.last, last == 0 || last == 0x20 { chars.removeLast() }
        while let first = chars.first, first == 0 { chars.removeFirst() }
        return String(decoding: chars, as: UTF8.self)
    }
}
