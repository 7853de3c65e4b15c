/// A half-duplex Modbus line shared fairly by its devices (issue 18): each device's poll groups run at
/// their own intervals, and a per-device circuit breaker keeps a dead or slow device from costing the
/// others their schedule.
///
/// - A device that does not answer is backed off: it is tried again (a probe) after `baseBackoff`, then
///   after twice that, up to `maxBackoff`. So it costs at most one timeout per backoff period.
/// - A probe only starts in a gap: when it would end (one timeout, plus pacing) before the next healthy
///   device is due. A probe that found no gap for a whole backoff period goes anyway, so a line that is
///   never idle still finds out when a device is back.
/// - Routine reads keep their slot: the next is due one interval after the last was due, not after it
///   ended, and slots that passed while the line was busy are counted as skipped, never queued.
/// - A device refused by its fingerprint (another controller at that address) is checked again every
///   `maxBackoff`.
///
/// Pure: the caller asks `next(now:)`, does what it says, and reports with `finished`. Time is Unix
/// milliseconds from an injected clock.
public struct FairLine: Sendable {
    public struct Options: Hashable, Sendable {
        /// What one unanswered read costs the line: response timeout × (1 + retries).
        public var timeoutCost: Int64
        public var baseBackoff: Int64
        public var maxBackoff: Int64
        /// Pause between the end of one device's read and the next request on the line.
        public var pace: Int64

        public init(timeoutCost: Int64, baseBackoff: Int64 = 60_000, maxBackoff: Int64 = 1_800_000, pace: Int64 = 0) {
            self.timeoutCost = max(0, timeoutCost)
            self.baseBackoff = max(1, baseBackoff)
            self.maxBackoff = max(self.baseBackoff, maxBackoff)
            self.pace = max(0, pace)
        }
    }

    /// One device's poll group at its interval.
    public struct Job: Hashable, Sendable {
        public var device: Int
        public var group: String
        public var interval: Int64
        public var nextDue: Int64
        public var reads = 0
        /// Slots that passed while the line was busy or the device backed off.
        public var skipped = 0
    }

    public enum Health: String, Hashable, Sendable, Codable {
        case healthy
        /// Did not answer; probed after its backoff.
        case backingOff = "backing_off"
        /// Another controller answers at this address (fingerprint mismatch); checked again after `maxBackoff`.
        case refused
    }

    public struct Device: Hashable, Sendable {
        public var name: String
        public var health: Health = .healthy
        public var backoff: Int64 = 0
        /// When a backed-off or refused device may be tried again.
        public var probeAt: Int64 = 0
        public var answered = 0
        public var unanswered = 0
        public var probes = 0
        /// Line time (ms) this device's unanswered reads cost.
        public var timeoutMilliseconds: Int64 = 0
        public var lastAnswerAt: Int64?
        public var lastProblem: String?
    }

    public enum Action: Hashable, Sendable {
        /// Read `job` of its device. A probe is the first read after a backoff.
        case read(job: Int, probe: Bool)
        case wait(until: Int64)
    }

    public enum Outcome: Hashable, Sendable {
        case answered
        case noAnswer(String)
        case refused(String)
    }

    public let options: Options
    public private(set) var devices: [Device]
    public private(set) var jobs: [Job]
    /// The line is free for the next request at this time (pacing after the last read).
    public private(set) var lineFreeAt: Int64

    /// - Parameters:
    ///   - devices: per device, its name and its poll groups with their intervals (ms). Every job is due at
    ///     `now`; the line reads them one after another in line order.
    public init(devices: [(name: String, groups: [(name: String, interval: Int64)])], options: Options, now: Int64) {
        self.options = options
        self.devices = devices.map { Device(name: $0.name) }
        var jobs: [Job] = []
        for (d, device) in devices.enumerated() {
            for g in device.groups {
                jobs.append(Job(device: d, group: g.name, interval: max(1, g.interval), nextDue: now))
            }
        }
        self.jobs = jobs
        lineFreeAt = now
    }

    /// What the line does next.
    public mutating func next(now: Int64) -> Action {
        if now < lineFreeAt { return .wait(until: lineFreeAt) }
        // A healthy device's job that is due, earliest slot first (line order breaks ties).
        var best: Int?
        for (i, j) in jobs.enumerated() where devices[j.device].health == .healthy && j.nextDue <= now {
            if best == nil || j.nextDue < jobs[best!].nextDue { best = i }
        }
        if let best { return .read(job: best, probe: false) }

        let nextHealthyDue = jobs.indices.filter { devices[jobs[$0].device].health == .healthy }.map { jobs[$0].nextDue }.min()
        var wake = nextHealthyDue ?? Int64.max
        for (d, device) in devices.enumerated() where device.health != .healthy {
            guard let job = jobs.indices.filter({ jobs[$0].device == d }).min(by: { jobs[$0].nextDue < jobs[$1].nextDue }) else { continue }
            if now < device.probeAt {
                wake = min(wake, device.probeAt)
                continue
            }
            let fits = nextHealthyDue.map { now &+ options.timeoutCost &+ options.pace <= $0 } ?? true
            let starved = now >= device.probeAt &+ max(device.backoff, options.baseBackoff)
            if fits || starved { return .read(job: job, probe: true) }
            wake = min(wake, device.probeAt &+ max(device.backoff, options.baseBackoff))
        }
        return .wait(until: wake == Int64.max ? now &+ options.maxBackoff : wake)
    }

    /// Reports how `job`'s read went.
    public mutating func finished(job i: Int, probe: Bool, startedAt: Int64, endedAt: Int64, outcome: Outcome) {
        guard jobs.indices.contains(i) else { return }
        let d = jobs[i].device
        lineFreeAt = max(lineFreeAt, endedAt &+ options.pace)
        if probe { devices[d].probes += 1 }
        switch outcome {
        case .answered:
            devices[d].answered += 1
            devices[d].lastAnswerAt = endedAt
            devices[d].lastProblem = nil
            jobs[i].reads += 1
            let recovered = devices[d].health != .healthy
            devices[d].health = .healthy
            devices[d].backoff = 0
            if recovered {
                // Back: this job was just read; its device's other jobs are due now.
                for k in jobs.indices where jobs[k].device == d {
                    jobs[k].nextDue = k == i ? startedAt &+ jobs[k].interval : min(jobs[k].nextDue, endedAt)
                }
            } else if jobs[i].reads == 1 {
                // The first read anchors the grid where it happened: a line that starts with a dead device
                // among the first does not give the ones after it a short first interval.
                jobs[i].nextDue = startedAt &+ jobs[i].interval
            } else {
                advance(i, after: endedAt)
            }
        case .noAnswer(let why), .refused(let why):
            devices[d].lastProblem = why
            if case .refused = outcome {
                devices[d].health = .refused
                devices[d].backoff = options.maxBackoff
            } else {
                devices[d].unanswered += 1
                devices[d].timeoutMilliseconds &+= max(0, endedAt &- startedAt)
                devices[d].backoff = devices[d].health == .backingOff
                    ? min(options.maxBackoff, devices[d].backoff &* 2) : options.baseBackoff
                devices[d].health = .backingOff
            }
            devices[d].probeAt = endedAt &+ devices[d].backoff
            // Its slots until the probe are skipped, not queued.
            for k in jobs.indices where jobs[k].device == d { advance(k, after: devices[d].probeAt) }
        }
    }

    /// Moves a job's next slot past `time`, counting the slots that were missed.
    private mutating func advance(_ i: Int, after time: Int64) {
        var next = jobs[i].nextDue &+ jobs[i].interval
        if next <= time {
            let missed = (time &- next) / jobs[i].interval &+ 1
            jobs[i].skipped &+= Int(clamping: missed)
            next &+= missed &* jobs[i].interval
        }
        jobs[i].nextDue = next
    }

    /// Makes every job of every device due now (a set-day readout, a reload); backed-off devices stay backed off.
    public mutating func allDue(now: Int64) {
        for i in jobs.indices { jobs[i].nextDue = min(jobs[i].nextDue, now) }
    }

    public func jobs(ofDevice d: Int) -> [Job] { jobs.filter { $0.device == d } }
}
