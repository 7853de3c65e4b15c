import Gateway
import Testing

/// Issue 18's fair line, on simulated time: the state machine is driven by a loop that plays the line
/// (each read takes its device's time, a dead device costs one timeout) without any clock or sleep.
@Suite("A fair Modbus line: per-device breaker and backoff")
struct FairLineTests {
    /// A simulated line: per device, how long a read takes, or nil while it is dead.
    struct Simulation {
        var line: FairLine
        var now: Int64
        var cost: [Int64?]
        var timeout: Int64
        /// Per device: start times of its reads (answered or not), and which were answered.
        var starts: [[(at: Int64, answered: Bool, probe: Bool)]]
        var busyUntil: Int64 = .min

        init(devices: Int, interval: Int64, cost: [Int64?], timeout: Int64, options: FairLine.Options) {
            line = FairLine(devices: (0..<devices).map { ("hp-\($0 + 1)", [(name: "all", interval: interval)]) }, options: options, now: 0)
            now = 0
            self.cost = cost
            self.timeout = timeout
            starts = Array(repeating: [], count: devices)
        }

        mutating func run(until end: Int64) {
            var steps = 0
            while now < end {
                steps += 1
                precondition(steps < 1_000_000, "the line never advanced")
                switch line.next(now: now) {
                case .wait(let until):
                    #expect(until > now, "a wait that does not move time")
                    now = max(until, now + 1)
                case .read(let j, let probe):
                    let d = line.jobs[j].device
                    #expect(now >= busyUntil, "a request started before the pacing pause was over")
                    let answered = cost[d] != nil
                    starts[d].append((now, answered, probe))
                    let took = cost[d] ?? timeout
                    let started = now
                    now += took
                    line.finished(job: j, probe: probe, startedAt: started, endedAt: now,
                                  outcome: answered ? .answered : .noAnswer("timeout"))
                    busyUntil = now + line.options.pace
                }
            }
        }

        /// Gaps between consecutive answered reads of device `d`.
        func gaps(_ d: Int, after: Int64 = 0) -> [Int64] {
            let t = starts[d].filter { $0.answered && $0.at >= after }.map(\.at)
            return zip(t.dropFirst(), t).map { $0 - $1 }
        }
    }

    @Test("five devices, one dead: the other four keep their interval within 10 %, the dead one costs one timeout per backoff period")
    func oneDeadAmongFive() {
        // 10 s interval; a read takes 400 ms; the dead device's timeout (with one retry) costs 3 s; 50 ms pacing.
        let options = FairLine.Options(timeoutCost: 3_000, baseBackoff: 60_000, maxBackoff: 1_800_000, pace: 50)
        var sim = Simulation(devices: 5, interval: 10_000, cost: [400, 400, nil, 400, 400], timeout: 3_000, options: options)
        sim.run(until: 4 * 3_600_000)
        for d in [0, 1, 3, 4] {
            let gaps = sim.gaps(d)
            #expect(gaps.count > 1_400, "hp-\(d + 1) read \(gaps.count + 1) times in 4 h")
            #expect(gaps.allSatisfy { $0 >= 9_000 && $0 <= 11_000 }, "hp-\(d + 1) gaps outside 9–11 s: \(Set(gaps).sorted())")
        }
        // Dead: tried at 0, then after 60, 120, 240, 480, 960 and every 1800 s: at most one timeout per backoff.
        let tries = sim.starts[2].map(\.at)
        #expect(tries.count <= 12 && tries.count >= 8, "\(tries.count) tries of the dead device: \(tries)")
        for (a, b) in zip(tries.dropFirst(), tries) { #expect(a - b >= 60_000, "two tries of the dead device \(a - b) ms apart") }
        let dead = sim.line.devices[2]
        #expect(dead.health == .backingOff && dead.unanswered == tries.count && dead.answered == 0)
        #expect(dead.timeoutMilliseconds == Int64(tries.count) * 3_000)
        #expect(dead.backoff == 1_800_000)
    }

    @Test("a probe waits for a gap: it never starts when a healthy device is due before it could time out")
    func probesFitInGaps() {
        // Four devices at 2 s taking 400 ms each leave a 400 ms gap per cycle; a 3 s probe fits nowhere,
        // so it waits until it has waited a whole backoff, then goes (a line that is never idle still learns).
        let options = FairLine.Options(timeoutCost: 3_000, baseBackoff: 60_000, maxBackoff: 600_000, pace: 0)
        var sim = Simulation(devices: 5, interval: 2_000, cost: [400, 400, 400, 400, nil], timeout: 3_000, options: options)
        sim.run(until: 1_800_000)
        let probes = sim.starts[4].filter(\.probe).map(\.at)
        #expect(!probes.isEmpty)
        // Each probe started only when it had waited a full backoff (the starvation guard), never earlier.
        var backoff: Int64 = 60_000
        var previousEnd = sim.starts[4][0].at + 3_000
        for p in probes {
            #expect(p >= previousEnd + 2 * backoff, "probe at \(p) before its gap or guard (\(previousEnd) + 2 × \(backoff))")
            previousEnd = p + 3_000
            backoff = min(backoff * 2, 600_000)
        }
        // With a roomy interval the same probe goes as soon as its backoff is over.
        var roomy = Simulation(devices: 5, interval: 20_000, cost: [400, 400, 400, 400, nil], timeout: 3_000, options: options)
        roomy.run(until: 400_000)
        let first = roomy.starts[4].filter(\.probe).first?.at
        #expect(first.map { $0 >= 63_000 && $0 <= 63_000 + 20_000 } == true, "first probe at \(String(describing: first))")
    }

    @Test("a device that comes back is read on its interval again, and its missed slots were skipped, not queued")
    func recovery() {
        let options = FairLine.Options(timeoutCost: 1_000, baseBackoff: 30_000, maxBackoff: 120_000, pace: 0)
        var sim = Simulation(devices: 2, interval: 10_000, cost: [200, nil], timeout: 1_000, options: options)
        sim.run(until: 300_000)
        #expect(sim.line.devices[1].health == .backingOff)
        let skippedBefore = sim.line.jobs[1].skipped
        #expect(skippedBefore > 10)
        sim.cost[1] = 200
        sim.run(until: 900_000)
        #expect(sim.line.devices[1].health == .healthy)
        let back = sim.starts[1].first { $0.answered }!.at
        let gaps = sim.gaps(1, after: back)
        #expect(gaps.count > 40 && gaps.allSatisfy { $0 >= 9_000 && $0 <= 11_000 }, "\(Set(gaps).sorted())")
        // No burst of queued reads after recovery.
        let burst = sim.starts[1].filter { $0.at >= back && $0.at < back + 10_000 }.count
        #expect(burst <= 2)
        #expect(sim.gaps(0).allSatisfy { $0 >= 9_000 && $0 <= 11_000 })
    }

    @Test("a refused device (another model answers) is checked again only after the longest backoff")
    func refused() {
        var line = FairLine(devices: [("a", [(name: "all", interval: 5_000)]), ("b", [(name: "all", interval: 5_000)])],
                            options: FairLine.Options(timeoutCost: 1_000, baseBackoff: 10_000, maxBackoff: 600_000), now: 0)
        guard case .read(let j0, false) = line.next(now: 0) else { Issue.record("no first read"); return }
        line.finished(job: j0, probe: false, startedAt: 0, endedAt: 100, outcome: .answered)
        guard case .read(let j1, false) = line.next(now: 100) else { Issue.record("no second read"); return }
        #expect(line.jobs[j1].device == 1)
        line.finished(job: j1, probe: false, startedAt: 100, endedAt: 200, outcome: .refused("model 7, expects 5"))
        #expect(line.devices[1].health == .refused && line.devices[1].probeAt == 600_200)
        #expect(line.devices[1].lastProblem == "model 7, expects 5")
        var t: Int64 = 200
        var readsOfB = 0
        while t < 600_000 {
            switch line.next(now: t) {
            case .wait(let until): t = until
            case .read(let j, let probe):
                if line.jobs[j].device == 1 { readsOfB += 1 }
                line.finished(job: j, probe: probe, startedAt: t, endedAt: t + 100, outcome: .answered)
                t += 100
            }
        }
        #expect(readsOfB == 0)
    }

    @Test("hostile times (Int64 extremes) neither trap nor stall the line")
    func extremes() {
        for start: Int64 in [.max - 10_000, .min, 0] {
            var line = FairLine(devices: [("a", [(name: "all", interval: .max)]), ("b", [(name: "all", interval: 1)])],
                                options: FairLine.Options(timeoutCost: .max, baseBackoff: .max, maxBackoff: .max, pace: .max), now: start)
            var t = start
            for _ in 0..<50 {
                switch line.next(now: t) {
                case .wait(let until): t = max(t, until)
                case .read(let j, let probe):
                    line.finished(job: j, probe: probe, startedAt: t, endedAt: t &+ 5, outcome: j == 0 ? .noAnswer("x") : .answered)
                }
            }
        }
    }
}
