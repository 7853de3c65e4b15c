/// Encodes data records and telegrams: the inverse of `RecordParser` and `TelegramDecoder`.
///
/// Bus simulators use it to answer like a meter, and property tests use it to check that decoding
/// gives back what was encoded.
public enum RecordEncoder {
    /// Why a record cannot be encoded as given.
    public struct EncodeError: Error, Hashable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// A record to encode: the fields of `DataRecord` that are on the wire.
    public struct Spec: Hashable, Sendable {
        public var function: RecordFunction
        public var storageNumber: UInt64
        public var tariff: UInt32
        public var subunit: UInt16
        public var dataField: DataField
        public var vif: VIFCode
        /// Combinable VIFE codes (without extension bits).
        public var vifeCodes: [UInt8]
        public var value: RecordValue

        public init(function: RecordFunction = .instantaneous, storageNumber: UInt64 = 0, tariff: UInt32 = 0,
                    subunit: UInt16 = 0, dataField: DataField, vif: VIFCode, vifeCodes: [UInt8] = [], value: RecordValue) {
            self.function = function
            self.storageNumber = storageNumber
            self.tariff = tariff
            self.subunit = subunit
            self.dataField = dataField
            self.vif = vif
            self.vifeCodes = vifeCodes
            self.value = value
        }
    }

    public static func encode(_ spec: Spec, mostSignificantByteFirst msb: Bool = false) throws(EncodeError) -> [UInt8] {
        var out: [UInt8] = []
        // DIB
        var dif = spec.function.rawValue << 4 | spec.dataField.rawValue
        if spec.storageNumber & 1 != 0 { dif |= 0x40 }
        var difes: [UInt8] = []
        var storage = spec.storageNumber >> 1
        var tariff = spec.tariff
        var subunit = spec.subunit
        while storage != 0 || tariff != 0 || subunit != 0 {
            guard difes.count < RecordParser.maximumDIFEs else {
                throw EncodeError(message: "storage \(spec.storageNumber), tariff \(spec.tariff), subunit \(spec.subunit) need more than 10 DIFEs")
            }
            difes.append(UInt8(storage & 0x0F) | UInt8(tariff & 0x03) << 4 | UInt8(subunit & 0x01) << 6)
            storage >>= 4
            tariff >>= 2
            subunit >>= 1
        }
        if !difes.isEmpty { dif |= 0x80 }
        out.append(dif)
        for (k, d) in difes.enumerated() { out.append(k < difes.count - 1 ? d | 0x80 : d) }

        // VIB
        let hasVIFEs = !spec.vifeCodes.isEmpty
        let ext: UInt8 = hasVIFEs ? 0x80 : 0
        switch spec.vif {
        case .primary(let c):
            guard c < 0x7B else { throw EncodeError(message: "primary VIF \(hex(c)) is an escape, use the matching VIFCode") }
            out.append(c | ext)
        case .extensionFB(let c):
            out.append(0xFB)
            out.append(c & 0x7F | ext)
        case .extensionFD(let c):
            out.append(0xFD)
            out.append(c & 0x7F | ext)
        case .plainText(let text):
            let chars = Array(text.utf8)
            guard chars.count <= 0xBF else { throw EncodeError(message: "plain-text unit longer than 191 characters") }
            out.append(0x7C | ext)
            out.append(UInt8(chars.count))
            out.append(contentsOf: msb ? chars : chars.reversed())
        case .manufacturerSpecific:
            out.append(0x7F | ext)
        case .any:
            out.append(0x7E | ext)
        }
        let vifeLimit = RecordParser.maximumVIFEs - (spec.vif.usesExtensionTable ? 1 : 0)
        guard spec.vifeCodes.count <= vifeLimit else { throw EncodeError(message: "more than 10 VIFEs") }
        for (k, c) in spec.vifeCodes.enumerated() {
            out.append(c & 0x7F | (k < spec.vifeCodes.count - 1 ? 0x80 : 0))
        }

        // Data
        try appendValue(spec.value, field: spec.dataField, msb: msb, to: &out)
        return out
    }

    static func appendValue(_ value: RecordValue, field: DataField, msb: Bool, to out: inout [UInt8]) throws(EncodeError) {
        func bytes(_ v: UInt64, _ size: Int) {
            var le: [UInt8] = []
            for k in 0..<size { le.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
            out.append(contentsOf: msb ? le.reversed() : le)
        }
        switch (field, value) {
        case (.noData, .none), (.selectionForReadout, .none):
            return
        case (.int8, .integer(let v)), (.int16, .integer(let v)), (.int24, .integer(let v)),
             (.int32, .integer(let v)), (.int48, .integer(let v)), (.int64, .integer(let v)):
            let size = field.size!
            if size < 8 {
                let limit = Int64(1) << (8 * Int64(size) - 1)
                guard v >= -limit, v < limit else { throw EncodeError(message: "\(v) does not fit \(size) bytes") }
            }
            bytes(UInt64(bitPattern: v), size)
        case (.real32, .real(let v)):
            bytes(UInt64(Float(v).bitPattern), 4)
        case (.bcd2, .bcd(let v)), (.bcd4, .bcd(let v)), (.bcd6, .bcd(let v)), (.bcd8, .bcd(let v)), (.bcd12, .bcd(let v)):
            let size = field.size!
            try bytesBCD(v, size: size, msb: msb, to: &out)
        case (.variableLength, .text(let s)):
            let chars = Array(s.utf8)
            guard chars.count <= 0xBF else { throw EncodeError(message: "text longer than 191 bytes") }
            out.append(UInt8(chars.count))
            out.append(contentsOf: msb ? chars : chars.reversed())
        case (.variableLength, .bcd(let v)):
            var digits = 0
            var m = v.magnitude
            repeat { digits += 1; m /= 10 } while m > 0
            let size = (digits + 1) / 2
            guard size <= 9 else { throw EncodeError(message: "BCD value too long for LVAR") }
            out.append((v < 0 ? 0xD0 : 0xC0) + UInt8(size))
            try bytesBCD(Int64(v.magnitude), size: size, msb: msb, to: &out)
        case (.variableLength, .bytes(let b)):
            guard b.count > 8, b.count <= 0x0F else {
                throw EncodeError(message: "binary LVAR of \(b.count) bytes: 9 to 15 bytes are encoded as bytes, up to 8 as an integer")
            }
            out.append(0xE0 + UInt8(b.count))
            out.append(contentsOf: b)
        case (.variableLength, .integer(let v)):
            out.append(0xE8)
            bytes(UInt64(bitPattern: v), 8)
        case (.int16, .dateTime(let d)):
            bytes(UInt64(d.typeGBits), 2)
        case (.int32, .dateTime(let d)):
            bytes(UInt64(d.typeFBits), 4)
        case (.int48, .dateTime(let d)):
            bytes(d.typeIBits, 6)
        default:
            throw EncodeError(message: "value \(value) cannot be encoded with data field \(field)")
        }
    }

    static func bytesBCD(_ v: Int64, size: Int, msb: Bool, to out: inout [UInt8]) throws(EncodeError) {
        let negative = v < 0
        var m = v.magnitude
        var le: [UInt8] = []
        for k in 0..<size {
            let lo = UInt8(m % 10); m /= 10
            var hi = UInt8(m % 10); m /= 10
            if k == size - 1 && negative {
                guard hi == 0 else { throw EncodeError(message: "\(v) does not fit \(2 * size - 1) BCD digits and a sign") }
                hi = 0xF
            }
            le.append(hi << 4 | lo)
        }
        guard m == 0 else { throw EncodeError(message: "\(v) does not fit \(2 * size) BCD digits") }
        out.append(contentsOf: msb ? le.reversed() : le)
    }

    /// A complete RSP_UD long frame with a long header (CI 72h), as a meter answers REQ_UD2.
    public static func responseFrame(address: UInt8, header: TelegramHeader, records: [Spec],
                                     manufacturerData: [UInt8]? = nil, moreRecordsFollow: Bool = false) throws(EncodeError) -> [UInt8] {
        var data: [UInt8] = []
        let id = header.identification?.rawValue ?? 0
        let man = header.manufacturer?.rawValue ?? 0
        let sig = header.signature ?? 0
        data += [UInt8(id & 0xFF), UInt8((id >> 8) & 0xFF), UInt8((id >> 16) & 0xFF), UInt8(id >> 24),
                 UInt8(man & 0xFF), UInt8(man >> 8), header.version ?? 0, header.deviceType?.rawValue ?? 0,
                 header.accessNumber ?? 0, header.status?.rawValue ?? 0, UInt8(sig & 0xFF), UInt8(sig >> 8)]
        for r in records { data += try encode(r) }
        if let m = manufacturerData {
            data.append(moreRecordsFollow ? 0x1F : 0x0F)
            data += m
        } else if moreRecordsFollow {
            data.append(0x1F)
        }
        guard data.count <= MBusFrame.maximumLength - 3 else {
            throw EncodeError(message: "\(data.count) bytes of user data; a long frame holds 252")
        }
        return FrameCodec.encode(.long(LongFrame(control: .rspUD, address: address,
                                                 controlInformation: ControlInformation.variableDataLongHeader,
                                                 userData: data)))
    }
}

extension VIFCode {
    var usesExtensionTable: Bool {
        switch self {
        case .extensionFB, .extensionFD: return true
        default: return false
        }
    }
}

extension MBusDateTime {
    private var twoDigitYear: Int { ((year % 100) + 100) % 100 }

    /// Type G bits (date).
    var typeGBits: UInt16 {
        let y = twoDigitYear
        return UInt16(day & 0x1F) | UInt16(y & 0x07) << 5 | UInt16(month & 0x0F) << 8 | UInt16((y >> 3) & 0x0F) << 12
    }

    /// Type F bits (date and time to the minute), with the hundred-year bits (EN 13757-3: year = 1900 +
    /// 100 × HY + YY) for 2000–2199, so a year after 2080 does not read back as the 1900s.
    var typeFBits: UInt32 {
        var low = UInt32(minute ?? 0) & 0x3F
        if isInvalid { low |= 0x80 }
        var hourByte = UInt32(hour ?? 0) & 0x1F
        if (2000...2199).contains(year) { hourByte |= UInt32((year - 1900) / 100) << 5 }
        if isSummerTime { hourByte |= 0x80 }
        return low | hourByte << 8 | UInt32(typeGBits) << 16
    }

    /// Type I bits (date and time to the second).
    var typeIBits: UInt64 {
        var minuteByte = UInt64(minute ?? 0) & 0x3F
        if isInvalid { minuteByte |= 0x80 }
        if isSummerTime { minuteByte |= 0x40 }
        return UInt64(second ?? 0) & 0x3F | minuteByte << 8 | (UInt64(hour ?? 0) & 0x1F) << 16 | UInt64(typeGBits) << 24
    }
}
