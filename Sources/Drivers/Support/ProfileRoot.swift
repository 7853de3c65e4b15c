import Foundation

/// Which profiles: wireless meter profiles (profiles/wmbus) or Modbus device profiles (profiles/modbus).
public enum ProfileKind: String, Sendable, CaseIterable {
    case wmbus, modbus
}

/// `$GATEWAYD_PROFILES` set to something that is not a profiles root.
public struct ProfileRootError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Where profiles are found. `GATEWAYD_PROFILES` has one meaning everywhere: the profiles root, the
/// directory holding `wmbus/` and `modbus/` (in a checkout `profiles/`, installed
/// `/usr/share/gatewayd/profiles`).
///
/// A set variable is taken at its word: if its `wmbus/` or `modbus/` is missing or holds no profile, the
/// error says so instead of falling back, because a wrong value would otherwise turn every radio meter
/// into generic EN 13757-3 decoding without a word.
public enum ProfileRoot {
    public static let variable = "GATEWAYD_PROFILES"
    public static let installed = "/usr/share/gatewayd/profiles"

    /// The directory of `kind` under `$GATEWAYD_PROFILES` when it is set (checked: it exists and holds
    /// `*.json` profiles), nil when it is not set.
    public static func configured(_ kind: ProfileKind, environment: [String: String]? = nil) throws(ProfileRootError) -> String? {
        let env = environment ?? ProcessInfo.processInfo.environment
        guard let root = env[variable], !root.isEmpty else { return nil }
        var trimmed = root
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        let directory = trimmed + "/" + kind.rawValue
        let expected = "\(variable) names the profiles root, the directory holding wmbus/ and modbus/ (installed: \(installed); in a checkout: profiles/)"
        guard isDirectory(trimmed) else {
            throw ProfileRootError(message: "\(variable)=\(root): no such directory; \(expected)")
        }
        guard isDirectory(directory) else {
            // The old meaning in some documents: the wmbus or modbus directory itself.
            let hint = profileCount(trimmed) > 0
                ? " \(trimmed) holds profiles itself: set \(variable) to its parent directory."
                : ""
            throw ProfileRootError(message: "\(variable)=\(root): \(directory) does not exist; \(expected).\(hint)")
        }
        guard profileCount(directory) > 0 else {
            throw ProfileRootError(message: "\(variable)=\(root): \(directory) holds no profiles (*.json); \(expected)")
        }
        return directory
    }

    /// Checks both kinds, for a command to refuse a wrong value before it starts.
    public static func check(environment: [String: String]? = nil) throws(ProfileRootError) {
        for kind in ProfileKind.allCases { _ = try configured(kind, environment: environment) }
    }

    /// The wireless meter profiles: `$GATEWAYD_PROFILES/wmbus` when set, then the installed copy, then
    /// `profiles/wmbus` in a directory above the executable (a checkout's `.build/release/…`). Nil when
    /// the variable is not set and none exists.
    public static func wirelessDirectory(environment: [String: String]? = nil, executablePath: String? = nil) throws(ProfileRootError) -> String? {
        if let configured = try configured(.wmbus, environment: environment) { return configured }
        let system = installed + "/wmbus"
        if isDirectory(system) { return system }
        var dir = executablePath ?? currentExecutable()
        for _ in 0..<6 {
            guard let slash = dir.lastIndex(of: "/") else { break }
            dir = String(dir[..<slash])
            if dir.isEmpty { break }
            let candidate = dir + "/profiles/wmbus"
            if isDirectory(candidate) { return candidate }
        }
        return nil
    }

    /// Where Modbus profile names are looked up, in order: `$GATEWAYD_PROFILES/modbus` when set, then
    /// `profiles/modbus` (the working directory, a checkout), then the installed copy.
    public static func modbusSearchPath(environment: [String: String]? = nil) throws(ProfileRootError) -> [String] {
        let configured = try configured(.modbus, environment: environment)
        return (configured.map { [$0] } ?? []) + ["profiles/modbus", installed + "/modbus"]
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func profileCount(_ directory: String) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.count
    }

    /// readlink(2) of /proc/self/exe, else argv[0].
    static func currentExecutable() -> String {
        #if canImport(Glibc)
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 { return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        #endif
        return CommandLine.arguments.first ?? ""
    }
}
