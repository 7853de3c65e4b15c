import Agent
import CLISupport
import ArgumentParser
import Drivers
import Foundation
import Gateway

/// `gatewayd replay`: a support bundle's telegrams and frames through decode and the pipeline again, offline.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a support bundle offline: its raw telegrams and frames through decode and the pipeline (memory buffer), compared with what the gateway made of them.",
        discussion: """
            Uses the bundle's registry, this machine's meter profiles and the keys you give with --keys \
            (bundles carry no keys; their fingerprints tell whether yours are the gateway's). Each telegram \
            is replayed in the order the gateway received it, at its receive time, and compared: same \
            outcome and the same values, or not. Exit code 0 when everything replays the same, 2 when \
            something differs, 1 when the bundle cannot be read.
            """)

    @Argument(help: "The archive `gatewayd bundle` wrote (.tar.gz), or a directory it was unpacked into.")
    var bundle: String

    @Option(help: "The building's keys file, one 'ID KEY' per line (8-digit id, 32 hex digits).")
    var keys: String?

    @Flag(help: "Do not apply the meter profiles: EN 13757-3 records only.")
    var generic = false

    @Option(name: .customLong("profiles"), help: "Wireless profile directory (default: the installed one).")
    var profileDirectory: String?

    @Flag(help: "Print one JSON object (snake_case keys) instead of tables.")
    var json = false

    @Flag(help: "List every telegram, not only those that differ or cannot be replayed.")
    var all = false

    func run() async throws {
        let result: SupportBundleReplay.Result
        do {
            result = try await SupportBundleReplay(bundle: bundle, keysFile: keys, generic: generic, profileDirectory: profileDirectory).run()
        } catch {
            FileHandleOutput.standardError("gatewayd replay: \(error)\n")
            throw ExitCode(1)
        }
        if json {
            print(String(decoding: try LocalEndpoints.jsonEncoder.encode(result.document), as: UTF8.self))
        } else {
            print(TerminalText.lines(result.render(all: all)), terminator: "")
        }
        if result.report.differs > 0 { throw ExitCode(2) }
    }
}

struct SupportBundleReplay {
    let bundle: String
    let keysFile: String?
    let generic: Bool
    let profileDirectory: String?

    struct Result {
        var report: JournalReplay.Report
        var manifest: SupportBundleManifest?
        var keyNotes: [String]
        var profiles: String

        struct Document: Encodable {
            var gateway: String?
            var frames: Int
            var same: Int
            var differs: Int
            var notComparable: Int
            var notReplayable: Int
            var readings: Int
            var profiles: String
            var keyNotes: [String]
            var entries: [JournalReplay.Entry]
        }

        var document: Document {
            Document(gateway: manifest?.gateway, frames: report.entries.count, same: report.same, differs: report.differs,
                     notComparable: report.notComparable, notReplayable: report.notReplayable, readings: report.readings,
                     profiles: profiles, keyNotes: keyNotes, entries: report.entries)
        }

        func render(all: Bool) -> String {
            var out = "replay of \(manifest?.gateway ?? "a gateway")'s bundle (\(manifest.map { SupportBundleManifest.stamp($0.created) } ?? "no manifest")), \(profiles)\n"
            for note in keyNotes { out += "  keys: \(note)\n" }
            let shown = report.entries.filter { all || $0.verdict == .differs || $0.verdict == .notReplayable }
            if !shown.isEmpty {
                out += TextTable.render(
                    header: ["seq", "device", "verdict", "gateway", "replay"],
                    rows: shown.map { e in
                        [String(e.seq), e.device, e.verdict.rawValue, Self.side(e.gateway), e.replay.map(Self.side) ?? "-"]
                    })
                for e in shown where e.verdict == .differs {
                    out += "  #\(e.seq) \(e.device):\n    gateway: \(e.gateway.detail)\n    replay:  \(e.replay?.detail ?? "-")\n"
                }
            }
            out += "\(configCount(report.entries.count, "telegram")) replayed: \(report.same) same as on the gateway, \(report.differs) differ, "
                + "\(report.notComparable) not comparable (repeats of telegrams older than the bundle), \(report.notReplayable) not replayable; "
                + "\(configCount(report.readings, "value")) decoded\n"
            return out
        }

        static func side(_ s: JournalReplay.Entry.Side) -> String {
            s.outcome + (s.readings > 0 ? " \(s.readings) values" : "") + (s.digest.map { " #\($0.prefix(8))" } ?? "")
        }
    }

    func run() async throws -> Result {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: bundle, isDirectory: &isDirectory) else {
            throw CLIError("no bundle at \(bundle): give the .tar.gz that `gatewayd bundle` wrote")
        }
        var dir = bundle
        var scratch: String?
        if !isDirectory.boolValue {
            let d = NSTemporaryDirectory() + "gatewayd-replay-" + UUID().uuidString
            try fm.createDirectory(atPath: d, withIntermediateDirectories: true)
            scratch = d
            try SupportArchive.unpack(bundle, into: d)
            dir = d
        }
        defer { if let scratch { try? fm.removeItem(atPath: scratch) } }

        let manifest = fm.contents(atPath: dir + "/MANIFEST.json").flatMap { try? LocalEndpoints.jsonDecoder.decode(SupportBundleManifest.self, from: $0) }
        let registry: DeviceRegistry
        do { registry = try DeviceRegistry.load(path: dir + "/registry.json") } catch {
            throw CLIError("the bundle's registry does not load: \(error)")
        }
        guard let framesData = fm.contents(atPath: dir + "/frames.json") else {
            throw CLIError("the bundle has no frames.json: the daemon was neither running nor had saved its picture when it was taken (see MANIFEST.json)")
        }
        let journal: FrameJournalSnapshot
        do { journal = try LocalEndpoints.jsonDecoder.decode(FrameJournalSnapshot.self, from: framesData) } catch {
            throw CLIError("the bundle's frames.json is damaged: \(error)")
        }

        var keyring = WMBusKeyring()
        var keyNotes: [String] = []
        if let keysFile {
            let text: String
            do { text = try String(contentsOfFile: keysFile, encoding: .utf8) } catch {
                throw CLIError("cannot read \(keysFile): check the path and that you may read it")
            }
            switch WMBusKeyring.parse(text) {
            case .success(let r): keyring = r
            case .failure(let e): throw CLIError("\(keysFile): \(e)")
            }
        }
        if let manifest {
            for k in manifest.keys {
                guard let id = IdentificationNumber(k.meter) else { continue }
                if let mine = keyring.keys[id] {
                    if SupportRedaction.fingerprint(mine) != k.fingerprint {
                        keyNotes.append("the key given for \(k.meter) is not the gateway's (fingerprint \(SupportRedaction.fingerprint(mine)) against \(k.fingerprint)): results for it will differ")
                    }
                } else {
                    keyNotes.append("the gateway has a key for \(k.meter); none given here: its telegrams replay as 'no key' (give --keys)")
                }
            }
        }

        var options = PipelineOptions(keyring: keyring)
        var profiles = "generic decoding (EN 13757-3)"
        if !generic {
            let dir: String?
            if let profileDirectory { dir = profileDirectory } else {
                do { dir = try ProfileCatalog.defaultDirectory() } catch { throw CLIError(error.message) }
            }
            if let dir {
                do {
                    let catalog = try ProfileCatalog.load(directory: dir)
                    options.normaliser = MeterProfileNormaliser(catalog: catalog)
                    profiles = "\(catalog.profiles.count) meter profiles from \(dir)"
                } catch { throw CLIError("\(error)") }
            }
        }
        let report = await JournalReplay.run(journal, registry: registry, options: options)
        return Result(report: report, manifest: manifest, keyNotes: keyNotes, profiles: profiles)
    }
}
