/// The outcome of comparing what a device reports with what the registry holds, per unit.
public enum IdentityFinding: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The device reports the serial the registry expects.
    case verified(role: String, serial: String)
    /// The device does not expose a serial: the registry's is used and marked as not verified.
    case unverified(role: String, registrySerial: String, reason: String)
    /// The device reports another serial: the data must not go out under the registry's device.
    case mismatch(role: String, reported: String, expected: String, alarm: ModbusAlarm)
    /// The registry has no serial for this unit; the reported one is recorded for the technician.
    case unregistered(role: String, reported: String?)

    public var description: String {
        switch self {
        case .verified(let role, let serial): return "\(role): serial \(serial) verified"
        case .unverified(let role, let serial, let reason): return "\(role): serial \(serial) from the registry, not verified (\(reason))"
        case .mismatch(_, _, _, let alarm): return alarm.message
        case .unregistered(let role, let reported): return "\(role): not in the registry" + (reported.map { "; the device reports serial \($0)" } ?? "")
        }
    }

    public var alarm: ModbusAlarm? {
        if case .mismatch(_, _, _, let alarm) = self { return alarm }
        return nil
    }
}

/// Checks reported serials against the registry (a split unit has an indoor and an outdoor serial).
public enum IdentityCheck {
    /// - Parameters:
    ///   - reported: what the reading found, per role.
    ///   - registry: serials the service platform holds, per role ("monoblock", "indoor", "outdoor").
    ///   - device: how to name the device in a sentence, e.g. "the heat pump on RTU unit 3".
    public static func validate(reported: [ReportedIdentity], registry: [String: String], device: String,
                                profile: ModbusProfile? = nil) -> [IdentityFinding] {
        var findings: [IdentityFinding] = []
        let roles = (reported.map(\.role) + registry.keys.sorted()).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        for role in roles {
            let got = reported.first { $0.role == role }?.serial.map(normalize)
            guard let expected = registry[role] else {
                findings.append(.unregistered(role: role, reported: got))
                continue
            }
            guard let got, !got.isEmpty else {
                let reason = profile?.identity?.note ?? "the device does not expose its serial number over Modbus"
                findings.append(.unverified(role: role, registrySerial: expected, reason: reason))
                continue
            }
            if got == normalize(expected) {
                findings.append(.verified(role: role, serial: got))
            } else {
                let unitWord = role == "monoblock" || role == "controller" ? "" : " \(role) unit"
                let alarm = ModbusAlarm(code: "serial_mismatch:\(role)", register: "",
                                        message: "\(device) reports\(unitWord) serial \(got), the registry expects \(expected): check that the right device is wired to this address before its data is uploaded")
                findings.append(.mismatch(role: role, reported: got, expected: expected, alarm: alarm))
            }
        }
        return findings
    }

    /// Serials compare without case, spaces and dashes (nameplates and registers format them differently).
    static func normalize(_ s: String) -> String {
        String(s.uppercased().filter { !$0.isWhitespace && $0 != "-" && $0 != "\0" })
    }
}
