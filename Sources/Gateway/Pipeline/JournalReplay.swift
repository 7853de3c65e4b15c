import Drivers

/// Feeds a support bundle's frame journal through a fresh pipeline (memory buffer, the bundle's registry,
/// the desk's profiles and keys) and compares each outcome with what the gateway recorded: a problem seen
/// in a plant room, reproduced at a desk (`gatewayd replay`).
public enum JournalReplay {
    /// One journal entry replayed.
    public struct Entry: Hashable, Sendable, Codable {
        public enum Verdict: String, Hashable, Sendable, Codable {
            /// Same outcome and the same values as on the gateway.
            case same
            /// Another outcome, or other values: the desk's profiles, keys or registry decode it differently.
            case differs
            /// The gateway dropped it as a repeat of a telegram older than the journal: nothing to compare with.
            case notComparable = "not_comparable"
            /// The entry's bytes are not hex or its Modbus read is missing (a damaged bundle).
            case notReplayable = "not_replayable"
        }

        public var seq: Int64
        public var device: String
        public var bus: FrameJournal.Entry.Bus
        public var receivedAt: Int64
        public var verdict: Verdict
        public var gateway: Side
        public var replay: Side?

        public struct Side: Hashable, Sendable, Codable {
            public var outcome: String
            public var detail: String
            public var readings: Int
            public var digest: String?
        }
    }

    public struct Report: Hashable, Sendable, Codable {
        public var entries: [Entry]
        public var same: Int { entries.filter { $0.verdict == .same }.count }
        public var differs: Int { entries.filter { $0.verdict == .differs }.count }
        public var notComparable: Int { entries.filter { $0.verdict == .notComparable }.count }
        public var notReplayable: Int { entries.filter { $0.verdict == .notReplayable }.count }
        /// Values the replay decoded (repeats included: the replay keeps no dedup window; alarm edges not counted).
        public var readings: Int { entries.reduce(0) { $0 + ($1.replay?.readings ?? 0) } }
    }

    /// Replays `journal` in its order. `options` carries the desk's keys and normaliser.
    public static func run(_ journal: FrameJournalSnapshot, registry: DeviceRegistry, options: PipelineOptions) async -> Report {
        let entries = journal.entries.sorted { $0.seq < $1.seq }
        // Every telegram is decoded and stored (no dedup window): whether the gateway dropped a telegram as a
        // repeat depends on what it stored before the journal began, so the replay checks repeats by content
        // instead: a telegram the gateway dropped must decode to values the gateway stored for that device.
        var options = options
        options.deduplication.windowMilliseconds = 0
        let pipeline = ReadingPipeline(registry: registry, buffer: MemoryReadingBuffer(), options: options,
                                       journalCapacity: max(1, entries.count))
        var out: [Entry] = []
        var stored: [String: Set<String>] = [:]
        for e in entries {
            let gateway = Entry.Side(outcome: e.outcome, detail: e.detail, readings: e.readings, digest: e.digest)
            guard let input = input(e) else {
                out.append(Entry(seq: e.seq, device: e.device, bus: e.bus, receivedAt: e.receivedAt, verdict: .notReplayable,
                                 gateway: gateway, replay: nil))
                continue
            }
            let before = await pipeline.journalRecorded()
            let outcome: PipelineOutcome
            do { outcome = try await pipeline.ingest(input) } catch {
                outcome = .failed("the replay's memory buffer refused it: \(error)")
            }
            let side: Entry.Side
            if let mine = await pipeline.journalEntries(after: before).first {
                side = Entry.Side(outcome: mine.outcome, detail: mine.detail, readings: mine.readings, digest: mine.digest)
            } else {
                // Not identified as a registered device at the desk (a registry that differs).
                side = Entry.Side(outcome: FrameJournal.kind(outcome), detail: outcome.description, readings: 0, digest: nil)
            }
            let verdict: Entry.Verdict
            if gateway.outcome == "duplicate" {
                let known = stored[e.device] ?? []
                if side.outcome == "buffered" || side.outcome == "duplicate", side.digest.map(known.contains) ?? (side.outcome == "duplicate") {
                    verdict = .same
                } else if known.isEmpty && (side.outcome == "buffered" || side.outcome == "duplicate") {
                    verdict = .notComparable  // what it repeated was stored before the journal began
                } else {
                    verdict = .differs
                }
            } else {
                // A telegram that failed or was refused must fail for the same reason (a wrong key at the
                // gateway and no key at the desk are different stories).
                let sameReason = gateway.outcome == "buffered" || side.detail == gateway.detail
                verdict = side.outcome == gateway.outcome && side.digest == gateway.digest && sameReason ? .same : .differs
            }
            if gateway.outcome == "buffered", let d = gateway.digest { stored[e.device, default: []].insert(d) }
            out.append(Entry(seq: e.seq, device: e.device, bus: e.bus, receivedAt: e.receivedAt, verdict: verdict,
                             gateway: gateway, replay: side))
        }
        return Report(entries: out)
    }

    /// The pipeline input an entry was made from, as the daemon built it.
    public static func input(_ e: FrameJournal.Entry) -> PipelineInput? {
        switch e.bus {
        case .wmbus:
            guard e.frames.count == 1, let bytes = try? Hex.decode(e.frames[0]), !bytes.isEmpty else { return nil }
            let format = e.format.flatMap(WMBusFrameFormat.init(rawValue:))
            let mode = e.linkMode.flatMap(WMBusLinkMode.init(rawValue:))
            return .wireless(WirelessInput(.frame(bytes, format: format, linkMode: mode), dongle: e.source, rssi: e.rssi,
                                           receivedAt: e.receivedAt))
        case .mbus:
            var frames: [[UInt8]] = []
            for f in e.frames {
                guard let bytes = try? Hex.decode(f), !bytes.isEmpty else { return nil }
                frames.append(bytes)
            }
            guard !frames.isEmpty else { return nil }
            // As the line assembles a multi-telegram readout: frames up to the first that does not decode.
            var telegrams: [Telegram] = []
            for f in frames {
                guard let t = try? TelegramDecoder.decode(f) else { break }
                telegrams.append(t)
            }
            if telegrams.isEmpty {
                return .wired(WiredInput(.frame(frames[0]), line: e.source, receivedAt: e.receivedAt, frames: frames))
            }
            let readout = Readout(address: .primary(telegrams[0].primaryAddress ?? 0), frames: frames, telegrams: telegrams,
                                  truncated: telegrams.last?.moreRecordsFollow ?? false)
            return .wired(WiredInput(.telegram(readout.assembled), line: e.source, receivedAt: e.receivedAt, frames: frames))
        case .modbus:
            guard let reading = e.modbus else { return nil }
            return .modbus(ModbusInput(reading, line: e.source, receivedAt: e.receivedAt))
        }
    }
}
