import Agent
import CLISupport
import ArgumentParser
import Drivers
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode wired (EN 13757-2/-3) or wireless (EN 13757-4/-7, OMS) M-Bus telegrams given as hex.",
        discussion: """
            Give one frame as arguments (spaces between bytes are fine), or --file with one frame \
            per line, or pipe frames on standard input. Lines starting with '#' are ignored.
            A wired frame starts with 68 L L 68, is a 5-byte 10 … 16 short frame, or is E5; anything \
            else is read as a wireless telegram, L-field first, with or without its CRCs (format A or B).
            Telegrams are decoded in order, so a compact frame finds the format of an earlier full frame.
            With --json, each frame becomes one JSON object on its own line (schema: docs/decode-json.md).
            Exit status: 0 when every frame decoded, 1 when any frame failed or a file cannot be read, \
            64 for bad usage.
            """)

    @Argument(help: "A frame in hex, e.g. 68 1F 1F 68 08 00 72 …")
    var hex: [String] = []

    @Option(name: .shortAndLong, help: "Read frames from this file, one per line.")
    var file: String?

    @Flag(help: "Print one JSON object per frame per line (snake_case keys) instead of a table.")
    var json = false

    @Option(help: "AES-128 key (32 hex digits) for every encrypted telegram (wireless, or wired with TPL security).")
    var key: String?

    @Option(help: "File of wireless keys, one 'ID KEY' per line (8-digit id, 32 hex digits).")
    var keys: String?

    @Flag(help: "Show wireless telegrams byte by byte, layer by layer.")
    var analyze = false

    @Flag(help: "Do not apply the meter profiles: EN 13757-3 records only.")
    var generic = false

    @Option(name: .customLong("profiles"), help: "Wireless profile directory (default: the installed one, see gatewayd profiles --help).")
    var profileDirectory: String?

    func validate() throws {
        if !hex.isEmpty && file != nil {
            throw ValidationError("give the frame as arguments or with --file, not both")
        }
        if let key, WMBusKey(hex: key) == nil {
            throw ValidationError("--key needs 32 hex digits (an AES-128 key)")
        }
    }

    func keyring() throws -> WMBusKeyring {
        var ring = WMBusKeyring()
        if let keys {
            let text: String
            do {
                text = try String(contentsOfFile: keys, encoding: .utf8)
            } catch {
                throw CLIError("cannot read \(keys): check the path and that you may read it")
            }
            switch WMBusKeyring.parse(text) {
            case .success(let r): ring = r
            case .failure(let e): throw CLIError("\(keys): \(e)")
            }
        }
        if let key { ring.defaultKey = WMBusKey(hex: key) }
        return ring
    }

    /// The profiles, unless --generic. A profile directory that is configured but unusable is an error (as
    /// everywhere); none installed at all decodes generically with a note.
    func catalog() throws -> ProfileCatalog? {
        if generic { return nil }
        let dir: String
        if let profileDirectory {
            dir = profileDirectory
        } else {
            let found: String?
            do { found = try ProfileCatalog.defaultDirectory() } catch { throw CLIError(error.message) }
            guard let found else {
                FileHandleOutput.standardError("gatewayd decode: no meter profiles installed; decoding generically (EN 13757-3 only)\n")
                return nil
            }
            dir = found
        }
        do { return try ProfileCatalog.load(directory: dir) } catch { throw CLIError("\(error)") }
    }

    func run() throws {
        var session = DecodeSession(json: json, keyring: try keyring(), analyze: analyze, catalog: try catalog())
        var count = 0
        if !hex.isEmpty {
            print(session.render(DecodeInput(label: "argument", text: hex.joined(separator: " "))), terminator: "")
            count = 1
        } else {
            // Streamed line by line (constant memory, whatever the size of the capture), decoded in order so a
            // compact frame finds the format of an earlier full frame.
            let source = file ?? "stdin"
            // Standard input through its descriptor (the C `stdin` global is shared mutable state to Swift 6).
            guard let handle = file.map({ fopen($0, "r") }) ?? fdopen(STDIN_FILENO, "r") else {
                throw CLIError("cannot read \(source): check the path and that you may read it")
            }
            defer { if file != nil { fclose(handle) } }
            let reader = LineReader(handle)
            // JSON lines go out as the writer's bytes, in 64 KiB writes: no String in between.
            let output = StandardOutputBuffer()
            while let (n, line) = reader.next() {
                guard let input = DecodeInput.line(line, number: n, source: source) else { continue }
                if json {
                    guard output.append(session.renderJSON(input)) else { break }
                } else {
                    print(session.render(input), terminator: "")
                }
                count += 1
            }
            guard output.flush() else { throw CLIError("writing the output failed (\(output.failure ?? "")): is the disk full or the reader gone?") }
            if reader.failed { throw CLIError("reading \(source) failed after line \(reader.lineNumber): check the file or the pipe") }
        }
        if !json && count > 1 {
            print(session.summary)
        }
        if session.failed > 0 { throw ExitCode(1) }
    }
}

/// Bytes for standard output, written with write(2) in large pieces. A failed write (a full disk, a
/// reader that closed its end while SIGPIPE is ignored) stops the output and says why; no line is
/// dropped silently.
final class StandardOutputBuffer {
    private var buffer: [UInt8] = []
    private(set) var failure: String?
    private let limit = 1 << 16

    init() { buffer.reserveCapacity(limit + 4096) }

    /// False once writing has failed.
    func append(_ bytes: [UInt8]) -> Bool {
        buffer.append(contentsOf: bytes)
        return buffer.count < limit ? failure == nil : flush()
    }

    /// Writes what is buffered; false if any write failed.
    func flush() -> Bool {
        guard failure == nil else { return false }
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = String(cString: strerror(errno))
                return false
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
        return true
    }
}

/// Lines of a C stream, one at a time; getline's buffer is reused from line to line and freed at the end.
final class LineReader {
    let handle: UnsafeMutablePointer<FILE>
    private(set) var lineNumber = 0
    private(set) var failed = false
    private var buffer: UnsafeMutablePointer<CChar>?
    private var capacity = 0

    init(_ handle: UnsafeMutablePointer<FILE>) { self.handle = handle }
    deinit { free(buffer) }

    /// The next line (1-based number, bytes without the newline), nil at the end.
    func next() -> (Int, ArraySlice<UInt8>)? {
        let n = getline(&buffer, &capacity, handle)
        guard n >= 0, let buffer else {
            if ferror(handle) != 0 { failed = true }
            return nil
        }
        lineNumber += 1
        return (lineNumber, Array(UnsafeRawBufferPointer(start: buffer, count: n).bindMemory(to: UInt8.self))[...])
    }
}

/// One frame of input and where it came from, so errors can name the line.
struct DecodeInput {
    /// Where the input came from: "file.hex:12", "argument". Built only when a message needs it.
    var label: String { number.map { "\(source):\($0)" } ?? source }
    var text: String { String(decoding: hex, as: UTF8.self) }
    private var source: String
    private var number: Int?
    /// The hex text as bytes, trimmed.
    var hex: ArraySlice<UInt8>

    init(label: String, text: String) {
        source = label
        number = nil
        hex = Array(text.utf8)[...]
    }

    init(source: String, number: Int, hex: ArraySlice<UInt8>) {
        self.source = source
        self.number = number
        self.hex = hex
    }

    static func lines(_ text: String, source: String) -> [DecodeInput] {
        var out: [DecodeInput] = []
        for (n, raw) in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if let input = line(Array(raw)[...], number: n + 1, source: source) { out.append(input) }
        }
        return out
    }

    /// One input line, trimmed of ASCII white space on the bytes (the generic Substring trim cost half of
    /// decode's time); nil for an empty line or a '#' comment.
    static func line(_ raw: ArraySlice<UInt8>, number: Int, source: String) -> DecodeInput? {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A || b == 0x0B || b == 0x0C }
        var start = raw.startIndex, end = raw.endIndex
        while start < end, isSpace(raw[start]) { start += 1 }
        while end > start, isSpace(raw[end - 1]) { end -= 1 }
        guard start < end, raw[start] != UInt8(ascii: "#") else { return nil }
        return DecodeInput(source: source, number: number, hex: raw[start..<end])
    }
}

/// Decodes inputs and renders them for a person or as JSON lines. Kept apart from the command so
/// tests can run it without a process.
struct DecodeSession {
    let json: Bool
    let analyze: Bool
    private let writer = TelegramJSONWriter()
    private var wireless: WirelessDecoder
    private let keyring: WMBusKeyring
    let catalog: ProfileCatalog?
    private(set) var decoded = 0
    private(set) var applicationErrors = 0
    private(set) var failed = 0

    init(json: Bool, keyring: WMBusKeyring = WMBusKeyring(), analyze: Bool = false, catalog: ProfileCatalog? = nil) {
        self.json = json
        self.analyze = analyze
        self.catalog = catalog
        self.keyring = keyring
        wireless = WirelessDecoder(keyring: keyring)
        wireless.collectsFields = analyze
        wireless.learn(formats: catalog?.compactFormats ?? [])
    }

    /// Wired frames: 68 L L 68 …, the 5-byte short frame 10 … 16, or a single E5. A wireless telegram
    /// whose L-field happens to be 68h, 10h or E5h does not have that shape.
    static func isWired(_ bytes: [UInt8]) -> Bool {
        switch bytes.first {
        case 0x68?: return bytes.count < 4 || bytes[3] == 0x68
        case 0x10?: return bytes.count == 5
        case 0xE5?: return bytes.count == 1
        default: return false
        }
    }

    var summary: String {
        "\(decoded + applicationErrors + failed) frames: \(decoded) decoded, \(applicationErrors) application errors, \(failed) failed"
    }

    /// JSON lines as the encoder wrote them (control characters already \u-escaped); text for a person
    /// with control characters escaped, whatever part of the frame or the input line they came from.
    mutating func render(_ input: DecodeInput) -> String {
        if json { return String(decoding: renderJSON(input), as: UTF8.self) }
        return TerminalText.lines(renderRaw(input))
    }

    /// One JSON line (with its newline) as bytes.
    mutating func renderJSON(_ input: DecodeInput) -> [UInt8] {
        var out: [UInt8]
        do {
            let bytes = try Hex.decode(utf8: Array(input.hex))
            if Self.isWired(bytes) {
                out = Array(renderRaw(input, bytes: bytes).utf8)
                out.removeLast()  // renderRaw's newline; added once below
            } else {
                out = wirelessJSON(bytes)
            }
        } catch {
            failed += 1
            out = writer.encode(DecodeFailureReport(code: "invalid_hex", message: error.reason, offset: error.offset))
        }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    private mutating func wirelessJSON(_ bytes: [UInt8]) -> [UInt8] {
        do {
            let w = try wireless.decode(bytes)
            decoded += 1
            return WirelessReport.jsonBytes(w, profile: catalog?.evaluate(w))
        } catch {
            failed += 1
            let finding = KeyForensics.diagnose(bytes, format: nil, error: error, telegram: nil, keyring: keyring)
            return writer.encode(DecodeFailureReport(error, keyFinding: finding))
        }
    }

    private mutating func renderRaw(_ input: DecodeInput) -> String {
        let bytes: [UInt8]
        do {
            bytes = try Hex.decode(utf8: Array(input.hex))
        } catch {
            failed += 1
            return "\(input.label): not hex: \(error.reason) at character \(error.offset)\n\n"
        }
        return renderRaw(input, bytes: bytes)
    }

    private mutating func renderRaw(_ input: DecodeInput, bytes: [UInt8]) -> String {
        if !Self.isWired(bytes) { return renderWireless(bytes, label: input.label) }
        do {
            var telegram = try TelegramDecoder.decode(bytes)
            var security = ""
            if let sealed = telegram.sealed {
                // TPL security on a wired frame: open it with the same keys as radio meters.
                do {
                    telegram = try TelegramDecoder.open(telegram, keyring: keyring)
                    security = "  security: mode \(sealed.mode), decrypted\n"
                } catch where error.code == .noKey {
                    security = "  security: mode \(sealed.mode), NO KEY: give one with --key or --keys to see the records\n"
                }
            } else if telegram.securityMode != 0 {
                security = "  security: mode \(telegram.securityMode), announced as encrypted but already plain\n"
            }
            if telegram.applicationError != nil { applicationErrors += 1 } else { decoded += 1 }
            // The radio profiles know the wired answers of the same meters (same identity, same records).
            var reading: ProfileReading?
            if let catalog, let w = WirelessTelegram(wired: telegram, recordBytes: telegram.securityMode == 0 && bytes.count >= 21 ? Array(bytes[19..<(bytes.count - 2)]) : nil) {
                reading = catalog.evaluate(w)
            }
            if json {
                let line = String(decoding: writer.encode(telegram), as: UTF8.self)
                return (reading.map { WirelessReport.appendingProfile(line, $0) } ?? line) + "\n"
            }
            var out = TelegramTable.render(telegram, label: input.label)
            if !security.isEmpty, let nl = out.firstIndex(of: "\n") { out.insert(contentsOf: security, at: out.index(after: nl)) }
            if let reading { out += WirelessReport.profileText(reading) }
            return out + "\n"
        } catch {
            failed += 1
            if json { return writer.line(DecodeFailureReport(error)) + "\n" }
            return "\(input.label): cannot decode: \(error.message)\n  error \(error.code) at byte \(error.offset) of \(bytes.count)\n\n"
        }
    }

    private mutating func renderWireless(_ bytes: [UInt8], label: String) -> String {
        do {
            let w = try wireless.decode(bytes)
            decoded += 1
            let reading = catalog?.evaluate(w)
            var out = TelegramTable.render(w.telegram, label: label)
            let a = w.frame.address
            var link = "  link:   \(w.frame.control.name), format \(w.frame.format.rawValue), \(a.manufacturer.letters) \(a.identification.digits)"
            link += " version \(a.version) \(a.deviceType.name)"
            if w.frame.diehlAddressOrder { link += " (Diehl address order)" }
            var sec = "  security: mode \(w.security.mode)"
            if w.security.ellEncrypted { sec += ", ELL AES-128-CTR" }
            switch w.security.state {
            case .none: sec += ", not encrypted"
            case .decrypted: sec += ", decrypted"
            case .alreadyDecrypted: sec += ", announced as encrypted but already plain"
            case .descrambled: sec += ", descrambled with a published maker's default key (no confidentiality)"
            case .noKey: sec += ", NO KEY: give one with --key or --keys to see the records"
            case .unsupportedMode: sec += ", security mode not supported: records not shown"
            }
            if let mac = w.security.mac { sec += ", MAC \(mac == .verified ? "verified" : "not checked")" }
            if let nl = out.firstIndex(of: "\n") { out.insert(contentsOf: link + "\n" + sec + "\n", at: out.index(after: nl)) }
            if let c = w.compactFrame, !c.resolved {
                out += "  compact frame: format signature \(c.formatSignature) not seen yet; decode a full frame of this meter first\n"
            }
            if let reading {
                out += WirelessReport.profileText(reading)
            } else if catalog != nil {
                out += "  profile: none for \(w.meterAddress.manufacturer.letters) version 0x\(Hex.encode([w.meterAddress.version])) type 0x\(Hex.encode([w.meterAddress.deviceType.rawValue])) (generic EN 13757-3; gatewayd profiles suggest starts one)\n"
            }
            if let p = w.manufacturerPayload, reading == nil || reading?.values.isEmpty == true {
                out += "  manufacturer-specific payload: \(Hex.encode(p, separator: " "))\n"
            }
            if let e = w.recordError { out += "  ! records stop at byte \(e.offset): \(e.message)\n" }
            if analyze { out += WirelessReport.analysis(w) }
            return out + "\n"
        } catch {
            failed += 1
            // A wrong key, a key filed under another meter of the keys file, a failed MAC, a cut telegram.
            let finding = KeyForensics.diagnose(bytes, format: nil, error: error, telegram: nil, keyring: keyring)
            var out = "\(label): cannot decode: \(error.message)\n  error \(error.code) at byte \(error.offset) of \(bytes.count)\n"
            if let finding { out += "  key finding: \(finding.kind.rawValue): \(finding.advice)\n" }
            return out + "\n"
        }
    }
}
