import Drivers
import Foundation
import Testing
@testable import Gateway

/// A small building run through `CommissioningSession` (radio telegrams in the clear, with the right key,
/// a wrong key and none; wired answers and silence; a heat pump; strangers), then the report's four
/// renderings checked against the session's facts.
@Suite("commissioning report")
struct CommissioningReportTests {
    typealias F = PipelineFixtures
    /// 2026-11-21T10:15:00Z
    static let t0: Int64 = 1_795_256_100_000
    static let goodKey = WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")!
    static let otherKey = WMBusKey(hex: "F0E0D0C0B0A090807060504030201000")!

    static let document = RegistryDocument(
        gateway: "gw-0007", building: "7",
        devices: [
            hca("4.12", "12345678"),
            hca("4.13", "12345679"),
            RegisteredDevice(key: "wmbus:QDS:22220001", bus: .wirelessMBus, unit: "5.01", identification: "22220001", manufacturer: "QDS",
                             medium: "warm water"),
            RegisteredDevice(key: "wmbus:QDS:22220002", bus: .wirelessMBus, unit: "5.02", identification: "22220002", manufacturer: "QDS",
                             medium: "cold water"),
            hca("5.03", "22220003"),
            hca("5.04", "22220004"),
            hca("5.05", "22220005"),
            hca("6.01", "33330001"),
            hca("10.01", "44440001"),
            RegisteredDevice(key: "mbus:KAM:06855817", bus: .wiredMBus, unit: "1.01", identification: "06855817", manufacturer: "KAM",
                             line: "mbus-line-1", medium: "heat"),
            RegisteredDevice(key: "mbus:KAM:06855818", bus: .wiredMBus, unit: "1.02", identification: "06855818", manufacturer: "KAM",
                             line: "mbus-line-1", medium: "heat"),
            RegisteredDevice(key: "modbus:kaisai:unit1", bus: .modbus, modbusUnit: 1, line: "rs485-1", profile: "kaisai-r290-monoblock",
                             serial: "KHP-R290-0007-001"),
            // Neither is expected: read by hand, and replaced.
            RegisteredDevice(key: "manual:HCA:4.14", bus: .manual, unit: "4.14"),
            RegisteredDevice(key: "wmbus:QDS:11111111", bus: .wirelessMBus, unit: "4.12", identification: "11111111", manufacturer: "QDS",
                             replacedOn: "2026-03-02", replacedBy: "wmbus:QDS:12345678"),
        ],
        elsewhere: [DeviceElsewhere(identification: "55555555", manufacturer: "QDS", building: "12")],
        serialPatterns: ["kaisai-r290-monoblock": "KHP-R290-[0-9]{4}-[0-9]{3}"])

    static func hca(_ unit: String, _ id: String) -> RegisteredDevice {
        RegisteredDevice(key: "wmbus:QDS:\(id)", bus: .wirelessMBus, unit: unit, identification: id, manufacturer: "QDS", medium: "heat-cost allocator")
    }

    static let setDayDate = MBusDateTime(year: 2025, month: 12, day: 31)

    static func plain(_ id: String, _ m: String = "QDS", litres: Int64 = 1234, rssi: Double?, at n: Int64 = 0) -> ReceivedTelegram {
        ReceivedTelegram(bytes: F.radioFrame(id, m, litres: litres, format: .noCRC, setDay: (litres - 100, setDayDate)), rssiDBm: rssi,
                         receivedAt: DongleTimestamp(millisecondsSince1970: t0 + n * 1000), linkMode: .t1, receiver: "im871a")
    }

    static func encrypted(_ id: String, litres: Int64, key: WMBusKey, rssi: Double) -> ReceivedTelegram {
        let address = WMBusAddress(manufacturer: ManufacturerCode("QDS")!, identification: IdentificationNumber(id)!, version: 1, deviceType: .water)
        let records = F.records(litres: litres).flatMap { try! RecordEncoder.encode($0) }
        let bytes = ProfileTelegramEncoder.modeFive(address: address, accessNumber: 9, records: records, key: key)!
        return ReceivedTelegram(bytes: bytes, rssiDBm: rssi, receivedAt: DongleTimestamp(millisecondsSince1970: t0), linkMode: .t1,
                                receiver: "im871a")
    }

    /// The building after a run in which everything that can go wrong did, once.
    static func session(options: CommissioningOptions = CommissioningOptions()) throws -> CommissioningSession {
        let keyring = WMBusKeyring(keys: [IdentificationNumber("22220001")!: otherKey, IdentificationNumber("44440001")!: goodKey])
        var s = CommissioningSession(registry: try DeviceRegistry(document), keyring: keyring, catalog: nil, startedAt: t0,
                                     listenSeconds: 900, options: options)
        s.bus("im871a", kind: "wmbus", state: "ok")
        s.bus("mbus-line-1", kind: "mbus", state: "ok")
        s.bus("rs485-1", kind: "modbus", state: "ok")
        for (n, rssi) in [-68.0, -70, -72].enumerated() { s.heard(plain("12345678", rssi: rssi, at: Int64(n)), bus: "im871a") }
        s.heard(encrypted("22220001", litres: 500, key: goodKey, rssi: -80), bus: "im871a")
        s.heard(encrypted("22220002", litres: 600, key: goodKey, rssi: -82), bus: "im871a")
        s.heard(plain("22220003", rssi: -101), bus: "im871a")
        for rssi in [-98.0, -99] { s.heard(plain("22220004", rssi: rssi), bus: "im871a") }
        for rssi in [-96.0, -97, -100, -90] { s.heard(plain("22220005", rssi: rssi), bus: "im871a") }
        s.heard(plain("33330001", "TCH", rssi: -75), bus: "im871a")
        s.heard(encrypted("44440001", litres: 1_234_567, key: goodKey, rssi: -60), bus: "im871a")
        for rssi in [-85.0, -83] { s.heard(plain("77777777", rssi: rssi), bus: "im871a") }
        s.heard(plain("55555555", rssi: -90), bus: "im871a")
        s.wiredAnswer(try TelegramDecoder.decode(F.wiredFrame("06855817", "KAM", litres: 5000)), line: "mbus-line-1")
        s.wiredSilent(key: "mbus:KAM:06855818", line: "mbus-line-1", error: "no answer to 3 selections")
        s.heatPump(key: "modbus:kaisai:unit1", reading: try F.kaisaiReading())
        return s
    }

    static func report() throws -> CommissioningReport {
        try session().report(finishedAt: t0 + 900_000, endedBecause: .windowOver)
    }

    func device(_ r: CommissioningReport, _ id: String) throws -> CommissioningReport.DeviceResult {
        try #require(r.devices.first { $0.identification == id || $0.key == id })
    }

    // MARK: - The session's facts

    @Test("counts: expected, heard, missing, wrong key, no key, weak, serial mismatch, unknown")
    func summaryCounts() throws {
        let r = try Self.report()
        let s = r.summary
        #expect(s.expected == 12, "the manual and the replaced device are not expected")
        #expect(s.heard == 10)
        #expect(s.missing == 2)
        #expect(s.wrongKey == 1)
        #expect(s.noKey == 1)
        #expect(s.weakSignal == 3)
        #expect(s.serialMismatch == 1)
        #expect(s.unknownNearby == 2)
        #expect(s.telegrams == 19)
        #expect(r.weakSignalBelow == -95)
        #expect(r.id == "commissioning-gw-0007-20261121T101500Z")
        #expect(r.startedAt == "2026-11-21T10:15:00Z")
        #expect(r.finishedAt == "2026-11-21T10:30:00Z")
    }

    @Test("each device's state: decryption, serial match, values, errors")
    func deviceStates() throws {
        let r = try Self.report()
        #expect(try device(r, "12345678").decryption == .plain)
        #expect(try device(r, "12345678").telegrams == 3)
        #expect(try device(r, "22220001").decryption == .wrongKey)
        #expect(try device(r, "22220002").decryption == .noKey)
        #expect(try device(r, "22220002").reading == nil, "nothing to show without the key")
        let opened = try device(r, "44440001")
        #expect(opened.decryption == .decrypted)
        #expect(opened.reading?.value == 1234.567)
        #expect(opened.reading?.unit == "m^3")
        let hca = try device(r, "12345678")
        #expect(hca.reading?.value == 1.234)
        #expect(hca.setDay?.value == 1.134)
        #expect(hca.profile == "generic EN 13757-3")
        #expect(hca.serialMatch == .match)
        let mismatch = try device(r, "33330001")
        #expect(mismatch.serialMatch == .mismatch)
        #expect(mismatch.serialDetail == "id 33330001 heard from manufacturer TCH, the registry says QDS")
        #expect(try device(r, "06855818").error == "no answer to 3 selections")
        #expect(try device(r, "06855817").heard)
        let pump = try #require(r.heatPumps.first)
        #expect(pump.answered)
        #expect(pump.serialMatch == .unverified)
        #expect(!pump.values.isEmpty)
        #expect(try device(r, "modbus:kaisai:unit1").floor == "-")
        #expect(try device(r, "modbus:kaisai:unit1").kind == "heat pump")
        #expect(try device(r, "06855817").kind == "heat meter")
        #expect(try device(r, "22220001").kind == "warm water meter")
    }

    @Test("RSSI: best, worst, median (odd and even counts), samples in order of arrival and capped")
    func signalStatistics() throws {
        let r = try Self.report()
        let a = try #require(try device(r, "12345678").rssi)
        #expect(a.best == -68 && a.worst == -72 && a.median == -70)
        #expect(a.samples == [-68, -70, -72])
        let even = try #require(try device(r, "22220005").rssi)
        #expect(even.median == -96.5)
        #expect(even.best == -90 && even.worst == -100)
        #expect(try device(r, "12345679").rssi == nil)
        #expect(try device(r, "06855817").rssi == nil, "wired: no radio signal")
        #expect(CommissioningSession.median([-3, -2, -1]) == -2)
        #expect(CommissioningSession.median([-4, -3, -2, -1]) == -2.5)

        let capped = try Self.session(options: CommissioningOptions(maximumSamples: 2)).report(finishedAt: Self.t0, endedBecause: .interrupted)
        let c = try #require(try device(capped, "22220005").rssi)
        #expect(c.samples == [-96, -97], "the chart keeps the first samples")
        #expect(c.median == -96.5, "statistics cover every telegram")
    }

    @Test("floors: numeric order, devices without a unit last, tallies add up to the summary")
    func floors() throws {
        let s = try Self.session()
        #expect(s.progress.floors.map(\.floor) == ["1", "4", "5", "6", "10", "-"])
        #expect(s.progress.floors.first { $0.floor == "5" }?.weak == 3)
        #expect(s.progress.floors.first { $0.floor == "4" }?.missing == ["wmbus:QDS:12345679"])
        let r = try Self.report()
        let tallies = r.floorTallies()
        #expect(tallies.map(\.floor) == ["1", "4", "5", "6", "10", "-"])
        var total = CommissioningReport.FloorTally(floor: "total")
        for t in tallies { total.add(t) }
        let sum = r.summary
        let fromFloors: [Int] = [total.expected, total.heard, total.missing, total.wrongKey, total.noKey, total.weak, total.serialMismatch]
        let fromSummary: [Int] = [sum.expected, sum.heard, sum.missing, sum.wrongKey, sum.noKey, sum.weakSignal, sum.serialMismatch]
        #expect(fromFloors == fromSummary)
        #expect(CommissioningSession.sortFloors(["10", "-", "EG", "2", "UG"]) == ["2", "10", "EG", "UG", "-"])
    }

    @Test("findings: the installer's sentences, most urgent first")
    func findings() throws {
        let r = try Self.report()
        let messages = r.findings.map(\.message)
        #expect(messages.contains("unit 4.13 HCA 12345679 not heard: check it is mounted and active"))
        #expect(messages.contains("weak signal (-101 dBm) on 3 devices on floor 5: consider a repeater"))
        // 22220001 sends with the key the file holds for 44440001: forensics names that row (issue 17).
        #expect(messages.contains("the key filed under 44440001 (unit 10.01) opens the telegrams of 22220001 (unit 5.01): the two rows of the key file are probably swapped; file each key under its own meter"))
        #expect(try device(r, "22220001").keyFiledUnder == "44440001")
        #expect(messages.contains("no key for 22220002 (unit 5.02), it sends encrypted: add its key from the manufacturer to the key file"))
        #expect(messages.contains(
            "unit 1.02 heat meter 06855818 on mbus-line-1 did not answer (no answer to 3 selections): check its wiring to the bus and its address"))
        #expect(messages.contains { $0.hasPrefix("unit 6.01 HCA 33330001: id 33330001 heard from manufacturer TCH") })
        #expect(messages.contains(
            "2 unknown devices nearby (not in the registry; 1 registered in another building): their values are not recorded; check the list if a meter of this building is among them"))
        #expect(r.findings.map(\.severity) == r.findings.map(\.severity).sorted())
        #expect(r.findings.filter { $0.severity == .action }.count == 5)
        let weak = try #require(r.findings.first { $0.code == "weak_signal" })
        #expect(Set(weak.devices) == ["wmbus:QDS:22220003", "wmbus:QDS:22220004", "wmbus:QDS:22220005"])
    }

    @Test("strangers: identity and signal only, most often heard first, another building noted")
    func unknownDevices() throws {
        let r = try Self.report()
        #expect(r.unknownDevices.map(\.identification) == ["77777777", "55555555"])
        #expect(r.unknownDevices[0].telegrams == 2)
        #expect(r.unknownDevices[0].bestRssi == -83 && r.unknownDevices[0].lastRssi == -83)
        #expect(r.unknownDevices[1].note == "registered in building 12")
    }

    @Test("buses: per bus expected, heard and telegrams")
    func buses() throws {
        let r = try Self.report()
        let b = Dictionary(uniqueKeysWithValues: r.buses.map { ($0.name, $0) })
        #expect(b["im871a"]?.expected == 9)
        #expect(b["im871a"]?.heard == 8)
        #expect(b["im871a"]?.telegrams == 17)
        #expect(b["mbus-line-1"]?.expected == 2)
        #expect(b["mbus-line-1"]?.heard == 1)
        #expect(b["rs485-1"]?.heard == 1)
    }

    @Test("a wrong key stays reported when the same meter also sends telegrams in the clear")
    func wrongKeyThenPlain() throws {
        let keyring = WMBusKeyring(keys: [IdentificationNumber("22220001")!: Self.otherKey])
        var s = CommissioningSession(registry: try DeviceRegistry(Self.document), keyring: keyring, catalog: nil, startedAt: Self.t0,
                                     listenSeconds: 60)
        s.heard(Self.encrypted("22220001", litres: 500, key: Self.goodKey, rssi: -80), bus: "im871a")
        s.heard(Self.plain("22220001", rssi: -80), bus: "im871a")
        #expect(s.summary.wrongKey == 1)
        let r = s.report(finishedAt: Self.t0, endedBecause: .interrupted)
        #expect(r.findings.contains { $0.code == "wrong_key" })
        // The other order, and a key that works, as before.
        s.heard(Self.plain("22220002", rssi: -80), bus: "im871a")
        s.heard(Self.encrypted("22220002", litres: 500, key: Self.goodKey, rssi: -80), bus: "im871a")
        #expect(s.summary.noKey == 1)
        var opened = CommissioningSession(registry: try DeviceRegistry(Self.document),
                                          keyring: WMBusKeyring(keys: [IdentificationNumber("22220001")!: Self.goodKey]), catalog: nil,
                                          startedAt: Self.t0, listenSeconds: 60)
        opened.heard(Self.encrypted("22220001", litres: 500, key: Self.goodKey, rssi: -80), bus: "im871a")
        opened.heard(Self.plain("22220001", rssi: -80), bus: "im871a")
        #expect(opened.report(finishedAt: Self.t0, endedBecause: .interrupted).devices.first { $0.identification == "22220001" }?.decryption
                == .decrypted)
    }

    @Test("a meter whose key is on file, heard in the clear, is a security_downgrade finding and its values are not taken")
    func plainFromKeyedMeter() throws {
        let keyring = WMBusKeyring(keys: [IdentificationNumber("12345678")!: Self.goodKey])
        var s = CommissioningSession(registry: try DeviceRegistry(Self.document), keyring: keyring, catalog: nil, startedAt: Self.t0,
                                     listenSeconds: 60)
        s.heard(Self.plain("12345678", litres: 999_999, rssi: -70), bus: "im871a")
        let r = s.report(finishedAt: Self.t0, endedBecause: .interrupted)
        let d = try device(r, "12345678")
        #expect(d.heard, "it was heard: not reported missing")
        #expect(d.securityDowngrade?.contains("in the clear") == true)
        #expect(d.reading == nil && d.values.isEmpty, "values of a refused telegram were taken")
        let finding = try #require(r.findings.first { $0.code == "security_downgrade" })
        #expect(finding.devices == ["wmbus:QDS:12345678"])
        // A meter without a key on file may send in the clear.
        #expect(!r.findings.contains { $0.code == "security_downgrade" && $0.devices != ["wmbus:QDS:12345678"] })
    }

    // MARK: - JSON

    @Test("JSON: snake_case, sorted and indented; decodes back to the same report")
    func jsonRoundTrip() throws {
        var r = try Self.report()
        r.unknownDevices[0].note = "<script>alert(1)</script>, \"quoted\"\nnext line"
        let bytes = r.json()
        let text = try #require(String(bytes: bytes, encoding: .utf8))
        #expect(text.contains("\"best_rssi\" : -83"))
        #expect(text.contains("\"weak_signal_below\" : -95"))
        #expect(text.contains("\"ended_because\" : \"window_over\""))
        #expect(text.contains("\"serial_match\""))
        #expect(!text.contains("bestRSSI") && !text.contains("serialMatch"))
        #expect(text.contains("\n  \"buses\""), "indented")
        let order = ["\"building\"", "\"buses\"", "\"devices\"", "\"findings\"", "\"format\"", "\"summary\""].map { text.range(of: $0)!.lowerBound }
        #expect(order == order.sorted(), "keys sorted")
        #expect(try CommissioningReport.decode(json: bytes) == r)
        #expect(r.json() == bytes, "the same report gives the same bytes")
    }

    @Test("JSON: an older report without the weak threshold reads; other formats and broken files are refused by name")
    func jsonReading() throws {
        let r = try Self.report()
        let text = String(decoding: r.json(), as: UTF8.self)
        var object = try #require(try JSONSerialization.jsonObject(with: Data(r.json())) as? [String: Any])
        #expect(object.removeValue(forKey: "weak_signal_below") != nil)
        let old = try JSONSerialization.data(withJSONObject: object)
        let decoded = try CommissioningReport.decode(json: Array(old))
        #expect(decoded.weakSignalBelow == nil)
        #expect(decoded.summary == r.summary)

        let future = text.replacingOccurrences(of: "gatewayd-commissioning/1", with: "gatewayd-commissioning/2")
        #expect(throws: CommissioningReportError("a gatewayd-commissioning/2 report; this gatewayd reads gatewayd-commissioning/1")) {
            try CommissioningReport.decode(json: Array(future.utf8))
        }
        do {
            _ = try CommissioningReport.decode(json: Array(text.replacingOccurrences(of: "\"listen_seconds\" : 900,", with: "").utf8))
            Issue.record("a report without listen_seconds was accepted")
        } catch {
            #expect(error.message.contains("listen_seconds is missing"), "\(error)")
        }
        #expect(throws: CommissioningReportError.self) { try CommissioningReport.decode(json: Array("[1, 2]".utf8)) }
        #expect(throws: CommissioningReportError.self) { try CommissioningReport.decode(json: Array("{\"id\": \"x\"}".utf8)) }
    }

    @Test("JSON: numbers that are not finite survive instead of failing the encoder")
    func jsonNonFinite() throws {
        var r = try Self.report()
        r.devices[0].values = [.init(name: "overflow", value: .infinity, unit: "")]
        #expect(try CommissioningReport.decode(json: r.json()) == r)
    }

    // MARK: - CSV

    /// RFC 4180 read back, as a spreadsheet would.
    static func parseCSV(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false
        var chars = Array(text.unicodeScalars)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { field += "\""; chars.removeFirst() } else { quoted = false }
                } else {
                    field.unicodeScalars.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                row.append(field)
                field = ""
            } else if c == "\r", chars.first == "\n" {
                chars.removeFirst()
                row.append(field)
                rows.append(row)
                row = []
                field = ""
            } else {
                field.unicodeScalars.append(c)
            }
        }
        if !field.isEmpty || !row.isEmpty { rows.append(row + [field]) }
        return rows
    }

    @Test("CSV: header, one row per expected device, hostile fields quoted and read back intact")
    func csv() throws {
        var r = try Self.report()
        let hostile = "a,b \"quoted\"\nsecond line\r\nthird; =1+2"
        r.devices[0].error = hostile
        r.devices[1].unit = "\"4.13\""
        r.devices[2].serialDetail = "comma, here"
        let text = r.csv()
        #expect(text.hasSuffix("\r\n"))
        let rows = Self.parseCSV(text)
        #expect(rows.first == CommissioningReport.csvColumns)
        #expect(rows.count == r.devices.count + 1)
        #expect(rows.allSatisfy { $0.count == 24 })
        let column = Dictionary(uniqueKeysWithValues: CommissioningReport.csvColumns.enumerated().map { ($1, $0) })
        let body = rows.dropFirst()
        #expect(body.first?[column["error"]!] == hostile)
        #expect(body.dropFirst().first?[column["unit"]!] == "\"4.13\"")
        #expect(text.contains("\"\"\"4.13\"\"\""), "quotes doubled inside quotes")
        #expect(body.dropFirst(2).first?[column["serial_detail"]!] == "comma, here")
        #expect(body.filter { $0[column["heard"]!] == "yes" }.count == r.summary.heard)
        #expect(body.filter { $0[column["heard"]!] == "no" }.count == r.summary.missing)
        #expect(body.filter { $0[column["decryption"]!] == "wrong_key" }.count == r.summary.wrongKey)
        #expect(body.filter { $0[column["decryption"]!] == "no_key" }.count == r.summary.noKey)
        #expect(body.filter { $0[column["serial_match"]!] == "mismatch" }.count == r.summary.serialMismatch)
        #expect(body.filter { $0[column["findings"]!].split(separator: ";").contains("weak_signal") }.count == r.summary.weakSignal)
        let even = try #require(body.first { $0[column["key"]!] == "wmbus:QDS:22220005" })
        #expect(even[column["rssi_median"]!] == "-96.5")
        #expect(even[column["rssi_best"]!] == "-90")
        #expect(even[column["floor"]!] == "5")
        let big = try #require(body.first { $0[column["key"]!] == "wmbus:QDS:44440001" })
        #expect(big[column["reading_value"]!] == "1234.567", "a '.' and no thousands separator")
        #expect(big[column["reading_unit"]!] == "m^3")
        let hca = try #require(body.first { $0[column["key"]!] == "wmbus:QDS:12345678" })
        #expect(hca[column["set_day_value"]!] == "1.134")
        let missing = try #require(body.first { $0[column["key"]!] == "mbus:KAM:06855818" })
        #expect(missing[column["findings"]!] == "no_answer")
        #expect(missing[column["error"]!] == "no answer to 3 selections")
        #expect(CSVWriter.cell("plain") == "plain")
        #expect(CSVWriter.cell("a\"b") == "\"a\"\"b\"")
        #expect(CSVWriter.cell("a\rb") == "\"a\rb\"")
    }

    @Test("CSV cells: formula starters defused with a leading quote, plain numbers left as numbers, controls escaped")
    func csvCells() {
        #expect(CSVWriter.cell("=1+2") == "'=1+2")
        #expect(CSVWriter.cell("+cmd|' /C calc'!A0") == "'+cmd|' /C calc'!A0")
        #expect(CSVWriter.cell("@SUM(A1)") == "'@SUM(A1)")
        #expect(CSVWriter.cell("-1+2") == "'-1+2")
        #expect(CSVWriter.cell("-") == "'-")
        #expect(CSVWriter.cell("\t=1") == "'\t=1")
        #expect(CSVWriter.cell("\r=1") == "\"'\r=1\"")
        #expect(CSVWriter.cell("=A1,B1") == "\"'=A1,B1\"")
        for number in ["-12.5", "+3", "-96.5", "1e-3", "-1.5E+3", "-.5", "0", "6042000"] {
            #expect(CSVWriter.cell(number) == number, "\(number)")
        }
        #expect(CSVWriter.cell("a\u{1B}[31m") == "a\\x1B[31m")
        #expect(CSVWriter.cell("a=b") == "a=b")
    }

    @Test("CSV report: a hostile error or floor from the field cannot run as a formula; --bom starts with U+FEFF")
    func csvReportDefused() throws {
        var r = try Self.report()
        r.devices[0].error = "=HYPERLINK(\"http://evil\")"
        r.devices[1].floor = "@cmd"
        let rows = Self.parseCSV(r.csv())
        let column = Dictionary(uniqueKeysWithValues: CommissioningReport.csvColumns.enumerated().map { ($1, $0) })
        #expect(rows[1][column["error"]!] == "'=HYPERLINK(\"http://evil\")")
        #expect(rows[2][column["floor"]!] == "'@cmd")
        #expect(rows.dropFirst().contains { $0[column["rssi_best"]!] == "-90" }, "negative RSSI stays a number")
        #expect(r.csv(byteOrderMark: true).hasPrefix("\u{FEFF}unit,floor,"))
        #expect(!r.csv().hasPrefix("\u{FEFF}"))
    }

    @Test("numbers: '.' decimal point, no exponent, no grouping")
    func numbers() {
        #expect(ReportText.number(1234) == "1234")
        #expect(ReportText.number(1_234_567.5) == "1234567.5")
        #expect(ReportText.number(-101.5) == "-101.5")
        #expect(ReportText.number(0.00001) == "0.00001")
        #expect(ReportText.number(-1.5e-7) == "-0.00000015")
        #expect(ReportText.number(1e21) == "1000000000000000000000")
        #expect(ReportText.number(-0.0) == "0")
        #expect(ReportText.number(.nan) == "NaN")
    }

    // MARK: - HTML

    @Test("HTML: summary tiles by id, findings, floors, heat pump, strangers and buses")
    func html() throws {
        let r = try Self.report()
        let page = r.html()
        let s = r.summary
        for (id, n) in [("expected", s.expected), ("heard", s.heard), ("missing", s.missing), ("wrong-key", s.wrongKey), ("no-key", s.noKey),
                        ("weak-signal", s.weakSignal), ("serial-mismatch", s.serialMismatch), ("unknown-nearby", s.unknownNearby)] {
            #expect(page.contains("id=\"count-\(id)\">\(n)</b>"), "tile \(id)")
        }
        for label in ["expected", "heard", "missing", "wrong key", "no key", "weak signal", "serial mismatch", "unknown nearby"] {
            #expect(page.contains("<span>\(label)</span>"))
        }
        for f in r.findings { #expect(page.contains(HTMLPage.escape(f.message)), "\(f.message)") }
        #expect(page.contains("<span class=\"sev\">action</span>"))
        #expect(page.contains("<span class=\"sev\">warning</span>"))
        #expect(page.contains("<span class=\"sev\">info</span>"))
        #expect(page.contains("Not commissioned: 5 findings need action"))
        for floor in ["Floor 1", "Floor 4", "Floor 5", "Floor 6", "Floor 10", "Without a unit"] { #expect(page.contains("<h3>\(floor) ")) }
        #expect(page.range(of: "<h3>Floor 5 ")!.lowerBound < page.range(of: "<h3>Floor 10 ")!.lowerBound)
        #expect(page.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"))
        #expect(page.contains("<polyline points=\"1,"), "a sparkline")
        #expect(page.contains("<line x1=\"0\""), "the weak threshold line")
        #expect(page.contains("weak below -95 dBm"))
        #expect(page.contains("<th>modbus:kaisai:unit1</th>"))
        #expect(page.contains("<th>77777777</th>"))
        #expect(page.contains("registered in building 12"))
        #expect(page.contains("<th>mbus-line-1</th>"))
        #expect(page.contains("1234.567 m^3"))
        #expect(page.contains("2026-11-21 10:15:00 UTC to 2026-11-21 10:30:00 UTC"))
    }

    @Test("HTML: hostile strings from telegrams and registries are escaped; nothing is fetched from outside")
    func htmlEscapes() throws {
        var r = try Self.report()
        r.unknownDevices[0].note = "<script>alert(1)</script>"
        r.unknownDevices[1].identification = "<img src=x onerror=alert(2)>"
        r.devices[0].unit = "4.12\"><svg onload=alert(3)>"
        r.devices[0].reading?.name = "\" onmouseover=\"alert(4)"
        r.devices[1].error = "Tom & Jerry's <b>meter</b>\u{1B}[31m"
        r.building = "<h1>7</h1>"
        r.findings[0].message = "</li><script>alert(5)</script>"
        let page = r.html()
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(page.contains("&lt;img src=x onerror=alert(2)&gt;"))
        #expect(page.contains("&quot; onmouseover=&quot;alert(4)"))
        #expect(page.contains("Tom &amp; Jerry&#39;s &lt;b&gt;meter&lt;/b&gt;\u{FFFD}[31m"))
        #expect(page.contains("&lt;/li&gt;&lt;script&gt;alert(5)&lt;/script&gt;"))
        #expect(!page.contains("<script"))
        #expect(!page.contains("<img"))
        #expect(!page.contains("<svg onload"))
        #expect(!page.contains("onmouseover=\""))
        #expect(!page.contains("<h1>7"))
        #expect(!page.unicodeScalars.contains("\u{1B}"))
        for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "@import", "url(", "<link", "<script", "<iframe", "http://", "https://"] {
            #expect(!page.contains(external), "\(external)")
        }
    }

    @Test("HTML: a 500-device report with full charts stays well under 1 MB")
    func htmlSize() {
        let r = Self.bigReport(devices: 500, samples: 48)
        let bytes = r.html().utf8.count
        #expect(bytes < 700_000, "\(bytes) bytes")
        #expect(r.html().components(separatedBy: "<polyline").count - 1 == 480, "one chart per device heard")
    }

    /// A building of `devices` HCAs over ten floors, 4 % silent and some weak, each heard with `samples` samples.
    static func bigReport(devices count: Int, samples: Int) -> CommissioningReport {
        var devices: [CommissioningReport.DeviceResult] = []
        for i in 0..<count {
            let floor = i / (count / 10) + 1
            let id = String(format: "%08d", 30_000_000 + i)
            var d = CommissioningReport.DeviceResult(
                key: "wmbus:QDS:\(id)", bus: "wmbus", unit: "\(floor).\(i % 50 + 1)", floor: "\(floor)", identification: id,
                manufacturer: "QDS", kind: "heat-cost allocator", line: nil)
            if i % 25 != 7 {
                let base = -60.0 - Double(i % 45)
                let rssi = (0..<samples).map { base + Double(($0 * 7) % 9) - 4 }
                let sorted = rssi.sorted()
                d.heard = true
                d.telegrams = samples
                d.rssi = .init(best: sorted.last!, worst: sorted.first!, median: CommissioningSession.median(sorted), samples: rssi)
                d.decryption = .decrypted
                d.serialMatch = .match
                d.profile = "qundis-q-caloric"
                d.reading = .init(name: "heat_cost_allocation", value: Double(i * 13 % 2000), unit: "HCA")
                d.setDay = .init(name: "heat_cost_allocation", value: Double(i * 7 % 1500), unit: "HCA")
                d.values = [d.reading!, d.setDay!]
            }
            devices.append(d)
        }
        var summary = CommissioningReport.Summary()
        summary.expected = count
        summary.heard = devices.filter(\.heard).count
        summary.missing = count - summary.heard
        summary.weakSignal = devices.filter { ($0.rssi?.median ?? 0) < -95 }.count
        let findings = CommissioningFindings.findings(devices: devices, heatPumps: [], unknown: [], buses: [], options: CommissioningOptions())
        return CommissioningReport(
            format: CommissioningReport.currentFormat, id: "commissioning-gw-big-20261121T101500Z", gateway: "gw-big", building: "big",
            startedAt: "2026-11-21T10:15:00Z", finishedAt: "2026-11-21T10:45:00Z", listenSeconds: 1800, endedBecause: .windowOver,
            summary: summary, devices: devices, heatPumps: [], unknownDevices: [], findings: findings, buses: [], weakSignalBelow: -95)
    }

    // MARK: - Terminal

    @Test("terminal: verdict, totals, findings most urgent first, aligned floor table")
    func terminal() throws {
        let r = try Self.report()
        let text = r.terminalSummary()
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "Commissioning of building 7, gateway gw-0007")
        #expect(lines[1] == "2026-11-21 10:15:00 UTC to 2026-11-21 10:30:00 UTC, window 15 min, ended: the listening window was over")
        #expect(lines[2] == "NOT COMMISSIONED: 5 findings need action")
        #expect(text.contains("expected 12   heard 10   missing 2   wrong key 1   no key 1"))
        #expect(text.contains("weak signal 3   serial mismatch 1   unknown nearby 2   telegrams 19"))
        #expect(text.contains("  ACTION   unit 4.13 HCA 12345679 not heard: check it is mounted and active"))
        #expect(text.contains("  WARNING  weak signal (-101 dBm) on 3 devices on floor 5: consider a repeater"))
        let action = try #require(text.range(of: "  ACTION ")).lowerBound
        let warning = try #require(text.range(of: "  WARNING ")).lowerBound
        let info = try #require(text.range(of: "  INFO ")).lowerBound
        #expect(action < warning && warning < info)
        let header = try #require(lines.firstIndex { $0.hasPrefix("FLOOR ") })
        let table = Array(lines[header...].prefix { !$0.isEmpty })
        #expect(table.count == 8, "header, six floors, total")
        #expect(Set(table.map(\.count)).count == 1, "aligned:\n\(table.joined(separator: "\n"))")
        #expect(table[0] == "FLOOR  EXPECTED  HEARD  MISSING  WRONG KEY  NO KEY  WEAK  MISMATCH")
        #expect(table.contains("5             5      5        0          1       1     3         0"))
        #expect(table.last == "total        12     10        2          1       1     3         1")
    }

    @Test("terminal: at most 30 finding lines, the rest counted; control characters neutralised")
    func terminalLimits() throws {
        var r = try Self.report()
        r.findings = (0..<45).map { .init(severity: $0 < 40 ? .action : .info, code: "not_heard", message: "finding \($0)\u{1B}[2J", devices: []) }
        let text = r.terminalSummary()
        let findingLines = text.split(separator: "\n").filter { $0.hasPrefix("  ACTION") || $0.hasPrefix("  INFO") }
        #expect(findingLines.count == 29)
        #expect(text.contains("  … and 16 more (all in the HTML and CSV reports)"))
        #expect(!text.unicodeScalars.contains("\u{1B}"))
        #expect(text.contains("finding 0\\x1B[2J"))
        r.findings = []
        #expect(r.terminalSummary().contains("COMMISSIONED: no finding needs action"))
        #expect(r.terminalSummary().contains("No findings."))
    }
}
