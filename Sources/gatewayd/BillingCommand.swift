import Agent
import CLISupport
import ArgumentParser
import Drivers
import Foundation
import Gateway

/// `gatewayd billing`: which devices have no set-day (billing) value captured for the period due.
struct BillingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billing",
        abstract: "List the devices whose set-day (billing) value is missing or older than the billing date.",
        discussion: """
            The daemon keeps, per device, the newest set-day value it stored and sent to the portal (with a \
            'set_day_captured' record), from wired readouts and radio telegrams alike, in set-days.json next \
            to its buffer. A device is listed when its newest set-day date is before --before (default: the \
            last 31 December), or when none was captured. Devices read by hand (bus "manual") are not listed: \
            their set-day values come from the technician's entries. \
            Exit status 0 when every device has its value, 2 when some do not, 1 when a file cannot be read.
            """)

    static let defaultLedger = "/var/lib/gatewayd/set-days.json"

    @Option(help: "The set-day ledger the daemon writes (set-days.json beside its buffer).")
    var ledger = BillingCommand.defaultLedger

    @Option(help: "The building's registry (JSON).")
    var registry = RegistryCommand.defaultPath

    @Option(help: "The billing date a value must be from, YYYY-MM-DD (default: the last 31 December).")
    var before: String?

    @Flag(help: "Print one JSON object per device on its own line (snake_case keys) instead of a table.")
    var json = false

    func validate() throws {
        if let b = before, Self.date(b) == nil { throw ValidationError("--before \(b) is not a date; expected YYYY-MM-DD, e.g. 2025-12-31") }
    }

    /// "2025-12-31" when `text` is a real calendar date.
    static func date(_ text: String) -> String? {
        let parts = text.split(separator: "-")
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1...12).contains(m), d >= 1 else { return nil }
        let days = [31, (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
        return d <= days ? text : nil
    }

    /// The last 31 December before `now` (Unix milliseconds).
    static func lastYearEnd(now: Int64) -> String {
        let today = SetDayLedger.period(meterTime: now / 1000) ?? "1970-01-01"
        let year = Int(today.prefix(4)) ?? 1970
        return String(format: "%04d-12-31", today.hasSuffix("12-31") ? year : year - 1)
    }

    struct Row: Encodable {
        var device: String
        var unit: String?
        var kind: String
        var status: String
        var lastPeriod: String?
        var lastValue: Double?
        var lastUnit: String?
        var capturedAt: String?
        var due: String
    }

    static func rows(ledger: SetDayLedger, registry: DeviceRegistry, due: String) -> [Row] {
        let expected = registry.devices.filter { $0.bus != .manual && $0.replacedBy == nil }
        let missing = ledger.missing(of: expected.map(\.key), due: due)
        return missing.map { m in
            let d = registry.device(key: m.device)
            return Row(device: m.device, unit: d?.unit, kind: d.map { CommissioningSession.kind(of: $0) } ?? "?",
                       status: m.last == nil ? "missing" : "stale", lastPeriod: m.last?.period, lastValue: m.last?.value,
                       lastUnit: m.last?.unit,
                       capturedAt: m.last.map { Date(timeIntervalSince1970: Double($0.capturedAt) / 1000).formatted(.iso8601) },
                       due: due)
        }
    }

    func run() async throws {
        let r = try RegistryCommand.load(registry)
        let book: SetDayLedger
        do { book = try SetDayLedgerFile(path: ledger).load() } catch { throw CLIError("\(error)") }
        if !FileManager.default.fileExists(atPath: ledger) && !json {
            print("note: \(ledger) does not exist yet: the daemon writes it when it stores its first set-day value")
        }
        let due = before ?? Self.lastYearEnd(now: Int64(Date().timeIntervalSince1970 * 1000))
        let rows = Self.rows(ledger: book, registry: r, due: due)
        if json {
            for row in rows { print(jsonLine(row)) }
        } else {
            let total = r.devices.filter { $0.bus != .manual && $0.replacedBy == nil }.count
            print("set-day values due \(due): \(total - rows.count) of \(total) devices captured, \(rows.count) missing or stale")
            if !rows.isEmpty {
                let table = TextTable.render(
                    header: ["device", "unit", "kind", "status", "last set day", "value", "captured"],
                    rows: rows.map { row in
                        [row.device, row.unit ?? "", row.kind, row.status, row.lastPeriod ?? "-",
                         row.lastValue.map { "\($0) \(row.lastUnit ?? "")" } ?? "-", row.capturedAt ?? "-"]
                    },
                    indent: "  ")
                // Keys and units come from the registry and the meters: escaped for the terminal.
                print(TerminalText.lines(table), terminator: "")
            }
        }
        if !rows.isEmpty { throw ExitCode(2) }
    }
}
