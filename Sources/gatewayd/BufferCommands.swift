import Agent
import CLISupport
import ArgumentParser
import Foundation
import Gateway

/// `gatewayd buffer …`: a read-only look into the reading buffer.
struct BufferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "buffer",
        abstract: "Look into the reading buffer (read-only: delivery state is never changed).",
        discussion: """
            The buffer is opened read-only, so these commands are safe while gatewayd runs. \
            Default buffer: /var/lib/gatewayd/buffer.sqlite (--buffer PATH for another).
            """,
        subcommands: [BufferStats.self, BufferPeek.self, BufferExport.self])

    static let defaultPath = "/var/lib/gatewayd/buffer.sqlite"

    static func open(_ path: String) throws -> BufferInspection {
        do { return try BufferInspection(path: path) } catch { throw CLIError(error.message) }
    }

    /// Unix milliseconds as local date and time, "2026-03-31 14:05:09".
    static func time(_ ms: Int64?, zone: TimeZone = .current) -> String {
        guard let ms else { return "-" }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = zone
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// Unix milliseconds as ISO 8601 UTC with milliseconds, for exports.
    static func iso(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func age(_ seconds: Int64) -> String {
        if seconds < 120 { return "\(max(0, seconds)) s" }
        if seconds < 7200 { return "\(seconds / 60) min" }
        if seconds < 172_800 { return "\(seconds / 3600) h" }
        return "\(seconds / 86400) days"
    }

    static func bytes(_ n: Int64) -> String {
        if n < 10_000 { return "\(n) bytes" }
        if n < 10_000_000 { return "\(n / 1000) kB" }
        return "\(n / 1_000_000) MB"
    }

    static func number(_ v: Double) -> String { ReadingAdd.format(v) }
}

// MARK: - stats

struct BufferStats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Depth, age of the oldest pending reading, size on disk and readings per device.",
        discussion: """
            Exit status 0 when the buffer looks healthy, 2 when readings wait for the clock or the oldest \
            pending reading is older than --max-age (the uplink is not delivering), 1 when the \
            buffer cannot be read. Evictions and rejections are counted by the running daemon, not in \
            the buffer file: see `gatewayd status`.
            """)

    @Option(help: "The reading buffer (SQLite).")
    var buffer = BufferCommand.defaultPath

    @Flag(help: "Print one JSON object on one line (snake_case keys, all devices) instead of a table.")
    var json = false

    @Option(help: ArgumentHelp(
        "How long a pending reading may wait before it counts as a problem: 12h, 2d (a bare number counts hours).",
        valueName: "duration"))
    var maxAge = DurationArgument<Hours>(.seconds(24 * 3600))

    struct JSON: Encodable {
        struct Device: Encodable {
            var device: String
            var count: Int
            var oldestReceivedAt: Int64
            var newestReceivedAt: Int64
        }
        var buffer: String
        var stored: Int
        var pending: Int
        var leased: Int
        var waitingForClock: Int
        var oldestPendingReceivedAt: Int64?
        var oldestPendingAgeSeconds: Int64?
        var oldestReceivedAt: Int64?
        var newestReceivedAt: Int64?
        var bytesOnDisk: Int64
        /// Not stored in the buffer file: counted by the running daemon (`gatewayd status`).
        var evicted: Int?
        var rejected: Int?
        var problems: [String]
        var devices: [Device]
    }

    func run() async throws {
        let s: BufferInspection.Summary
        do { s = try BufferCommand.open(buffer).summary() } catch let e as CLIError { throw e } catch {
            throw CLIError("\(error)")
        }
        let nowMs = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        let age = s.oldestPendingReceivedAt.map { (nowMs - $0) / 1000 }
        let problems = Self.problems(s, ageSeconds: age, maxAge: maxAge.duration)
        if json {
            print(jsonLine(JSON(
                buffer: buffer, stored: s.stored, pending: s.pending, leased: s.leased, waitingForClock: s.waitingForClock,
                oldestPendingReceivedAt: s.oldestPendingReceivedAt, oldestPendingAgeSeconds: age,
                oldestReceivedAt: s.oldestReceivedAt, newestReceivedAt: s.newestReceivedAt, bytesOnDisk: s.bytesOnDisk,
                evicted: nil, rejected: nil, problems: problems,
                devices: s.devices.map { .init(device: $0.device, count: $0.count, oldestReceivedAt: $0.oldestReceivedAt, newestReceivedAt: $0.newestReceivedAt) })))
        } else {
            print(Self.text(s, path: buffer, ageSeconds: age, problems: problems), terminator: "")
        }
        if !problems.isEmpty { throw ExitCode(2) }
    }

    static func problems(_ s: BufferInspection.Summary, ageSeconds: Int64?, maxAge: Duration) -> [String] {
        var out: [String] = []
        if s.waitingForClock > 0 {
            out.append("\(s.waitingForClock) \(s.waitingForClock == 1 ? "reading waits" : "readings wait") for the clock: check time synchronisation (timedatectl, NTP)")
        }
        if let a = ageSeconds, a > maxAge.components.seconds {
            out.append("the oldest pending reading is \(BufferCommand.age(a)) old: check the uplink (gatewayd status)")
        }
        return out
    }

    static func text(_ s: BufferInspection.Summary, path: String, ageSeconds: Int64?, problems: [String], zone: TimeZone = .current) -> String {
        var out = "buffer \(path): \(BufferCommand.bytes(s.bytesOnDisk)) on disk\n"
        out += "  stored:             \(s.stored)\n"
        out += "  pending:            \(s.pending)\n"
        out += "  leased (in flight): \(s.leased)\n"
        out += "  waiting for clock:  \(s.waitingForClock)\n"
        out += "  oldest pending:     "
            + (s.oldestPendingReceivedAt.map { "\(BufferCommand.time($0, zone: zone)) (\(BufferCommand.age(ageSeconds ?? 0)) ago)" } ?? "-") + "\n"
        out += "  evicted, rejected:  counted by the running daemon, see `gatewayd status`\n"
        if !s.devices.isEmpty {
            let shown = s.devices.prefix(20)
            out += "\n" + (s.devices.count > 20 ? "top 20 of \(s.devices.count) devices" : "\(s.devices.count) devices") + ":\n"
            let rows = shown.map { d in
                [d.device, String(d.count), BufferCommand.time(d.oldestReceivedAt, zone: zone), BufferCommand.time(d.newestReceivedAt, zone: zone)]
            }
            out += TextTable.render(header: ["device", "readings", "oldest", "newest"], rows: rows, indent: "  ")
        }
        for p in problems { out += "! \(p)\n" }
        return out
    }
}

// MARK: - peek

struct BufferPeek: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peek",
        abstract: "Show the next pending readings, in upload order, without leasing them.",
        discussion: "Read-only: the readings stay pending and are uploaded as usual.")

    @Option(help: "The reading buffer (SQLite).")
    var buffer = BufferCommand.defaultPath

    @Option(help: "Only this device (registry key, e.g. mbus:KAM:06855817).")
    var device: String?

    @Option(help: "How many readings to show.")
    var limit = 20

    @Flag(help: "Print one JSON object per reading per line (snake_case keys) instead of a table.")
    var json = false

    func validate() throws {
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let readings: [BufferInspection.StoredReading]
        do { readings = try BufferCommand.open(buffer).pending(device: device, limit: limit) } catch let e as CLIError { throw e } catch {
            throw CLIError("\(error)")
        }
        if json {
            for r in readings { print(jsonLine(ExportRow(r))) }
            return
        }
        print(Self.render(readings, device: device), terminator: "")
    }

    static func render(_ readings: [BufferInspection.StoredReading], device: String?, zone: TimeZone = .current) -> String {
        guard !readings.isEmpty else {
            return (device.map { "no pending readings of \($0)" } ?? "no pending readings") + "\n"
        }
        let rows = readings.map { s in
            let r = s.reading
            return [String(r.id ?? 0), BufferCommand.time(r.receivedAt, zone: zone), r.device, r.quantity, BufferCommand.number(r.value),
                    r.unit, r.raw, "\(r.readingClass)", s.state]
        }
        return TextTable.render(header: ["id", "received", "device", "quantity", "value", "unit", "raw", "class", "state"], rows: rows)
    }
}

// MARK: - export

/// One reading as exported (CSV columns in this order, JSON keys the same).
struct ExportRow: Encodable {
    var id: Int64
    var device: String
    var quantity: String
    var value: Double
    var unit: String
    var raw: String
    var receivedAt: String
    var meterTime: Int64?
    var clockSynchronised: Bool
    var storage: UInt32
    var tariff: UInt16
    var subunit: UInt16
    var readingClass: String
    var status: UInt16
    var rssi: Int16?
    var source: String
    var state: String

    init(_ s: BufferInspection.StoredReading) {
        let r = s.reading
        id = r.id ?? 0
        device = r.device
        quantity = r.quantity
        value = r.value
        unit = r.unit
        raw = r.raw
        receivedAt = BufferCommand.iso(r.receivedAt)
        meterTime = r.meterTime
        clockSynchronised = r.clockSynchronised
        storage = r.storage
        tariff = r.tariff
        subunit = r.subunit
        readingClass = "\(r.readingClass)"
        status = r.status
        rssi = r.rssi
        source = r.source
        state = s.state
    }

    static let header = ["id", "device", "quantity", "value", "unit", "raw", "received_at", "meter_time", "clock_synchronised",
                         "storage", "tariff", "subunit", "reading_class", "status", "rssi", "source", "state"]

    var fields: [String] {
        [String(id), device, quantity, BufferCommand.number(value), unit, raw, receivedAt, meterTime.map { String($0) } ?? "",
         clockSynchronised ? "true" : "false", String(storage), String(tariff), String(subunit), readingClass, String(status),
         rssi.map { String($0) } ?? "", source, state]
    }
}

enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
    case csv, json
}

struct BufferExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export stored readings (pending and in flight) received in a date range, as CSV or JSON lines.",
        discussion: """
            --from and --to are days in the gateway's local time zone, both included, by the time the gateway \
            received the reading. CSV has a header row and follows RFC 4180 (CRLF line ends, quoted fields); \
            a text cell starting with = + - @, a tab or a CR gets a leading ' so a spreadsheet shows it \
            instead of running it (numbers such as -12.5 stay numbers); --bom adds a UTF-8 byte order mark \
            for Excel. JSON is one object per line. Delivered readings are no longer in the buffer. Read-only.
            """)

    @Option(help: "csv (when neither this nor --json is given) or json (JSON lines).")
    var format: ExportFormat?

    @Flag(help: "The same as --format json: one JSON object per reading per line (snake_case keys).")
    var json = false

    @Option(help: "First day, YYYY-MM-DD (included).")
    var from: String?

    @Option(help: "Last day, YYYY-MM-DD (included).")
    var to: String?

    @Option(help: "Only this device (registry key, e.g. mbus:KAM:06855817).")
    var device: String?

    @Option(help: "The reading buffer (SQLite).")
    var buffer = BufferCommand.defaultPath

    @Option(help: "Write to this file instead of standard output.")
    var output: String?

    @Flag(help: "Start the CSV with a UTF-8 byte order mark, so Excel reads accents and units right.")
    var bom = false

    /// Midnight starting `text` (YYYY-MM-DD) in `zone`, Unix milliseconds.
    static func day(_ text: String, zone: TimeZone = .current) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let components = DateComponents(year: y, month: m, day: d)
        guard components.isValidDate(in: calendar), let date = calendar.date(from: components) else { return nil }
        return Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// The next midnight after the one at `ms` (days are not always 24 h).
    static func nextDay(_ text: String, zone: TimeZone = .current) -> Int64? {
        guard let start = day(text, zone: zone) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        guard let next = calendar.date(byAdding: .day, value: 1, to: Date(timeIntervalSince1970: Double(start) / 1000)) else { return nil }
        return Int64((next.timeIntervalSince1970 * 1000).rounded())
    }

    func validate() throws {
        if json && format == .csv { throw ValidationError("--json and --format csv contradict each other; give one") }
        if bom && (json || format == .json) { throw ValidationError("--bom is for CSV; JSON lines never carry one") }
        if let from, Self.day(from) == nil { throw ValidationError("--from \(from) is not a date; write YYYY-MM-DD, e.g. 2026-03-01") }
        if let to, Self.day(to) == nil { throw ValidationError("--to \(to) is not a date; write YYYY-MM-DD, e.g. 2026-03-31") }
        if let from, let to, let a = Self.day(from), let b = Self.day(to), a > b {
            throw ValidationError("--from \(from) is after --to \(to)")
        }
    }

    static func render(_ readings: [BufferInspection.StoredReading], format: ExportFormat, byteOrderMark: Bool = false) -> String {
        switch format {
        case .csv:
            return CSVWriter.document(header: ExportRow.header, rows: readings.map { ExportRow($0).fields }, byteOrderMark: byteOrderMark)
        case .json:
            return readings.map { jsonLine(ExportRow($0)) + "\n" }.joined()
        }
    }

    func run() async throws {
        let readings: [BufferInspection.StoredReading]
        let ticker = ProgressTicker("reading the buffer…")
        do {
            readings = try BufferCommand.open(buffer).readings(
                receivedFrom: from.flatMap { Self.day($0) }, before: to.flatMap { Self.nextDay($0) }, device: device)
        } catch let e as CLIError {
            ticker.stop()
            throw e
        } catch {
            ticker.stop()
            throw CLIError("\(error)")
        }
        ticker.update("writing \(readings.count) readings…")
        let text = Self.render(readings, format: json ? .json : format ?? .csv, byteOrderMark: bom)
        ticker.stop()
        if let output {
            do { try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
                throw CLIError("cannot write \(output): \(error.localizedDescription); check the folder exists and is writable")
            }
            FileHandleOutput.standardError("gatewayd: exported \(readings.count) readings to \(output)\n")
        } else {
            print(text, terminator: "")
        }
    }
}
