@testable import Agent
import Foundation
import Testing

/// scripts/build-deb.sh reads the package version from a source file. When the library split moved
/// `GatewaydVersion`, the script kept its old path and every packaging run failed without any test
/// noticing; this holds the script's path and pattern to the version the binary prints.
@Suite("packaging script")
struct PackagingScriptTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("build-deb.sh finds the version the binary prints")
    func versionFile() throws {
        let script = try String(contentsOf: Self.root.appendingPathComponent("scripts/build-deb.sh"), encoding: .utf8)
        let line = try #require(script.split(separator: "\n").first { $0.hasPrefix("version_file=") },
                                "build-deb.sh names its version file in a line version_file=PATH")
        let path = String(line.dropFirst("version_file=".count).prefix { $0 != " " && $0 != "#" })
        let source = try String(contentsOf: Self.root.appendingPathComponent(path), encoding: .utf8)
        // The script's sed: the first `static let string = "…"` of that file.
        let found = source.split(separator: "\n").lazy.compactMap { line -> String? in
            guard let r = line.range(of: "static let string = \"") else { return nil }
            let rest = line[r.upperBound...]
            return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
        }.first
        #expect(found == GatewaydVersion.string, "\(path) gives \(found ?? "nothing"), the binary prints \(GatewaydVersion.string)")
    }
}
