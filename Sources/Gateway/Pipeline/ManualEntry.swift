import Foundation

/// Why a manual reading is refused, in words for the technician at the meter.
public struct ManualEntryError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }
        public static let noSuchDevice = Code(name: "no_such_device")
        public static let readAutomatically = Code(name: "read_automatically")
        public static let reasonRequired = Code(name: "reason_required")
        public static let replaced = Code(name: "replaced")
        public static let invalidValue = Code(name: "invalid_value")
        public static let unknownUnit = Code(name: "unknown_unit")
        public static let invalidDate = Code(name: "invalid_date")
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// What a technician typed: `gatewayd reading add --device D --value V [--unit U] [--date YYYY-MM-DD] [--force --reason TEXT]`.
public struct ManualEntryRequest: Hashable, Sendable {
    public var device: String
    public var value: Double
    public var unit: String?
    /// The day the meter was read ("2026-03-31"); today when absent.
    public var date: String?
    public var force: Bool
    public var reason: String?

    public init(device: String, value: Double, unit: String? = nil, date: String? = nil, force: Bool = false, reason: String? = nil) {
        self.device = device
        self.value = value
        self.unit = unit
        self.date = date
        self.force = force
        self.reason = reason
    }
}

/// Who may enter readings by hand: devices without bus or radio freely; devices the gateway reads itself only
/// with `--force` and a reason (kept with the reading), as the portals block manual entry for radio meters.
public enum ManualEntryPolicy {
    /// Checks a request against the registry and makes the reading. `now` is Unix milliseconds.
    ///
    /// Manual readings are stored as set-day class: a technician's visit cannot be repeated cheaply, so the
    /// buffer keeps them as long as billing values.
    public static func check(_ request: ManualEntryRequest, registry: DeviceRegistry, now: Int64,
                             timeZone: TimeZone = .current) throws(ManualEntryError) -> ManualReading {
        guard let device = registry.device(key: request.device)
            ?? registry.devices.first(where: { $0.identification == request.device && $0.replacedBy == nil }) else {
            throw ManualEntryError(.noSuchDevice, "\(request.device): no such device in the registry; give its key (e.g. mbus:KAM:06855817) or its 8-digit id")
        }
        if let by = device.replacedBy {
            throw ManualEntryError(.replaced, "\(device.key) was replaced\(device.replacedOn.map { " on \($0)" } ?? "") by \(by): enter the reading for \(by)")
        }
        let reason = request.reason?.trimmingCharacters(in: .whitespacesAndNewlines)
        if device.bus.isReadAutomatically {
            guard request.force else {
                throw ManualEntryError(.readAutomatically, "\(device.key) is read automatically over \(busName(device.bus)); a manual reading would compete with the meter's own. If the bus or radio has failed, repeat with --force --reason \"why\"")
            }
            guard let reason, !reason.isEmpty else {
                throw ManualEntryError(.reasonRequired, "--force needs --reason: say why \(device.key) is read by hand (kept with the reading)")
            }
        }
        guard request.value.isFinite else { throw ManualEntryError(.invalidValue, "the value must be a finite number") }
        var quantity = "Meter reading"
        var unit = ""
        var si = request.value
        if let u = request.unit {
            guard let c = UnitCatalog.conversion(u) else {
                throw ManualEntryError(.unknownUnit, "unit \(u) is not known; use one of \(UnitCatalog.knownUnits.joined(separator: ", "))")
            }
            quantity = c.quantity
            unit = c.unit
            si = request.value * c.factor + c.offset
        }
        var meterTime = now / 1000
        if let d = request.date {
            guard let t = parseDate(d, zone: timeZone) else {
                throw ManualEntryError(.invalidDate, "--date \(d) is not a date; write YYYY-MM-DD, e.g. 2026-03-31")
            }
            guard t <= now / 1000 else { throw ManualEntryError(.invalidDate, "--date \(d) is in the future") }
            meterTime = t
        }
        let rawValue = formatNumber(request.value) + (request.unit.map { " " + $0 } ?? "")
        let forced = request.force && device.bus.isReadAutomatically
        let raw = forced ? "\(rawValue); forced: \(reason ?? "")" : rawValue
        let source = forced ? "manual (forced: \(reason ?? ""))" : "manual"
        return ManualReading(device: device.key, value: NormalisedValue(quantity: quantity, value: si, unit: unit, raw: raw,
                                                                         meterTime: meterTime, readingClass: .setDay),
                             receivedAt: now, source: source)
    }

    static func busName(_ b: BusKind) -> String {
        switch b {
        case .wiredMBus: return "wired M-Bus"
        case .wirelessMBus: return "wireless M-Bus"
        case .modbus: return "Modbus"
        case .manual: return "no bus"
        }
    }

    /// "YYYY-MM-DD" → Unix seconds of local midnight in `zone`.
    static func parseDate(_ text: String, zone: TimeZone) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1...12).contains(m), d >= 1 else { return nil }
        let monthDays = [31, (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard d <= monthDays[m - 1] else { return nil }
        let naive = MeterClock.civilSeconds(year: y, month: m, day: d)
        return naive - Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(naive))))
    }

    static func formatNumber(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}
