import Agent
import CLISupport
import Foundation
import Gateway

/// The live view on a terminal: totals, then one row per floor with what is still missing. Redrawn at
/// most once a second; nothing at all when standard output is not a terminal.
final class CommissionView: Sendable {
    let enabled: Bool
    let window: Int

    init(enabled: Bool, window: Int) {
        self.enabled = enabled
        self.window = window
    }

    func draw(_ p: CommissioningProgress, elapsed: Duration, buses: [String]) {
        guard enabled else { return }
        print("\u{1B}[H\u{1B}[2J" + Self.render(p, elapsed: elapsed.components.seconds, window: window, buses: buses), terminator: "")
        FileHandleOutput.flush()
    }

    func clear() {
        guard enabled else { return }
        print("\u{1B}[H\u{1B}[2J", terminator: "")
        FileHandleOutput.flush()
    }

    static func render(_ p: CommissioningProgress, elapsed: Int64, window: Int, buses: [String]) -> String {
        let s = p.summary
        var out = "commissioning: \(clock(elapsed)) of \(clock(Int64(window))), \(s.heard) of \(s.expected) expected devices heard"
        out += ", \(s.telegrams) telegrams (Ctrl-C ends it and writes the report)\n"
        var flags: [String] = []
        if s.wrongKey > 0 { flags.append("\(s.wrongKey) WRONG KEY") }
        if s.noKey > 0 { flags.append("\(s.noKey) no key") }
        if s.serialMismatch > 0 { flags.append("\(s.serialMismatch) SERIAL MISMATCH") }
        if s.weakSignal > 0 { flags.append("\(s.weakSignal) weak") }
        flags.append("\(s.unknownNearby) unknown nearby")
        out += flags.joined(separator: ", ") + "\n"
        if !buses.isEmpty { out += "buses: " + buses.joined(separator: "; ") + "\n" }
        out += "\n"
        let header = ["FLOOR", "EXPECTED", "HEARD", "RSSI", "MISSING", "WRONG KEY", "WEAK", "MISMATCH", "STILL MISSING"]
        var rows: [[String]] = []
        for f in p.floors {
            let missing = f.missing.count
            var still = f.missing.prefix(4).map(Self.shortKey).joined(separator: ", ")
            if missing > 4 { still += ", … +\(missing - 4)" }
            // The floor's radio devices by their median signal: weakest … strongest.
            let rssi = f.medians.isEmpty ? "" : "\(Int(f.medians.min()!.rounded()))…\(Int(f.medians.max()!.rounded())) dBm"
            rows.append([f.floor, "\(f.expected)", "\(f.heard)", rssi, "\(missing)", "\(f.wrongKey)",
                         f.weak > 0 ? "\(f.weak) (\(Int((f.weakestRSSI ?? 0).rounded())) dBm)" : "0", "\(f.serialMismatch)", still])
        }
        out += TextTable.render(header: header, rows: rows)
        return out
    }

    /// "wmbus:QDS:12345678" → "QDS 12345678".
    static func shortKey(_ key: String) -> String {
        let parts = key.split(separator: ":")
        return parts.count == 3 ? "\(parts[1]) \(parts[2])" : key
    }

    static func clock(_ seconds: Int64) -> String {
        let m = seconds / 60, s = seconds % 60
        return "\(m):" + (s < 10 ? "0" : "") + "\(s)"
    }
}
