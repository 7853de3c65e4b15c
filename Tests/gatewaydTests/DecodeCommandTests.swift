@testable import Agent
import CLISupport
import Foundation
import Testing
import Gateway
@testable import Drivers
@testable import gatewayd

@Suite("gatewayd decode")
struct DecodeCommandTests {

    /// A small valid frame: Kamstrup heat meter, one energy record (6042 kWh).
    static var energyFrame: String {
        var h = TelegramHeader()
        h.identification = IdentificationNumber("06855817")
        h.manufacturer = ManufacturerCode("KAM")
        h.version = 8
        h.deviceType = .heatOutlet
        h.accessNumber = 11
        h.status = MeterStatus(rawValue: 0)
        h.signature = 0
        let bytes = try! RecordEncoder.responseFrame(address: 5, header: h, records: [
            .init(dataField: .int32, vif: .primary(0x06), value: .integer(6042)),
            .init(storageNumber: 1, dataField: .int16, vif: .primary(0x6C), value: .dateTime(MBusDateTime(year: 2026, month: 10, day: 31))),
        ])
        return Hex.encode(bytes, separator: " ")
    }

    func json(_ line: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test("a telegram the keys file opens only with another meter's key: the key finding names that meter (JSON and text)")
    func swappedKeyFinding() throws {
        let a = IdentificationNumber("41000001")!, b = IdentificationNumber("41000002")!
        let keyA = WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")!, keyB = WMBusKey(hex: "F0E0D0C0B0A090807060504030201000")!
        let address = WMBusAddress(manufacturer: ManufacturerCode("QDS")!, identification: a, version: 0x37, deviceType: .water)
        let bytes = try #require(ProfileTelegramEncoder.modeFive(address: address, accessNumber: 7, records: [0x0C, 0x13, 0x45, 0x23, 0x01, 0x00], key: keyA))
        let swapped = WMBusKeyring(keys: [a: keyB, b: keyA])
        var session = DecodeSession(json: true, keyring: swapped)
        let object = try json(session.render(DecodeInput(label: "test", text: Hex.encode(bytes))))
        let finding = try #require(object["key_finding"] as? [String: Any])
        #expect(finding["kind"] as? String == "key_of_another_meter" && finding["key_filed_under"] as? String == "41000002")
        #expect((object["error"] as? [String: Any])?["code"] as? String == "wrong_key")
        var text = DecodeSession(json: false, keyring: swapped)
        #expect(text.render(DecodeInput(label: "test", text: Hex.encode(bytes))).contains("key finding: key_of_another_meter"))
    }

    @Test("JSON output carries the documented keys")
    func jsonKeys() throws {
        var session = DecodeSession(json: true)
        let out = session.render(DecodeInput(label: "test", text: Self.energyFrame))
        #expect(out.hasSuffix("\n"))
        #expect(out.filter { $0 == "\n" }.count == 1)
        let object = try json(out)
        #expect(object["manufacturer"] as? String == "KAM")
        #expect(object["id"] as? String == "06855817")
        #expect(object["version"] as? Int == 8)
        #expect(object["medium"] as? String == "Heat: Outlet")
        #expect(object["access_number"] as? Int == 11)
        #expect(object["status"] as? Int == 0)
        let records = try #require(object["records"] as? [[String: Any]])
        #expect(records.count == 2)
        let energy = records[0]
        for key in ["quantity", "value", "unit", "raw_value", "raw_unit", "storage", "tariff", "subunit", "function"] {
            #expect(energy[key] != nil, "missing \(key)")
        }
        #expect(energy["quantity"] as? String == "Energy")
        #expect(energy["value"] as? Double == 6_042_000)
        #expect(energy["unit"] as? String == "Wh")
        #expect(energy["raw_value"] as? Int == 6042)
        #expect(energy["raw_unit"] as? String == "kWh")
        #expect(energy["function"] as? String == "instantaneous")
        #expect(records[1]["value"] as? String == "2026-10-31")
        #expect(records[1]["storage"] as? Int == 1)
        #expect(session.failed == 0)
    }

    /// A meter whose plain-text unit and LVAR string carry terminal escapes: clear screen, a window
    /// title, a bell and a C1 CSI.
    static var hostileFrame: String {
        var h = TelegramHeader()
        h.identification = IdentificationNumber("12345678")
        h.manufacturer = ManufacturerCode("KAM")
        h.version = 1
        h.deviceType = .water
        h.accessNumber = 1
        h.status = MeterStatus(rawValue: 0)
        h.signature = 0
        let bytes = try! RecordEncoder.responseFrame(address: 1, header: h, records: [
            .init(dataField: .int16, vif: .plainText("\u{1B}[2J\u{9B}0m"), value: .integer(5)),
            .init(dataField: .variableLength, vif: .extensionFD(0x11), value: .text("\u{1B}]0;owned\u{7}")),
        ])
        return Hex.encode(bytes, separator: " ")
    }

    @Test("text output escapes control characters from plain-text VIFs and LVAR strings; JSON keeps them exact, JSON-escaped")
    func hostileTextEscaped() throws {
        var text = DecodeSession(json: false)
        let out = text.render(DecodeInput(label: "test", text: Self.hostileFrame))
        #expect(text.failed == 0, "\(out)")
        #expect(!out.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{7}" || $0 == "\u{9B}" }, "\(out)")
        #expect(out.contains("\\x1B[2J\\x9B0m") && out.contains("\\x1B]0;owned\\x07"), "\(out)")
        var json = DecodeSession(json: true)
        let line = json.render(DecodeInput(label: "test", text: Self.hostileFrame))
        #expect(!line.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{7}" })
        #expect(line.contains("\\u001b]0;owned\\u0007"), "\(line)")
    }

    @Test("a broken frame gives an error object")
    func failure() throws {
        var session = DecodeSession(json: true)
        var text = Self.energyFrame
        text.removeLast(5)  // drop checksum and stop byte
        let object = try json(session.render(DecodeInput(label: "test", text: text)))
        let error = try #require(object["error"] as? [String: Any])
        #expect(error["code"] as? String == "truncated_frame")
        #expect(error["message"] as? String != nil)
        #expect(error["offset"] as? Int != nil)
        #expect(session.failed == 1)

        let bad = try json(session.render(DecodeInput(label: "test", text: "68 0G")))
        #expect((bad["error"] as? [String: Any])?["code"] as? String == "invalid_hex")
    }

    @Test("the table names the meter and each record")
    func table() {
        var session = DecodeSession(json: false)
        let out = session.render(DecodeInput(label: "line 1", text: Self.energyFrame))
        #expect(out.contains("KAM  06855817  version 8  Heat: Outlet"))
        #expect(out.contains("Energy"))
        #expect(out.contains("6042000"))
        #expect(out.contains("6042 kWh"))
    }

    @Test("file input skips comments and names lines")
    func lines() {
        let inputs = DecodeInput.lines("# heat meters\n\n  \(Self.energyFrame)  \n# end\nE5\n", source: "f.hex")
        #expect(inputs.count == 2)
        #expect(inputs[0].label == "f.hex:3")
        #expect(inputs[1].label == "f.hex:5")
    }

    /// The built executable, next to the test bundle.
    static var executable: URL? { executable(named: "gatewayd") }

    /// A product built beside the tests: `gatewayd`, or `gatewayd-sim` (the simulators).
    static func executable(named name: String) -> URL? {
        var dir = Bundle.main.bundleURL
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    func run(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, out: String) {
        let exe = try #require(Self.executable, "gatewayd binary not found near \(Bundle.main.bundleURL.path)")
        let p = Process()
        p.executableURL = exe
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = Pipe()
        let input = Pipe()
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("exit status: 0 for a good frame, 1 for a bad one, 64 for bad usage")
    func exitStatus() throws {
        #expect(try run(["decode", Self.energyFrame]).status == 0)
        let bad = try run(["decode", "--json", "68 03 03 68 08 01 72 7B 17"])
        #expect(bad.status == 1)
        #expect(bad.out.contains("\"missing_stop_byte\""))
        #expect(try run(["decode", "--file", "x", "68"]).status == 64)
        let piped = try run(["decode", "--json"], stdin: Self.energyFrame + "\n" + Self.energyFrame + "\n")
        #expect(piped.status == 0)
        #expect(piped.out.split(separator: "\n").count == 2)
    }
}

/// `gatewayd billing`: devices without a set-day value for the billing date (issue 17, item 3).
@Suite("gatewayd billing")
struct BillingCommandTests {
    @Test("lists missing and stale devices against the due date; dates are checked; the default is the last 31 December")
    func rows() throws {
        let registry = try DeviceRegistry(RegistryDocument(gateway: "gw", building: "1", devices: [
            RegisteredDevice(key: "wmbus:QDS:1", bus: .wirelessMBus, unit: "1.01", identification: "00000001", manufacturer: "QDS", medium: "heat-cost allocator"),
            RegisteredDevice(key: "wmbus:QDS:2", bus: .wirelessMBus, unit: "1.02", identification: "00000002", manufacturer: "QDS"),
            RegisteredDevice(key: "wmbus:QDS:3", bus: .wirelessMBus, unit: "1.03", identification: "00000003", manufacturer: "QDS"),
            RegisteredDevice(key: "manual:4", bus: .manual, unit: "1.04"),
        ]))
        var ledger = SetDayLedger()
        func proof(_ device: String, _ t: Int64) -> Reading {
            Reading(device: device, quantity: "H.C.A.", value: 42, unit: "hca", meterTime: t, receivedAt: 1_770_000_000_000, storage: 1, readingClass: .setDay)
        }
        ledger.apply(ledger.newCaptures(in: [proof("wmbus:QDS:1", 1_767_139_200), proof("wmbus:QDS:2", 1_735_603_200)]))  // 2025-12-31, 2024-12-31
        let rows = BillingCommand.rows(ledger: ledger, registry: registry, due: "2025-12-31")
        #expect(rows.map(\.device) == ["wmbus:QDS:2", "wmbus:QDS:3"])
        #expect(rows.map(\.status) == ["stale", "missing"] && rows[0].lastPeriod == "2024-12-31" && rows[0].kind == "radio meter")
        #expect(BillingCommand.rows(ledger: ledger, registry: registry, due: "2024-12-31").map(\.device) == ["wmbus:QDS:3"])
        #expect(BillingCommand.date("2025-02-29") == nil && BillingCommand.date("2024-02-29") == "2024-02-29" && BillingCommand.date("31.12.2025") == nil)
        #expect(BillingCommand.lastYearEnd(now: 1_780_000_000_000) == "2025-12-31")  // 2026-05-28
        #expect(BillingCommand.lastYearEnd(now: 1_767_139_200_000 + 3_600_000) == "2025-12-31")
    }
}

/// `gatewayd listen` names a swapped key-file row (issue 17, item 2).
@Suite("gatewayd listen: key forensics")
struct ListenKeyForensicsTests {
    @Test("a device whose telegrams open only with another meter's key shows KEY OF that meter")
    func swapped() throws {
        let a = IdentificationNumber("41000001")!, b = IdentificationNumber("41000002")!
        let keyA = WMBusKey(hex: "000102030405060708090A0B0C0D0E0F")!, keyB = WMBusKey(hex: "F0E0D0C0B0A090807060504030201000")!
        let address = WMBusAddress(manufacturer: ManufacturerCode("QDS")!, identification: a, version: 0x37, deviceType: .water)
        let view = ListenView(keyring: WMBusKeyring(keys: [a: keyB, b: keyA]), catalog: nil, mode: .table)
        for access in UInt8(1)...3 {
            let bytes = try #require(ProfileTelegramEncoder.modeFive(address: address, accessNumber: access, records: [0x0C, 0x13, 0x45, 0x23, 0x01, 0x00], key: keyA))
            view.heard(ReceivedTelegram(bytes: bytes, rssiDBm: -70, receivedAt: DongleTimestamp(millisecondsSince1970: 1_780_000_000_000 + Int64(access)), linkMode: .t1, receiver: "test"))
        }
        let table = view.snapshot(title: "summary")
        #expect(table.contains("KEY OF 41000002") && table.contains("rows are probably swapped"), "\(table)")
        #expect(view.sawWrongKey)
    }
}
