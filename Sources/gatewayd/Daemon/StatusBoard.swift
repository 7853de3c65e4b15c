import Foundation
import Gateway

/// Health of one part of the daemon, as `gatewayd status` shows it.
enum Health: String, Codable, Sendable, Comparable {
    case starting, healthy, degraded, failed, stopped

    private var rank: Int {
        switch self {
        case .healthy: 0
        case .starting: 1
        case .stopped: 2
        case .degraded: 3
        case .failed: 4
        }
    }
    static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

/// What the daemon says about itself on the status socket. The field names are the `--json` schema of
/// `gatewayd status` (snake_case on the wire), so change them only with docs/cli.md.
struct DaemonStatus: Codable, Sendable, Equatable {
    struct Component: Codable, Sendable, Equatable {
        /// "buffer", "mbus:line1", "wmbus:im871a", "modbus:heatpump", "uplink", …
        var name: String
        var kind: String
        var health: Health
        /// One line a technician can act on ("no answer from 3 of 21 meters", "dongle unplugged").
        var detail: String
        /// Counters as name → value (requests, timeouts, telegrams, …).
        var counters: [String: Int]
        var updatedAt: Date
    }
    struct BufferState: Codable, Sendable, Equatable {
        var pending: Int
        var leased: Int
        var waitingForClock: Int
        var oldestPendingAgeSeconds: Double?
        var evicted: Int
        var delivered: Int
    }
    struct UplinkState: Codable, Sendable, Equatable {
        var endpoint: String
        var state: String
        var lastSuccess: Date?
        var lastError: String?
        var readingsSent: Int
    }
    /// A device heard that is not in the registry: who and how loud, never what it sent (its values are
    /// another household's data).
    struct UnknownDevice: Codable, Sendable, Equatable {
        var identification: String
        var manufacturer: String
        var deviceType: String
        var count: Int
        var bestRssi: Int?
        var lastRssi: Int?
    }
    /// How well one receiver hears one registered radio meter: the median RSSI of its recent telegrams.
    struct Reception: Codable, Sendable, Equatable {
        var device: String
        var receiver: String
        var medianRssi: Double
        var samples: Int
    }
    struct OpenAlarm: Codable, Sendable, Equatable {
        var device: String
        var kind: String
        var priority: String
        var since: Date
        var detail: String
    }

    var gateway: String
    var building: String
    var version: String
    var startedAt: Date
    var demo: Bool
    var overall: Health
    var components: [Component]
    var buffer: BufferState?
    var uplink: UplinkState?
    var alarms: [OpenAlarm]
    /// Strangers, most often heard first, at most `unknownDevicesShown`; nil from a daemon without the list.
    var unknownDevices: [UnknownDevice]?
    /// How many strangers the daemon holds in all (the list may be cut short).
    var unknownDeviceCount: Int?
    /// Median RSSI per registered radio meter and receiver; nil from a daemon without it.
    var reception: [Reception]?

    static let unknownDevicesShown = 50

    /// The status with the strangers' identities filled in from the pipeline's table.
    func with(unknown sightings: [UnknownDevices.Sighting]) -> DaemonStatus {
        var s = self
        s.unknownDeviceCount = sightings.count
        s.unknownDevices = sightings.prefix(Self.unknownDevicesShown).map {
            UnknownDevice(identification: $0.identification, manufacturer: $0.manufacturer, deviceType: $0.deviceType,
                          count: $0.count, bestRssi: $0.bestRSSI, lastRssi: $0.lastRSSI)
        }
        return s
    }
}

/// The daemon's shared picture of itself: services write their part, the status socket and health
/// telemetry read the whole. An actor, because bus threads, the uplink and the endpoints all touch it.
actor StatusBoard {
    private var status: DaemonStatus

    init(gateway: String, building: String, demo: Bool, now: Date = Date()) {
        status = DaemonStatus(
            gateway: gateway, building: building, version: GatewaydVersion.string, startedAt: now, demo: demo,
            overall: .starting, components: [], buffer: nil, uplink: nil, alarms: [])
    }

    func setReception(_ r: [DaemonStatus.Reception]) { status.reception = r }

    func update(_ name: String, kind: String, health: Health, detail: String, counters: [String: Int] = [:]) {
        let entry = DaemonStatus.Component(
            name: name, kind: kind, health: health, detail: detail, counters: counters, updatedAt: Date())
        if let i = status.components.firstIndex(where: { $0.name == name }) {
            status.components[i] = entry
        } else {
            status.components.append(entry)
        }
        recomputeOverall()
    }

    func remove(_ name: String) {
        status.components.removeAll { $0.name == name }
        recomputeOverall()
    }

    func setBuffer(_ b: DaemonStatus.BufferState) { status.buffer = b }
    func setUplink(_ u: DaemonStatus.UplinkState) { status.uplink = u }
    func setAlarms(_ a: [DaemonStatus.OpenAlarm]) { status.alarms = a }

    func snapshot() -> DaemonStatus { status }

    private func recomputeOverall() {
        status.overall = status.components.map(\.health).max() ?? .starting
    }
}
