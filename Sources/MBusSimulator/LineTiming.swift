import Glibc

/// Nanoseconds on the monotonic clock (`clock_gettime(CLOCK_MONOTONIC)`).
///
/// All deadlines are absolute values of this clock, so pacing never drifts: a late write is late once,
/// and the next byte still goes out at its own slot.
enum MonotonicClock {
    /// Wraps `clock_gettime(CLOCK_MONOTONIC)`.
    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// Sleeps until `deadline` with `clock_nanosleep(TIMER_ABSTIME)`; poll(2) only has millisecond
    /// resolution, and a byte at 38400 baud lasts 286 µs.
    static func sleep(until deadline: Int64) {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }
}

extension Duration {
    /// The duration in whole nanoseconds (rounded down).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Bit and character times of the line: EN 13757-2 sends 11 bits per byte (start, 8 data, even
/// parity, stop), 8E1.
///
/// Times are whole nanoseconds. Bit boundary j of a transmission is at `start + duration(bits: j)`
/// (rounded up) and `bitIndex` rounds down, so the two agree exactly at every boundary.
struct LineTiming: Hashable, Sendable {
    /// The baud rates M-Bus slaves support (EN 13757-2, 300 to 38400 baud).
    static let supportedBaudRates = [300, 600, 1200, 2400, 4800, 9600, 19200, 38400]
    static let bitsPerCharacter: Int64 = 11

    let baudRate: Int64

    init(baudRate: Int) {
        self.baudRate = Int64(baudRate)
    }

    /// Time taken by `bits` bit times, rounded up to the nanosecond.
    func duration(bits: Int64) -> Int64 {
        (bits * 1_000_000_000 + baudRate - 1) / baudRate
    }

    /// Time taken by `count` characters on the wire.
    func duration(characters count: Int) -> Int64 {
        duration(bits: Int64(count) * Self.bitsPerCharacter)
    }

    var bitTime: Int64 { duration(bits: 1) }
    var characterTime: Int64 { duration(bits: Self.bitsPerCharacter) }

    /// Which bit (counted from 0) of a transmission that started at `start` is on the line at `t`.
    /// Only meaningful for `t >= start`.
    func bitIndex(since start: Int64, at t: Int64) -> Int64 {
        (t - start) * baudRate / 1_000_000_000
    }

    /// Offset of the middle of bit `k` from the start of a character, where a UART samples it.
    func middle(ofBit k: Int64) -> Int64 {
        ((2 * k + 1) * 1_000_000_000 + 2 * baudRate - 1) / (2 * baudRate)
    }
}

/// The EN 13757-2 response window: a slave starts its answer between 11 bit times and
/// 330 bit times + 50 ms after the end of the request.
public struct ResponseWindow: Hashable, Sendable, CustomStringConvertible {
    public let baudRate: Int
    /// Earliest start of an answer after the request's stop bit: 11 bit times.
    public let earliest: Duration
    /// Latest start of an answer: 330 bit times + 50 ms. A master's timeout must be longer.
    public let latest: Duration
    /// What an ordinary slave uses: the earliest moment plus a few milliseconds of firmware latency.
    public let standardDelay: Duration
    /// What a "slow" slave uses: 10 ms before the end of the window, where sluggish meters really answer.
    public let slowDelay: Duration

    public init(baudRate: Int) {
        self.baudRate = baudRate
        let timing = LineTiming(baudRate: baudRate)
        earliest = .nanoseconds(timing.duration(bits: 11))
        latest = .nanoseconds(timing.duration(bits: 330)) + .milliseconds(50)
        standardDelay = earliest + .milliseconds(3)
        slowDelay = latest - .milliseconds(10)
    }

    public func contains(_ delay: Duration) -> Bool {
        delay >= earliest && delay <= latest
    }

    public var description: String {
        "\(earliest.nanoseconds / 1000) µs ... \(latest.nanoseconds / 1000) µs at \(baudRate) baud"
    }
}
