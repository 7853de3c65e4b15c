import Foundation
import Gateway
import Logging
import PortalFake

/// What a run did, written at exit with `gatewayd run --summary PATH`: for a newcomer's demo and for
/// the end-to-end tests, which compare the portal sink with the buffer left on disk.
struct RunSummary: Codable {
    struct Portal: Codable {
        /// Distinct reading ids the sink stored.
        var readings: Int
        /// Receipts beyond the first of a reading: resends the sink deduplicated.
        var resentDuplicates: Int
        var readingIDs: [Int64]
        /// Stored readings per device key.
        var devices: [String: Int]
        var alarms: Int
        /// The alarm messages' ids ("device|code|raised|time"), in arrival order.
        var alarmIDs: [String]?
        var healthReports: Int
    }
    struct Buffer: Codable {
        var pending: Int
        var leased: Int
        var delivered: Int
    }
    struct Pipeline: Codable {
        var heard: Int, decoded: Int, failed: Int, unknown: Int, rejected: Int, deduplicated: Int, buffered: Int
        var bufferedReadings: Int, alarmsRaised: Int
    }

    var portal: Portal?
    var buffer: Buffer
    var pipeline: Pipeline
    /// Strangers heard (identity only).
    var unknownDevices: [String]

    static func write(to path: String, pipeline: ReadingPipeline, buffer: any ReadingBuffer, portal: PortalFake?, logger: Logger) async {
        let c = await pipeline.counters()
        let b = await buffer.statistics()
        let strangers = await pipeline.unknownDevices.sightings().map { "\($0.manufacturer):\($0.identification)" }.sorted()
        var summary = RunSummary(
            portal: nil, buffer: Buffer(pending: b.pending, leased: b.leased, delivered: b.delivered),
            pipeline: Pipeline(heard: c.heard, decoded: c.decoded, failed: c.failed, unknown: c.unknown, rejected: c.rejected,
                               deduplicated: c.deduplicated, buffered: c.buffered, bufferedReadings: c.bufferedReadings,
                               alarmsRaised: c.alarmsRaised),
            unknownDevices: strangers)
        if let store = portal?.store {
            summary.portal = Portal(
                readings: store.readingCount, resentDuplicates: store.duplicateReceipts,
                readingIDs: store.uniqueReadingIDs.compactMap { Int64($0) }.sorted(), devices: store.readingsPerDevice,
                alarms: store.alarms.count, alarmIDs: store.alarms.map(\.id), healthReports: store.healthReports.count)
        }
        do {
            let data = try LocalEndpoints.jsonEncoder.encode(summary)
            try data.write(to: URL(fileURLWithPath: path))
        } catch {
            logger.error("cannot write the run summary", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}
