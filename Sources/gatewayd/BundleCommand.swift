import Agent
import CLISupport
import ArgumentParser
import AsyncHTTPClient
import Crypto
import Drivers
import Foundation
import Gateway
import NIOCore

/// `gatewayd bundle`: a technician's evidence in one archive, safe to mail home.
struct BundleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle",
        abstract: "Pack the evidence of a problem into one archive: configuration (secrets redacted), registry, status, open alarms, recent log and the last raw telegrams and frames of registered devices.",
        discussion: """
            Asks the running daemon over its status socket; when it is down, takes the picture it saved \
            beside the buffer (support.json, at most 15 minutes old, or from its last stop). Meter keys, \
            the portal token and passwords never enter the archive: keys appear only as short fingerprints \
            (so a desk can tell whether its keys file matches), and the archive is checked for every secret \
            the gateway knows before it is written. Neighbours' meters (strangers) appear as identity and \
            signal only. Reproduce the gateway's decoding at a desk with `gatewayd replay ARCHIVE`.
            """)

    @Option(name: .long, help: "Configuration file (default \(GatewayConfig.defaultPath); drop-ins in PATH.d/).")
    var config: String?

    @Flag(name: .long, help: "Bundle the demo building (seeds/demo-building; its state is in /tmp/gatewayd-demo).")
    var demo = false

    @Option(name: .long, help: "Directory to write the archive to (created if missing).")
    var out: String

    @Option(name: .long, help: "The daemon's status socket (default: the configuration's).")
    var socket: String?

    @Option(name: .long, help: "Most raw telegrams and frames to include (the newest).")
    var frames: Int = 1000

    @Flag(help: "Print one JSON object (snake_case keys): the archive's path and its manifest, instead of the summary.")
    var json = false

    @Option(help: ArgumentHelp("How long to wait for the daemon: 500ms, 5s (a bare number counts milliseconds). (default: 5s)", valueName: "duration"))
    var timeout: TimeoutArgument?

    func validate() throws {
        guard frames >= 0 && frames <= 100_000 else { throw ValidationError("--frames must be 0...100000") }
        try TimeoutArgument.check(timeout, "--timeout", within: .milliseconds(1) ... .seconds(600))
    }

    func run() async throws {
        let choice: ConfigChoice
        do { choice = try ConfigChoice.resolve(explicit: config, demo: demo) } catch {
            FileHandleOutput.standardError("gatewayd bundle: \(error)\n")
            throw ExitCode(78)
        }
        let builder = SupportBundleBuilder(configPath: choice.path, socket: socket, frames: frames,
                                           timeout: timeout?.seconds ?? 5)
        let result: SupportBundleBuilder.Result
        do { result = try await builder.build(outDirectory: out) } catch {
            FileHandleOutput.standardError("gatewayd bundle: \(error)\n")
            throw ExitCode(1)
        }
        if json {
            struct Written: Encodable { var archive: String; var manifest: SupportBundleManifest }
            print(String(decoding: try LocalEndpoints.jsonEncoder.encode(Written(archive: result.archive, manifest: result.manifest)), as: UTF8.self))
        } else {
            print(TerminalText.lines(result.summary), terminator: "")
        }
    }
}

/// Assembles a support bundle: collects, redacts, checks, archives.
struct SupportBundleBuilder {
    let configPath: String
    let socket: String?
    let frames: Int
    let timeout: Double

    struct Result {
        var archive: String
        var manifest: SupportBundleManifest
        var summary: String
    }

    func build(outDirectory: String, now: Date = Date()) async throws -> Result {
        let fm = FileManager.default
        let staging = NSTemporaryDirectory() + "gatewayd-bundle-" + UUID().uuidString
        try fm.createDirectory(atPath: staging + "/config", withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: staging) }
        var manifest = SupportBundleManifest(created: now, gatewaydVersion: GatewaydVersion.string, configPath: configPath)
        var secrets = SupportRedaction.Secrets()
        var texts: [(name: String, text: String)] = []

        // 1. Configuration, as written (redacted), and what the loader says of it.
        let files = [configPath] + GatewayConfig.dropInFiles(in: configPath + ".d")
        for (i, file) in files.enumerated() {
            guard let data = fm.contents(atPath: file) else {
                manifest.notes.append("configuration file \(file) could not be read")
                continue
            }
            let name = i == 0 ? "config/" + (file as NSString).lastPathComponent : "config/drop-ins/" + (file as NSString).lastPathComponent
            let (text, n) = SupportRedaction.configText(String(decoding: data, as: UTF8.self))
            manifest.redactedConfigValues += n
            texts.append((name, text))
        }
        var loaded: GatewayConfig?
        switch GatewayConfig.load(path: configPath) {
        case .success(let c):
            loaded = c
            texts.append(("config-check.txt", "valid: \(c)\n"))
        case .failure(let problems):
            texts.append(("config-check.txt", "the configuration has \(problems.problems.count) problems:\n" + problems.problems.map { "  \($0)\n" }.joined()))
            manifest.notes.append("the configuration does not load; registry, buffer and the saved picture were looked for by their defaults")
        }
        if let c = loaded {
            manifest.gateway = c.gatewayID
            manifest.building = c.building
            secrets.add(keyring: c.keys)
            var tokenFiles: [String] = []
            if case .bearer(let tokenFile) = c.uplink.auth { tokenFiles.append(tokenFile) }
            // The demo's portal sink takes a fresh token per run, beside the buffer.
            if c.demo { tokenFiles.append((c.buffer.path as NSString).deletingLastPathComponent + "/demo-portal-token") }
            for file in tokenFiles {
                if let token = fm.contents(atPath: file) { secrets.add(literal: String(decoding: token, as: UTF8.self)) }
            }
            // Keys as fingerprints: a desk can tell whether its keys file holds the same key, nobody can use it.
            let keys = c.keys.keys.map { SupportBundleManifest.KeyFingerprint(meter: $0.key.digits, fingerprint: SupportRedaction.fingerprint($0.value)) }
                .sorted { $0.meter < $1.meter }
            manifest.keys = keys
        }

        // 2. Registry.
        let registryPath: String? = loaded.map { c in
            switch c.registry {
            case .file(let p): p
            case .portal(let cache, _): cache
            }
        }
        if let registryPath, let data = fm.contents(atPath: registryPath) {
            texts.append(("registry.json", String(decoding: data, as: UTF8.self)))
        } else {
            manifest.notes.append("no registry file found\(registryPath.map { " at \($0)" } ?? "")")
        }

        // 3. The daemon's picture: live over the socket, else the one saved beside the buffer.
        let stateDirectory = ((loaded?.buffer.path ?? "/var/lib/gatewayd/buffer.sqlite") as NSString).deletingLastPathComponent
        let socketPath = socket ?? loaded?.status.path ?? Status.defaultSocket
        var evidence: SupportEvidence?
        if let status = try? await Status.fetch(socket: socketPath, timeout: timeout) {
            texts.append(("status.json", String(decoding: try LocalEndpoints.jsonEncoder.encode(status), as: UTF8.self)))
            evidence = try? await Self.fetchEvidence(socket: socketPath, timeout: timeout)
            manifest.evidence = evidence == nil ? "live status only (the daemon does not serve /support)" : "live from \(socketPath)"
        }
        if evidence == nil, let saved = try? SupportEvidence.read(from: stateDirectory + "/" + SupportEvidence.fileName) {
            evidence = saved
            manifest.evidence = "saved by the daemon at \(ISO8601DateFormatter().string(from: saved.writtenAt)) (it was not reachable at \(socketPath))"
        }
        if var e = evidence {
            if e.journal.entries.count > frames { e.journal.entries = Array(e.journal.entries.suffix(frames)) }
            manifest.frames = e.journal.entries.count
            manifest.devices = Set(e.journal.entries.map(\.device)).count
            manifest.strangers = e.journal.strangers.count
            manifest.openAlarms = e.openAlarms.count
            manifest.logLines = e.recentLog.count
            manifest.gateway = manifest.gateway ?? e.gateway
            texts.append(("frames.json", String(decoding: try LocalEndpoints.jsonEncoder.encode(e.journal), as: UTF8.self)))
            texts.append(("alarms.json", String(decoding: try LocalEndpoints.jsonEncoder.encode(e.openAlarms), as: UTF8.self)))
            texts.append(("counters.json", String(decoding: try LocalEndpoints.jsonEncoder.encode(e.counters), as: UTF8.self)))
            texts.append(("recent.log", e.recentLog.map { SupportRedaction.logLine($0) + "\n" }.joined()))
        } else {
            manifest.evidence = "none: the daemon was not reachable at \(socketPath) and left no \(SupportEvidence.fileName) in \(stateDirectory)"
        }

        // 4. Billing-day proof and the buffer's counts.
        if let data = fm.contents(atPath: stateDirectory + "/set-days.json") {
            texts.append(("set-days.json", String(decoding: data, as: UTF8.self)))
        }
        if let bufferPath = loaded?.buffer.path, let summary = try? BufferInspection(path: bufferPath).summary() {
            texts.append(("buffer.json", String(decoding: try LocalEndpoints.jsonEncoder.encode(BufferSummaryDocument(summary)), as: UTF8.self)))
        }

        // 5. Scrub every file of every secret the gateway knows, then check, then write.
        for i in texts.indices {
            let (clean, n) = secrets.scrub(texts[i].text)
            texts[i].text = clean
            manifest.secretsScrubbed += n
        }
        manifest.files = texts.map(\.name).sorted() + ["MANIFEST.json", "README.txt"]
        texts.append(("README.txt", SupportBundleManifest.readme))
        texts.append(("MANIFEST.json", String(decoding: try LocalEndpoints.jsonEncoder.encode(manifest), as: UTF8.self)))
        for t in texts {
            if let leak = secrets.firstLeak(in: t.text) {
                throw CLIError("refusing to write the bundle: \(t.name) still holds a secret (\(leak)); report this as a bug")
            }
            let path = staging + "/" + t.name
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(t.text.utf8).write(to: URL(fileURLWithPath: path))
        }

        // 6. One archive.
        do { try fm.createDirectory(atPath: outDirectory, withIntermediateDirectories: true) } catch {
            throw CLIError("cannot create \(outDirectory): \(error.localizedDescription)")
        }
        let stamp = SupportBundleManifest.stamp(now)
        let name = "gatewayd-bundle-\(SupportRedaction.fileSafe(manifest.gateway ?? "gateway"))-\(stamp).tar.gz"
        let archive = (outDirectory as NSString).appendingPathComponent(name)
        try SupportArchive.pack(directory: staging, into: archive)
        let size = (try? fm.attributesOfItem(atPath: archive)[.size] as? Int) ?? 0

        var summary = "bundle written: \(archive) (\(size / 1024 + 1) kB)\n"
        summary += "  evidence: \(manifest.evidence)\n"
        summary += "  \(configCount(manifest.frames, "telegram/frame")) of \(configCount(manifest.devices, "registered device")); "
            + "\(configCount(manifest.strangers, "stranger")) as identity only; \(configCount(manifest.openAlarms, "open alarm")); "
            + "\(configCount(manifest.logLines, "log line"))\n"
        summary += "  secrets kept out: \(configCount(manifest.keys.count, "meter key")) (fingerprints only), "
            + "\(configCount(manifest.redactedConfigValues, "configuration value")) redacted, \(configCount(manifest.secretsScrubbed, "secret")) scrubbed\n"
        for note in manifest.notes { summary += "  note: \(note)\n" }
        summary += "Replay it at a desk: gatewayd replay \(archive) [--keys KEYS_FILE]\n"
        return Result(archive: archive, manifest: manifest, summary: summary)
    }

    static func fetchEvidence(socket: String, timeout: Double) async throws -> SupportEvidence {
        guard let url = URL(httpURLWithSocketPath: socket, uri: "/support") else {
            throw EndpointError("cannot make a URL of socket path \(socket)")
        }
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url.absoluteString), timeout: .milliseconds(Int64(timeout * 1000)))
        guard response.status == .ok else { throw EndpointError("daemon answered \(response.status)") }
        let body = try await response.body.collect(upTo: 64 << 20)
        return try LocalEndpoints.jsonDecoder.decode(SupportEvidence.self, from: Data(body.readableBytesView))
    }
}

/// MANIFEST.json: what the bundle holds and what was kept out.
struct SupportBundleManifest: Codable, Sendable {
    var format = 1
    var created: Date
    var gatewaydVersion: String
    var configPath: String
    var gateway: String?
    var building: String?
    var evidence = "none"
    var frames = 0
    var devices = 0
    var strangers = 0
    var openAlarms = 0
    var logLines = 0
    var keys: [KeyFingerprint] = []
    var redactedConfigValues = 0
    var secretsScrubbed = 0
    var files: [String] = []
    var notes: [String] = []

    struct KeyFingerprint: Codable, Sendable, Hashable {
        var meter: String
        /// The first 4 bytes of SHA-256 over the key: tells keys apart, reveals nothing usable.
        var fingerprint: String
    }

    static func stamp(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: d)
    }

    static let readme = """
        gatewayd support bundle

        MANIFEST.json   what is here, where the daemon's picture came from, what was kept out
        config/         the configuration as written, secrets redacted; config-check.txt: what the loader said
        registry.json   the building's device registry
        status.json     the daemon's status (only when it was running)
        frames.json     the last raw telegrams and frames of registered devices, with what the gateway made
                        of each (strangers: identity and signal only)
        alarms.json     open alarms; counters.json: pipeline counters; recent.log: notices and worse
        set-days.json   billing-day proof; buffer.json: what the reading buffer holds

        Reproduce at a desk: gatewayd replay THIS_ARCHIVE [--keys KEYS_FILE]
        Meter keys are not in this bundle: give the building's keys file to decrypt.

        """
}

/// buffer.json: the buffer's counts (no values).
struct BufferSummaryDocument: Codable {
    var stored: Int
    var pending: Int
    var leased: Int
    var waitingForClock: Int
    var oldestReceivedAt: Int64?
    var newestReceivedAt: Int64?
    var bytesOnDisk: Int64
    var devices: [String: Int]

    init(_ s: BufferInspection.Summary) {
        stored = s.stored
        pending = s.pending
        leased = s.leased
        waitingForClock = s.waitingForClock
        oldestReceivedAt = s.oldestReceivedAt
        newestReceivedAt = s.newestReceivedAt
        bytesOnDisk = s.bytesOnDisk
        devices = Dictionary(s.devices.map { ($0.device, $0.count) }, uniquingKeysWith: +)
    }
}

/// What must never leave the box, and how text is cleaned of it.
enum SupportRedaction {
    static let marker = "<redacted>"

    /// Literal secrets the gateway knows (meter keys in both hex cases, the portal token).
    struct Secrets {
        private(set) var literals: [String] = []

        mutating func add(keyring: WMBusKeyring) {
            for key in keyring.keys.values { add(key: key) }
            if let k = keyring.defaultKey { add(key: k) }
        }

        mutating func add(key: WMBusKey) {
            let hex = Hex.encode(key.bytes)
            literals += [hex.uppercased(), hex.lowercased(), Hex.encode(key.bytes, separator: " ").uppercased(),
                         Hex.encode(key.bytes, separator: " ").lowercased()]
        }

        mutating func add(literal: String) {
            let s = literal.trimmingCharacters(in: .whitespacesAndNewlines)
            // Too short to search for safely (it would cut ordinary words); a token that short is no token.
            if s.count >= 8 { literals.append(s) }
        }

        func scrub(_ text: String) -> (String, Int) {
            var out = text
            var n = 0
            for s in literals where out.contains(s) {
                n += out.components(separatedBy: s).count - 1
                out = out.replacingOccurrences(of: s, with: marker)
            }
            return (out, n)
        }

        /// Which kind of secret `text` still holds, if any (never the secret itself).
        func firstLeak(in text: String) -> String? {
            let lower = text.lowercased()
            for s in literals where lower.contains(s.lowercased()) {
                return s.count == 32 || s.count == 47 ? "a meter key" : "the portal token"
            }
            return nil
        }
    }

    /// Configuration text: values of keys that name a secret (token, password, secret, passphrase, psk; not
    /// `*_file`, which are paths), user:password@ in URLs and anything shaped like an AES key.
    static func configText(_ text: String) -> (String, Int) {
        var n = 0
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { raw -> String in
            var line = String(raw)
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if !trimmed.hasPrefix("#"), let eq = line.firstIndex(of: "=") {
                let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
                let secretName = ["token", "password", "passwd", "secret", "passphrase", "psk", "aes_key", "key_hex"].contains { key.hasSuffix($0) }
                if secretName && !key.hasSuffix("_file") {
                    line = String(line[...eq]) + " \"\(marker)\""
                    n += 1
                    return line
                }
            }
            let (u, un) = userinfo(line)
            let (k, kn) = keyShaped(u)
            n += un + kn
            return k
        }
        return (lines.joined(separator: "\n"), n)
    }

    /// A log line: user:password@ in URLs and anything shaped like an AES key.
    static func logLine(_ line: String) -> String { keyShaped(userinfo(line).0).0 }

    /// `scheme://user:pass@host` → `scheme://<redacted>@host`.
    static func userinfo(_ s: String) -> (String, Int) {
        var out = ""
        var n = 0
        var rest = Substring(s)
        while let r = rest.range(of: "://") {
            out += rest[..<r.upperBound]
            rest = rest[r.upperBound...]
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == " " || $0 == "\"" || $0 == "'" } ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@") {
                out += marker
                rest = rest[at...]
                n += 1
            }
        }
        return (out + rest, n)
    }

    /// Runs of exactly 32 hex digits standing alone (an AES-128 key written out) → the marker. Telegram hex
    /// in logs is longer and stays.
    static func keyShaped(_ s: String) -> (String, Int) {
        let chars = Array(s)
        var out = ""
        var n = 0
        var i = 0
        while i < chars.count {
            if chars[i].isHexDigit && (i == 0 || !(chars[i - 1].isLetter || chars[i - 1].isNumber)) {
                var j = i
                while j < chars.count && chars[j].isHexDigit { j += 1 }
                let standsAlone = j == chars.count || !(chars[j].isLetter || chars[j].isNumber)
                if j - i == 32 && standsAlone {
                    out += marker
                    n += 1
                } else {
                    out += String(chars[i..<j])
                }
                i = j
            } else {
                out.append(chars[i])
                i += 1
            }
        }
        return (out, n)
    }

    static func fingerprint(_ key: WMBusKey) -> String {
        Hex.encode(SHA256.hash(data: key.bytes).prefix(4))
    }

    static func fileSafe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(64))
    }
}

/// The archive is a gzip'd tar made by the system's tar, so any technician's machine opens it.
enum SupportArchive {
    static func pack(directory: String, into archive: String) throws {
        try run(["-czf", archive, "-C", directory, "."], what: "pack \(archive)")
    }

    static func unpack(_ archive: String, into directory: String) throws {
        // GNU tar refuses member names with "..", and strips a leading "/": a hostile archive stays inside.
        try run(["-xzf", archive, "-C", directory, "--no-same-owner", "--no-same-permissions"], what: "unpack \(archive)")
    }

    private static func run(_ arguments: [String], what: String) throws {
        guard let tar = ["/usr/bin/tar", "/bin/tar"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CLIError("cannot \(what): tar is not installed (apt install tar)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tar)
        p.arguments = arguments
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch { throw CLIError("cannot \(what): \(error.localizedDescription)") }
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw CLIError("cannot \(what): tar says \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
