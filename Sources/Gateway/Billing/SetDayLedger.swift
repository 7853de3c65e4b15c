import Drivers
import Foundation

/// Proof that each device's billing (set-day) value was captured: per device, the newest set-day period
/// seen, its value and when the gateway stored it. The portals bill by these values (Brunata's annual
/// reading), so a missing one must be visible before the bill, not after.
///
/// A set-day reading is one the normaliser classed `.setDay` (a profile's set-day value, or a record with
/// storage ≥ 1 and a date), from a wired readout or a radio telegram alike. Its period is the set-day date:
/// the meter's timestamp to the nearest day (set days are midnights in the meter's zone, within 12 hours of
/// UTC midnight). Pure: the pipeline decides when to save it.
public struct SetDayLedger: Codable, Hashable, Sendable {
    public struct Capture: Codable, Hashable, Sendable {
        /// The set-day date, "2025-12-31".
        public var period: String
        public var quantity: String
        public var value: Double
        public var unit: String
        /// When the gateway stored it (Unix milliseconds).
        public var capturedAt: Int64
        public var source: String
    }

    public private(set) var devices: [String: Capture] = [:]
    /// Per wired or Modbus line, when its last set-day readout was due (Unix ms): a set day that passed while
    /// the gateway was off is read out at the next start (`LineSchedule`).
    public private(set) var readouts: [String: Int64]?

    public init() {}

    /// The line's set-day readout due at `dueAt` has run.
    public mutating func readoutDone(line: String, dueAt: Int64) {
        var r = readouts ?? [:]
        if let known = r[line], known >= dueAt { return }
        r[line] = dueAt
        readouts = r
    }

    /// "2025-12-31" for a set-day timestamp (Unix seconds), rounded to the nearest day; nil when out of range.
    public static func period(meterTime: Int64) -> String? {
        guard meterTime > -62_000_000_000, meterTime < 250_000_000_000 else { return nil }
        let day = (meterTime + 43_200).quotientAndRemainder(dividingBy: 86_400)
        let days = day.remainder < 0 ? day.quotient - 1 : day.quotient
        let (y, m, d) = CivilCalendar.date(days: Int(days))
        guard (1...9999).contains(y) else { return nil }
        return String(format: "%04d-%02d-%02d", y, m, d)
    }

    /// A proof record to store, and the capture it makes once stored.
    public struct Pending: Sendable {
        public var reading: Reading
        public var capture: Capture
    }

    /// The "set_day_captured" records for the set-day readings of `readings` that open a newer period for
    /// their device than the ledger holds (one per device and period, the first quantity seen). The caller
    /// stores them with the readings and then `apply`s them.
    public func newCaptures(in readings: [Reading]) -> [Pending] {
        var out: [String: Pending] = [:]
        var order: [String] = []
        for r in readings where r.readingClass == .setDay && r.quantity != Self.quantity && r.value.isFinite {
            guard let t = r.meterTime, let period = Self.period(meterTime: t) else { continue }
            if let known = out[r.device]?.capture.period ?? devices[r.device]?.period, known >= period { continue }
            if out[r.device] == nil { order.append(r.device) }
            let proof = Reading(device: r.device, quantity: Self.quantity, value: r.value, unit: r.unit,
                                raw: "set day \(period): \(r.quantity) \(r.raw)", meterTime: t, receivedAt: r.receivedAt,
                                clockSynchronised: r.clockSynchronised, storage: r.storage, source: r.source, readingClass: .setDay)
            out[r.device] = Pending(reading: proof, capture: Capture(period: period, quantity: r.quantity, value: r.value, unit: r.unit,
                                                                     capturedAt: r.receivedAt, source: r.source))
        }
        return order.compactMap { out[$0] }
    }

    /// Records captures made by `newCaptures` once they are stored.
    public mutating func apply(_ pending: [Pending]) {
        for p in pending {
            if let known = devices[p.reading.device]?.period, known >= p.capture.period { continue }
            devices[p.reading.device] = p.capture
        }
    }

    /// Keeps only these devices (the registry's): a ledger never grows beyond the building.
    public mutating func keep(only keys: Set<String>) { devices = devices.filter { keys.contains($0.key) } }

    /// The quantity of the explicit proof record sent to the portal.
    public static let quantity = "set_day_captured"

    /// Devices whose newest captured period is before `due` ("2025-12-31"), or that have none.
    public func missing(of expected: [String], due: String) -> [(device: String, last: Capture?)] {
        expected.compactMap { key in
            let c = devices[key]
            if let c, c.period >= due { return nil }
            return (key, c)
        }
    }
}

/// Where the ledger is kept between runs, beside the buffer (`set-days.json`).
public struct SetDayLedgerFile: Sendable {
    public typealias LedgerError = StateFileError
    let file: StateFile<SetDayLedger>
    public var path: String { file.path }

    public init(path: String) {
        file = StateFile(path: path, what: "set-day ledger", consequence: "the gateway starts a new one", pretty: true)
    }

    /// The ledger, or an empty one when the file does not exist. A damaged file is an error naming it.
    public func load() throws(StateFileError) -> SetDayLedger { try file.load(orEmpty: SetDayLedger()) }

    public func save(_ ledger: SetDayLedger) throws(StateFileError) { try file.save(ledger) }

    /// At start: a damaged ledger is set aside and a new one begun.
    public func loadOrSetAside(now: Int64) -> (value: SetDayLedger, problem: StateFileError?) {
        file.loadOrSetAside(orEmpty: SetDayLedger(), now: now)
    }
}
