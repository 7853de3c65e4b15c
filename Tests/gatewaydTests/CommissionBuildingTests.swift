@testable import Agent
import CLISupport
@testable import gatewayd_sim
import Drivers
import Foundation
import Gateway
import Testing
@testable import gatewayd

/// Issue 9's acceptance building: 500 devices on simulated buses, commissioned by the real binary, and
/// the JSON report compared field by field with the generator's truth.
@Suite("gatewayd commission on a simulated 500-device building", .serialized)
struct CommissionBuildingTests {
    static func decodeReport(_ path: String) throws -> CommissioningReport {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(CommissioningReport.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test("finds exactly the silent, missing, wrong-key, weak, mismatched and stranger devices")
    func fiveHundredDevices() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatewayd-commission-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var spec = SimulatedBuilding.Spec()
        // The wired lines at 9600 baud keep the test short; the benchmark runs them at 2400.
        spec.mbusBaud = 9600
        let profiles = try #require(try ProfileCatalog.defaultDirectory(), "profiles/wmbus not found")
        let truth = try SimulatedBuilding(spec: spec).write(to: dir, profilesDirectory: profiles)
        #expect(truth.expected == 462 && truth.strangers == 30)
        #expect(truth.devices.filter { $0.bus == "wmbus" }.count == 400)
        #expect(truth.devices.filter { $0.bus == "wmbus" && !$0.transmits }.count == 20)
        #expect(truth.devices.filter { $0.bus == "mbus" }.count == 60 && truth.devices.filter { $0.bus == "mbus" && !$0.transmits }.count == 3)

        let process = try DaemonProcess(["commission", "--config", dir + "/gatewayd.toml", "--listen", "40s", "--out", dir + "/reports"],
                                        log: dir + "/commission.log")
        let exit = await process.wait(timeoutSeconds: 240)
        let log = process.log()
        // Findings that need action: exit code 2.
        #expect(exit == 2, "exit \(String(describing: exit)); output:\n\(log)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/reports")
        let jsonName = try #require(files.first { $0.hasSuffix(".json") }, "no JSON report; output:\n\(log)")
        #expect(files.contains { $0.hasSuffix(".csv") } && files.contains { $0.hasSuffix(".html") })
        let report = try Self.decodeReport(dir + "/reports/" + jsonName)

        // Summary.
        let s = report.summary
        #expect(s.expected == truth.expected)
        #expect(s.heard == truth.heard)
        #expect(s.missing == truth.missing)
        #expect(s.wrongKey == truth.wrongKey)
        #expect(s.noKey == 0)
        #expect(s.weakSignal == truth.weak)
        #expect(s.serialMismatch == truth.serialMismatch)
        #expect(s.unknownNearby == truth.strangers)
        #expect(report.endedBecause == .windowOver)

        // Every expected device, field by field.
        let byKey = Dictionary(report.devices.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(report.devices.count == truth.devices.count)
        var compared = 0
        for t in truth.devices {
            guard let d = byKey[t.key] else {
                Issue.record(Comment(rawValue: "\(t.key) missing from the report"))
                continue
            }
            #expect(d.bus == t.bus, "\(t.key) bus")
            #expect(d.unit == t.unit, "\(t.key) unit")
            #expect(d.floor == t.floor, "\(t.key) floor")
            #expect(d.kind == t.kind, "\(t.key) kind")
            #expect(d.heard == t.transmits, "\(t.key) heard \(d.heard), expected \(t.transmits)")
            #expect(d.telegrams == t.telegrams, "\(t.key) telegrams \(d.telegrams), expected \(t.telegrams)")
            #expect(d.decryption.rawValue == t.decryption, "\(t.key) decryption \(d.decryption), expected \(t.decryption)")
            #expect(d.serialMatch.rawValue == t.serialMatch, "\(t.key) serial match \(d.serialMatch), expected \(t.serialMatch)")
            #expect(d.keyFiledUnder == t.keyFiledUnder, "\(t.key) key filed under \(String(describing: d.keyFiledUnder)), expected \(String(describing: t.keyFiledUnder))")
            if let samples = t.rssi {
                let sorted = samples.sorted()
                let rssi = try #require(d.rssi, "\(t.key) has no RSSI")
                #expect(rssi.best == sorted.last! && rssi.worst == sorted.first! && rssi.median == sorted[sorted.count / 2],
                        "\(t.key) RSSI \(rssi), samples \(samples)")
                #expect(rssi.samples == samples, "\(t.key) RSSI samples in order")
            } else {
                #expect(d.rssi == nil, "\(t.key) has RSSI but is not a heard radio device")
            }
            if let unit = t.readingUnit {
                #expect(d.reading?.unit == unit, "\(t.key) reading \(String(describing: d.reading)), expected a value in \(unit)")
            } else {
                #expect(d.reading == nil, "\(t.key) has a reading but should not")
            }
            if t.kind == "heat-cost allocator" && t.readingUnit != nil {
                #expect(d.setDay != nil, "\(t.key): an allocator's set-day value")
            }
            compared += 1
        }
        #expect(compared == 462)
        // Key forensics (issue 17): the swapped pair is named as such, each finding naming the other meter.
        let swapped = truth.devices.filter { $0.keyFiledUnder != nil }
        #expect(swapped.count == 2)
        let swapFindings = report.findings.filter { $0.code == "key_of_another_meter" }
        #expect(swapFindings.count == 2 && swapped.allSatisfy { t in swapFindings.contains { $0.devices.first == t.key && $0.message.contains(t.keyFiledUnder!) } },
                "\(swapFindings)")
        #expect(report.findings.filter { $0.code == "wrong_key" }.count == 5)

        // Strangers: exactly the neighbours, identity and signal only.
        #expect(Set(report.unknownDevices.map(\.identification)) == Set(truth.strangerIDs))
        #expect(report.unknownDevices.allSatisfy { $0.telegrams == spec.rounds && $0.bestRssi != nil })
        #expect(report.unknownDevices.filter { $0.note != nil }.count == 5)
        let raw = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/reports/" + jsonName))) as? [String: Any]
        let strangers = try #require(raw?["unknown_devices"] as? [[String: Any]])
        let allowed: Set<String> = ["identification", "manufacturer", "type", "telegrams", "best_rssi", "last_rssi", "note", "heard_on"]
        #expect(strangers.allSatisfy { Set($0.keys).isSubset(of: allowed) }, "a stranger's entry carries more than identity and signal")

        // Heat pumps: both answered, the second reports another serial than the registry holds.
        #expect(report.heatPumps.count == 2)
        #expect(report.heatPumps.allSatisfy { $0.answered && $0.identity.first?.serial == "SIM-HP-00000001" })
        #expect(report.heatPumps.map(\.serialMatch) == [.match, .mismatch])
        #expect(report.heatPumps[0].values.first { $0.name == "heat_produced" }?.value == 1234.5)

        // Findings, in the installer's words.
        func count(_ code: String) -> Int { report.findings.filter { $0.code == code }.count }
        #expect(count("not_heard") == 20)
        #expect(count("no_answer") == 3)
        #expect(count("wrong_key") == 5)
        #expect(count("serial_mismatch") == 1)
        #expect(count("unknown_nearby") == 1)
        #expect(count("bus_failed") == 0)
        let weak = report.findings.filter { $0.code == "weak_signal" }
        #expect(Dictionary(weak.map { ($0.message.components(separatedBy: "on floor ").last!.components(separatedBy: ":").first!, $0.devices.count) },
                           uniquingKeysWith: +) == truth.weakFloors)
        #expect(weak.allSatisfy { $0.severity == .warning && $0.message.hasPrefix("weak signal (-") && $0.message.hasSuffix("consider a repeater") })
        let missingHCA = try #require(report.findings.first { $0.code == "not_heard" })
        #expect(missingHCA.message.hasPrefix("unit ") && missingHCA.message.hasSuffix("not heard: check it is mounted and active"))
        #expect(report.findings.first { $0.code == "wrong_key" }?.message.contains("request the key from the manufacturer") == true)
        #expect(report.findings.first.map { $0.severity == .action } == true)

        // Buses and the upload to the (demo) portal.
        #expect(report.buses.map(\.state).allSatisfy { $0 == "ok" }, "\(report.buses)")
        #expect(report.buses.filter { $0.kind == "mbus" }.allSatisfy { $0.completedAfterSeconds != nil })
        #expect(log.contains("upload: accepted by http://127.0.0.1:"), "\(log)")
        #expect(log.contains("the demo portal sink holds 1 commissioning report(s)"))
        // The HTML report, as a phone's browser shows it: the summary counts and the findings.
        if let browser = HeadlessChromium.locate() {
            let html = try #require(files.first { $0.hasSuffix(".html") })
            let page = try browser.render(file: dir + "/reports/" + html)
            let counts = [("expected", s.expected), ("heard", s.heard), ("missing", s.missing), ("wrong-key", s.wrongKey), ("no-key", s.noKey),
                          ("weak-signal", s.weakSignal), ("serial-mismatch", s.serialMismatch), ("unknown-nearby", s.unknownNearby)]
            for (id, n) in counts {
                #expect(CommissionReportRenderTests.number(id: "count-\(id)", in: page.dom) == n, "count-\(id) in the rendered page")
            }
            #expect(page.dom.contains("key rejected for "))
            #expect(page.dom.contains("consider a repeater"))
            // Kept for a person to look at when the test is run by hand.
            let shot = FileManager.default.temporaryDirectory.appendingPathComponent("gatewayd-commission-500.png")
            try Data(page.screenshot).write(to: shot)
            print("commissioning report screenshot: \(shot.path) (\(page.screenshot.count) bytes)")
        } else if ProcessInfo.processInfo.environment["CI"] != nil {
            Issue.record("chromium is not installed: scripts/install-deps.sh installs it for this test")
        } else {
            print("note: chromium not found; the 500-device report was not rendered")
        }
        print("commissioning 500 devices: \(s.heard)/\(s.expected) heard, \(s.telegrams) telegrams; buses: "
              + report.buses.map { "\($0.name) done after \($0.completedAfterSeconds.map { String(format: "%.1f s", $0) } ?? "-")" }.joined(separator: ", "))
    }

    @Test("--blind-scan finds the meters wired to a line but missing from the registry, and only those")
    func blindScanFindsWiredStrangers() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatewayd-blind-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var spec = SimulatedBuilding.Spec()
        spec.floors = 2
        spec.unitsPerFloor = 2
        spec.allocatorsPerUnit = 1
        spec.silent = 0
        spec.wrongKey = 0
        spec.weak = 0
        spec.wiredMeters = 6
        spec.wiredLines = 1
        spec.wiredMissing = 0
        spec.heatPumps = 1
        spec.serialMismatches = 0
        spec.strangers = 0
        spec.wiredStrangers = 2
        spec.mbusBaud = 9600
        let profiles = try #require(try ProfileCatalog.defaultDirectory())
        let truth = try SimulatedBuilding(spec: spec).write(to: dir, profilesDirectory: profiles)
        let process = try DaemonProcess(["commission", "--config", dir + "/gatewayd.toml", "--listen", "120s", "--blind-scan", "--no-upload",
                                         "--out", dir + "/reports"], log: dir + "/commission.log")
        let exit = await process.wait(timeoutSeconds: 300)
        let log = process.log()
        // Everything registered answers; the two unregistered meters are warnings: exit 2.
        #expect(exit == 2, "exit \(String(describing: exit)); output:\n\(log)")
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: dir + "/reports").first { $0.hasSuffix(".json") }, "\(log)")
        let report = try Self.decodeReport(dir + "/reports/" + name)
        #expect(Set(report.unknownDevices.map(\.identification)) == Set(truth.wiredStrangerIDs), "\(report.unknownDevices)")
        #expect(report.unknownDevices.allSatisfy { $0.heardOn == "mbus-a" })
        #expect(report.findings.filter { $0.code == "wired_unregistered" }.count == 2)
        #expect(report.summary.heard == truth.heard && report.summary.missing == 0)
        // Registered meters found again by the blind scan are not counted twice.
        #expect(report.devices.filter { $0.bus == "mbus" && $0.heard }.allSatisfy { $0.telegrams == 1 })
        // It ends once the blind scan is done, not at the end of the window.
        #expect(report.endedBecause == .allHeard)
        #expect(log.contains("not uploaded (--no-upload)"))
    }

    /// Issue 17's acceptance: the demo building's key file holds the VIP allocator's and the DWZ water meter's
    /// keys in swapped rows (seeds/demo-building/keys), and commissioning the demo names the swap both ways.
    @Test("commissioning the demo building names the swapped rows of its key file")
    func demoSwappedKeys() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatewayd-commission-demo-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // One replay loop is 52 s (13 lines, 4 s apart); the allocator of unit 4.01 never sends, so the
        // window runs to its end.
        let process = try DaemonProcess(["commission", "--demo", "--listen", "60s", "--no-upload", "--out", dir],
                                        log: dir + ".log")
        let exit = await process.wait(timeoutSeconds: 240)
        let log = process.log()
        #expect(exit == 2, "exit \(String(describing: exit)); output:\n\(log)")
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".json") }, "no report; output:\n\(log)")
        let report = try Self.decodeReport(dir + "/" + name)
        let vip = try #require(report.devices.first { $0.key == "wmbus:VIP:23701267" })
        let dwz = try #require(report.devices.first { $0.key == "wmbus:DWZ:20096221" })
        #expect(vip.heard && dwz.heard)
        #expect(vip.decryption == .wrongKey && dwz.decryption == .wrongKey)
        #expect(vip.keyFiledUnder == "20096221")
        #expect(dwz.keyFiledUnder == "23701267")
        #expect(report.summary.wrongKey == 2 && report.summary.noKey == 0)
        #expect(log.contains("the key filed under 20096221 (unit 4.02) opens the telegrams of 23701267 (unit 3.02): the two rows of the key file are probably swapped"), "\(log)")
        #expect(log.contains("the key filed under 23701267 (unit 3.02) opens the telegrams of 20096221 (unit 4.02)"), "\(log)")
        // The other meters of the demo read as before: only the dead EMH meter and the silent allocator are missing.
        #expect(Set(report.devices.filter { !$0.heard }.map(\.key)) == ["mbus:EMH:00623702", "wmbus:QDS:90919294"])
    }
}
