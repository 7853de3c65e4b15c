/// A point in time as a meter sends it: local meter time, with the flags the standard defines.
///
/// Meters keep local time without a zone (except type M), so no conversion to UTC happens here.
public struct MBusDateTime: Hashable, Sendable, CustomStringConvertible {
    // Stored in 12 bytes, so that a date sits inline in a record's value: a boxed date cost an allocation
    // and a release for every dated record decoded. The ranges hold all that the wire types (G, F, I, J, M:
    // at most 7 bits of year plus the hundred-year field, 6 bits of the others) and profile bit fields can
    // carry. A value set beyond them is clamped: years to Int32, the other fields to 0...254 (255 marks an
    // absent hour, minute or second), the UTC offset to ±32,767 minutes.
    private var storedYear: Int32
    private var storedMonth: UInt8
    private var storedDay: UInt8
    private var storedHour: UInt8
    private var storedMinute: UInt8
    private var storedSecond: UInt8
    private var flags: UInt8 = 0
    private var storedOffset: Int16 = .min
    private static let absent: UInt8 = 0xFF

    public var year: Int {
        get { Int(storedYear) }
        set { storedYear = Int32(clamping: newValue) }
    }
    public var month: Int {
        get { Int(storedMonth) }
        set { storedMonth = Self.field(newValue) }
    }
    public var day: Int {
        get { Int(storedDay) }
        set { storedDay = Self.field(newValue) }
    }
    public var hour: Int? {
        get { storedHour == Self.absent ? nil : Int(storedHour) }
        set { storedHour = newValue.map(Self.field) ?? Self.absent }
    }
    public var minute: Int? {
        get { storedMinute == Self.absent ? nil : Int(storedMinute) }
        set { storedMinute = newValue.map(Self.field) ?? Self.absent }
    }
    public var second: Int? {
        get { storedSecond == Self.absent ? nil : Int(storedSecond) }
        set { storedSecond = newValue.map(Self.field) ?? Self.absent }
    }
    /// IV bit: the meter marks the time as invalid (clock not set).
    public var isInvalid: Bool {
        get { flags & 1 != 0 }
        set { flags = newValue ? flags | 1 : flags & ~1 }
    }
    /// SU bit: summer time.
    public var isSummerTime: Bool {
        get { flags & 2 != 0 }
        set { flags = newValue ? flags | 2 : flags & ~2 }
    }
    /// Offset from UTC in minutes (type M only).
    public var utcOffsetMinutes: Int? {
        get { storedOffset == .min ? nil : Int(storedOffset) }
        set { storedOffset = newValue.map { Int16(clamping: max($0, -Int(Int16.max))) } ?? .min }
    }

    /// The range a month, day, hour, minute or second is kept in.
    public static let fieldRange = 0...254

    private static func field(_ v: Int) -> UInt8 { UInt8(min(max(v, 0), 254)) }

    public init(year: Int, month: Int, day: Int, hour: Int? = nil, minute: Int? = nil, second: Int? = nil) {
        storedYear = Int32(clamping: year)
        storedMonth = Self.field(month)
        storedDay = Self.field(day)
        storedHour = hour.map(Self.field) ?? Self.absent
        storedMinute = minute.map(Self.field) ?? Self.absent
        storedSecond = second.map(Self.field) ?? Self.absent
    }

    /// ISO 8601 text: "2014-03-13" or "2014-03-13T11:11:00" (with "+01:00" when the offset is known).
    public var description: String {
        // Written in one go: a date is formatted for every dated value of every telegram `gatewayd decode`
        // prints, so no intermediate strings. A real date takes at most 25 bytes; 160 hold any Int fields.
        String(unsafeUninitializedCapacity: 160) { buffer in
            var i = 0
            func put(_ b: UInt8) { if i < buffer.count { buffer[i] = b; i += 1 } }
            /// Zero-padded decimal, written from its last digit back.
            func number(_ v: Int, _ width: Int) {
                if v < 0 { put(UInt8(ascii: "-")) }
                var digits = 1
                var rest = v.magnitude
                while rest >= 10 { rest /= 10; digits += 1 }
                let count = max(digits, width)
                guard i + count <= buffer.count else { return }
                var m = v.magnitude
                for k in stride(from: i + count - 1, through: i, by: -1) {
                    buffer[k] = UInt8(ascii: "0") + UInt8(m % 10)
                    m /= 10
                }
                i += count
            }
            number(year, 4)
            put(UInt8(ascii: "-"))
            number(month, 2)
            put(UInt8(ascii: "-"))
            number(day, 2)
            if let h = hour {
                put(UInt8(ascii: "T"))
                number(h, 2)
                put(UInt8(ascii: ":"))
                number(minute ?? 0, 2)
                put(UInt8(ascii: ":"))
                number(second ?? 0, 2)
                if let off = utcOffsetMinutes {
                    put(off < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
                    number(Int(clamping: off.magnitude / 60), 2)
                    put(UInt8(ascii: ":"))
                    number(Int(clamping: off.magnitude % 60), 2)
                }
            }
            return i
        }
    }

    /// Two-digit year to four: the standard's century rule (00–80 is 20xx), refined by the
    /// hundred-year field of type F where the meter sends it.
    static func fullYear(_ y: Int, hundredYear: Int = 0) -> Int {
        if hundredYear > 0 { return 1900 + 100 * hundredYear + y }
        return y <= 80 ? 2000 + y : 1900 + y
    }

    /// Type G (CP16): date.
    static func typeG(_ b0: UInt8, _ b1: UInt8) -> MBusDateTime {
        let y = Int((b0 & 0xE0) >> 5) | Int((b1 & 0xF0) >> 1)
        return MBusDateTime(year: fullYear(y), month: Int(b1 & 0x0F), day: Int(b0 & 0x1F))
    }

    /// Type F (CP32): date and time to the minute.
    static func typeF(_ b: UnsafeBufferPointer<UInt8>) -> MBusDateTime {
        let y = Int((b[2] & 0xE0) >> 5) | Int((b[3] & 0xF0) >> 1)
        let hy = Int((b[1] & 0x60) >> 5)
        var t = MBusDateTime(year: fullYear(y, hundredYear: hy), month: Int(b[3] & 0x0F), day: Int(b[2] & 0x1F),
                             hour: Int(b[1] & 0x1F), minute: Int(b[0] & 0x3F), second: 0)
        t.isInvalid = b[0] & 0x80 != 0
        t.isSummerTime = b[1] & 0x80 != 0
        return t
    }

    /// Type I (CP48): date and time to the second.
    static func typeI(_ b: UnsafeBufferPointer<UInt8>) -> MBusDateTime {
        let y = Int((b[3] & 0xE0) >> 5) | Int((b[4] & 0xF0) >> 1)
        var t = MBusDateTime(year: fullYear(y), month: Int(b[4] & 0x0F), day: Int(b[3] & 0x1F),
                             hour: Int(b[2] & 0x1F), minute: Int(b[1] & 0x3F), second: Int(b[0] & 0x3F))
        t.isInvalid = b[1] & 0x80 != 0
        t.isSummerTime = b[1] & 0x40 != 0
        return t
    }

    /// Type J (CP24): time of day, rendered as "hh:mm:ss".
    static func typeJ(_ b: UnsafeBufferPointer<UInt8>) -> String {
        pad(Int(b[2] & 0x1F), 2) + ":" + pad(Int(b[1] & 0x3F), 2) + ":" + pad(Int(b[0] & 0x3F), 2)
    }

    /// Type K (CP32): daylight-saving rule: beginning and end (hour, day, month) and the deviation.
    static func typeK(_ b: UnsafeBufferPointer<UInt8>) -> String {
        let beginHour = Int(b[0] & 0x1F), beginDay = Int(b[1] & 0x1F), beginMonth = Int(b[2] & 0x0F)
        let endDay = Int((b[2] & 0xF0) >> 4) | Int(b[3] & 0x01) << 4
        let endMonth = Int((b[3] & 0x1E) >> 1)
        let deviation = Int((b[3] & 0x60) >> 5) * ((b[3] & 0x80) != 0 ? -1 : 1)
        let endHour = Int((b[0] & 0xE0) >> 5) | Int(b[1] & 0xE0) >> 2
        return "begin --" + pad(beginMonth, 2) + "-" + pad(beginDay, 2) + "T" + pad(beginHour, 2) + ":00"
            + ", end --" + pad(endMonth, 2) + "-" + pad(endDay, 2) + "T" + pad(endHour, 2) + ":00"
            + ", deviation " + (deviation >= 0 ? "+" : "") + String(deviation) + " h"
    }

    /// Type L (listening window management): window start (type J), duration and interval in seconds.
    static func typeL(_ b: UnsafeBufferPointer<UInt8>) -> String {
        var parts: [String] = []
        if b.count >= 3 {
            parts.append("start " + typeJ(UnsafeBufferPointer(rebasing: b[0..<3])))
        }
        if b.count >= 5 { parts.append("duration " + String(Int(b[3]) | Int(b[4]) << 8) + " s") }
        if b.count >= 7 { parts.append("interval " + String(Int(b[5]) | Int(b[6]) << 8) + " s") }
        return parts.joined(separator: ", ")
    }
}

/// Zero-padded decimal, without the intermediate strings `String(v)` and `+` would make.
func pad(_ v: Int, _ width: Int) -> String {
    var magnitude = v.magnitude
    var digits: [UInt8] = []
    digits.reserveCapacity(max(width, 4) + 1)
    repeat {
        digits.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
        magnitude /= 10
    } while magnitude > 0
    while digits.count < width { digits.append(UInt8(ascii: "0")) }
    if v < 0 { digits.append(UInt8(ascii: "-")) }
    digits.reverse()
    return String(decoding: digits, as: UTF8.self)
}
