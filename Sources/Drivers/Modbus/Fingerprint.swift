/// A firmware version as its digit groups: "V3.88.1" is [3, 88, 1], a decoded 3.12 is [3, 12], "2.1a" is
/// [2, 1]. Compared group by group, a missing group counting as 0 (3.9 equals 3.9.0).
public struct FirmwareVersion: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let groups: [Int]

    /// Nil when the text holds no digit (or a group too long to be a version).
    public init?(_ text: String) {
        var groups: [Int] = []
        var current: Int?
        for byte in text.utf8 {
            if byte >= 0x30 && byte <= 0x39 {
                let digit = Int(byte - 0x30)
                let (times, o1) = (current ?? 0).multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(digit)
                guard !o1 && !o2, sum < 1_000_000_000 else { return nil }
                current = sum
            } else if let c = current {
                groups.append(c)
                current = nil
            }
            if groups.count > 8 { return nil }
        }
        if let c = current { groups.append(c) }
        guard !groups.isEmpty, groups.count <= 8 else { return nil }
        self.groups = groups
    }

    public static func < (a: Self, b: Self) -> Bool {
        for i in 0..<max(a.groups.count, b.groups.count) {
            let x = i < a.groups.count ? a.groups[i] : 0
            let y = i < b.groups.count ? b.groups[i] : 0
            if x != y { return x < y }
        }
        return false
    }

    public static func == (a: Self, b: Self) -> Bool { !(a < b) && !(b < a) }
    public func hash(into h: inout Hasher) {
        var g = groups
        while g.last == 0 && g.count > 1 { g.removeLast() }
        h.combine(g)
    }

    public var description: String { groups.map(String.init).joined(separator: ".") }
}

/// Whether a device is the controller a profile was written for.
public enum FingerprintVerdict: Hashable, Sendable, CustomStringConvertible {
    /// Every identifying register holds an accepted value and the firmware is in range (or the profile
    /// declares nothing to check: `checked` is then empty).
    case matches(checked: [String])
    /// What the device reported that does not fit, one sentence part per register.
    case mismatch([String])

    public var matches: Bool { if case .matches = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .matches(let checked): return checked.isEmpty ? "nothing to check" : "matches (" + checked.joined(separator: ", ") + ")"
        case .mismatch(let reasons): return reasons.joined(separator: "; ")
        }
    }
}

extension ModbusProfile {
    /// The registers read before anything else: identity units' serial, model and firmware, and the
    /// fingerprint's registers, in profile order.
    public var fingerprintRegisters: [RegisterDefinition] {
        var wanted = Set<String>()
        for u in identity?.units ?? [] { for n in [u.serial, u.model, u.firmware].compactMap({ $0 }) { wanted.insert(n) } }
        for n in (fingerprint?.expect ?? [:]).keys { wanted.insert(n) }
        if let f = fingerprint?.firmware { wanted.insert(f.register) }
        return registers.filter { wanted.contains($0.name) }
    }

    /// Whether the profile declares anything a device must match.
    public var hasFingerprint: Bool { !(fingerprint?.expect ?? [:]).isEmpty || fingerprint?.firmware != nil }

    /// Checks a reading (at least of `fingerprintRegisters`) against the fingerprint. Pure.
    public func fingerprintVerdict(_ reading: ModbusReading) -> FingerprintVerdict {
        var checked: [String] = []
        var reasons: [String] = []
        func text(_ name: String) -> String? {
            guard let v = reading.value(name) else { return nil }
            switch v {
            case .notAvailable: return nil
            case .text(let s): return String(String.UnicodeScalarView(s.unicodeScalars.filter { $0.value >= 0x20 })).trimmingSpaces
            default: return v.description
            }
        }
        for (name, accepted) in (fingerprint?.expect ?? [:]).sorted(by: { $0.key < $1.key }) {
            let label = register(named: name)?.label ?? name
            if let failure = reading.failures[name] {
                reasons.append("\(label) (\(name)) could not be read (\(failure))")
                continue
            }
            guard let got = text(name) else {
                reasons.append("\(label) (\(name)) reports nothing, \(id) expects \(Self.alternatives(accepted))")
                continue
            }
            if accepted.contains(where: { $0.trimmingSpaces.caseInsensitiveEquals(got) }) {
                checked.append("\(name) \(TerminalText.line(got))")
            } else {
                reasons.append("\(label) (\(name)) is \(TerminalText.line(got)), \(id) expects \(Self.alternatives(accepted))")
            }
        }
        if let range = fingerprint?.firmware {
            let label = register(named: range.register)?.label ?? range.register
            if let failure = reading.failures[range.register] {
                reasons.append("\(label) (\(range.register)) could not be read (\(failure))")
            } else if let got = text(range.register), let version = FirmwareVersion(got) {
                let low = range.min.flatMap(FirmwareVersion.init)
                let high = range.max.flatMap(FirmwareVersion.init)
                if let low, version < low {
                    reasons.append("firmware \(version) is older than \(low), the first version \(id) was written for")
                } else if let high, high < version {
                    reasons.append("firmware \(version) is newer than \(high), the last version \(id) was written for")
                } else {
                    checked.append("firmware \(version)")
                }
            } else {
                reasons.append("\(label) (\(range.register)) holds no firmware version")
            }
        }
        return reasons.isEmpty ? .matches(checked: checked) : .mismatch(reasons)
    }

    static func alternatives(_ values: [String]) -> String {
        values.count == 1 ? values[0] : "one of " + values.joined(separator: ", ")
    }
}

/// Which profile of a set (a family, or the one configured) fits a device.
public enum ProfileChoice: Sendable {
    case chosen(ModbusProfile, FingerprintVerdict)
    /// None fits: per candidate, what the device reported against it.
    case refused([(profile: String, verdict: FingerprintVerdict)])

    /// One sentence for a technician: what was found and what to do.
    public func message(device: String) -> String {
        switch self {
        case .chosen(let p, let v): return "\(device): profile \(p.id), \(v)"
        case .refused(let list):
            let found = list.count == 1
                ? "does not match profile \(list[0].profile): \(list[0].verdict)"
                : "matches none of the profiles \(list.map(\.profile).joined(separator: ", ")): "
                    + list.map { "\($0.profile): \($0.verdict)" }.joined(separator: "; ")
            return "\(device) \(found); its values are not read: check which device answers at this address, or configure the profile for the model and firmware it reports"
        }
    }
}

extension ModbusLine {
    /// Reads the identifying registers of each candidate in order and returns the first that matches.
    /// A profile without a fingerprint matches without a read. A timeout or a lost connection is thrown
    /// (the device is not answering, which is not a mismatch).
    public func choose(among candidates: [ModbusProfile], unit: Int) throws(ModbusError) -> ProfileChoice {
        var refusals: [(profile: String, verdict: FingerprintVerdict)] = []
        var cache: [String: ModbusReadingValue] = [:]
        var failed: [String: String] = [:]
        for profile in candidates {
            guard profile.hasFingerprint else { return .chosen(profile, .matches(checked: [])) }
            let needed = profile.fingerprintRegisters
            // Family members usually share their identity registers: read each definition once.
            let missing = needed.filter { r in cache[key(r)] == nil && failed[key(r)] == nil }
            if !missing.isEmpty {
                let reading = try read(profile: profile, unit: unit, selection: missing)
                for v in reading.values { if let r = profile.register(named: v.name) { cache[key(r)] = v } }
                for (name, why) in reading.failures { if let r = profile.register(named: name) { failed[key(r)] = why } }
            }
            var assembled = ModbusReading(profile: profile.id, unit: unit, values: [], alarms: [], failures: [:],
                                          identities: [], serverID: nil, requests: [])
            for r in needed {
                if var v = cache[key(r)] { v.name = r.name; assembled.values.append(v) }
                if let why = failed[key(r)] { assembled.failures[r.name] = why }
            }
            let verdict = profile.fingerprintVerdict(assembled)
            if verdict.matches { return .chosen(profile, verdict) }
            refusals.append((profile.id, verdict))
        }
        return .refused(refusals)
    }

    /// Same name at the same place with the same type: the same value for every member of a family.
    private nonisolated func key(_ r: RegisterDefinition) -> String { "\(r.name)|\(r.kind)|\(r.address)|\(r.words)|\(r.type)" }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }

    func caseInsensitiveEquals(_ other: String) -> Bool { lowercased() == other.lowercased() }
}
