import Drivers
import Testing

/// A small deterministic generator, so failing cases can be replayed.

@Suite("Read planner", .serialized)
struct PlannerTests {
    /// Every planned request is valid, every field is read, and the count equals the exhaustive optimum.
    func check(_ fields: [PlanField], _ c: PlanConstraints, sourceLocation: SourceLocation = #_sourceLocation) {
        let plan = ReadPlanner.plan(fields, c)
        for r in plan {
            #expect(ReadPlanner.isValid(r, fields: fields, c), "invalid request \(r) for \(fields) \(c)", sourceLocation: sourceLocation)
        }
        for f in fields {
            #expect(plan.contains { $0.contains(f.address) && $0.contains(f.address + f.count - 1) },
                    "field \(f) not read by \(plan)", sourceLocation: sourceLocation)
        }
        let optimum = ReadPlanner.bruteForceMinimum(fields, c)
        #expect(ReadPlanner.bruteForceMinimum(fields, c, canonical: true) == optimum, "canonical search disagrees for \(fields) \(c)", sourceLocation: sourceLocation)
        #expect(optimum == plan.count, "plan \(plan) has \(plan.count) requests, exhaustive search \(String(describing: optimum)) for \(fields) \(c)", sourceLocation: sourceLocation)
    }

    @Test func respectsTheProtocolLimit() {
        let fields = (0..<300).map { PlanField(address: $0) }
        let plan = ReadPlanner.plan(fields, PlanConstraints(maxCount: 125))
        #expect(plan.count == 3)
        #expect(plan.allSatisfy { $0.count <= 125 })
    }

    @Test func bridgesGapsUpToTheLimitOnly() {
        let fields = [PlanField(address: 0), PlanField(address: 4), PlanField(address: 10)]
        #expect(ReadPlanner.plan(fields, PlanConstraints(gapFill: 3)) == [0...4, 10...10])
        #expect(ReadPlanner.plan(fields, PlanConstraints(gapFill: 5)) == [0...10])
        #expect(ReadPlanner.plan(fields, PlanConstraints(gapFill: 2)).count == 3)
    }

    @Test func readsAloneZonesOneValueAtATime() {
        let fields = [PlanField(address: 0), PlanField(address: 1), PlanField(address: 5), PlanField(address: 6, count: 2), PlanField(address: 9)]
        let c = PlanConstraints(gapFill: 10, readAlone: [5...8])
        #expect(ReadPlanner.plan(fields, c) == [0...1, 5...5, 6...7, 9...9])
        check(fields, c)
    }

    @Test func neverReadsUnreadableAddresses() {
        let fields = [PlanField(address: 20), PlanField(address: 24), PlanField(address: 100)]
        let c = PlanConstraints(gapFill: 200, unreadable: [22...23])
        #expect(ReadPlanner.plan(fields, c) == [20...20, 24...100])
    }

    @Test func neverSplitsAMultiWordValue() {
        let fields = [PlanField(address: 0, count: 2), PlanField(address: 2, count: 2), PlanField(address: 4, count: 2)]
        let plan = ReadPlanner.plan(fields, PlanConstraints(maxCount: 5))
        #expect(plan == [0...3, 4...5])
    }

    @Test func mergesOverlappingFields() {
        // A 32-bit value and a bitfield over its low word.
        let fields = [PlanField(address: 10, count: 2), PlanField(address: 11)]
        #expect(ReadPlanner.plan(fields, PlanConstraints()) == [10...11])
    }

    @Test("equals the exhaustive optimum on 400 random small cases")
    func randomCasesMatchBruteForce() {
        var rng = SeededRandom(seed: 0x5EED_0005)
        for _ in 0..<400 {
            let space = Int.random(in: 6...22, using: &rng)
            var fields: [PlanField] = []
            var a = Int.random(in: 0...2, using: &rng)
            while a < space {
                let count = Int.random(in: 0...4, using: &rng) == 0 ? 2 : 1
                fields.append(PlanField(address: a, count: count, alone: Int.random(in: 0...9, using: &rng) == 0))
                a += count + Int.random(in: 0...4, using: &rng)
            }
            var zones: [ClosedRange<Int>] = []
            var holes: [ClosedRange<Int>] = []
            if Bool.random(using: &rng) {
                let s = Int.random(in: 0..<space, using: &rng)
                zones.append(s...(s + Int.random(in: 0...3, using: &rng)))
            }
            if Int.random(in: 0...2, using: &rng) == 0 {
                let s = Int.random(in: 0..<space, using: &rng)
                let hole = s...(s + Int.random(in: 0...2, using: &rng))
                // A hole over a wanted field has no plan at all; keep holes in the gaps.
                if !fields.contains(where: { hole.overlaps($0.address...($0.address + $0.count - 1)) }) { holes.append(hole) }
            }
            let c = PlanConstraints(maxCount: Int.random(in: 2...8, using: &rng), gapFill: Int.random(in: 0...3, using: &rng),
                                    readAlone: zones, unreadable: holes)
            check(fields, c)
        }
    }

    @Test("each shipped profile's plan equals the exhaustive optimum", arguments: Paths.shippedProfiles())
    func shippedProfiles(path: String) throws {
        let profile = try loadProfile(path)
        for kind in RegisterKind.allCases {
            let fields = profile.registers.filter { $0.kind == kind }.map { PlanField(address: $0.address, count: $0.words, alone: $0.alone ?? false) }
            if fields.isEmpty { continue }
            let c = profile.constraints(kind)
            let plan = ReadPlanner.plan(fields, c)
            let optimum = ReadPlanner.bruteForceMinimum(fields, c, canonical: true)
            #expect(optimum == plan.count, "\(profile.id) \(kind): planner \(plan.count), exhaustive \(String(describing: optimum))")
        }
    }
}
