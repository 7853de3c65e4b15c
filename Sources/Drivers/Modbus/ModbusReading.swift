/// One decoded value of a reading.
public struct ModbusReadingValue: Hashable, Sendable, Codable {
    public var name: String
    public var label: String
    public var value: ModbusValue
    public var unit: String?
    public var quantity: String?
    /// The words (or 0/1 bits) as read.
    public var raw: [UInt16]
}

/// What the device says about itself, per unit (monoblock, indoor, outdoor).
public struct ReportedIdentity: Hashable, Sendable, Codable {
    public var role: String
    public var serial: String?
    public var model: String?
    public var firmware: String?

    public init(role: String, serial: String? = nil, model: String? = nil, firmware: String? = nil) {
        self.role = role
        self.serial = serial
        self.model = model
        self.firmware = firmware
    }
}

/// A profile read from one device.
public struct ModbusReading: Hashable, Sendable, Codable {
    public var profile: String
    public var unit: Int
    public var values: [ModbusReadingValue]
    public var alarms: [ModbusAlarm]
    /// Registers whose block the device refused, with the reason.
    public var failures: [String: String]
    public var identities: [ReportedIdentity]
    /// FC 11h data as text, when the profile asks for it.
    public var serverID: String?
    public var requests: [ReadRequest]

    public func value(_ name: String) -> ModbusValue? { values.first { $0.name == name }?.value }
}



extension ModbusProfile {
    /// Decodes a reading from words already read, one array per request of `plan` (pure; the tests and
    /// the line share it).
    public func decode(_ registers: [RegisterDefinition], requests: [ReadRequest], words: [[UInt16]?],
                       failures requestFailures: [Int: String] = [:], unit: Int) -> ModbusReading {
        var values: [ModbusReadingValue] = []
        var alarms: [ModbusAlarm] = []
        var failures: [String: String] = [:]
        for r in registers {
            let span = r.address...(r.address + r.words - 1)
            guard let k = requests.firstIndex(where: { $0.kind == r.kind && $0.range.contains(span.lowerBound) && $0.range.contains(span.upperBound) }) else {
                continue
            }
            guard let block = words[k] else {
                failures[r.name] = requestFailures[k] ?? "not read"
                continue
            }
            let from = r.address - requests[k].address
            let raw = Array(block[from..<(from + r.words)])
            let value = RegisterDecoder.decode(raw, r, profile: self)
            values.append(ModbusReadingValue(name: r.name, label: r.label ?? r.name, value: value,
                                             unit: r.unit, quantity: r.quantity, raw: raw))
            alarms += RegisterDecoder.alarms(value, r)
        }
        var identities: [ReportedIdentity] = []
        for u in identity?.units ?? [] {
            func text(_ name: String?) -> String? {
                guard let name, let v = values.first(where: { $0.name == name })?.value else { return nil }
                switch v {
                case .notAvailable: return nil
                case .text(let s): return s.isEmpty ? nil : s
                default: return v.description
                }
            }
            identities.append(ReportedIdentity(role: u.role, serial: text(u.serial), model: text(u.model), firmware: text(u.firmware)))
        }
        return ModbusReading(profile: id, unit: unit, values: values, alarms: alarms, failures: failures,
                             identities: identities, serverID: nil, requests: requests)
    }

    /// The profile's registers in `groups` (all when nil).
    public func registers(inGroups groups: Set<String>?) -> [RegisterDefinition] {
        guard let groups else { return registers }
        return registers.filter { r in group(of: r).map { groups.contains($0.name) } ?? false }
    }
}

extension ModbusLine {
    /// Reads a profile's registers (all, or `selection`) in the fewest requests the profile allows.
    ///
    /// An exception on one block marks its registers as failed and the read goes on; a timeout or a
    /// dropped connection ends it, since the device is not answering.
    public func read(profile: ModbusProfile, unit: Int, selection: [RegisterDefinition]? = nil,
                     retries: Int? = nil) throws(ModbusError) -> ModbusReading {
        let chosen = selection ?? profile.registers
        let plan = profile.plan(chosen)
        let pause = Duration.milliseconds(profile.limits?.pauseMs ?? 0)
        var words: [[UInt16]?] = []
        var failures: [Int: String] = [:]
        for (k, request) in plan.enumerated() {
            do {
                words.append(try read(request.kind, address: request.address, count: request.count, unit: unit, pause: pause, retries: retries))
            } catch where error.isException {
                words.append(nil)
                failures[k] = error.message
            }
        }
        var reading = profile.decode(chosen, requests: plan, words: words, failures: failures, unit: unit)
        if profile.identity?.reportServerId == true {
            if let bytes = try? reportServerID(unit: unit) {
                let printable = bytes.filter { $0 >= 0x20 && $0 < 0x7F }
                reading.serverID = String(decoding: printable, as: UTF8.self)
            }
        }
        return reading
    }
}
