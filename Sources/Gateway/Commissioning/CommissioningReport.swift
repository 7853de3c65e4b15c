/// The commissioning record of one building: what the installer leaves behind, the portal keeps, and a
/// technician reads years later. One document, rendered as JSON (the record itself), CSV (one row per
/// expected device, for spreadsheets), a self-contained HTML page (phones in the plant room) and a
/// terminal summary.
///
/// Privacy: devices that are not in the registry appear with identity and signal only, never values
/// (their readings belong to other households).
public struct CommissioningReport: Codable, Hashable, Sendable {
    /// Bumped when a field changes meaning; readers check it.
    public static let currentFormat = "gatewayd-commissioning/1"

    public var format: String
    /// Stable id ("commissioning-gw-0007-20261121T101500Z"): the upload's idempotency key.
    public var id: String
    public var gateway: String
    public var building: String
    /// ISO 8601 UTC.
    public var startedAt: String
    public var finishedAt: String
    /// The listening window asked for, in seconds.
    public var listenSeconds: Int
    public var endedBecause: EndReason
    public var summary: Summary
    /// Every device the registry expects to be read automatically, in registry order.
    public var devices: [DeviceResult]
    /// Identity and first values of each heat pump (also listed in `devices`).
    public var heatPumps: [HeatPumpResult]
    /// Radio devices heard that the registry does not know, most often heard first.
    public var unknownDevices: [UnknownDevice]
    /// What the installer should do, most urgent first.
    public var findings: [Finding]
    /// Per bus: what was asked and what answered.
    public var buses: [BusResult]
    /// The median RSSI (dBm) below which a device counted as weak in this run, for the charts' threshold
    /// line. Nil in reports written before it was recorded.
    public var weakSignalBelow: Double? = nil

    public enum EndReason: String, Codable, Hashable, Sendable {
        /// Every expected device was heard (and `--full` was not given).
        case allHeard = "all_heard"
        case windowOver = "window_over"
        case interrupted
    }

    public struct Summary: Codable, Hashable, Sendable {
        public var expected = 0
        public var heard = 0
        public var missing = 0
        public var wrongKey = 0
        public var noKey = 0
        public var weakSignal = 0
        public var serialMismatch = 0
        public var unknownNearby = 0
        public var telegrams = 0
        public init() {}
    }

    /// One expected device and what commissioning found out about it.
    public struct DeviceResult: Codable, Hashable, Sendable {
        /// Registry key ("wmbus:QDS:12345678").
        public var key: String
        public var bus: String
        public var unit: String?
        /// The part of the unit before the dot ("4" for "4.12"); devices without a unit are on floor "-".
        public var floor: String
        public var identification: String?
        public var manufacturer: String?
        /// What the device is, in words ("heat-cost allocator", "water meter", "heat pump").
        public var kind: String
        /// The wired line or Modbus line it is on.
        public var line: String?
        public var heard: Bool
        public var telegrams: Int
        public var rssi: SignalStatistics?
        public var decryption: Decryption
        public var serialMatch: SerialMatch
        /// Why the serial does (not) match, in words; nil when there is nothing to say.
        public var serialDetail: String?
        /// The meter profile that decoded it ("qundis-q-caloric"), or "generic EN 13757-3".
        public var profile: String?
        /// The current meter reading (the first billing value) and the set-day value, if sent.
        public var reading: Value?
        public var setDay: Value?
        /// The first few decoded values as they came.
        public var values: [Value]
        /// Why it could not be read, when it was asked (wired, Modbus) and did not answer.
        public var error: String?
        /// A radio device whose key is on file (or named by the registry) sent a telegram in the clear, or
        /// one that announces encryption but carries plain data: its values were not taken (the daemon
        /// refuses such telegrams with a `security_downgrade` alarm). Nil when not seen.
        public var securityDowngrade: String?
        /// For a wrong key: the meter under whose id the key file holds the key that does open this meter's
        /// telegrams (two rows swapped). Nil when no other key opens them, or not a key problem.
        public var keyFiledUnder: String?

        public init(key: String, bus: String, unit: String?, floor: String, identification: String?, manufacturer: String?, kind: String,
                    line: String?) {
            self.key = key
            self.bus = bus
            self.unit = unit
            self.floor = floor
            self.identification = identification
            self.manufacturer = manufacturer
            self.kind = kind
            self.line = line
            heard = false
            telegrams = 0
            rssi = nil
            decryption = .notApplicable
            serialMatch = .notChecked
            values = []
        }
    }

    public enum Decryption: String, Codable, Hashable, Sendable {
        /// The device sends in the clear.
        case plain
        case decrypted
        /// Encrypted, and the key file has no key for it.
        case noKey = "no_key"
        /// Encrypted, and the key on file does not open it.
        case wrongKey = "wrong_key"
        /// Encrypted in a mode gatewayd does not support.
        case unsupported
        /// Wired and Modbus devices, and radio devices not heard.
        case notApplicable = "not_applicable"
    }

    public enum SerialMatch: String, Codable, Hashable, Sendable {
        /// The device reports the identity the registry holds.
        case match
        case mismatch
        /// The device does not report its serial (some heat pumps): the registry's is assumed.
        case unverified
        /// Not heard, so nothing to compare.
        case notChecked = "not_checked"
    }

    /// Received signal strength over the window, in dBm.
    public struct SignalStatistics: Codable, Hashable, Sendable {
        public var best: Double
        public var worst: Double
        public var median: Double
        /// In order of arrival, at most `CommissioningSession.maximumSamples` (for the chart).
        public var samples: [Double]
    }

    /// A decoded value: "heat_cost_allocation" 1234 "HCA", or "Volume" 12.345 "m3".
    public struct Value: Codable, Hashable, Sendable {
        public var name: String
        public var value: Double
        public var unit: String
        public init(name: String, value: Double, unit: String) {
            self.name = name
            self.value = value
            self.unit = unit
        }
    }

    public struct HeatPumpResult: Codable, Hashable, Sendable {
        public var key: String
        public var line: String
        public var modbusUnit: Int
        public var profile: String?
        public var answered: Bool
        /// What the device reports about itself, per role ("monoblock", "indoor", …).
        public var identity: [ReportedSerial]
        public var registeredSerial: String?
        public var serialMatch: SerialMatch
        public var serialDetail: String?
        public var values: [Value]
        public var error: String?

        public init(key: String, line: String, modbusUnit: Int, profile: String?, registeredSerial: String?) {
            self.key = key
            self.line = line
            self.modbusUnit = modbusUnit
            self.profile = profile
            self.registeredSerial = registeredSerial
            answered = false
            identity = []
            serialMatch = .notChecked
            values = []
        }
    }

    public struct ReportedSerial: Codable, Hashable, Sendable {
        public var role: String
        public var serial: String?
        public init(role: String, serial: String?) {
            self.role = role
            self.serial = serial
        }
    }

    /// A radio device not in the registry: identity and signal only.
    public struct UnknownDevice: Codable, Hashable, Sendable {
        public var identification: String
        public var manufacturer: String
        public var type: String
        public var telegrams: Int
        // "Rssi", not "RSSI": the JSON is snake_case, and "best_rssi" must come back as the same property name.
        public var bestRssi: Double?
        public var lastRssi: Double?
        /// Set when the portal knows it in another building ("the neighbour's").
        public var note: String?
        /// The dongle or wired line it was heard on.
        public var heardOn: String?
    }

    public struct Finding: Codable, Hashable, Sendable {
        public enum Severity: String, Codable, Hashable, Sendable, Comparable {
            /// Something is not read: the building is not commissioned until it is fixed.
            case action
            /// Read, but at risk (weak signal).
            case warning
            case info

            private var rank: Int { self == .action ? 0 : (self == .warning ? 1 : 2) }
            public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
        }

        public var severity: Severity
        /// Stable code for tooling: not_heard, no_answer, wrong_key, key_of_another_meter, no_key, weak_signal, serial_mismatch,
        /// manufacturer_mismatch, heat_pump_silent, unsupported_security, unknown_nearby, bus_failed.
        public var code: String
        /// One sentence that says what is wrong and what to do.
        public var message: String
        /// Registry keys concerned (empty for building-wide findings).
        public var devices: [String]

        public init(severity: Severity, code: String, message: String, devices: [String]) {
            self.severity = severity
            self.code = code
            self.message = message
            self.devices = devices
        }
    }

    public struct BusResult: Codable, Hashable, Sendable {
        public var name: String
        /// "wmbus", "mbus", "modbus".
        public var kind: String
        /// "ok", or what went wrong with the bus itself (port not found, dongle not answering).
        public var state: String
        public var expected: Int
        public var heard: Int
        /// Telegrams or readouts received on it.
        public var telegrams: Int
        /// Seconds from the start until every expected device on it was heard (radio), or until its first
        /// full pass was done (wired lines, heat pumps); nil when that did not happen in the window.
        public var completedAfterSeconds: Double?
        public init(name: String, kind: String, state: String, expected: Int, heard: Int, telegrams: Int) {
            self.name = name
            self.kind = kind
            self.state = state
            self.expected = expected
            self.heard = heard
            self.telegrams = telegrams
        }
    }
}
