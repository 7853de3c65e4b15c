@testable import Agent
import CLISupport
import ArgumentParser
import Foundation
import Gateway
import Testing
@testable import gatewayd

@Suite("gatewayd registry")
struct RegistryCommandTests {
    static func registryFile() throws -> String {
        let dir = NSTemporaryDirectory() + "registry-cmd-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let json = """
            {"gateway": "gw-0007", "building": "7", "devices": [
              {"key": "mbus:KAM:06855817", "bus": "mbus", "identification": "06855817", "manufacturer": "KAM", "primaryAddress": 3, "line": "mbus-line-1", "unit": "4.12", "replaces": "mbus:KAM:01111111"},
              {"key": "mbus:KAM:01111111", "bus": "mbus", "identification": "01111111", "manufacturer": "KAM", "replacedOn": "2025-11-02", "replacedBy": "mbus:KAM:06855817"},
              {"key": "modbus:nibe:1", "bus": "modbus", "modbusUnit": 1, "line": "rs485-1", "serial": "NIBE-12345678"}],
             "elsewhere": [{"identification": "33333333", "manufacturer": "QDS", "building": "12"}]}
            """
        let path = dir + "/registry.json"
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func check(_ args: [String]) async throws -> Int32 {
        var command = try RegistryCheck.parse(args)
        do { try await command.run() } catch let e as ExitCode { return e.rawValue }
        return 0
    }

    @Test("check: this building, another building, replaced, unknown, wrong manufacturer, nameplate serial")
    func outcomes() async throws {
        let path = try Self.registryFile()
        let registry = try DeviceRegistry.load(path: path)
        let ours = RegistryCheck.check("06855817", manufacturer: "KAM", in: registry)
        #expect(ours == .ours(try #require(registry.device(key: "mbus:KAM:06855817"))))
        #expect(RegistryCheck.verdict(ours, building: "7").hasPrefix("belongs to this building (7): device mbus:KAM:06855817"))
        // Leading zeros as a nameplate may drop them.
        #expect(RegistryCheck.check("6855817", manufacturer: nil, in: registry).exitCode == 0)

        let elsewhere = RegistryCheck.check("33333333", manufacturer: nil, in: registry)
        #expect(elsewhere == .rejected(.otherBuilding(identification: "33333333", building: "12", ours: "7")))
        #expect(RegistryCheck.verdict(elsewhere, building: "7") == "another building: 33333333: serial belongs to building 12, this gateway serves 7")

        let replaced = RegistryCheck.check("01111111", manufacturer: "KAM", in: registry)
        #expect(replaced == .rejected(.replaced(identification: "01111111", on: "2025-11-02", by: "mbus:KAM:06855817")))
        #expect(RegistryCheck.verdict(replaced, building: "7").hasPrefix("a replaced device: "))

        let unknown = RegistryCheck.check("99999999", manufacturer: "ZRI", in: registry)
        #expect(unknown == .rejected(.notInRegistry(identification: "99999999", manufacturer: "ZRI")))
        #expect(RegistryCheck.verdict(unknown, building: "7") == "not registered: ZRI 99999999: no such device in the registry")

        #expect(RegistryCheck.check("06855817", manufacturer: "QDS", in: registry)
                == .rejected(.manufacturerMismatch(identification: "06855817", registered: "KAM", heard: "QDS")))
        #expect(RegistryCheck.check("nibe 12345678", manufacturer: nil, in: registry).exitCode == 0)
        #expect(RegistryCheck.check("NIBE-00000000", manufacturer: nil, in: registry).exitCode == 2)
    }

    @Test("check exits 0 for this building, 2 otherwise, CLIError (1) when the registry cannot be read, usage errors 64")
    func exitCodes() async throws {
        let path = try Self.registryFile()
        #expect(try await check(["06855817", "--manufacturer", "KAM", "--registry", path]) == 0)
        #expect(try await check(["33333333", "--registry", path]) == 2)
        #expect(try await check(["01111111", "--registry", path]) == 2)
        #expect(try await check(["99999999", "--registry", path]) == 2)
        await #expect(throws: CLIError.self) { _ = try await check(["06855817", "--registry", path + ".missing"]) }
        #expect(throws: (any Error).self) { try RegistryCheck.parse(["06855817", "--manufacturer", "K1"]) }

        let ok = try ReadingCommandTests.spawn(["registry", "check", "06855817", "--registry", path])
        #expect(ok.status == 0 && ok.output.contains("belongs to this building"), "\(ok.output)")
        let away = try ReadingCommandTests.spawn(["registry", "check", "33333333", "--registry", path])
        #expect(away.status == 2 && away.output.contains("building 12"), "\(away.output)")
        let missing = try ReadingCommandTests.spawn(["registry", "check", "06855817", "--registry", path + ".missing"])
        #expect(missing.status == 1 && missing.output.contains("cannot read the registry"), "\(missing.output)")
        let usage = try ReadingCommandTests.spawn(["registry", "check", "06855817", "--manufacturer", "K1", "--registry", path])
        #expect(usage.status == 64, "\(usage.output)")
    }

    @Test("show lists building, gateway and devices with bus, address, replacement")
    func show() async throws {
        let path = try Self.registryFile()
        let text = RegistryShow.text(try DeviceRegistry.load(path: path))
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == "building 7, gateway gw-0007: 3 devices")
        #expect(lines[1].hasPrefix("  KEY") && lines[1].contains("ADDRESS/LINE") && lines[1].hasSuffix("REPLACED"), "the shared table style: upper-case header")
        #expect(lines[2].contains("address 3 @ mbus-line-1") && lines[2].contains("replaces mbus:KAM:01111111"))
        #expect(lines[3].contains("on 2025-11-02 by mbus:KAM:06855817"))
        #expect(lines[4].contains("unit 1 @ rs485-1") && lines[4].contains("NIBE-12345678"))
        var json = try RegistryShow.parse(["--registry", path, "--json"])
        try await json.run()
        let out = try ReadingCommandTests.spawn(["registry", "show", "--json", "--registry", path])
        #expect(out.status == 0 && out.output.contains("\"replaced_by\":\"mbus:KAM:06855817\""), "\(out.output)")
    }

    @Test("registry show escapes control characters a portal's registry may carry")
    func showEscapes() throws {
        let registry = try DeviceRegistry(RegistryDocument(gateway: "gw-1", building: "7\u{1B}[2J", devices: [
            RegisteredDevice(key: "mbus:KAM:0685\u{1B}]0;owned\u{07}", bus: .wiredMBus, unit: "flat\r12")]))
        let text = RegistryShow.text(registry)
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x0D })
        #expect(text.contains("\\x1B"))
    }
}
