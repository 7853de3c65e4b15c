@testable import Agent
import CLISupport
import Foundation
import Testing
@testable import gatewayd

/// The config-error suite: every `Fixtures/config-errors/NN-name.toml` is a broken configuration and
/// `NN-name.expected` is exactly what `gatewayd config check` prints for it.
///
/// Each case runs in a fresh temporary directory, as `gatewayd.toml`, so that messages read as they do
/// on a gateway. Beside the case: `NN-name.d/` becomes the drop-in directory `gatewayd.toml.d/`, and the
/// files of `NN-name.files/` are copied next to it with mode 0600 (git does not keep modes). A line
/// `# fixture: chmod MODE FILE` in the case changes a file's mode. In the output the temporary directory
/// is removed from paths and the repository root is written `<repo>`.
///
/// To regenerate after a deliberate change of wording: `GATEWAYD_UPDATE_GOLDEN=1 swift test --filter
/// ConfigErrorTests`, then review the diff of the .expected files.
@Suite("config check: broken configurations")
struct ConfigErrorTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/config-errors")
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static let cases: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fixtures.path)) ?? []
        return names.filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()
    }()

    static var options: ConfigLoadOptions {
        ConfigLoadOptions(checkPaths: true, profileDirectories: [repositoryRoot.appendingPathComponent("profiles/modbus").path])
    }

    @Test("there are at least 30 cases, each with its expected output")
    func suiteIsComplete() throws {
        #expect(Self.cases.count >= 30)
        for name in Self.cases {
            #expect(FileManager.default.fileExists(atPath: Self.fixtures.appendingPathComponent(name + ".expected").path),
                    "\(name).expected is missing")
        }
    }

    @Test("config check prints the expected problems", arguments: cases)
    func golden(_ name: String) throws {
        let actual = try Self.run(name)
        let expectedURL = Self.fixtures.appendingPathComponent(name + ".expected")
        if ProcessInfo.processInfo.environment["GATEWAYD_UPDATE_GOLDEN"] != nil {
            try actual.write(to: expectedURL, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: expectedURL, encoding: .utf8)
        #expect(actual == expected, "\(name): config check printed\n\(actual)")
        // A broken configuration never loads, and every problem names a file and a field or a line.
        #expect(actual.contains("the configuration was not loaded"))
    }

    /// Lays the case out in a temporary directory and returns `config check`'s text output.
    static func run(_ name: String) throws -> String {
        let fm = FileManager.default
        let directory = fm.temporaryDirectory.appendingPathComponent("gatewayd-config-\(name)-\(UUID().uuidString)")
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: directory) }

        let source = fixtures.appendingPathComponent(name + ".toml")
        let main = directory.appendingPathComponent("gatewayd.toml")
        try fm.copyItem(at: source, to: main)
        let dropIns = fixtures.appendingPathComponent(name + ".d")
        if fm.fileExists(atPath: dropIns.path) {
            try fm.copyItem(at: dropIns, to: directory.appendingPathComponent("gatewayd.toml.d"))
        }
        let files = fixtures.appendingPathComponent(name + ".files")
        for file in (try? fm.contentsOfDirectory(atPath: files.path)) ?? [] {
            let target = directory.appendingPathComponent(file)
            try fm.copyItem(at: files.appendingPathComponent(file), to: target)
            try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: target.path)
        }
        for line in try String(contentsOf: source, encoding: .utf8).split(separator: "\n") where line.hasPrefix("# fixture: chmod ") {
            let words = line.split(separator: " ")
            let mode = try #require(Int(words[3], radix: 8))
            try fm.setAttributes([.posixPermissions: mode], ofItemAtPath: directory.appendingPathComponent(String(words[4])).path)
        }

        let result = GatewayConfig.load(path: main.path, options: options)
        return ConfigCheckReport.text(result, path: main.path)
            .replacingOccurrences(of: directory.path + "/", with: "")
            .replacingOccurrences(of: repositoryRoot.path, with: "<repo>")
    }
}
