/// One read request: a function code's table, a start address and a count.
public struct ReadRequest: Hashable, Sendable, Codable, CustomStringConvertible {
    public var kind: RegisterKind
    public var address: Int
    public var count: Int

    public init(kind: RegisterKind, address: Int, count: Int) {
        self.kind = kind
        self.address = address
        self.count = count
    }

    public var range: ClosedRange<Int> { address...(address + count - 1) }
    public var description: String { "\(kind) \(address)+\(count) (FC \(kind.readFunction))" }
}

/// A value the planner must read whole: `count` consecutive addresses from `address`.
public struct PlanField: Hashable, Sendable {
    public var address: Int
    public var count: Int
    /// Must be read in a request of its own.
    public var alone: Bool

    public init(address: Int, count: Int = 1, alone: Bool = false) {
        self.address = address
        self.count = max(1, count)
        self.alone = alone
    }

    var end: Int { address + count - 1 }
}

/// What the device allows in one request of one table.
public struct PlanConstraints: Hashable, Sendable {
    /// Largest count per request (125 registers or 2000 bits, or the device's lower limit).
    public var maxCount: Int
    /// Most consecutive unwanted addresses one request may read.
    public var gapFill: Int
    /// Zones the device answers only one value at a time.
    public var readAlone: [ClosedRange<Int>]
    /// Addresses no request may include.
    public var unreadable: [ClosedRange<Int>]

    public init(maxCount: Int = 125, gapFill: Int = 0, readAlone: [ClosedRange<Int>] = [], unreadable: [ClosedRange<Int>] = []) {
        self.maxCount = max(1, maxCount)
        self.gapFill = max(0, gapFill)
        self.readAlone = readAlone
        self.unreadable = unreadable
    }

    func touchesReadAlone(_ r: ClosedRange<Int>) -> Bool { readAlone.contains { $0.overlaps(r) } }
    func touchesUnreadable(_ r: ClosedRange<Int>) -> Bool { unreadable.contains { $0.overlaps(r) } }
}

/// Plans the fewest requests that read a set of fields.
///
/// Fields are merged where they overlap, sorted, and split into consecutive runs by dynamic programming:
/// a run is one request when its span fits the block limit, every hole inside is at most `gapFill`
/// addresses, it touches no unreadable address, and a field read alone (or in a read-alone zone) is its
/// only field. Any request set can be rearranged into such runs without more requests, so the minimum
/// over runs is the minimum over all request sets (the tests check this against an exhaustive search).
/// Ties are broken by the fewest addresses read.
public enum ReadPlanner {
    public static func plan(_ fields: [PlanField], _ c: PlanConstraints) -> [ClosedRange<Int>] {
        let atoms = merge(fields, c)
        let n = atoms.count
        if n == 0 { return [] }
        // best[j] = (requests, addresses read, start of the last run) for atoms 0..<j.
        var best = [(requests: Int, words: Int, from: Int)](repeating: (Int.max, Int.max, -1), count: n + 1)
        best[0] = (0, 0, -1)
        for j in 1...n {
            var i = j - 1
            while i >= 0 {
                let span = atoms[i].address...atoms[j - 1].end
                if span.count > c.maxCount { break }
                if i < j - 1 {
                    // A hole between atom i and i+1 grows the run from the left.
                    let hole = atoms[i + 1].address - atoms[i].end - 1
                    if hole > c.gapFill { break }
                    if atoms[i].alone || atoms[j - 1].alone || c.touchesReadAlone(span) { break }
                }
                if c.touchesUnreadable(span) { break }
                if best[i].requests != Int.max {
                    let candidate = (best[i].requests + 1, best[i].words + span.count)
                    if candidate.0 < best[j].requests || (candidate.0 == best[j].requests && candidate.1 < best[j].words) {
                        best[j] = (candidate.0, candidate.1, i)
                    }
                }
                i -= 1
            }
        }
        guard best[n].requests != Int.max else {
            // Only possible when a field itself is unreadable or too long: read each field alone anyway,
            // so the device's exception names the problem.
            return atoms.map { $0.address...$0.end }
        }
        var runs: [ClosedRange<Int>] = []
        var j = n
        while j > 0 {
            let i = best[j].from
            runs.append(atoms[i].address...atoms[j - 1].end)
            j = i
        }
        return runs.reversed()
    }

    /// Overlapping fields become one atom (a 32-bit value and a bitfield over its low word, say).
    static func merge(_ fields: [PlanField], _ c: PlanConstraints) -> [PlanField] {
        var out: [PlanField] = []
        for f in fields.sorted(by: { ($0.address, $0.count) < ($1.address, $1.count) }) {
            let alone = f.alone || c.touchesReadAlone(f.address...f.end)
            if var last = out.last, f.address <= last.end {
                last.count = max(last.end, f.end) - last.address + 1
                last.alone = last.alone || alone
                out[out.count - 1] = last
            } else {
                out.append(PlanField(address: f.address, count: f.count, alone: alone))
            }
        }
        return out
    }

    /// Whether one request over `range` obeys the constraints for these fields (the definition the
    /// exhaustive search uses; it does not assume requests start or end on a field).
    public static func isValid(_ range: ClosedRange<Int>, fields: [PlanField], _ c: PlanConstraints) -> Bool {
        valid(range, atoms: merge(fields, c), c)
    }

    static func valid(_ range: ClosedRange<Int>, atoms: [PlanField], _ c: PlanConstraints) -> Bool {
        if range.count > c.maxCount || c.touchesUnreadable(range) { return false }
        var covered: [PlanField] = []
        for a in atoms where a.address <= range.upperBound && a.end >= range.lowerBound {
            if a.address < range.lowerBound || a.end > range.upperBound { return false }
            covered.append(a)
        }
        if covered.isEmpty { return false }
        if c.touchesReadAlone(range) || covered.contains(where: \.alone) {
            return covered.count == 1 && covered[0].address == range.lowerBound && covered[0].end == range.upperBound
        }
        var cursor = range.lowerBound
        for a in covered {
            if a.address - cursor > c.gapFill { return false }
            cursor = a.end + 1
        }
        return range.upperBound + 1 - cursor <= c.gapFill
    }

    /// The optimum by exhaustive search: branch on every valid request that covers the first unread
    /// field. Exponential; for tests and the benchmark on small inputs. Returns nil when no plan exists
    /// or the search exceeds `budget` nodes.
    ///
    /// With `canonical`, requests start on the first unread field and end on a field's last address:
    /// any valid request shrinks to that form without losing validity or coverage, so the result is the
    /// same, and the search stays small enough for whole profiles.
    public static func bruteForceMinimum(_ fields: [PlanField], _ c: PlanConstraints, canonical: Bool = false,
                                         budget: Int = 20_000_000) -> Int? {
        let atoms = merge(fields, c)
        if atoms.isEmpty { return 0 }
        var best = Int.max
        var nodes = 0
        var covered = [Bool](repeating: false, count: atoms.count)
        func search(_ used: Int) -> Bool {
            nodes += 1
            if nodes > budget { return false }
            guard let first = covered.firstIndex(of: false) else {
                best = min(best, used)
                return true
            }
            if used + 1 >= best { return true }
            let f = atoms[first]
            let lowest = canonical ? f.address : max(0, f.end - c.maxCount + 1)
            for start in stride(from: f.address, through: lowest, by: -1) {
                for end in f.end...(start + c.maxCount - 1) {
                    if canonical && !atoms.contains(where: { $0.end == end }) { continue }
                    let r = start...end
                    guard valid(r, atoms: atoms, c) else { continue }
                    var newly: [Int] = []
                    for k in first..<atoms.count where !covered[k] && atoms[k].address >= start && atoms[k].end <= end {
                        covered[k] = true
                        newly.append(k)
                    }
                    let ok = search(used + 1)
                    for k in newly { covered[k] = false }
                    if !ok { return false }
                }
            }
            return true
        }
        guard search(0) else { return nil }
        return best == Int.max ? nil : best
    }
}
