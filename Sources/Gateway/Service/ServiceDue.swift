import Drivers

/// When a heat pump is due for its inspection (issue 18): its run hours (the profile's `service.runHours`
/// register) passed the inspection interval since the last inspection. The interval comes from the
/// device's configuration, else from the profile; the run hours at the last inspection from the device's
/// configuration (0 for a unit never inspected). Pure.
public enum ServiceDue {
    public static let code = "service_due"

    /// The alarm to add to a reading, or nil when not due, not configured, or the reading lacks the hours.
    public static func alarm(reading: ModbusReading, profile: ModbusProfile, intervalHours: Double?,
                             lastInspectionHours: Double?, device: String) -> ModbusAlarm? {
        guard let spec = profile.service, let interval = intervalHours ?? spec.inspectionIntervalHours,
              interval.isFinite, interval > 0,
              case .number(let hours)? = reading.value(spec.runHours), hours.isFinite, hours >= 0 else { return nil }
        let last = lastInspectionHours.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil } ?? 0
        let since = hours - last
        guard since >= interval else { return nil }
        let label = profile.register(named: spec.runHours)?.label ?? spec.runHours
        return ModbusAlarm(code: code, register: spec.runHours,
                           message: "\(device) has run \(format(since)) h since its last inspection (\(label) \(format(hours)) h, inspected at \(format(last)) h; interval \(format(interval)) h): plan the inspection, then set service_last_hours = \(format(hours)) for this device")
    }

    static func format(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String((d * 10).rounded() / 10)
    }
}
