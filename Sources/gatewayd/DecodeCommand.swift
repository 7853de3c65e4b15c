import ArgumentParser
import Drivers
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode wired M-Bus frames (EN 13757-2/-3) given as hex.",
        discussion: """
            Give one frame as arguments (spaces between bytes are fine), or --file with one frame \
            per line, or pipe frames on standard input. Lines starting with '#' are ignored.
            With --json, each frame becomes one JSON object on its own line (schema: docs/decode-json.md).
            Exit status: 0 when every frame decoded, 1 when any frame failed, 64 for bad usage.
            """)

    @Argument(help: "A frame in hex, e.g. 68 1F 1F 68 08 00 72 …")
    var hex: [String] = []

    @Option(name: .shortAndLong, help: "Read frames from this file, one per line.")
    var file: String?

    @Flag(help: "Print one JSON object per frame instead of a table.")
    var json = false

    func validate() throws {
        if !hex.isEmpty && file != nil {
            throw ValidationError("give the frame as arguments or with --file, not both")
        }
    }

    func run() throws {
        let inputs: [DecodeInput]
        if !hex.isEmpty {
            inputs = [DecodeInput(label: "argument", text: hex.joined(separator: " "))]
        } else if let file {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read \(file): check the path and that you may read it")
            }
            inputs = DecodeInput.lines(text, source: file)
        } else {
            var lines: [String] = []
            while let line = readLine() { lines.append(line) }
            inputs = DecodeInput.lines(lines.joined(separator: "\n"), source: "stdin")
        }
        var session = DecodeSession(json: json)
        for input in inputs {
            print(session.render(input), terminator: "")
        }
        if !json && inputs.count > 1 {
            print(session.summary)
        }
        if session.failed > 0 { throw ExitCode(1) }
    }
}

/// One frame of input and where it came from, so errors can name the line.
struct DecodeInput {
    var label: String
    var text: String

    static func lines(_ text: String, source: String) -> [DecodeInput] {
        var out: [DecodeInput] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()
            let text = String(line)
            if text.isEmpty || text.hasPrefix("#") { continue }
            out.append(DecodeInput(label: "\(source):\(n + 1)", text: text))
        }
        return out
    }
}

/// Decodes inputs and renders them for a person or as JSON lines. Kept apart from the command so
/// tests can run it without a process.
struct DecodeSession {
    let json: Bool
    private let writer = TelegramJSONWriter()
    private(set) var decoded = 0
    private(set) var applicationErrors = 0
    private(set) var failed = 0

    init(json: Bool) { self.json = json }

    var summary: String {
        "\(decoded + applicationErrors + failed) frames: \(decoded) decoded, \(applicationErrors) application errors, \(failed) failed"
    }

    mutating func render(_ input: DecodeInput) -> String {
        let bytes: [UInt8]
        do {
            bytes = try Hex.decode(input.text)
        } catch {
            failed += 1
            if json {
                return writer.line(DecodeFailureReport(code: "invalid_hex", message: error.reason, offset: error.offset)) + "\n"
            }
            return "\(input.label): not hex: \(error.reason) at character \(error.offset)\n\n"
        }
        do {
            let telegram = try TelegramDecoder.decode(bytes)
            if telegram.applicationError != nil { applicationErrors += 1 } else { decoded += 1 }
            if json { return writer.line(TelegramReport(telegram)) + "\n" }
            return TelegramTable.render(telegram, label: input.label) + "\n"
        } catch {
            failed += 1
            if json { return writer.line(DecodeFailureReport(error)) + "\n" }
            return "\(input.label): cannot decode: \(error.message)\n  error \(error.code) at byte \(error.offset) of \(bytes.count)\n\n"
        }
    }
}
