/// A capture of received telegrams, one per line, replayed as if the radio received them again:
///
///     # comment
///     2026-11-21T08:00:00.123Z t1 -71 4E4401061010101002027A...
///     2026-11-21T08:00:04.500Z c1 -    2E44931578563412330333637A2A...
///
/// Fields, separated by spaces or tabs: UTC timestamp (ISO 8601, milliseconds optional, `Z` optional),
/// link mode (`s1`, `t1`, `c1`, or `-` when unknown), RSSI in dBm (`-` when unknown), the telegram in hex
/// without CRCs, L-field first. Timestamps must not go backwards.
public struct ReplayEntry: Hashable, Sendable {
    public var timestamp: DongleTimestamp
    public var linkMode: WMBusLinkMode?
    public var rssiDBm: Double?
    public var bytes: [UInt8]

    public init(timestamp: DongleTimestamp, linkMode: WMBusLinkMode?, rssiDBm: Double?, bytes: [UInt8]) {
        self.timestamp = timestamp
        self.linkMode = linkMode
        self.rssiDBm = rssiDBm
        self.bytes = bytes
    }

    /// The line for this entry, in the format `ReplayFile.parse` reads.
    public var line: String {
        let rssi = rssiDBm.map { $0 == $0.rounded() ? String(Int($0)) : String($0) } ?? "-"
        return "\(timestamp) \(linkMode?.rawValue ?? "-") \(rssi) \(Hex.encode(bytes))"
    }
}

public enum ReplayFile {
    /// Parses a whole capture. Errors name the line number and what the line should look like.
    public static func parse(_ text: String) throws(DongleError) -> [ReplayEntry] {
        var entries: [ReplayEntry] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            let entry = try parseLine(fields, number: number)
            if let last = entries.last, entry.timestamp < last.timestamp {
                throw DongleError(.invalidLine, "replay line \(number): \(entry.timestamp) is before the previous line's \(last.timestamp); sort the capture by time", offset: number)
            }
            entries.append(entry)
        }
        return entries
    }

    static func parseLine(_ f: [Substring], number: Int) throws(DongleError) -> ReplayEntry {
        func fail(_ why: String) -> DongleError {
            DongleError(.invalidLine, "replay line \(number): \(why); expected `2026-11-21T08:00:00.123Z t1 -71 <hex>`", offset: number)
        }
        guard f.count == 4 else { throw fail("\(f.count) fields instead of 4") }
        guard let timestamp = DongleTimestamp(text: f[0]) else { throw fail("\"\(f[0])\" is not a UTC timestamp") }
        let mode: WMBusLinkMode?
        if f[1] == "-" { mode = nil } else {
            guard let m = WMBusLinkMode(rawValue: f[1].lowercased()) else { throw fail("link mode \"\(f[1])\" is not s1, t1, c1 or -") }
            mode = m
        }
        let rssi: Double?
        if f[2] == "-" { rssi = nil } else {
            guard let r = Double(f[2]), r.isFinite, r <= 20, r >= -200 else { throw fail("RSSI \"\(f[2])\" is not a dBm value or -") }
            rssi = r
        }
        let bytes: [UInt8]
        do throws(Hex.ParseError) {
            bytes = try Hex.decode(f[3])
        } catch {
            throw fail("telegram hex: \(error.reason)")
        }
        guard bytes.count >= 10 else { throw fail("a telegram of \(bytes.count) bytes cannot hold L, C, M and A") }
        return ReplayEntry(timestamp: timestamp, linkMode: mode, rssiDBm: rssi, bytes: bytes)
    }
}

/// Replays a capture as an `AsyncSequence` of telegrams, keeping the recorded gaps between them divided
/// by `speed` (1 = real time, 60 = a minute per second, `.infinity` = no waiting). The telegrams keep
/// their recorded timestamps. Cancelling the consuming task ends the sequence.
public struct ReplaySource<C: Clock>: AsyncSequence, Sendable where C.Duration == Duration {
    public typealias Element = ReceivedTelegram

    public let entries: [ReplayEntry]
    public let speed: Double
    public let receiver: String
    let clock: C

    public init(entries: [ReplayEntry], speed: Double = 1, receiver: String = "replay", clock: C) {
        self.entries = entries
        self.speed = speed.isNaN || speed <= 0 ? 1 : speed
        self.receiver = receiver
        self.clock = clock
    }

    /// The wait before entry `index` (zero for the first).
    public func delay(before index: Int) -> Duration {
        guard index > 0, index < entries.count, speed.isFinite else { return .zero }
        let ms = entries[index].timestamp.millisecondsSince1970 - entries[index - 1].timestamp.millisecondsSince1970
        return .microseconds(Int64((Double(ms) * 1000 / speed).rounded()))
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let source: ReplaySource
        var index = 0
        var deadline: C.Instant?

        public mutating func next() async -> ReceivedTelegram? {
            guard index < source.entries.count, !Task.isCancelled else { return nil }
            let now = source.clock.now
            // Deadlines add up from the first entry, so the replay does not drift with scheduling delays.
            let due = (deadline ?? now).advanced(by: source.delay(before: index))
            if due > now {
                do {
                    try await source.clock.sleep(until: due, tolerance: nil)
                } catch {
                    return nil
                }
            }
            deadline = due
            let e = source.entries[index]
            index += 1
            return ReceivedTelegram(bytes: e.bytes, rssiDBm: e.rssiDBm, receivedAt: e.timestamp, linkMode: e.linkMode, receiver: source.receiver)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self) }
}

extension ReplaySource where C == ContinuousClock {
    public init(entries: [ReplayEntry], speed: Double = 1, receiver: String = "replay") {
        self.init(entries: entries, speed: speed, receiver: receiver, clock: ContinuousClock())
    }
}
