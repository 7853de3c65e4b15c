import Foundation
import Gateway
import Logging

/// What a run did, written at exit with `gatewayd run --summary PATH`: for a newcomer's demo and for
/// the end-to-end tests, which compare the portal sink with the buffer left on disk.
package struct RunSummary: Codable {
    package struct Portal: Codable {
        /// Distinct reading ids the sink stored.
        package var readings: Int
        /// Receipts beyond the first of a reading: resends the sink deduplicated.
        package var resentDuplicates: Int
        package var readingIDs: [Int64]
        /// Stored readings per device key.
        package var devices: [String: Int]
        package var alarms: Int
        /// The alarm messages' ids ("device|code|raised|time"), in arrival order.
        package var alarmIDs: [String]?
        package var healthReports: Int
    }
    package struct Buffer: Codable {
        package var pending: Int
        package var leased: Int
        package var delivered: Int
    }
    package struct Pipeline: Codable {
        package var heard: Int, decoded: Int, failed: Int, unknown: Int, rejected: Int, deduplicated: Int, buffered: Int
        package var bufferedReadings: Int, alarmsRaised: Int
    }

    package var portal: Portal?
    package var buffer: Buffer
    package var pipeline: Pipeline
    /// Strangers heard (identity only).
    package var unknownDevices: [String]

    package static func write(to path: String, pipeline: ReadingPipeline, buffer: any ReadingBuffer, portal: PortalSinkSummary?, logger: Logger) async {
        let c = await pipeline.counters()
        let b = await buffer.statistics()
        let strangers = await pipeline.unknownDevices.sightings().map { "\($0.manufacturer):\($0.identification)" }.sorted()
        var summary = RunSummary(
            portal: nil, buffer: Buffer(pending: b.pending, leased: b.leased, delivered: b.delivered),
            pipeline: Pipeline(heard: c.heard, decoded: c.decoded, failed: c.failed, unknown: c.unknown, rejected: c.rejected,
                               deduplicated: c.deduplicated, buffered: c.buffered, bufferedReadings: c.bufferedReadings,
                               alarmsRaised: c.alarmsRaised),
            unknownDevices: strangers)
        if let p = portal {
            summary.portal = Portal(
                readings: p.readings, resentDuplicates: p.resentDuplicates, readingIDs: p.readingIDs, devices: p.devices,
                alarms: p.alarms, alarmIDs: p.alarmIDs, healthReports: p.healthReports)
        }
        do {
            let data = try LocalEndpoints.jsonEncoder.encode(summary)
            try data.write(to: URL(fileURLWithPath: path))
        } catch {
            logger.error("cannot write the run summary", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}
