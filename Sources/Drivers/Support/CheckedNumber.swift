/// Checked conversions for numbers that come from a radio, a serial line, a register or a file.
///
/// `Int64(x)` and `UInt64(x)` trap on NaN, on infinities and on values outside the type (a one-byte
/// record with bit 7 set is -128, not 128; a float register can hold 3.4e38). A telegram must never be able
/// to stop the daemon, so every conversion of telegram-derived numbers goes through here and gets `nil`
/// (a refusal the caller reports) instead of a trap.
public enum CheckedNumber {
    /// 2^63 as a Double: the first value `Int64(_:)` cannot take (Double(Int64.max) rounds up to it).
    @usableFromInline static let twoToThe63 = 9_223_372_036_854_775_808.0
    @usableFromInline static let twoToThe64 = 18_446_744_073_709_551_616.0

    /// The integer part of `x` (rounded toward zero), or nil when `x` is NaN, infinite or outside Int64.
    @inlinable
    public static func int64(_ x: Double) -> Int64? {
        guard x.isFinite else { return nil }
        let t = x.rounded(.towardZero)
        guard t >= -twoToThe63, t < twoToThe63 else { return nil }
        return Int64(t)
    }

    /// The integer part of `x` (rounded toward zero), or nil when `x` is NaN, infinite, negative or above UInt64.
    @inlinable
    public static func uint64(_ x: Double) -> UInt64? {
        guard x.isFinite, x > -1, x < twoToThe64 else { return nil }
        return UInt64(x.rounded(.towardZero))
    }

    /// `x` when it is an integer that Int64 holds exactly, else nil (fault codes, enum keys).
    @inlinable
    public static func exactInt64(_ x: Double) -> Int64? {
        Int64(exactly: x)
    }

    /// `x` as an Int, clamped into `range`; nil for NaN. For display sizes and counts derived from input.
    @inlinable
    public static func int(_ x: Double, clampedTo range: ClosedRange<Int>) -> Int? {
        guard !x.isNaN else { return nil }
        if x <= Double(range.lowerBound) { return range.lowerBound }
        if x >= Double(range.upperBound) { return range.upperBound }
        return Int(x.rounded(.towardZero))
    }
}

extension RecordValue {
    /// The value's bits as an unsigned pattern of `bytes` bytes, for flag and bit-field records (error flags,
    /// status words): a signed one-byte -1 is 0xFF. Nil for reals, text and everything not an integer,
    /// because a real has no meaningful bits to test.
    public func bitPattern(bytes: Int) -> UInt64? {
        let width = max(1, min(8, bytes))
        let mask: UInt64 = width == 8 ? .max : (1 << UInt64(8 * width)) - 1
        switch self {
        case .integer(let v): return UInt64(bitPattern: v) & mask
        case .bcd(let v): return v >= 0 ? UInt64(v) : nil
        default: return nil
        }
    }
}
