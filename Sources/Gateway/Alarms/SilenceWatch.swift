/// Which registered radio meters have fallen silent: a pure state machine on times the caller gives
/// (Unix milliseconds), so tests run it on a virtual clock.
///
/// Each meter's transmit interval comes from the registry (`transmitInterval`) or is learned from the gaps
/// between its telegrams (the median of the last eight; gaps under two seconds are the same telegram heard
/// by a second dongle, or a compact frame right after its full frame, and do not count). A meter is silent
/// when it has not been heard for `intervals` times its interval, and never before `minimum` (a meter that
/// sends every 2 minutes is not missing after 6). A meter never heard since the start counts from the start;
/// without a known interval it is silent after `minimum`.
///
/// Bounded: only registered radio meters are tracked, each with at most eight gaps.
public struct SilenceWatch: Sendable {
    public struct Policy: Hashable, Sendable {
        /// Intervals without a telegram before a meter counts as silent (EN 13757-4 meters skip a few now and then).
        public var intervals: Int
        /// Never silent sooner than this, in milliseconds.
        public var minimum: Int64

        public init(intervals: Int = 3, minimum: Int64 = 3_600_000) {
            self.intervals = max(1, intervals)
            self.minimum = max(0, minimum)
        }
    }

    /// What one check found: meters that fell silent since the last check, and silent ones heard again.
    public struct Change: Hashable, Sendable {
        public var silenced: [Silence] = []
        public var heardAgain: [String] = []
        public var isEmpty: Bool { silenced.isEmpty && heardAgain.isEmpty }
    }

    public struct Silence: Hashable, Sendable {
        public var device: String
        /// Milliseconds since it was last heard (or since the start, if never).
        public var silentFor: Int64
        /// The interval the deadline came from, nil when the minimum alone applied.
        public var interval: Int64?
        public var neverHeard: Bool
        /// Where the interval came from: "registry", "learned" or nil.
        public var intervalSource: String?
    }

    struct Meter: Sendable {
        var configured: Int64?
        var lastHeard: Int64?
        var gaps: [Int64] = []
    }

    public let policy: Policy
    /// Meters never heard count from here (the daemon's start).
    public var startedAt: Int64
    private var meters: [String: Meter] = [:]
    /// Meters reported silent and not heard since.
    public private(set) var silent: Set<String> = []

    public init(policy: Policy = Policy(), startedAt: Int64) {
        self.policy = policy
        self.startedAt = startedAt
    }

    /// The meters to watch (registered radio meters) and their registry intervals in milliseconds. Meters
    /// no longer listed are forgotten (and no longer silent); those kept keep what was learned.
    public mutating func watch(_ expected: [String: Int64?]) {
        var next: [String: Meter] = [:]
        for (key, interval) in expected {
            var m = meters[key] ?? Meter()
            m.configured = interval.flatMap { $0 > 0 ? $0 : nil }
            next[key] = m
        }
        meters = next
        silent = silent.filter { next[$0] != nil }
    }

    /// A telegram of `device` arrived at `at`. Unknown devices are ignored.
    public mutating func heard(_ device: String, at: Int64) {
        guard var m = meters[device] else { return }
        if let last = m.lastHeard {
            let gap = at &- last
            // Out of order (a replayed capture), or the same telegram again: the first reception stands.
            if gap < 2_000 { return }
            m.gaps.append(gap)
            if m.gaps.count > 8 { m.gaps.removeFirst(m.gaps.count - 8) }
        }
        m.lastHeard = at
        meters[device] = m
    }

    /// The interval a meter is judged by (registry first, then learned from at least two gaps).
    public func interval(of device: String) -> (milliseconds: Int64, source: String)? {
        guard let m = meters[device] else { return nil }
        if let c = m.configured { return (c, "registry") }
        guard m.gaps.count >= 2 else { return nil }
        let sorted = m.gaps.sorted()
        return (sorted[sorted.count / 2], "learned")
    }

    public func lastHeard(_ device: String) -> Int64? { meters[device]?.lastHeard }

    /// Compares every watched meter with `now`; returns what changed since the last check.
    public mutating func check(now: Int64) -> Change {
        var change = Change()
        for (key, m) in meters {
            let reference = m.lastHeard ?? startedAt
            let known = interval(of: key)
            let (product, overflow) = (known?.milliseconds ?? 0).multipliedReportingOverflow(by: Int64(policy.intervals))
            let deadline = max(policy.minimum, overflow ? Int64.max : product)
            let quiet = now &- reference
            if quiet > deadline {
                if silent.insert(key).inserted {
                    change.silenced.append(Silence(device: key, silentFor: quiet, interval: known?.milliseconds,
                                                   neverHeard: m.lastHeard == nil, intervalSource: known?.source))
                }
            } else if silent.remove(key) != nil {
                change.heardAgain.append(key)
            }
        }
        change.silenced.sort { $0.device < $1.device }
        change.heardAgain.sort()
        return change
    }

    /// Takes back what a check changed (its alarms could not be stored): the next check finds it again.
    public mutating func undo(_ change: Change) {
        for s in change.silenced { silent.remove(s.device) }
        for key in change.heardAgain where meters[key] != nil { silent.insert(key) }
    }

    /// "3 h 20 min", "45 s": for alarm messages a technician reads.
    public static func words(_ milliseconds: Int64) -> String {
        let s = max(0, milliseconds / 1000)
        if s < 120 { return "\(s) s" }
        let m = s / 60
        if m < 120 { return "\(m) min" }
        let h = m / 60
        if h < 48 { return m % 60 == 0 ? "\(h) h" : "\(h) h \(m % 60) min" }
        return "\(h / 24) days"
    }
}
