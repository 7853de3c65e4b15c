import Foundation
import Gateway

/// Health of one part of the daemon, as `gatewayd status` shows it.
package enum Health: String, Codable, Sendable, Comparable {
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
    package static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

/// What the daemon says about itself on the status socket. The field names are the `--json` schema of
/// `gatewayd status` (snake_case on the wire), so change them only with docs/cli.md.
package struct DaemonStatus: Codable, Sendable, Equatable {
    package struct Component: Codable, Sendable, Equatable {
        /// "buffer", "mbus:line1", "wmbus:im871a", "modbus:heatpump", "uplink", …
        package var name: String
        package var kind: String
        package var health: Health
        /// One line a technician can act on ("no answer from 3 of 21 meters", "dongle unplugged").
        package var detail: String
        /// Counters as name → value (requests, timeouts, telegrams, …).
        package var counters: [String: Int]
        package var updatedAt: Date
    }
    package struct BufferState: Codable, Sendable, Equatable {
        package var pending: Int
        package var leased: Int
        package var waitingForClock: Int
        package var oldestPendingAgeSeconds: Double?
        package var evicted: Int
        package var delivered: Int
    }
    package struct UplinkState: Codable, Sendable, Equatable {
        package var endpoint: String
        package var state: String
        package var lastSuccess: Date?
        package var lastError: String?
        package var readingsSent: Int
    }
    /// A device heard that is not in the registry: who and how loud, never what it sent (its values are
    /// another household's data).
    package struct UnknownDevice: Codable, Sendable, Equatable {
        package var identification: String
        package var manufacturer: String
        package var deviceType: String
        package var count: Int
        package var bestRssi: Int?
        package var lastRssi: Int?
    }
    /// How well one receiver hears one registered radio meter: the median RSSI of its recent telegrams.
    package struct Reception: Codable, Sendable, Equatable {
        package var device: String
        package var receiver: String
        package var medianRssi: Double
        package var samples: Int
    }
    package struct OpenAlarm: Codable, Sendable, Equatable {
        package var device: String
        package var kind: String
        package var priority: String
        package var since: Date
        package var detail: String
    }

    package var gateway: String
    package var building: String
    package var version: String
    package var startedAt: Date
    package var demo: Bool
    package var overall: Health
    package var components: [Component]
    package var buffer: BufferState?
    package var uplink: UplinkState?
    package var alarms: [OpenAlarm]
    /// Strangers, most often heard first, at most `unknownDevicesShown`; nil from a daemon without the list.
    package var unknownDevices: [UnknownDevice]?
    /// How many strangers the daemon holds in all (the list may be cut short).
    package var unknownDeviceCount: Int?
    /// Median RSSI per registered radio meter and receiver; nil from a daemon without it.
    package var reception: [Reception]?

    package static let unknownDevicesShown = 50

    /// The status with the strangers' identities filled in from the pipeline's table.
    package func with(unknown sightings: [UnknownDevices.Sighting]) -> DaemonStatus {
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
package actor StatusBoard {
    private var status: DaemonStatus

    package init(gateway: String, building: String, demo: Bool, now: Date = Date()) {
        status = DaemonStatus(
            gateway: gateway, building: building, version: GatewaydVersion.string, startedAt: now, demo: demo,
            overall: .starting, components: [], buffer: nil, uplink: nil, alarms: [])
    }

    package func setReception(_ r: [DaemonStatus.Reception]) { status.reception = r }

    package func update(_ name: String, kind: String, health: Health, detail: String, counters: [String: Int] = [:]) {
        let entry = DaemonStatus.Component(
            name: name, kind: kind, health: health, detail: detail, counters: counters, updatedAt: Date())
        if let i = status.components.firstIndex(where: { $0.name == name }) {
            status.components[i] = entry
        } else {
            status.components.append(entry)
        }
        recomputeOverall()
    }

    package func remove(_ name: String) {
        status.components.removeAll { $0.name == name }
        recomputeOverall()
    }

    package func setBuffer(_ b: DaemonStatus.BufferState) { status.buffer = b }
    package func setUplink(_ u: DaemonStatus.UplinkState) { status.uplink = u }
    package func setAlarms(_ a: [DaemonStatus.OpenAlarm]) { status.alarms = a }

    package func snapshot() -> DaemonStatus { status }

    private func recomputeOverall() {
        status.overall = status.components.map(\.health).max() ?? .starting
    }
}
