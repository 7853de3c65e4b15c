/// A Modbus profile's own test, run offline: its recorded dump read through its plan, every value compared
/// with the expected one, the alarms and identities, and the fingerprint checked against the dump. Used by
/// `gatewayd profiles test FILE` (so a technician adding a heat pump sees what is wrong in minutes) and by
/// the test suite. Pure.
public struct ModbusProfileCheck: Sendable {
    public var profile: String
    /// Requests the plan makes (what a reading of every group costs on the wire).
    public var requests: [ReadRequest]
    public var reading: ModbusReading?
    public var fingerprint: FingerprintVerdict?
    /// Values compared with an expected value.
    public var checkedValues: Int
    /// Sentences, one per thing wrong; empty when the test passes.
    public var failures: [String]

    public var passed: Bool { failures.isEmpty }

    public static func run(_ profile: ModbusProfile) -> ModbusProfileCheck {
        let plan = profile.plan()
        guard let test = profile.test else {
            return ModbusProfileCheck(profile: profile.id, requests: plan, reading: nil, fingerprint: nil, checkedValues: 0,
                                      failures: ["the profile has no test section: add a recorded dump and the values it must decode to"])
        }
        var failures: [String] = []
        if profile.source.isEmpty { failures.append("the profile cites no source") }
        let words = plan.map { test.words(for: $0) }
        for (request, w) in zip(plan, words) where w == nil {
            failures.append("the plan reads \(request) but the dump does not hold all of it")
        }
        let reading = profile.decode(profile.registers, requests: plan, words: words, unit: test.unit ?? 1)
        var checked = 0
        for (name, expected) in test.expected.sorted(by: { $0.key < $1.key }) {
            guard profile.register(named: name) != nil else {
                failures.append("\(name): expected, but the profile defines no such register")
                continue
            }
            guard let got = reading.value(name) else {
                failures.append("\(name): not read (\(reading.failures[name] ?? "no value"))")
                continue
            }
            checked += 1
            if !got.matches(expected) { failures.append("\(name): got \(got), expected \(expected)") }
        }
        for r in profile.registers where test.expected[r.name] == nil {
            failures.append("\(r.name): no expected value in the test")
        }
        let alarms = reading.alarms.map(\.code).sorted()
        if alarms != (test.alarms ?? []).sorted() { failures.append("alarms \(alarms), expected \((test.alarms ?? []).sorted())") }
        for (role, serial) in (test.identity ?? [:]).sorted(by: { $0.key < $1.key }) {
            let got = reading.identities.first { $0.role == role }?.serial
            if got != serial { failures.append("identity \(role): serial \(got ?? "none"), expected \(serial)") }
        }
        var verdict: FingerprintVerdict?
        if profile.hasFingerprint {
            let v = profile.fingerprintVerdict(reading)
            verdict = v
            if case .mismatch(let reasons) = v { failures.append("the dump does not match the profile's own fingerprint: " + reasons.joined(separator: "; ")) }
        }
        return ModbusProfileCheck(profile: profile.id, requests: plan, reading: reading, fingerprint: verdict,
                                  checkedValues: checked, failures: failures)
    }
}

extension ProfileTest {
    /// The dump's words for one request, or nil when the dump does not cover it. Values outside 0…65535
    /// (a hand-written dump) are no words either.
    public func words(for request: ReadRequest) -> [UInt16]? {
        var out: [UInt16] = []
        out.reserveCapacity(request.count)
        for a in request.range {
            guard let block = dump[request.kind.rawValue]?.first(where: { a >= $0.address && a - $0.address < $0.values.count }),
                  let word = UInt16(exactly: block.values[a - block.address]) else { return nil }
            out.append(word)
        }
        return out
    }
}
