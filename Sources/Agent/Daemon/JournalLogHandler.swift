import Drivers
import Foundation
import Logging

/// One line per event on standard error, in the form journald understands.
///
/// Under systemd (JOURNAL_STREAM is set) each line starts with the syslog priority in angle brackets
/// ("<4>") and carries no timestamp: journald adds both its own time and the unit. On a terminal the
/// line starts with the time and the level instead. Metadata follows as key=value pairs, sorted, so
/// lines grep the same every time.
///
/// AES keys must never reach a log: any metadata value under a key that names a key or a secret is
/// replaced by "<redacted>" here, as a last line of defence behind the callers' own care.
///
/// Message, metadata keys and values go through `TerminalText.line`: text from a telegram (a plain-text
/// unit, an error quoting it) must neither forge a second journal line nor drive the terminal of
/// whoever runs `journalctl`.
package struct JournalLogHandler: LogHandler {
    package var logLevel: Logger.Level = .info
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    package let label: String
    package let underJournal: Bool

    package init(label: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.label = label
        self.underJournal = environment["JOURNAL_STREAM"] != nil
        if let level = environment["GATEWAYD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) {
            logLevel = level
        }
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package static let secretKeyNames: Set<String> = ["key", "aes_key", "keys", "token", "password", "secret", "bearer"]

    package func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line = Self.format(
            level: event.level, message: "\(event.message)", metadata: merged, label: label,
            underJournal: underJournal, now: Date())
        FileHandleOutput.standardError(line)
        // The support bundle's recent log: always with a timestamp (journald adds its own only to its copy).
        if event.level >= .notice {
            let kept = underJournal
                ? Self.format(level: event.level, message: "\(event.message)", metadata: merged, label: label, underJournal: false, now: Date())
                : line
            RecentLog.shared.append(String(kept.dropLast()))
        }
    }

    package static func format(
        level: Logger.Level, message: String, metadata: Logger.Metadata, label: String, underJournal: Bool, now: Date
    ) -> String {
        var line = ""
        if underJournal {
            line += "<\(syslogPriority(level))>"
        } else {
            line += Self.timestamp(now) + " " + level.rawValue.uppercased() + " "
        }
        line += "[\(label)] " + TerminalText.line(message)
        for key in metadata.keys.sorted() {
            let value = secretKeyNames.contains(key.lowercased()) ? "<redacted>" : TerminalText.line("\(metadata[key]!)")
            line += " \(TerminalText.line(key))=" + quoteIfNeeded(value)
        }
        return line + "\n"
    }

    package static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    private static func quoteIfNeeded(_ v: String) -> String {
        v.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) || v.isEmpty
            ? "\"" + v.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : v
    }

    /// "2026-11-21T11:28:59.468", UTC, milliseconds truncated: the form Foundation's ISO 8601 style gave.
    ///
    /// Built from gmtime_r by hand: that style builds a Calendar (in the current time zone, through ICU)
    /// and runs a general formatter for every line, none of which a UTC timestamp needs.
    private static func timestamp(_ d: Date) -> String {
        let milliseconds = Int64((d.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000)
        let fraction = Int(milliseconds - Int64(seconds) * 1000)
        var t = tm()
        guard gmtime_r(&seconds, &t) != nil else { return "-" }
        func pad(_ v: Int32, _ width: Int) -> String {
            let digits = String(v)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        return pad(t.tm_year + 1900, 4) + "-" + pad(t.tm_mon + 1, 2) + "-" + pad(t.tm_mday, 2) + "T"
            + pad(t.tm_hour, 2) + ":" + pad(t.tm_min, 2) + ":" + pad(t.tm_sec, 2) + "." + pad(Int32(fraction), 3)
    }
}
