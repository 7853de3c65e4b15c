// The reading buffer (Gateway) as the uplink's batch source (Uplink): leases readings from a
// ReadingBuffer, serialises them to the portal's JSON (docs/portal-api.md) and settles the lease when
// every reading of it is acknowledged or rejected.
//
// Shared with gateway-bench through a symlink (Sources/gateway-bench/BufferUplinkAdapter.swift), so keep
// it to Gateway, Uplink and the standard library.
import Gateway
import Synchronization
import Uplink

package final class BufferUplinkSource: UplinkBatchSource, Sendable {
    /// Readings the portal refused for good (HTTP 400 naming them), with its reason: the daemon keeps
    /// them in a quarantine file and raises an alarm. They are deleted from the buffer.
    /// It must throw when the readings are not safely on disk: they are deleted from the buffer only
    /// after it returns.
    package typealias Quarantine = @Sendable (_ readings: [Reading], _ reason: String) async throws -> Void

    private struct Lease {
        package var bufferBatch: Int64
        package var outstanding: [String: Reading]
    }

    private let buffer: any ReadingBuffer
    private let quarantine: Quarantine?
    /// Batch ids must not repeat across restarts (the buffer's lease ids may): a per-start prefix.
    private let prefix: String
    private let state = Mutex<(leases: [String: Lease], bytesPerReading: Int)>(([:], 240))

    package init(buffer: any ReadingBuffer, quarantine: Quarantine? = nil) {
        self.buffer = buffer
        self.quarantine = quarantine
        prefix = String(UInt64.random(in: 0...UInt64.max) & 0xFFFF_FFFF_FFFF, radix: 36)
    }

    /// Readings leased and not yet settled (the uploader's window).
    package var leasedReadings: Int { state.withLock { $0.leases.values.reduce(0) { $0 + $1.outstanding.count } } }

    /// The buffer leases by count only, so the count is chosen from the bytes per reading seen so far;
    /// a batch that still comes out too large is split by the uploader when the portal answers 413.
    /// The buffer's own order (alarms first, then set-day values, then oldest first) answers every
    /// priority hint.
    package func nextBatch(maxReadings: Int, maxBytes: Int) async throws -> UplinkBatch? {
        let estimate = state.withLock { $0.bytesPerReading }
        let count = max(1, min(maxReadings, (maxBytes - 64) / max(estimate, 1)))
        guard let leased = try await buffer.takeBatch(maxReadings: count) else { return nil }
        let id = "\(prefix)-\(leased.id)"
        var bodies: [[UInt8]] = []
        bodies.reserveCapacity(leased.readings.count)
        var ids: [String] = []
        ids.reserveCapacity(leased.readings.count)
        var outstanding: [String: Reading] = [:]
        var bytes = 0
        for r in leased.readings {
            let readingID = String(r.id ?? 0)
            let json = Self.uplinkReading(r, id: readingID).json
            bytes += json.count + 1
            bodies.append(json)
            ids.append(readingID)
            outstanding[readingID] = r
        }
        let perReading = bytes / max(1, leased.readings.count) + 1
        state.withLock { s in
            s.leases[id] = Lease(bufferBatch: leased.id, outstanding: outstanding)
            s.bytesPerReading = (s.bytesPerReading * 3 + perReading * 5 / 4) / 4
        }
        return UplinkBatch(id: id, readingIDs: ids, body: ReadingsBody.encode(batchID: id, readings: bodies))
    }

    package func acknowledge(batchID: String, readingIDs: [String]) async throws {
        _ = try await settle(batchID, readingIDs)
    }

    /// Quarantines first, settles after: a reading leaves the buffer only once the quarantine file holds
    /// it. A failed quarantine throws (the uploader retries; the readings stay leased, and go out again
    /// after a restart).
    package func reject(batchID: String, readingIDs: [String], reason: String) async throws {
        let refused: [Reading] = state.withLock { s in
            guard let lease = s.leases[batchID] else { return [] }
            return readingIDs.compactMap { lease.outstanding[$0] }
        }
        if !refused.isEmpty { try await quarantine?(refused, reason) }
        _ = try await settle(batchID, readingIDs)
    }

    /// Takes the readings off the lease; deletes the buffer batch when nothing of it is outstanding.
    private func settle(_ batchID: String, _ readingIDs: [String]) async throws -> [Reading] {
        let (done, settled): (Int64?, [Reading]) = state.withLock { s in
            guard var lease = s.leases[batchID] else { return (nil, []) }
            var settled: [Reading] = []
            for id in readingIDs { if let r = lease.outstanding.removeValue(forKey: id) { settled.append(r) } }
            if lease.outstanding.isEmpty {
                s.leases[batchID] = nil
                return (lease.bufferBatch, settled)
            }
            s.leases[batchID] = lease
            return (nil, settled)
        }
        if let done { try await buffer.markDelivered(done) }
        return settled
    }

    package static func uplinkReading(_ r: Reading, id: String) -> UplinkReading {
        UplinkReading(id: id, device: r.device, quantity: r.quantity, value: r.value, unit: r.unit, raw: r.raw,
                      meterTime: r.meterTime, receivedAt: r.receivedAt, storage: r.storage, tariff: r.tariff,
                      subunit: r.subunit, source: r.source, rssi: r.rssi, status: r.status,
                      readingClass: className(r.readingClass))
    }

    package static func className(_ c: ReadingClass) -> String {
        switch c {
        case .routine: return "routine"
        case .setDay: return "set_day"
        case .alarm: return "alarm"
        }
    }
}
