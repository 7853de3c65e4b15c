/// The CRC of EN 13757-4 (data-link blocks) and EN 13757-7 (ELL payload CRC, format signatures):
/// CRC-16 with polynomial 3D65h, initial value 0, processed most significant bit first, result inverted.
public enum WMBusCRC {
    private static let table: [UInt16] = (0..<256).map { i in
        var r = UInt16(i) << 8
        for _ in 0..<8 { r = r & 0x8000 != 0 ? (r << 1) ^ 0x3D65 : r << 1 }
        return r
    }

    public static func compute(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for b in bytes {
            crc = table[Int((crc >> 8) ^ UInt16(b))] ^ (crc << 8)
        }
        return ~crc
    }

    /// CRC of `bytes[range]`; the range must lie inside the array.
    static func compute(_ bytes: [UInt8], _ range: Range<Int>) -> UInt16 {
        compute(bytes[range])
    }
}
