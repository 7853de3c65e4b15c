import Drivers

/// One thing a source hands the pipeline: a telegram from a wired line, a radio telegram from a dongle,
/// register values from a Modbus line, or a technician's manual reading.
public enum PipelineInput: Sendable {
    case wired(WiredInput)
    case wireless(WirelessInput)
    case modbus(ModbusInput)
    case manual(ManualReading)
}

/// A wired M-Bus answer: frame bytes (the pipeline decodes them) or a telegram `MBusLine.read` already
/// decoded (`Readout.assembled`).
public struct WiredInput: Sendable {
    public enum Payload: Sendable {
        case frame([UInt8])
        case telegram(Telegram)
    }
    public var payload: Payload
    /// Line name as the registry's `line` field has it ("mbus-line-1").
    public var line: String
    /// Unix milliseconds by the gateway's clock.
    public var receivedAt: Int64
    /// Each RSP_UD frame as received, when `payload` is a telegram assembled from them: kept by the frame
    /// journal for support bundles, not decoded again.
    public var frames: [[UInt8]]

    public init(_ payload: Payload, line: String, receivedAt: Int64, frames: [[UInt8]] = []) {
        self.payload = payload
        self.line = line
        self.receivedAt = receivedAt
        self.frames = frames
    }
}

/// A wireless M-Bus telegram from a dongle, with its signal strength.
public struct WirelessInput: Sendable {
    public enum Payload: Sendable {
        /// As received (L-field first); the pipeline's `WirelessDecoder` decrypts with the keyring.
        case frame([UInt8], format: WMBusFrameFormat?, linkMode: WMBusLinkMode?)
        case telegram(WirelessTelegram)
    }
    public var payload: Payload
    /// Dongle name ("im871a", or its /dev/serial/by-id link).
    public var dongle: String
    public var rssi: Int16?
    public var receivedAt: Int64
    /// Alarm flags a meter profile decoded from this telegram; nil when no profile evaluated it (flags
    /// raised earlier then stay as they are).
    public var alarmFlags: Set<MeterAlarmFlag>?

    public init(_ payload: Payload, dongle: String, rssi: Int16?, receivedAt: Int64, alarmFlags: Set<MeterAlarmFlag>? = nil) {
        self.payload = payload
        self.dongle = dongle
        self.rssi = rssi
        self.receivedAt = receivedAt
        self.alarmFlags = alarmFlags
    }
}

/// One profile read of a heat pump (`ModbusLine.read`): values, fault codes and the serials it reports.
public struct ModbusInput: Sendable {
    public var reading: ModbusReading
    public var line: String
    public var receivedAt: Int64

    public init(_ reading: ModbusReading, line: String, receivedAt: Int64) {
        self.reading = reading
        self.line = line
        self.receivedAt = receivedAt
    }
}

/// A reading a technician entered by hand, already checked by `ManualEntryPolicy`.
public struct ManualReading: Hashable, Sendable {
    public var device: String
    public var value: NormalisedValue
    public var receivedAt: Int64
    /// "manual", or "manual (forced: REASON)".
    public var source: String

    public init(device: String, value: NormalisedValue, receivedAt: Int64, source: String) {
        self.device = device
        self.value = value
        self.receivedAt = receivedAt
        self.source = source
    }
}

/// What became of one input.
public enum PipelineOutcome: Hashable, Sendable, CustomStringConvertible {
    /// Stored: `readings` values and `alarms` alarm edges of `device`.
    case buffered(device: String, readings: Int, alarms: [Alarm])
    /// The same content from this device was stored within the dedup window.
    case duplicate(device: String)
    /// Not a device of this building: its identity is kept in `UnknownDevices`, its values are not.
    case unknownDevice(RejectionReason)
    /// A known or well-formed identity whose readings must not be filed (replaced, wrong serial, …).
    case rejected(RejectionReason)
    /// Could not be decoded or carried nothing to store; the text says why and what to do.
    case failed(String)

    public var description: String {
        switch self {
        case .buffered(let d, let n, let a): return "\(d): \(n) values buffered" + (a.isEmpty ? "" : ", \(a.count) alarm edges")
        case .duplicate(let d): return "\(d): heard again within the dedup window, dropped"
        case .unknownDevice(let r): return "\(r) (kept as a sighting, values not stored)"
        case .rejected(let r): return r.description
        case .failed(let s): return s
        }
    }
}

/// Counters per pipeline step, for metrics and the health report.
public struct PipelineCounters: Hashable, Sendable {
    /// Inputs from the buses (telegrams and register reads), manual entries not included.
    public var heard = 0
    public var decoded = 0
    public var failed = 0
    public var unknown = 0
    public var rejected = 0
    public var deduplicated = 0
    /// Inputs whose readings were committed to the buffer.
    public var buffered = 0
    /// Value readings committed (one input gives many).
    public var bufferedReadings = 0
    public var alarmsRaised = 0
    public var alarmsCleared = 0
    public var manual = 0
    /// Inputs whose readings the buffer refused (disk full); see the buffer's events.
    public var bufferFailures = 0
    /// Values refused alone (not finite, not convertible); the rest of their telegram is stored.
    public var refusedValues = 0
    /// Telegrams refused because a meter that must encrypt sent them in the clear (also in `rejected`).
    public var securityDowngrades = 0
    /// Radio telegrams that did not open, by `KeyDiagnosis.Kind` ("wrong_key", "key_of_another_meter", …).
    public var keyFindings: [String: Int] = [:]

    public init() {}
}
