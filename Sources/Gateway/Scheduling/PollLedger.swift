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

/// Where the poll ledger is kept between runs, beside the buffer (`polls.json`).
public struct PollLedgerFile: Sendable {
    let file: StateFile<PollLedger>
    public var path: String { file.path }

    public init(path: String) {
        file = StateFile(path: path, what: "poll ledger",
                         consequence: "the gateway starts a new one and reads every line once at start")
    }

    /// The ledger, or an empty one when the file does not exist. A damaged file is an error naming it.
    public func load() throws(StateFileError) -> PollLedger { try file.load(orEmpty: PollLedger()) }

    public func save(_ ledger: PollLedger) throws(StateFileError) { try file.save(ledger) }

    /// At start: a damaged ledger is set aside, and every line is read once.
    public func loadOrSetAside(now: Int64) -> (value: PollLedger, problem: StateFileError?) {
        file.loadOrSetAside(orEmpty: PollLedger(), now: now)
    }
}
