import Foundation

/// When each polled job of each line last started a routine poll (Unix ms), remembered across restarts so
/// a start after a power cut reads a line whose readout is overdue at once, and a quick restart does not
/// read it twice within its interval (battery-powered and readout-counting meters pay for every readout).
/// Pure; `PollLedgerFile` keeps it on disk, `PollScheduler` updates it.
public struct PollLedger: Codable, Hashable, Sendable {
    /// line → job → when its last routine poll started.
    public private(set) var lines: [String: [String: Int64]] = [:]

    public init() {}

    public init(lines: [String: [String: Int64]]) { self.lines = lines }

    public func lastPolls(line: String) -> [String: Int64] { lines[line] ?? [:] }

    public mutating func polled(line: String, job: String, startedAt: Int64) {
        lines[line, default: [:]][job] = startedAt
    }

    /// Keeps only these lines (the configuration's): the file never grows beyond the building.
    public mutating func keep(only names: Set<String>) { lines = lines.filter { names.contains($0.key) } }
}

/// Where the poll ledger is kept between runs: a small JSON file written atomically (a temporary, renamed).
public struct PollLedgerFile: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The ledger, or an empty one when the file does not exist. A damaged file is an error naming it.
    public func load() throws(PollLedgerError) -> PollLedger {
        guard FileManager.default.fileExists(atPath: path) else { return PollLedger() }
        do {
            return try JSONDecoder().decode(PollLedger.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw PollLedgerError(message: "\(path) is not a poll ledger (\(error)); move it aside, the gateway starts a new one and reads every line once at start")
        }
    }

    public func save(_ ledger: PollLedger) throws(PollLedgerError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do { try encoder.encode(ledger).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw PollLedgerError(message: "cannot write the poll ledger \(path): \(error); lines are read at the next start even if they were read just before")
        }
    }
}

public struct PollLedgerError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
