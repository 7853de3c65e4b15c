/// How well each receiver hears each registered radio meter: the median RSSI per (device, receiver), and
/// a week-over-week comparison of daily medians that finds a meter fading at one receiver (a new
/// cabinet in front of it, a flat battery weakening the transmitter, a receiver moved).
///
/// Every reception counts, also the duplicates of a telegram heard by a second dongle (the pipeline
/// records before it drops them), so each receiver keeps its own picture. Pure, on times the caller gives;
/// bounded: at most `recentSamples` recent values, `daySamples` values of the current day and 8 daily
/// medians per pair, pairs only for registered devices.
public struct ReceptionStats: Sendable {
    public struct Pair: Hashable, Sendable {
        public var device: String
        public var receiver: String
    }

    /// A receiver's daily median for a device fell by `drop` dB or more against the same receiver a week before.
    public struct Fade: Hashable, Sendable {
        public var pair: Pair
        public var weekAgo: Double
        public var now: Double
        public var drop: Double { weekAgo - now }
    }

    struct Track: Sendable {
        var recent: [Int16] = []
        var day: Int64 = .min
        var today: [Int16] = []
        /// (day number, median) of finished days, oldest first.
        var days: [(day: Int64, median: Double)] = []
        var fading = false
    }

    public static let recentSamples = 32
    public static let daySamples = 512
    /// The fall in dB over a week that raises `signal_weaker`.
    public var threshold: Double = 10
    private var tracks: [Pair: Track] = [:]

    public init() {}

    /// One reception of `device` by `receiver` at `at` (Unix ms). Returns a change of the fade state of the
    /// pair when a day ends: `.fading` when its median is `threshold` below the median a week before, or
    /// `.recovered` when a fading pair is back within it.
    public mutating func record(device: String, receiver: String, rssi: Int16, at: Int64) -> (Pair, fade: Fade?)? {
        let pair = Pair(device: device, receiver: receiver)
        var t = tracks[pair] ?? Track()
        defer { tracks[pair] = t }
        t.recent.append(rssi)
        if t.recent.count > Self.recentSamples { t.recent.removeFirst(t.recent.count - Self.recentSamples) }
        // Floor division without an intermediate that could overflow at hostile times (Int64.min).
        let day = at / 86_400_000 - (at % 86_400_000 < 0 ? 1 : 0)
        var change: (Pair, fade: Fade?)?
        if day > t.day {
            if !t.today.isEmpty {
                let median = Self.median(t.today)
                t.days.append((t.day, median))
                if t.days.count > 8 { t.days.removeFirst(t.days.count - 8) }
                // The same receiver a week (6–8 days) before the day that ended.
                if let old = t.days.last(where: { t.day - $0.day >= 6 && t.day - $0.day <= 8 }) {
                    let fading = old.median - median >= threshold
                    if fading != t.fading {
                        t.fading = fading
                        change = (pair, fading ? Fade(pair: pair, weekAgo: old.median, now: median) : nil)
                    }
                }
            }
            t.day = day
            t.today = []
        }
        if day == t.day, t.today.count < Self.daySamples { t.today.append(rssi) }
        return change
    }

    /// The median of a pair's recent receptions, nil when none.
    public func median(device: String, receiver: String) -> Double? {
        tracks[Pair(device: device, receiver: receiver)].flatMap { $0.recent.isEmpty ? nil : Self.median($0.recent) }
    }

    /// Every pair with its recent median and sample count, sorted by device then receiver.
    public func snapshot() -> [(pair: Pair, median: Double, samples: Int)] {
        tracks.compactMap { p, t in t.recent.isEmpty ? nil : (p, Self.median(t.recent), t.recent.count) }
            .sorted { ($0.pair.device, $0.pair.receiver) < ($1.pair.device, $1.pair.receiver) }
    }

    /// Forgets devices no longer registered.
    public mutating func keep(only devices: Set<String>) { tracks = tracks.filter { devices.contains($0.key.device) } }

    static func median(_ values: [Int16]) -> Double {
        let s = values.sorted()
        let n = s.count
        return n % 2 == 1 ? Double(s[n / 2]) : (Double(s[n / 2 - 1]) + Double(s[n / 2])) / 2
    }
}
