import Drivers

/// How urgently someone must act. Ordered: `critical` is the highest.
public enum AlarmPriority: UInt8, Hashable, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case info = 0
    case minor = 1
    case major = 2
    case critical = 3

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .info: return "info"
        case .minor: return "minor"
        case .major: return "major"
        case .critical: return "critical"
        }
    }
}

/// A condition that is true of a device right now ("leak", "status:power_low", "fault:current_error:9").
public struct AlarmCondition: Hashable, Sendable {
    /// Stable key; an alarm is raised when its code appears and cleared when it goes.
    public var code: String
    public var priority: AlarmPriority
    public var message: String

    public init(code: String, priority: AlarmPriority, message: String) {
        self.code = code
        self.priority = priority
        self.message = message
    }
}

/// One edge of an alarm: raised at its onset, cleared when the condition went away.
public struct Alarm: Hashable, Sendable, CustomStringConvertible {
    public enum State: String, Hashable, Sendable {
        case raised, cleared
    }

    /// Device key ("wmbus:QDS:22222222"), or "line:NAME" for a bus, "gateway" for the gateway itself.
    public var device: String
    public var code: String
    public var priority: AlarmPriority
    public var state: State
    public var message: String
    /// Unix milliseconds by the gateway's clock.
    public var at: Int64
    public var source: String

    public init(device: String, code: String, priority: AlarmPriority, state: State, message: String, at: Int64, source: String = "") {
        self.device = device
        self.code = code
        self.priority = priority
        self.state = state
        self.message = message
        self.at = at
        self.source = source
    }

    public var description: String { "\(state) \(priority) \(device) \(code): \(message)" }

    /// Quantity prefix of alarm readings in the buffer (see docs/buffer.md, "Alarms in the buffer").
    public static let quantityPrefix = "alarm:"

    /// The alarm as a buffer reading of class `.alarm`: quantity "alarm:CODE", value 1 raised / 0 cleared,
    /// status = priority, raw = the message. It travels with the readings and is evicted last.
    public func reading(clockSynchronised: Bool = true) -> Reading {
        Reading(device: device, quantity: Self.quantityPrefix + code, value: state == .raised ? 1 : 0, unit: "",
                raw: message, receivedAt: at, clockSynchronised: clockSynchronised, source: source,
                status: UInt16(priority.rawValue), readingClass: .alarm)
    }

    /// Reads an alarm back from a buffer reading (what the uplink or a test sees); nil for other readings.
    public init?(reading r: Reading) {
        guard r.readingClass == .alarm, r.quantity.hasPrefix(Self.quantityPrefix),
              let p = AlarmPriority(rawValue: UInt8(truncatingIfNeeded: r.status)) else { return nil }
        self.init(device: r.device, code: String(r.quantity.dropFirst(Self.quantityPrefix.count)), priority: p,
                  state: r.value != 0 ? .raised : .cleared, message: r.raw, at: r.receivedAt, source: r.source)
    }
}

/// Alarm flags a wireless meter profile reports (the profile evaluator hands them in by name).
public enum MeterAlarmFlag: String, Hashable, Sendable, CaseIterable {
    case leak, burst, dry, backflow, tamper, battery, removal

    public var priority: AlarmPriority {
        switch self {
        case .leak, .burst, .removal: return .critical
        case .dry, .backflow, .tamper: return .major
        case .battery: return .minor
        }
    }

    public var message: String {
        switch self {
        case .leak: return "the meter reports a leak: check the installation behind it"
        case .burst: return "the meter reports a burst (very high flow): check for a broken pipe"
        case .dry: return "the meter runs dry (no water in the pipe)"
        case .backflow: return "the meter reports backflow: check the non-return valve and the mounting direction"
        case .tamper: return "the meter reports tampering (magnet or opened casing)"
        case .battery: return "the meter's battery is low: plan a replacement"
        case .removal: return "the meter reports it was removed from its mounting"
        }
    }

    public var condition: AlarmCondition { AlarmCondition(code: "flag:" + rawValue, priority: priority, message: message) }
}

/// Turns what devices report into alarm conditions.
public enum AlarmConditions {
    /// The EN 13757-3 status byte (Table 9): one condition per bit that is set.
    public static func status(_ s: MeterStatus) -> [AlarmCondition] {
        var out: [AlarmCondition] = []
        if s.applicationBusy { out.append(.init(code: "status:application_busy", priority: .info, message: "the meter reports application busy")) }
        if s.applicationError { out.append(.init(code: "status:application_error", priority: .major, message: "the meter reports an application error")) }
        if s.abnormalCondition { out.append(.init(code: "status:abnormal_condition", priority: .major, message: "the meter reports an abnormal condition (alarm)")) }
        if s.powerLow { out.append(.init(code: "status:power_low", priority: .minor, message: "the meter reports power low (battery): plan a replacement")) }
        if s.permanentError { out.append(.init(code: "status:permanent_error", priority: .critical, message: "the meter reports a permanent error: it needs replacing")) }
        if s.temporaryError { out.append(.init(code: "status:temporary_error", priority: .minor, message: "the meter reports a temporary error")) }
        for bit in 5...7 where s.rawValue & (1 << bit) != 0 {
            out.append(.init(code: "status:manufacturer_bit_\(bit)", priority: .info,
                             message: "manufacturer-specific status bit \(bit) is set: see the meter's manual"))
        }
        return out
    }

    /// Heat-pump faults the Modbus profile found (fault-code registers, alarm bitfields).
    public static func modbus(_ alarms: [ModbusAlarm], priority: AlarmPriority = .major) -> [AlarmCondition] {
        alarms.map { a in
            // An inspection due is planning information, not a fault of the unit.
            a.code == ServiceDue.code
                ? AlarmCondition(code: ServiceDue.code, priority: .minor, message: a.message)
                : AlarmCondition(code: "fault:" + a.code, priority: priority, message: a.message)
        }
    }
}

/// Raises an alarm once per onset and clears it once when the condition goes away: the state of which
/// conditions are active, per device and scope (status byte, profile flags, faults, line health).
///
/// A scope is only re-evaluated when a telegram says something about it, so a telegram without a status
/// byte does not clear status alarms.
public struct AlarmTracker: Sendable {
    struct Key: Hashable { var device: String; var scope: String }
    private var active: [Key: [String: AlarmCondition]] = [:]

    public init() {}

    /// Compares `conditions` with what was active for this device and scope; returns the edges.
    public mutating func update(device: String, scope: String, conditions: [AlarmCondition], at: Int64, source: String = "") -> [Alarm] {
        let key = Key(device: device, scope: scope)
        let before = active[key] ?? [:]
        var now: [String: AlarmCondition] = [:]
        for c in conditions { now[c.code] = c }
        if now.isEmpty && before.isEmpty { return [] }
        var edges: [Alarm] = []
        var raised = Set<String>()
        for c in conditions where before[c.code] == nil && raised.insert(c.code).inserted {
            let c = now[c.code]!
            edges.append(Alarm(device: device, code: c.code, priority: c.priority, state: .raised, message: c.message, at: at, source: source))
        }
        for (code, c) in before.sorted(by: { $0.key < $1.key }) where now[code] == nil {
            edges.append(Alarm(device: device, code: code, priority: c.priority, state: .cleared,
                               message: "cleared: " + c.message, at: at, source: source))
        }
        active[key] = now.isEmpty ? nil : now
        return edges
    }

    /// What is active now, highest priority first.
    public var activeAlarms: [(device: String, condition: AlarmCondition)] {
        active.flatMap { k, v in v.values.map { (k.device, $0) } }
            .sorted { ($0.condition.priority, $1.device, $1.condition.code) > ($1.condition.priority, $0.device, $0.condition.code) }
    }

    /// Opaque copy of one device's state, to undo an update whose alarm readings were not stored.
    func snapshot(device: String, scope: String) -> [String: AlarmCondition]? { active[Key(device: device, scope: scope)] }
    mutating func restore(device: String, scope: String, _ state: [String: AlarmCondition]?) { active[Key(device: device, scope: scope)] = state }
}
