import Foundation

/// A small piece of state kept beside the buffer between runs (the set-day ledger, the poll ledger): a
/// JSON file, written atomically (a temporary, renamed), read back at start.
public struct StateFile<Value: Codable & Sendable>: Sendable {
    public let path: String
    /// What the file holds, in words for messages ("set-day ledger").
    public let what: String
    /// What a damaged file costs, said after "move it aside" ("the gateway starts a new one").
    public let consequence: String
    let pretty: Bool

    public init(path: String, what: String, consequence: String, pretty: Bool = false) {
        self.path = path
        self.what = what
        self.consequence = consequence
        self.pretty = pretty
    }

    /// The value, or `empty` when the file does not exist. A damaged file is an error naming it.
    public func load(orEmpty empty: @autoclosure () -> Value) throws(StateFileError) -> Value {
        guard FileManager.default.fileExists(atPath: path) else { return empty() }
        do {
            return try JSONDecoder().decode(Value.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw StateFileError(message: "\(path) is not a \(what) (\(error)); move it aside, \(consequence)")
        }
    }

    public func save(_ value: Value) throws(StateFileError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        do { try encoder.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw StateFileError(message: "cannot write the \(what) \(path): \(error)")
        }
    }

    /// Loads the file; a damaged one is renamed `PATH.corrupt-MS` and `empty` returned, with the problem, so
    /// the caller can log it. Used at start, where a damaged state file must not stop the gateway.
    public func loadOrSetAside(orEmpty empty: @autoclosure () -> Value, now: Int64) -> (value: Value, problem: StateFileError?) {
        do { return (try load(orEmpty: empty()), nil) } catch {
            try? FileManager.default.moveItem(atPath: path, toPath: path + ".corrupt-\(now)")
            return (empty(), error)
        }
    }
}

public struct StateFileError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
