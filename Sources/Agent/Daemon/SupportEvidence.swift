import Foundation
import Gateway
import Logging
import Synchronization

/// What the daemon keeps for a support bundle (`gatewayd bundle`): the last raw telegrams and frames of
/// registered devices with their outcomes, the strangers' identities, the recent log and the open alarms.
///
/// Served live on the status socket (`/support`) and written beside the buffer (`support.json`) every
/// 15 minutes and at stop, so a bundle taken while the daemon is down still has the last picture.
package struct SupportEvidence: Codable, Sendable {
    package var gateway: String
    package var building: String
    package var version: String
    package var writtenAt: Date
    package var journal: FrameJournalSnapshot
    /// Log lines of level notice and above, oldest first.
    package var recentLog: [String]
    package var openAlarms: [DaemonStatus.OpenAlarm]
    package var counters: [String: Int]

    package static let fileName = "support.json"

    package static func collect(pipeline: ReadingPipeline, board: StatusBoard) async -> SupportEvidence {
        let status = await board.snapshot()
        let c = await pipeline.counters()
        var counters = ["heard": c.heard, "decoded": c.decoded, "failed": c.failed, "unknown": c.unknown, "rejected": c.rejected,
                        "deduplicated": c.deduplicated, "buffered": c.buffered, "buffered_readings": c.bufferedReadings,
                        "refused_values": c.refusedValues, "security_downgrades": c.securityDowngrades,
                        "buffer_failures": c.bufferFailures]
        for (kind, n) in c.keyFindings { counters["key_finding_" + kind] = n }
        return SupportEvidence(
            gateway: status.gateway, building: status.building, version: status.version, writtenAt: Date(),
            journal: await pipeline.journalSnapshot(), recentLog: RecentLog.shared.lines(), openAlarms: status.alarms,
            counters: counters)
    }

    /// Written to a temporary file and renamed: a power cut leaves the old file or the new one, never half.
    package func write(to path: String) throws {
        let data = try LocalEndpoints.jsonEncoder.encode(self)
        let tmp = path + ".tmp"
        try data.write(to: URL(fileURLWithPath: tmp))
        if rename(tmp, path) != 0 { throw DaemonStartError("cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))") }
    }

    package static func read(from path: String) throws -> SupportEvidence {
        try LocalEndpoints.jsonDecoder.decode(SupportEvidence.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// The newest log lines of level notice and above, kept in memory for support bundles (journald may not be
/// there, as in the demo, and a technician's bundle should not need root to read the journal).
package final class RecentLog: Sendable {
    package static let shared = RecentLog(capacity: 500)

    private let capacity: Int
    private let state = Mutex<(lines: [String], next: Int)>(([], 0))

    package init(capacity: Int) { self.capacity = capacity }

    package func append(_ line: String) {
        state.withLock { s in
            if s.lines.count < capacity {
                s.lines.append(line)
            } else {
                s.lines[s.next] = line
                s.next = (s.next + 1) % capacity
            }
        }
    }

    package func lines() -> [String] {
        state.withLock { s in Array(s.lines[s.next...] + s.lines[..<s.next]) }
    }
}
