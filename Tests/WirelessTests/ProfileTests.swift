import Foundation
import Testing
@testable import Drivers

/// The wireless meter profiles in profiles/wmbus: each file's own test telegrams, detection, status bits.
@Suite("wireless meter profiles")
struct ProfileTests {
    static let directory: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("profiles/wmbus").path
    }()

    static func files() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
    }

    static func catalog() throws -> ProfileCatalog { try ProfileCatalog.load(directory: directory) }

    static func decode(_ t: ProfileTestCase) throws -> WirelessTelegram { try ProfileTestRunner.decode(t) }

    @Test("the shipped profiles cover 4 HCA makers, 4 water makers with Kamstrup, and a heat meter")
    func coverage() throws {
        let c = try Self.catalog()
        #expect(c.profiles.count == Self.files().count)
        func makers(_ category: String) -> Set<String> { Set(c.profiles.filter { $0.category == category }.map(\.manufacturer)) }
        #expect(makers("heat_cost_allocator").count >= 4)
        #expect(makers("water").count >= 4)
        #expect(makers("water").contains("Kamstrup"))
        #expect(makers("heat").count >= 1)
    }

    @Test("every profile's test telegrams give its expected output", arguments: files())
    func profileTests(file: String) throws {
        let data = try #require(FileManager.default.contents(atPath: Self.directory + "/" + file))
        let profile = try MeterProfile.decode(data, origin: file)
        let catalog = try Self.catalog()
        #expect(!profile.tests.isEmpty)
        for o in ProfileTestRunner.run(profile, catalog: catalog) {
            #expect(o.failures == [], "\(file) test \(o.index)")
            #expect(o.detected == profile.id)
            let w = try ProfileTestRunner.decode(profile.tests[o.index], formats: catalog.compactFormats)
            #expect(catalog.evaluate(w) == o.reading)
        }
    }

    @Test("the catalog's tests, counted: families, telegrams, values (printed for the CI log)")
    func totals() throws {
        let (totals, outcomes) = ProfileTestRunner.runAll(try Self.catalog())
        print("wireless meter profiles: \(totals)")
        #expect(totals.failed == 0, "\(outcomes.filter { !$0.passed }.map { "\($0.profileID) test \($0.index): \($0.failures)" })")
        #expect(totals.families == Self.files().count)
        #expect(totals.values > totals.telegrams, "tests compare values, not only detection")
    }

    @Test("the runner fails a test whose expectation is wrong, and one whose telegram another profile detects")
    func runnerCanFail() throws {
        let c = try Self.catalog()
        var p = try #require(c.profiles.first { $0.id == "techem-fhkv-data-iii" })
        p.tests[0].expected["current_hca"] = .number(5)
        var o = ProfileTestRunner.run(p, catalog: c)
        #expect(o[0].failures == ["current_hca: 4.0, expected 5.0"])
        p = try #require(c.profiles.first { $0.id == "techem-fhkv-data-iii" })
        p.id = "stranger"
        o = ProfileTestRunner.run(p, catalog: c)
        #expect(o[0].failures.first?.hasPrefix("detected as techem-fhkv-data-iii") == true)
    }

    @Test("a telegram from a meter no profile knows decodes generically: no profile, nil reading")
    func foreignTelegram() throws {
        let c = try Self.catalog()
        // OMS Vol. 2 Annex N.2.1 (Elster gas meter): not one of ours.
        var d = WirelessDecoder(keyring: WMBusKeyring(defaultKey: WMBusKey(hex: "0102030405060708090A0B0C0D0E0F11")))
        let w = try d.decode(try Hex.decode("2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3"))
        #expect(c.detect(w) == nil)
        #expect(c.evaluate(w) == nil)
        #expect(!w.telegram.records.isEmpty, "it still decodes through EN 13757-3")
        // Same maker and type as a profile but another version: no guess.
        let kam = WMBusAddress(manufacturer: ManufacturerCode("KAM")!, identification: IdentificationNumber("12345678")!, version: 0x99, deviceType: .coldWater)
        #expect(c.profile(for: kam) == nil)
        let known = WMBusAddress(manufacturer: ManufacturerCode("KAM")!, identification: IdentificationNumber("12345678")!, version: 0x1B, deviceType: .coldWater)
        #expect(c.profile(for: known)?.id == "kamstrup-multical-21")
    }

    @Test("TPL status bits and a maker's bit table become alarms with severities")
    func statusBits() throws {
        let c = try Self.catalog()
        let hcae2 = try #require(c.profiles.first { $0.id == "engelmann-hca-e2" })
        var w = try Self.decode(hcae2.tests[0])
        var r = try #require(c.evaluate(w))
        #expect(r.alarms.contains { $0.flag == "permanent_error" && $0.severity == .alarm && $0.source == "tpl_status" })
        #expect(r.worstSeverity == .alarm)
        // Status 04h: power low only.
        w.tpl?.status = 0x04
        w.telegram.records.removeAll { if case .manufacturerSpecific = $0.vif { return true } else { return false } }
        r = try #require(c.evaluate(w))
        #expect(r.alarms.map(\.flag) == ["battery_low"])
        #expect(r.alarms.first?.severity == .warning)

        // Manufacturer TPL bits come from the profile.
        var p = hcae2
        p.status = StatusSpec(tpl: [StatusBit(mask: 0x20, match: nil, any: nil, flag: "tamper", severity: .alarm, text: "housing opened")], values: nil)
        w.tpl?.status = 0x20
        r = ProfileEvaluator.evaluate(w, profile: p)
        #expect(r.alarms.map(\.flag) == ["tamper"])
    }

    @Test("Kamstrup info codes: dry, reverse, leak, burst from the named record")
    func kamstrupInfoCodes() throws {
        let c = try Self.catalog()
        let p = try #require(c.profiles.first { $0.id == "kamstrup-multical-21" })
        let base = try Hex.decode(p.tests[0].hex)
        for (code, flags) in [(0x00, [String]()), (0x01, ["dry"]), (0x02, ["backflow"]), (0x04, ["leak"]), (0x08, ["burst"]), (0x0F, ["dry", "backflow", "leak", "burst"]), (0xF0, [])] {
            var b = base
            b[23] = UInt8(code)
            // The ELL payload CRC covers the records.
            let crc = WMBusCRC.compute(b[19...])
            b[17] = UInt8(crc & 0xFF)
            b[18] = UInt8(crc >> 8)
            var d = WirelessDecoder()
            let r = try #require(c.evaluate(try d.decode(b)))
            #expect(r.alarms.map(\.flag) == flags, "info code \(code)")
        }
    }

    @Test("layout interpreter: encodings, bit fields, invalid markers, short input is absent, never a trap")
    func interpreter() throws {
        func field(_ json: String) throws -> LayoutField {
            try JSONDecoder().decode(LayoutField.self, from: Data(("{\"name\":\"x\"," + json + "}").utf8))
        }
        func read(_ json: String, _ bytes: [UInt8]) throws -> ProfileValue? {
            if case .value(let v) = LayoutInterpreter.read(try field(json), bytes[...], dates: []) { return v }
            return nil
        }
        #expect(try read(#""offset":0,"length":2,"encoding":"uint""#, [0x34, 0x12]) == .number(0x1234))
        #expect(try read(#""offset":0,"length":2,"encoding":"uint","byteOrder":"big""#, [0x12, 0x34]) == .number(0x1234))
        #expect(try read(#""offset":0,"length":2,"encoding":"int""#, [0xFE, 0xFF]) == .number(-2))
        #expect(try read(#""offset":1,"length":3,"encoding":"bcd","scale":0.001"#, [0, 0x91, 0x67, 0x04]) == .number(46.791))
        #expect(try read(#""offset":0,"length":2,"encoding":"uint","shift":4,"bits":5"#, [0x50, 0x24]) == .number(5))
        #expect(try read(#""offset":0,"length":2,"encoding":"uint","invalid":[65535]"#, [0xFF, 0xFF]) == nil)
        #expect(try read(#""offset":0,"length":2,"encoding":"date_g""#, [0x9F, 0x2C]) == .date(MBusDateTime(year: 2020, month: 12, day: 31)))
        #expect(try read(#""offset":0,"length":2,"encoding":"date_g""#, [0xFF, 0xFF]) == nil, "FFFF is no date")
        #expect(try read(#""offset":4,"length":2,"encoding":"uint""#, [1, 2, 3]) == nil, "beyond the end is absent")
        let bcd = LayoutInterpreter.read(try field(#""offset":0,"length":1,"encoding":"bcd""#), [0xAB][...], dates: [])
        if case .problem = bcd {} else { Issue.record("non-decimal BCD is a problem, not a value") }
        // A year-less date takes the first year that puts it after its reference date.
        let prev = NamedValue(name: "p", value: .date(MBusDateTime(year: 2020, month: 12, day: 31)), unit: "date")
        let cur = try field(#""offset":0,"length":2,"encoding":"date_bits","day":{"shift":4,"bits":5},"month":{"shift":9,"bits":4},"after":"p""#)
        if case .value(let v) = LayoutInterpreter.read(cur, [0x50, 0x24][...], dates: [prev]) {
            #expect(v == .date(MBusDateTime(year: 2021, month: 2, day: 5)))
        } else {
            Issue.record("no date")
        }
        // Every byte string through every profile: values or absence, never a trap.
        let c = try Self.catalog()
        var rng = SystemRandomNumberGenerator()
        for p in c.profiles {
            guard let t = p.tests.first, var w = try? Self.decode(t) else { continue }
            for _ in 0..<50 {
                let n = Int.random(in: 0..<40, using: &rng)
                let junk = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if w.manufacturerPayload != nil { w.manufacturerPayload = junk }
                if w.recordBytes != nil { w.recordBytes = junk }
                if w.compactFrame != nil { w.compactFrame?.values = junk }
                _ = ProfileEvaluator.evaluate(w, profile: p)
            }
        }
    }

    @Test("invalid profiles are refused with a sentence; two profiles cannot claim the same meters")
    func validation() throws {
        let c = try Self.catalog()
        let p = c.profiles[0]
        var bad = p
        bad.detect = [ProfileDetection(manufacturer: "k4m", versions: nil, deviceTypes: nil)]
        #expect(throws: ProfileError.self) { try bad.validate() }
        bad = p
        bad.tests = []
        #expect(throws: ProfileError.self) { try bad.validate() }
        bad = p
        bad.setDay = SetDaySpec(value: "no_such_value", date: nil)
        #expect(throws: ProfileError.self) { try bad.validate() }
        var twin = p
        twin.id = "twin"
        #expect(throws: ProfileError.self) { try ProfileCatalog(profiles: [p, twin]) }
        do {
            _ = try MeterProfile.decode(Data(#"{"id":"x"}"#.utf8), origin: "x.json")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("missing \"name\""))
        }
    }

    @Test("a record's \"as\": the maker's reactive energy under the energy VIF reads as kvarh, a bare number as Hz; another kind is refused")
    func recordHeldUnit() throws {
        // Energy 3 (10^0 Wh) and a manufacturer VIFE's bare number, as iEM3000 meters send them.
        #expect(UnitConversion.convert(41_805_979, from: "Wh", to: "kvarh", held: "varh") == 41_805.979)
        #expect(UnitConversion.convert(41_805_979, from: "Wh", to: "kvarh") == nil)
        #expect(UnitConversion.convert(49.947, from: "", to: "Hz", held: "Hz") == 49.947)
        #expect(UnitConversion.convert(49.947, from: "", to: "Hz") == nil)
        // The iEM3000 profile's own telegram: the values carry the units the maker meant.
        let c = try Self.catalog()
        let p = try #require(c.profiles.first { $0.id == "schneider-iem3000" })
        let withReactive = try #require(p.tests.first { $0.expected["total_reactive_energy_consumption_kvarh"] != nil })
        let reading = try #require(c.evaluate(try Self.decode(withReactive)))
        let reactive = try #require(reading.values.first { $0.name == "total_reactive_energy_consumption_kvarh" })
        #expect(reactive.unit == "kvarh")
        var bad = p
        let i = try #require(bad.records?.firstIndex { $0.name == "total_reactive_energy_consumption_kvarh" })
        bad.records?[i].as = "m3"
        #expect(throws: ProfileError.self) { try bad.validate() }
    }

    @Test("a catalog kept for evaluation (the daemon's) drops tests and sources but reads every test telegram as the full one does")
    func evaluationRetention() throws {
        let full = try Self.catalog()
        let lean = try ProfileCatalog.load(directory: Self.directory, keeping: .evaluation)
        #expect(lean.profiles.count == full.profiles.count)
        #expect(lean.profiles.allSatisfy { $0.tests.isEmpty && $0.source.isEmpty && $0.models == nil })
        var compared = 0
        for p in full.profiles {
            for t in p.tests {
                guard let w = try? Self.decode(t) else { continue }
                let a = full.evaluate(w), b = lean.evaluate(w)
                #expect(a != nil && a?.profileID == b?.profileID, "\(p.id)")
                // Names, values and units, not only names: dropping a file's tests must not change a reading.
                #expect(a?.values == b?.values, "\(p.id)")
                #expect(a?.alarms.map(\.flag) == b?.alarms.map(\.flag), "\(p.id)")
                compared += 1
            }
        }
        #expect(compared > 400)
    }

    @Test("derived history dates: whole months back, a month's last day stays the last day, only beside their value; bad ones refused")
    func monthsBefore() throws {
        let c = try Self.catalog()
        let p = try #require(c.profiles.first { $0.id == "maddalena-microclima" })
        let t = try #require(p.tests.first { $0.expected["set_date_3_date"] != nil })
        let r = try #require(c.evaluate(try Self.decode(t)))
        // 2020-12-31 is the newest set day: 2 months back is 31 October, 10 months back 29 February (a leap year).
        #expect(r.value("set_date_1_date")?.description == "2020-12-31")
        #expect(r.value("set_date_3_date")?.description == "2020-10-31")
        #expect(r.value("set_date_11_date")?.description == "2020-02-29")
        #expect(r.value("set_date_23_date")?.description == "2019-02-28")
        // The telegram carries odd storage numbers only: no date without its value.
        #expect(r.value("consumption_at_set_date_2_kwh") == nil && r.value("set_date_2_date") == nil)

        var bad = p
        bad.derived = [DerivedField(name: "d", unit: "date", monthsBefore: .init(date: "total_volume_m3", months: 1))]
        #expect(throws: ProfileError.self) { try bad.validate() }  // not a date
        bad.derived = [DerivedField(name: "d", unit: "date", monthsBefore: .init(date: "set_date", months: -1))]
        #expect(throws: ProfileError.self) { try bad.validate() }
        bad.derived = [DerivedField(name: "d", unit: "date", sum: ["total_volume_m3"], monthsBefore: .init(date: "set_date", months: 1))]
        #expect(throws: ProfileError.self) { try bad.validate() }  // both
        bad.derived = [DerivedField(name: "d", unit: "date")]
        #expect(throws: ProfileError.self) { try bad.validate() }  // neither
        bad.derived = [DerivedField(name: "d", unit: "date", monthsBefore: .init(date: "set_date", months: 1, when: "nothing"))]
        #expect(throws: ProfileError.self) { try bad.validate() }
    }

    @Test("the profiles directory: GATEWAYD_PROFILES/wmbus first, then the checkout above the executable")
    func directoryLookup() throws {
        let root = (Self.directory as NSString).deletingLastPathComponent
        #expect(try ProfileCatalog.defaultDirectory(environment: ["GATEWAYD_PROFILES": root]) == Self.directory)
        #expect(try ProfileCatalog.defaultDirectory(environment: ["GATEWAYD_PROFILES": root + "/"]) == Self.directory)
        #expect(try ProfileRoot.modbusSearchPath(environment: ["GATEWAYD_PROFILES": root]).first == root + "/modbus")
        let exe = Self.directory.replacingOccurrences(of: "/profiles/wmbus", with: "/.build/release/gatewayd")
        let found = try ProfileCatalog.defaultDirectory(environment: [:], executablePath: exe)
        #expect(found == Self.directory || found == "/usr/share/gatewayd/profiles/wmbus")
    }

    @Test("a GATEWAYD_PROFILES that is not a profiles root is an error naming the path and what was expected, never a quiet fallback")
    func wrongProfilesRootIsLoud() throws {
        func failure(_ value: String, _ kind: ProfileKind = .wmbus) -> String {
            do {
                let dir = try ProfileRoot.configured(kind, environment: ["GATEWAYD_PROFILES": value])
                return "accepted: \(dir ?? "nil")"
            } catch {
                return error.message
            }
        }
        let missing = failure("/nonexistent/profiles")
        #expect(missing.contains("/nonexistent/profiles") && missing.contains("holding wmbus/ and modbus/"))
        // The old meaning of the variable in one document: the wmbus directory itself.
        let old = failure(Self.directory)
        #expect(old.contains(Self.directory + "/wmbus does not exist") && old.contains("holds profiles itself"))
        #expect(throws: ProfileRootError.self) { try ProfileCatalog.defaultDirectory(environment: ["GATEWAYD_PROFILES": Self.directory]) }
        #expect(throws: ProfileRootError.self) { try ProfileRoot.modbusSearchPath(environment: ["GATEWAYD_PROFILES": Self.directory]) }
        // A root whose wmbus/ is empty.
        let scratch = NSTemporaryDirectory() + "profiles-root-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch + "/wmbus", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        #expect(failure(scratch).contains("holds no profiles"))
        #expect(failure(scratch, .modbus).contains(scratch + "/modbus does not exist"))
    }
}
