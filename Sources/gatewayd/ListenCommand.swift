import Agent
import CLISupport
import ArgumentParser
import Drivers
import Foundation
import Synchronization

/// `gatewayd listen`: what the radio hears, device by device.
struct Listen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Listen on a wireless M-Bus dongle and show every device heard.",
        discussion: """
            On a terminal: a table refreshed every second, one row per device (id, manufacturer, type, RSSI, \
            telegram count, last values, encryption state, profile). Piped: one line per telegram. --json: one \
            JSON object per telegram. Ctrl-C (or --duration) ends it with a summary.

            Sources: a dongle's serial device (--dongle /dev/gatewayd/im871a-…), rtl_wmbus lines on standard \
            input (--type rtlwmbus, e.g. `rtl_sdr -f 868.95M -s 1.6e6 - | rtl_wmbus | gatewayd listen --type rtlwmbus`), \
            or a capture file (--replay FILE [--speed 10]).

            Exit codes: 0 done; 1 the dongle never became ready, or the capture or keys could not be read; \
            2 something needs attention (a wrong key).
            """)

    enum SourceType: String, ExpressibleByArgument, CaseIterable {
        case im871a, im170a, amb8465, amb8665, iu891a, cul, rtlwmbus, auto
    }

    @Option(name: .long, help: "The dongle's serial device.")
    var dongle: String?

    @Option(name: .long, help: "Dongle type: im871a, im170a, amb8465, amb8665, rtlwmbus (lines on stdin) or auto.")
    var type: SourceType = .auto

    @Option(name: .long, help: "Link mode to listen in: t1, c1, s1 or c1t1.")
    var mode: String = "c1t1"

    @Option(name: .long, help: "Replay a capture file (timestamped hex lines) instead of a dongle.")
    var replay: String?

    @Option(name: .long, help: "Replay speed factor (with --replay).")
    var speed: Double = 1

    @Option(help: "AES-128 key (32 hex digits) for every encrypted telegram.")
    var key: String?

    @Option(help: "File of wireless keys, one 'ID KEY' per line (8-digit id, 32 hex digits).")
    var keys: String?

    @Flag(help: "Do not apply the meter profiles: EN 13757-3 records only.")
    var generic = false

    @Flag(help: "Print one JSON object per telegram per line (snake_case keys) instead of a table.")
    var json = false

    @OptionGroup var runLength: RunLengthOptions

    func validate() throws {
        if replay == nil && type != .rtlwmbus && dongle == nil {
            throw ValidationError("give --dongle PATH, --type rtlwmbus (lines on stdin) or --replay FILE")
        }
        if DongleLinkMode(text: mode) == nil { throw ValidationError("--mode must be t1, c1, s1 or c1t1") }
        if let key, WMBusKey(hex: key) == nil { throw ValidationError("--key needs 32 hex digits (an AES-128 key)") }
        if !(speed > 0) { throw ValidationError("--speed must be above 0") }
    }

    func run() async throws {
        var ring = WMBusKeyring()
        if let keys {
            guard let text = try? String(contentsOfFile: keys, encoding: .utf8) else {
                throw CLIError("cannot read \(keys): check the path and that you may read it")
            }
            switch WMBusKeyring.parse(text) {
            case .success(let r): ring = r
            case .failure(let e): throw CLIError("\(keys): \(e)")
            }
        }
        if let key { ring.defaultKey = WMBusKey(hex: key) }
        var catalog: ProfileCatalog?
        let profileDirectory: String?
        do { profileDirectory = generic ? nil : try ProfileCatalog.defaultDirectory() } catch { throw CLIError(error.message) }
        if let dir = profileDirectory {
            do {
                catalog = try ProfileCatalog.load(directory: dir)
            } catch {
                FileHandleOutput.standardError("gatewayd listen: meter profiles in \(dir) not loaded (\(error)); decoding generically\n")
            }
        }
        let output: ListenView.Mode = json ? .json : (isatty(1) == 1 ? .table : .lines)
        // The table redraws itself on the terminal; piped lines get a status line on a terminal's stderr.
        let progress = ProgressLine(enabled: output != .table && isatty(2) == 1)
        let view = ListenView(keyring: ring, catalog: catalog, mode: output, progress: progress)
        let stop = StopFlag()
        let interrupt = InterruptHandler { stop.set() }
        defer { interrupt.restore() }
        let started = ContinuousClock.now
        let deadline = runLength.limit.map { started + $0 }
        let refresher = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                view.refresh(elapsed: ContinuousClock.now - started)
            }
        }
        defer { refresher.cancel() }
        let failed = Atomic<Bool>(false)
        let sourceEnded = Atomic<Bool>(false)
        let work = Task {
            defer { sourceEnded.store(true, ordering: .relaxed) }
            if let replay {
                let entries: [ReplayEntry]
                do {
                    entries = try ReplayFile.parse(String(contentsOfFile: replay, encoding: .utf8))
                } catch {
                    FileHandleOutput.standardError("gatewayd listen: \(replay): \(error)\n")
                    failed.store(true, ordering: .relaxed)
                    return
                }
                view.describeSource("replay of \(replay) at \(speed)x")
                for await t in ReplaySource(entries: entries, speed: speed, receiver: "replay") {
                    if Task.isCancelled { break }
                    view.heard(t)
                }
            } else if type == .rtlwmbus {
                view.describeSource("rtl_wmbus lines on standard input")
                for await event in RTLWMBusSource(fileDescriptor: 0).events() {
                    if Task.isCancelled { break }
                    switch event {
                    case .telegram(let t): view.heard(t)
                    case .problem(let p): view.problem(p, show: true)
                    case .state: break
                    }
                }
            } else if let dongle {
                let kind: DongleKind? = type == .auto ? nil : DongleKind(rawValue: type.rawValue)
                let session = WMBusDongle(DongleConfiguration(path: dongle, kind: kind, linkMode: DongleLinkMode(text: mode) ?? .c1t1))
                for await event in session.events() {
                    switch event {
                    case .state(let s): view.state(s)
                    case .telegram(let t): view.heard(t)
                    case .problem(let p): view.problem(p)
                    }
                }
            }
        }
        // Ends on Ctrl-C, on --seconds, or when the source ends (a replay, stdin).
        while !stop.isSet {
            if let deadline, ContinuousClock.now >= deadline { break }
            if sourceEnded.load(ordering: .relaxed) { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        work.cancel()
        refresher.cancel()
        view.finish()
        if failed.load(ordering: .relaxed) { throw ExitCode(1) }
        if dongle != nil && replay == nil && type != .rtlwmbus && !view.dongleWasReady {
            FileHandleOutput.standardError("gatewayd listen: the dongle at \(dongle!) never became ready; check the path, the --type and `gatewayd devices`\n")
            throw ExitCode(1)
        }
        if view.sawWrongKey { throw ExitCode(2) }
    }
}

/// The listen table's state: one row per device, updated per telegram, drawn once a second.
final class ListenView: Sendable {
    enum Mode { case table, lines, json }

    struct Row {
        var id: String
        var manufacturer: String
        var type: String
        var count = 0
        var lastRSSI: Double?
        var bestRSSI: Double?
        var worstRSSI: Double?
        var encryption = "plain"
        var values = ""
        var profile = "generic EN 13757-3"
        var firstSeen: Int
        /// A wrong key of this device was tried against the key file's other keys (once: a decode per key).
        var forensicsDone = false
        /// The id whose row of the key file opens this device's telegrams (swapped rows).
        var keyFiledUnder: String?
    }

    struct State {
        var decoder: WirelessDecoder
        var rows: [String: Row] = [:]
        var telegrams = 0
        var undecodable = 0
        var lineProblems = 0
        var dongleState = "starting"
        var wrongKey = false
        var dongleWasReady = false
        var dirty = false
        /// Set by finish(): a refresh already under way must not draw over the summary.
        var finished = false
    }

    let mode: Mode
    let catalog: ProfileCatalog?
    let progress: ProgressLine
    private let shared: Mutex<State>

    init(keyring: WMBusKeyring, catalog: ProfileCatalog?, mode: Mode, progress: ProgressLine = ProgressLine(enabled: false)) {
        self.mode = mode
        self.catalog = catalog
        self.progress = progress
        var decoder = WirelessDecoder(keyring: keyring)
        decoder.collectsFields = false
        decoder.learn(formats: catalog?.compactFormats ?? [])
        shared = Mutex(State(decoder: decoder))
    }

    var sawWrongKey: Bool { shared.withLock { $0.wrongKey } }
    var dongleWasReady: Bool { shared.withLock { $0.dongleWasReady } }

    func state(_ s: DongleState) {
        shared.withLock {
            $0.dongleState = s.description
            $0.dirty = true
            if case .ready = s { $0.dongleWasReady = true }
        }
        if mode != .table { progress.message("dongle: \(s)\n") }
    }

    /// For sources without a dongle session (a replay, rtl_wmbus on stdin).
    func describeSource(_ text: String) {
        shared.withLock { $0.dongleState = text; $0.dirty = true }
    }

    /// A line problem: counted; shown as it happens (outside the table view) when `show`, as for rtl_wmbus,
    /// whose CRC failures and bad lines a technician wants to see.
    func problem(_ p: DongleError, show: Bool = false) {
        shared.withLock { $0.lineProblems += 1 }
        if show && mode != .table { progress.message("rtl_wmbus: \(p)\n") }
    }

    func heard(_ t: ReceivedTelegram) {
        let out: String? = shared.withLock { s -> String? in
            s.telegrams += 1
            s.dirty = true
            let decoded: WirelessTelegram
            var encryption = "plain"
            switch Self.decode(&s.decoder, t) {
            case .success(let d):
                decoded = d
                switch decoded.security.state {
                case .none: encryption = "plain"
                case .decrypted, .alreadyDecrypted: encryption = "ok"
                case .descrambled: encryption = "default key"
                case .noKey: encryption = "no key"
                case .unsupportedMode: encryption = "mode \(decoded.security.mode) unsupported"
                }
            case .failure(let error):
                // The link layer may still be readable: show the device with what went wrong.
                guard let frame = try? t.frame() else {
                    s.undecodable += 1
                    return mode == .table ? nil : TerminalText.line("\(t.receivedAt) undecodable telegram (\(error)): \(Hex.encode(t.bytes))")
                }
                let key = "\(frame.address.manufacturer.letters):\(frame.address.identification.digits)"
                let wrong = error.code == .wrongKey || error.code == .macMismatch
                if wrong { s.wrongKey = true }
                var row = s.rows[key] ?? Row(id: frame.address.identification.digits, manufacturer: frame.address.manufacturer.letters,
                                             type: frame.address.deviceType.name, firstSeen: s.rows.count)
                // Key forensics once per device (it costs a decode per key of the file): a swapped row is named.
                if wrong, !row.forensicsDone {
                    row.forensicsDone = true
                    if let d = KeyForensics.diagnose(t.bytes, format: .noCRC, error: error, telegram: nil, keyring: s.decoder.keyring),
                       d.kind == .keyOfAnotherMeter {
                        row.keyFiledUnder = d.keyFiledUnder?.digits
                    }
                }
                row.count += 1
                row.encryption = wrong ? (row.keyFiledUnder.map { "KEY OF \($0)" } ?? "WRONG KEY") : "error"
                row.values = row.keyFiledUnder.map { "the key filed under \($0) opens it: the key file's rows are probably swapped" } ?? error.message
                Self.rssi(&row, t.rssiDBm)
                s.rows[key] = row
                return mode == .table ? nil : TerminalText.line("\(t.receivedAt) \(key) \(row.encryption): \(error.message)")
            }
            let a = decoded.meterAddress
            let key = "\(a.manufacturer.letters):\(a.identification.digits)"
            var row = s.rows[key] ?? Row(id: a.identification.digits, manufacturer: a.manufacturer.letters, type: a.deviceType.name, firstSeen: s.rows.count)
            row.count += 1
            row.encryption = encryption
            Self.rssi(&row, t.rssiDBm)
            let shown = decoded.telegram.records.filter { $0.problem == nil && $0.storageNumber == 0 }.prefix(2).map { r -> String in
                let v = RecordReport(r).value
                return "\(r.quantity) \(TelegramTable.text(v))\(r.unit.isEmpty ? "" : " " + r.unit)"
            }
            if !shown.isEmpty { row.values = shown.joined(separator: ", ") } else if encryption == "no key" { row.values = "(encrypted)" }
            let reading = catalog?.evaluate(decoded)
            if let p = reading {
                row.profile = p.profileID
                let named = p.values.prefix(3).map { "\($0.name) \($0.value)\($0.unit.isEmpty ? "" : " " + $0.unit)" }
                if !named.isEmpty { row.values = named.joined(separator: ", ") }
                if !p.alarms.isEmpty { row.values += "  ALARM: " + p.alarms.map(\.flag).joined(separator: ",") }
            }
            s.rows[key] = row
            switch mode {
            case .table: return nil
            case .json: return WirelessReport.json(decoded, profile: reading)
            case .lines:
                let rssi = t.rssiDBm.map { " \(Int($0)) dBm" } ?? ""
                // The values come from the telegram (plain-text units, LVAR strings): escaped.
                return TerminalText.line("\(t.receivedAt) \(key) \(row.type)\(rssi) \(encryption): \(row.values)")
            }
        }
        if let out {
            progress.clear()
            print(out)
            FileHandleOutput.flush()
        }
    }

    /// Redraws the table on a terminal (cursor home, clear): at most once a second, only when changed.
    /// Piped, it updates the progress line instead (when there is one).
    func refresh(elapsed: Duration) {
        guard mode == .table else {
            shared.withLock { s in
                guard !s.finished else { return }
                progress.show("listening \(elapsed.components.seconds) s: \(s.telegrams) telegrams from \(s.rows.count) devices; Ctrl-C to stop")
            }
            return
        }
        // Drawn under the lock, so a redraw cannot land after finish() printed the summary.
        shared.withLock { s in
            guard s.dirty, !s.finished else { return }
            s.dirty = false
            print("\u{1B}[H\u{1B}[2J" + Self.render(s, title: "listening (Ctrl-C to stop)"), terminator: "")
            FileHandleOutput.flush()
        }
    }

    /// The table as it stands, without terminal codes.
    func snapshot(title: String) -> String {
        shared.withLock { s in Self.render(s, title: title) }
    }

    func finish() {
        let text = shared.withLock { s in
            s.finished = true
            return Self.render(s, title: "summary")
        }
        progress.clear()
        if mode == .json {
            FileHandleOutput.standardError(text)
        } else {
            print((mode == .table ? "\u{1B}[H\u{1B}[2J" : "\n") + text, terminator: "")
        }
    }

    static func render(_ s: State, title: String) -> String {
        var rows: [[String]] = []
        for r in s.rows.values.sorted(by: { ($0.manufacturer, $0.id) < ($1.manufacturer, $1.id) }) {
            rows.append([r.id, r.manufacturer, r.type, r.lastRSSI.map { "\(Int($0))" } ?? "-",
                         r.bestRSSI.map { "\(Int($0))" } ?? "-", "\(r.count)", r.encryption, r.profile, r.values])
        }
        var out = "\(title): \(s.telegrams) telegrams from \(s.rows.count) devices; dongle: \(s.dongleState)\n"
        out += TextTable.render(header: ["id", "man", "type", "rssi", "best", "count", "encryption", "profile", "last values"], rows: rows)
        if s.undecodable > 0 || s.lineProblems > 0 {
            out += "\(s.undecodable) undecodable telegrams, \(s.lineProblems) garbled dongle messages\n"
        }
        if s.wrongKey { out += "WRONG KEY: a key was rejected for a device above; ask its manufacturer for the right key\n" }
        // The table's cells are escaped by TextTable; the title's dongle state comes from the dongle.
        return TerminalText.lines(out)
    }

    /// Outside the lock's closure: typed throws inside closures trips the compiler.
    private static func decode(_ decoder: inout WirelessDecoder, _ t: ReceivedTelegram) -> Result<WirelessTelegram, DecodeError> {
        do {
            return .success(try decoder.decode(t.bytes, format: .noCRC, linkMode: t.linkMode))
        } catch {
            return .failure(error)
        }
    }

    private static func rssi(_ row: inout Row, _ value: Double?) {
        guard let value else { return }
        row.lastRSSI = value
        row.bestRSSI = max(row.bestRSSI ?? value, value)
        row.worstRSSI = min(row.worstRSSI ?? value, value)
    }
}
