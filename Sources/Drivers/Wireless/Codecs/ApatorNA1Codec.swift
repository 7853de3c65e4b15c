/// The opened Apator NA-1 manufacturer payload (`ApatorNA1`) as bytes a profile layout reads. The maker's
/// numbers are not plain integers, so this codec turns them into standard ones:
///
/// - the packed total (4 bytes, little endian): bits 4–5 are the decimal exponent of the litre step
///   (1, 10, 100 or 1000 l), bits 0–3 and 8–31 the count (`(raw >> 8) × 16 + raw & 0Fh`);
/// - the meter time: seconds since 2000-01-01 00:00 (4 bytes, little endian), local time;
/// - the last historic reading: its age in hours (10 bits: the low byte and bits 2–7 of the next) and how
///   much less it was (22 bits: the 2 low bits of that byte and three more bytes, in the same steps).
///
/// Output, all little endian: total litres (8 bytes), historic litres (8, signed), meter time as an
/// EN 13757-3 type F date (4), historic age in hours (2), historic time as type F (4), current alarm flags
/// (1), historic alarm flags (1): 28 bytes.
///
/// Input: the payload after the CI, opened (byte 2 is the 2Fh check byte); anything else is not this
/// codec's (`notApplicable`: the telegram was not opened, and its security state says why). A historic
/// reading above the total is reported as damage. Pure and total.
///
/// Source: wmbusmeters `drivers/src/apatorna1.xmq` (GPL-3.0-or-later, commit 4dedd717), facts only.
public enum ApatorNA1Codec {
    public static let outputLength = 28

    public static let codec: ProfileCodec = { bytes, _ in decode(bytes) }

    public static func decode(_ bytes: ArraySlice<UInt8>) -> CodecResult {
        guard bytes.count >= ApatorNA1.minimumLength, bytes[bytes.startIndex + 2] == 0x2F else { return .notApplicable }
        let p = Array(bytes)
        func le(_ at: Int, _ n: Int) -> UInt64 { (0..<n).reduce(UInt64(0)) { $0 | UInt64(p[at + $1]) << (8 * UInt64($1)) } }
        let raw = le(3, 4)
        let step: UInt64 = [1, 10, 100, 1000][Int((raw >> 4) & 3)]
        let totalLitres = ((raw >> 8) * 16 + (raw & 0x0F)) * step  // at most 2^28 × 1000: no overflow
        let seconds = Int64(le(7, 4))
        let ageLow = UInt64(p[11]), meta = UInt64(p[12])
        let ageHours = (meta >> 2) * 256 + ageLow
        let delta = ((UInt64(p[15]) << 18) + (UInt64(p[14]) << 10) + (UInt64(p[13]) << 2) + (meta & 3)) * step
        guard delta <= totalLitres else {
            return .failure("the last historic reading is \(delta) l less than a total of \(totalLitres) l: damaged or wrongly opened")
        }
        var out: [UInt8] = []
        out.reserveCapacity(outputLength)
        func append(_ v: UInt64, _ n: Int) { for i in 0..<n { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
        append(totalLitres, 8)
        append(totalLitres - delta, 8)
        out += typeF(secondsSince2000: seconds)
        append(ageHours, 2)
        out += typeF(secondsSince2000: seconds - Int64(ageHours) * 3600)
        out.append(p[16])
        out.append(p[17])
        return .bytes(out)
    }

    /// EN 13757-3 type F (date and time to the minute) through the record encoder's, for 2000-01-01 to
    /// 2199; a time outside that range is marked invalid (bit 7 of the first byte).
    static func typeF(secondsSince2000 s: Int64) -> [UInt8] {
        guard s >= 0 else { return [0x80, 0, 0, 0] }
        let (days, rest) = (s + 946_684_800).quotientAndRemainder(dividingBy: 86_400)
        let (year, month, day) = CivilCalendar.date(days: Int(days))
        guard (2000...2199).contains(year) else { return [0x80, 0, 0, 0] }
        let bits = MBusDateTime(year: year, month: month, day: day, hour: Int(rest / 3600), minute: Int(rest % 3600 / 60)).typeFBits
        return (0..<4).map { UInt8(truncatingIfNeeded: bits >> (8 * UInt32($0))) }
    }
}
