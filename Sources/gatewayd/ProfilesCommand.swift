import Agent
import CLISupport
import ArgumentParser
import Drivers
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct ProfilesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles",
        abstract: "List, show and test the wireless meter profiles, and start a profile for a new meter.",
        discussion: """
            Profiles are data files (docs/wmbus-profiles.md) in the profile directory: \
            $GATEWAYD_PROFILES/wmbus, /usr/share/gatewayd/profiles/wmbus, or profiles/wmbus of a checkout.
            """,
        subcommands: [ProfilesList.self, ProfilesShow.self, ProfilesTest.self, ProfilesSuggest.self]
    )
}

/// Where the profiles are, shared by the subcommands.
struct ProfileDirectoryOption: ParsableArguments {
    @Option(name: .customLong("dir"), help: "Profile directory (default: the installed one, see gatewayd profiles --help).")
    var directory: String?

    func resolve() throws -> String {
        if let directory { return directory }
        let found: String?
        do { found = try ProfileCatalog.defaultDirectory() } catch { throw CLIError(error.message) }
        guard let found else {
            throw CLIError("no profile directory found: set GATEWAYD_PROFILES to the profiles root (holding wmbus/) or give --dir")
        }
        return found
    }

    func load() throws -> (ProfileCatalog, String) {
        let dir = try resolve()
        do { return (try ProfileCatalog.load(directory: dir), dir) } catch { throw CLIError("\(error)") }
    }
}

enum ProfileText {
    static func hexList(_ b: [ProfileByte]?) -> String {
        guard let b else { return "any" }
        return b.map { "0x" + Hex.encode([UInt8(truncatingIfNeeded: $0.value)]) }.joined(separator: ",")
    }

    static func detection(_ d: ProfileDetection) -> String {
        "\(d.manufacturer) version \(hexList(d.versions)) type \(hexList(d.deviceTypes))"
    }
}

struct ProfilesList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "One line per meter family: id, category, maker and the (manufacturer, version, device type) it detects.")

    @OptionGroup var location: ProfileDirectoryOption

    @Option(help: "Only this category (heat_cost_allocator, water, heat, …).")
    var category: String?

    @Flag(help: "Print one JSON object per profile per line (snake_case keys) instead of a table.")
    var json = false

    func run() throws {
        let (catalog, dir) = try location.load()
        let profiles = catalog.profiles.filter { category == nil || $0.category == category }
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            for p in profiles {
                struct Line: Encodable { var id, name, manufacturer, category: String; var detect: [ProfileDetection]; var tests: Int }
                let line = Line(id: p.id, name: p.name, manufacturer: p.manufacturer, category: p.category, detect: p.detect, tests: p.tests.count)
                print(String(decoding: try e.encode(line), as: UTF8.self))
            }
            return
        }
        let rows = profiles.map { p in [p.id, p.category, p.manufacturer, p.detect.map(ProfileText.detection).joined(separator: "; ")] }
        print(TerminalText.lines(TextTable.render(header: ["id", "category", "maker", "detects"], rows: rows)), terminator: "")
        var byCategory: [String: Int] = [:]
        for p in profiles { byCategory[p.category, default: 0] += 1 }
        print("\(profiles.count) profiles in \(dir): " + byCategory.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
}

struct ProfilesShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "A profile: detection, sources, values with their records or layouts, set day, alarm bits, tests.")

    @OptionGroup var location: ProfileDirectoryOption

    @Argument(help: "The profile id (gatewayd profiles list).")
    var id: String

    @Flag(help: "Print the profile as JSON (the profile file's own keys, not snake_case keys) instead of text.")
    var json = false

    func run() throws {
        let (catalog, _) = try location.load()
        guard let n = catalog.profiles.firstIndex(where: { $0.id == id }) else {
            let near = catalog.profiles.map(\.id).filter { $0.contains(id) || id.contains($0) }.prefix(5)
            throw CLIError("no profile \"\(id)\"" + (near.isEmpty ? "; gatewayd profiles list shows them all" : "; did you mean \(near.joined(separator: ", "))?"))
        }
        let p = catalog.profiles[n]
        if json { print(ProfileSuggester.json(p)); return }
        var out = "\(p.id): \(p.name)\n  maker \(p.manufacturer), category \(p.category), file \(catalog.origins[n])\n"
        if let m = p.models { out += "  models: \(m.joined(separator: "; "))\n" }
        for d in p.detect { out += "  detects \(ProfileText.detection(d))\n" }
        for s in p.source { out += "  source: \(s)\n" }
        for r in p.records ?? [] {
            var m: [String] = []
            if let q = r.match.quantity { m.append("quantity \(q)") }
            if let v = r.match.vif { m.append("VIF \(v)") }
            if let v = r.match.vife { m.append("VIFE \(v)") }
            if let s = r.match.storage { m.append("storage \(s)") }
            if let t = r.match.tariff { m.append("tariff \(t)") }
            if let f = r.match.function { m.append(f) }
            out += "  value \(r.name) [\(r.unit)] from the record with \(m.joined(separator: ", "))\n"
        }
        for l in p.layouts ?? [] {
            out += "  layout \(l.source.rawValue)\(l.codec.map { " through codec \($0)" } ?? ""): \(l.fields.map(\.name).joined(separator: ", "))\n"
        }
        for d in p.derived ?? [] {
            if let sum = d.sum { out += "  value \(d.name) [\(d.unit)] = \(sum.joined(separator: " + "))\n" }
            if let m = d.monthsBefore {
                out += "  value \(d.name) [date] = \(m.date) - \(m.months) month\(m.months == 1 ? "" : "s")\(m.when.map { " (when \($0) is present)" } ?? "")\n"
            }
        }
        if let s = p.setDay { out += "  set day: \(s.value)\(s.date.map { " dated by \($0)" } ?? "")\n" }
        for b in p.status?.tpl ?? [] { out += "  TPL status bits 0x\(Hex.encode([UInt8(truncatingIfNeeded: b.mask.value)])): \(b.flag) (\(b.severity.rawValue))\n" }
        for s in p.status?.values ?? [] {
            for b in s.bits { out += "  \(s.value) bits 0x\(String(b.mask.value, radix: 16)): \(b.flag) (\(b.severity.rawValue))\n" }
        }
        out += "  \(p.tests.count) test telegram\(p.tests.count == 1 ? "" : "s"): gatewayd profiles test --id \(p.id)\n"
        print(TerminalText.lines(out), terminator: "")
    }
}

struct ProfilesTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run profiles' own test telegrams: every profile, one (--id), or profile files being written.",
        discussion: """
            A FILE is checked together with the installed profiles (a file with the id of an installed profile \
            replaces it), so a detection clash with another family shows here as it would in the daemon.
            A FILE that is a Modbus (heat-pump) profile is checked on its own: its recorded dump is read \
            through its plan, every value compared, its alarms, identities and fingerprint checked.
            Exit status 0 when every test passes, 1 otherwise.
            """)

    @OptionGroup var location: ProfileDirectoryOption

    @Option(help: "Only the profile with this id.")
    var id: String?

    @Flag(help: "Print each test's values, also when it passes.")
    var verbose = false

    @Flag(help: "Print one JSON object per test telegram per line (snake_case keys) instead of text.")
    var json = false

    @Argument(help: "Profile files to test (default: every installed profile).")
    var files: [String] = []

    func run() throws {
        // Modbus profiles (heat pumps) are another format: a JSON object with "registers".
        var wireless: [String] = []
        var modbus: [ModbusProfile] = []
        for f in files {
            guard let data = FileManager.default.contents(atPath: f) else { throw CLIError("cannot read \(f): check the path") }
            if (try? JSONDecoder().decode(ModbusProfileProbe.self, from: data))?.isModbus == true {
                do { modbus.append(try ModbusProfile.decode(data, origin: f)) } catch { throw CLIError(error.message) }
            } else {
                wireless.append(f)
            }
        }
        if !modbus.isEmpty {
            let passed = checkModbus(modbus)
            if wireless.isEmpty {
                if !passed { throw ExitCode(1) }
                return
            }
            if !passed { try runWireless(wireless); throw ExitCode(1) }
        }
        try runWireless(wireless)
    }

    /// Runs each Modbus profile's own test; prints a line per profile (failures under it) and a total.
    private func checkModbus(_ profiles: [ModbusProfile]) -> Bool {
        var out = ""
        var failed = 0
        var values = 0
        for p in profiles {
            let c = ModbusProfileCheck.run(p)
            values += c.checkedValues
            if !c.passed { failed += 1 }
            if json {
                struct Line: Encodable { var profile: String; var passed: Bool; var values_checked: Int; var requests: Int; var fingerprint: String?; var failures: [String] }
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                let line = Line(profile: p.id, passed: c.passed, values_checked: c.checkedValues, requests: c.requests.count,
                                fingerprint: c.fingerprint?.description, failures: c.failures)
                print(String(decoding: (try? e.encode(line)) ?? Data(), as: UTF8.self))
                continue
            }
            let byTable = Dictionary(grouping: c.requests, by: \.kind).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count)" }
            var line = "\(c.passed ? "ok  " : "FAIL") \(p.id): \(c.checkedValues) values, plan \(c.requests.count) requests (\(byTable.joined(separator: ", ")))"
            if let f = c.fingerprint { line += ", fingerprint \(f)" } else { line += ", no fingerprint" }
            if p.service != nil { line += ", service data: run hours \(p.service!.runHours)" }
            out += line + "\n"
            for f in c.failures { out += "       \(f)\n" }
            if verbose || !c.passed, let r = c.reading {
                for v in r.values { out += "       \(v.name) = \(v.value)\(v.unit.map { " " + $0 } ?? "")\n" }
                for a in r.alarms { out += "       ALARM \(a.code): \(a.message)\n" }
            }
        }
        if !json {
            out += "\(profiles.count) Modbus profile\(profiles.count == 1 ? "" : "s"), \(values) values, \(failed) failed\n"
            print(TerminalText.lines(out), terminator: "")
        }
        return failed == 0
    }

    private func runWireless(_ files: [String]) throws {
        let (installed, _) = try location.load()
        var profiles = installed.profiles
        var origins = installed.origins
        var chosen: Set<String>?
        if !files.isEmpty {
            chosen = []
            for f in files {
                guard let data = FileManager.default.contents(atPath: f) else { throw CLIError("cannot read \(f): check the path") }
                let p: MeterProfile
                do { p = try MeterProfile.decode(data, origin: f) } catch { throw CLIError("\(error)") }
                // The file replaces the installed profile of the same id, or the installed file of the same name.
                let base = "/" + (f.split(separator: "/").last.map(String.init) ?? f)
                if let i = profiles.indices.first(where: { profiles[$0].id == p.id || origins[$0].hasSuffix(base) }) {
                    profiles[i] = p
                    origins[i] = f
                } else {
                    profiles.append(p)
                    origins.append(f)
                }
                chosen?.insert(p.id)
            }
        }
        if let id { chosen = [id] }
        let catalog: ProfileCatalog
        do { catalog = try ProfileCatalog(profiles: profiles, origins: origins) } catch { throw CLIError("\(error)") }
        let run = catalog.profiles.filter { chosen == nil || chosen!.contains($0.id) }
        if let id, run.isEmpty { throw CLIError("no profile \"\(id)\"; gatewayd profiles list shows them all") }
        var totals = ProfileTestRunner.Totals()
        var out = ""
        for p in run {
            totals.families += 1
            totals.byCategory[p.category, default: 0] += 1
            for o in ProfileTestRunner.run(p, catalog: catalog) {
                totals.telegrams += 1
                totals.values += o.checkedValues
                if !o.passed { totals.failed += 1 }
                if json {
                    struct Line: Encodable { var profile: String; var test: Int; var passed: Bool; var values_checked: Int; var detected: String?; var failures: [String] }
                    let e = JSONEncoder()
                    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    let line = Line(profile: p.id, test: o.index, passed: o.passed, values_checked: o.checkedValues, detected: o.detected, failures: o.failures)
                    print(String(decoding: try e.encode(line), as: UTF8.self))
                    continue
                }
                out += "\(o.passed ? "ok  " : "FAIL") \(p.id) test \(o.index): \(o.checkedValues) values\n"
                for f in o.failures { out += "       \(f)\n" }
                if verbose || !o.passed, let r = o.reading { out += WirelessReport.profileText(r) }
            }
        }
        if !json {
            out += "\(totals)\n"
            print(TerminalText.lines(out), terminator: "")
        }
        if totals.failed > 0 { throw ExitCode(1) }
    }
}

struct ProfilesSuggest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suggest",
        abstract: "Print a starting profile for a meter no profile knows, built from one of its telegrams.",
        discussion: """
            The output names every record's value, detects the meter's (manufacturer, version, device type) and \
            carries the telegram as its first test. Rename the values, cite the maker's documents, add layouts \
            for manufacturer-specific bytes, save it in the profile directory and run gatewayd profiles test FILE.
            """)

    @OptionGroup var location: ProfileDirectoryOption

    @Argument(help: "A wireless telegram in hex, L-field first.")
    var hex: [String]

    @Option(help: "AES-128 key (32 hex digits) when the telegram is encrypted.")
    var key: String?

    func validate() throws {
        if let key, WMBusKey(hex: key) == nil { throw ValidationError("--key needs 32 hex digits (an AES-128 key)") }
    }

    func run() throws {
        let text = hex.joined()
        let bytes: [UInt8]
        do { bytes = try Hex.decode(text) } catch { throw CLIError("not hex: \(error.reason) at character \(error.offset)") }
        let ring = WMBusKeyring(defaultKey: key.flatMap(WMBusKey.init(hex:)))
        var d = WirelessDecoder(keyring: ring)
        let w: WirelessTelegram
        if DecodeSession.isWired(bytes) {
            // A wired answer of the meter: the same identity and records as its radio telegrams.
            let wired: WirelessTelegram?
            do { wired = try WirelessTelegram.wired(bytes, keyring: ring) } catch { throw CLIError("the wired frame does not decode: \(error.message) (byte \(error.offset))") }
            guard let wired else { throw CLIError("the wired frame has no long header (CI 72h): no identity to detect the meter by") }
            w = wired
        } else {
            do { w = try d.decode(bytes) } catch { throw CLIError("the telegram does not decode: \(error.message) (byte \(error.offset)); check that it is a whole telegram, L-field first") }
        }
        if w.security.state == .noKey { throw CLIError("the telegram is encrypted: give its key with --key so the records can be read") }
        if let known = (try? location.load())?.0.detect(w) {
            FileHandleOutput.standardError("note: profile \(known.id) already detects this meter; the suggestion below is generic\n")
        }
        let format: String? = DecodeSession.isWired(bytes) ? nil : w.frame.format == .a ? "a" : w.frame.format == .b ? "b" : nil
        print(ProfileSuggester.json(ProfileSuggester.suggest(w, hex: Hex.encode(bytes), framing: format)))
    }
}

/// Tells a Modbus profile (a JSON object with "registers") from a wireless meter profile without decoding either.
private struct ModbusProfileProbe: Decodable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    let isModbus: Bool
    init(from decoder: Decoder) throws {
        isModbus = try decoder.container(keyedBy: Key.self).contains(Key(stringValue: "registers"))
    }
}
