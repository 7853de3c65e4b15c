/// Runs a profile's own test telegrams: the same check for the test suite and for
/// `gatewayd profiles test`, so a technician adding a meter sees what CI will see.
public enum ProfileTestRunner {
    /// What one test telegram gave.
    public struct Outcome: Sendable {
        public var profileID: String
        public var index: Int
        /// The profile the catalog picked for the telegram (nil: none, the telegram would decode generically).
        public var detected: String?
        public var reading: ProfileReading?
        /// Differences from the expectations and problems, in words; empty when the test passes.
        public var failures: [String]
        /// Values the test compared.
        public var checkedValues: Int
        public var passed: Bool { failures.isEmpty }
    }

    /// The telegram of a test case, decoded as the gateway does: preceding telegrams first, its key if any.
    public static func decode(_ t: ProfileTestCase, formats: [[UInt8]] = []) throws(ProfileError) -> WirelessTelegram {
        var ring = WMBusKeyring()
        if let k = t.key {
            guard let key = WMBusKey(hex: k) else { throw ProfileError(origin: "test", message: "key \"\(k)\" is not 32 hex digits") }
            ring.defaultKey = key
        }
        var d = WirelessDecoder(keyring: ring)
        d.learn(formats: formats)
        let format: WMBusFrameFormat? = switch t.framing {
        case "b": .b
        case "a": .a
        case nil, "no_crc", "wired": .noCRC
        default: nil
        }
        guard let format else { throw ProfileError(origin: "test", message: "framing \"\(t.framing ?? "")\" is not no_crc, a, b or wired") }
        do {
            let bytes = try Hex.decode(t.hex)
            // A wired M-Bus long frame (68 L L 68 …): the meter's answer on the wire, same identity and records.
            if t.framing == "wired" || (t.framing == nil && bytes.count > 4 && bytes[0] == 0x68 && bytes[3] == 0x68 && bytes[1] == bytes[2]) {
                guard let w = try WirelessTelegram.wired(bytes, keyring: ring) else {
                    throw ProfileError(origin: "test", message: "the wired frame has no long header (CI 72h) to detect the meter by")
                }
                return w
            }
            for p in t.preceding ?? [] { _ = try d.decode(try Hex.decode(p), format: .noCRC) }
            return try d.decode(bytes, format: format)
        } catch let e as Hex.ParseError {
            throw ProfileError(origin: "test", message: "not hex: \(e.reason) at character \(e.offset)")
        } catch let e as ProfileError {
            throw e
        } catch let e as DecodeError {
            throw ProfileError(origin: "test", message: "the telegram does not decode: \(e.message) (byte \(e.offset))")
        } catch {
            throw ProfileError(origin: "test", message: "\(error)")
        }
    }

    static func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= max(1e-9, 1e-6 * max(abs(a), abs(b))) }

    /// Differences between a reading and a test case's expectations, in words.
    public static func differences(_ r: ProfileReading, _ t: ProfileTestCase) -> [String] {
        var out: [String] = []
        for (name, want) in t.expected.sorted(by: { $0.key < $1.key }) {
            guard let got = r.value(name) else { out.append("\(name): missing, expected \(want)"); continue }
            switch (want, got) {
            case (.number(let w), .number(let g)): if !close(w, g) { out.append("\(name): \(g), expected \(w)") }
            case (.text(let w), _): if got.description != w { out.append("\(name): \(got), expected \(w)") }
            default: out.append("\(name): \(got), expected \(want)")
            }
        }
        if let alarms = t.alarms, Set(alarms) != Set(r.alarms.map(\.flag)) {
            out.append("alarms \(r.alarms.map(\.flag).sorted()), expected \(alarms.sorted())")
        }
        if let d = t.setDayDate, r.setDayDate?.description != d {
            out.append("set-day date \(r.setDayDate?.description ?? "none"), expected \(d)")
        }
        return out
    }

    /// Runs every test of `profile`. Detection is checked against `catalog` (the catalog the profile would
    /// ship in), values against the profile itself.
    public static func run(_ profile: MeterProfile, catalog: ProfileCatalog) -> [Outcome] {
        let compiled = CompiledProfile(profile)
        var out: [Outcome] = []
        for (n, t) in profile.tests.enumerated() {
            var o = Outcome(profileID: profile.id, index: n, detected: nil, reading: nil, failures: [], checkedValues: t.expected.count)
            let w: WirelessTelegram
            do {
                w = try decode(t, formats: (profile.compactFormats ?? []).compactMap { try? Hex.decode($0) })
            } catch {
                o.failures.append(error.message)
                out.append(o)
                continue
            }
            o.detected = catalog.detect(w)?.id
            if o.detected != profile.id {
                o.failures.append("detected as \(o.detected ?? "no profile (generic)"), not \(profile.id): check detect (manufacturer \(w.meterAddress.manufacturer.letters), version 0x\(Hex.encode([w.meterAddress.version])), device type 0x\(Hex.encode([w.meterAddress.deviceType.rawValue])))")
            }
            let r = ProfileEvaluator.evaluate(w, compiled)
            o.reading = r
            o.failures += differences(r, t)
            o.failures += r.problems.map { "problem: \($0)" }
            out.append(o)
        }
        return out
    }

    /// Totals over a catalog: what the test suite prints.
    public struct Totals: Sendable, CustomStringConvertible {
        public var families = 0
        public var telegrams = 0
        public var values = 0
        public var failed = 0
        public var byCategory: [String: Int] = [:]
        public init() {}
        public var description: String {
            let cats = byCategory.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            return "\(families) families (\(cats)), \(telegrams) test telegrams, \(values) values checked, \(failed) failed"
        }
    }

    public static func runAll(_ catalog: ProfileCatalog) -> (totals: Totals, outcomes: [Outcome]) {
        var t = Totals()
        var all: [Outcome] = []
        for p in catalog.profiles {
            t.families += 1
            t.byCategory[p.category, default: 0] += 1
            let o = run(p, catalog: catalog)
            t.telegrams += o.count
            t.values += o.reduce(0) { $0 + $1.checkedValues }
            t.failed += o.filter { !$0.passed }.count
            all += o
        }
        return (t, all)
    }
}
