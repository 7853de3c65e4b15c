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
struct JournalLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    let label: String
    let underJournal: Bool

    init(label: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.label = label
        self.underJournal = environment["JOURNAL_STREAM"] != nil
        if let level = environment["GATEWAYD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) {
            logLevel = level
        }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static let secretKeyNames: Set<String> = ["key", "aes_key", "keys", "token", "password", "secret", "bearer"]

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line = Self.format(
            level: event.level, message: "\(event.message)", metadata: merged, label: label,
            underJournal: underJournal, now: Date())
        FileHandleOutput.standardError(line)
    }

    static func format(
        level: Logger.Level, message: String, metadata: Logger.Metadata, label: String, underJournal: Bool, now: Date
    ) -> String {
        var line = ""
        if underJournal {
            line += "<\(syslogPriority(level))>"
        } else {
            line += Self.timestamp(now) + " " + level.rawValue.uppercased() + " "
        }
        line += "[\(label)] " + message.replacingOccurrences(of: "\n", with: " ")
        for key in metadata.keys.sorted() {
            let value = secretKeyNames.contains(key.lowercased()) ? "<redacted>" : "\(metadata[key]!)"
            line += " \(key)=" + quoteIfNeeded(value)
        }
        return line + "\n"
    }

    static func syslogPriority(_ level: Logger.Level) -> Int {
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

    private static func timestamp(_ d: Date) -> String {
        d.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
    }
}
