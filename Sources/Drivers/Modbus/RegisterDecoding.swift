/// An alarm raised from a device's own fault report, or from a failed identity check.
public struct ModbusAlarm: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Stable key, e.g. "current_error:9" or "status_bits:defrost" or "serial_mismatch:outdoor".
    public var code: String
    /// The register it came from (empty for identity alarms).
    public var register: String
    public var message: String

    public init(code: String, register: String, message: String) {
        self.code = code
        self.register = register
        self.message = message
    }

    public var description: String { message }
}

/// Words to values: pure and total (any words give a value; too few words give `.notAvailable`).
public enum RegisterDecoder {
    /// The words of one definition in most-significant-first order, bytes swapped where the profile says so.
    static func ordered(_ words: [UInt16], _ r: RegisterDefinition, _ p: ModbusProfile?) -> [UInt16] {
        var w = words
        if (r.byteOrder ?? p?.byteOrder ?? .big) == .little { w = w.map { $0.byteSwapped } }
        if r.type != .string && r.type != .bitfield && (r.wordOrder ?? p?.wordOrder ?? .big) == .little { w.reverse() }
        return w
    }

    /// The unsigned integer of all words (most significant first), as "not available" markers compare it.
    static func rawInteger(_ w: [UInt16]) -> UInt64 {
        w.prefix(4).reduce(0) { ($0 << 16) | UInt64($1) }
    }

    public static func decode(_ words: [UInt16], _ r: RegisterDefinition, profile: ModbusProfile? = nil) -> ModbusValue {
        guard words.count >= r.words else { return .notAvailable }
        let w = ordered(Array(words.prefix(r.words)), r, profile)
        let raw = rawInteger(w)
        if let markers = r.notAvailable, markers.contains(raw) { return .notAvailable }
        let number: Double
        switch r.type {
        case .string:
            var bytes: [UInt8] = []
            for word in w { bytes += [UInt8(word >> 8), UInt8(word & 0xFF)] }
            while let last = bytes.last, last == 0 || last == 0x20 { bytes.removeLast() }
            return .text(String(decoding: bytes.filter { $0 != 0 }, as: UTF8.self))
        case .bitfield:
            var set: [String] = []
            for (i, word) in w.enumerated() {
                for bit in 0..<16 where word & (1 << bit) != 0 {
                    let n = i * 16 + bit
                    set.append(r.bits?[String(n)] ?? "bit \(n)")
                }
            }
            return .flags(set)
        case .u16, .u32, .u64:
            if let radix = r.radix, radix > 1 {
                number = w.reduce(0.0) { $0 * Double(radix) + Double($1) }
            } else {
                number = Double(raw)
            }
        case .i16: number = Double(Int16(bitPattern: w[0]))
        case .i32: number = Double(Int32(bitPattern: UInt32(truncatingIfNeeded: raw)))
        case .i64: number = Double(Int64(bitPattern: raw))
        case .f32:
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: raw))
            if !f.isFinite { return .notAvailable }
            number = Double(f)
        case .f64:
            let d = Double(bitPattern: raw)
            if !d.isFinite { return .notAvailable }
            number = d
        }
        if let labels = r.enum {
            // A float or 64-bit register can hold values no Int64 takes (3.4e38, 2^63): checked, never a trap.
            guard let code = CheckedNumber.exactInt64(number) else { return .text("unknown (\(ModbusValue.number(number).description))") }
            let key = String(code)
            return .text(labels[key] ?? "unknown (\(key))")
        }
        if r.faults != nil { return .number(number) }
        return .number(number * (r.scale ?? 1) + (r.offset ?? 0))
    }

    /// Alarms a decoded value raises: a fault code outside `okValues`, or set bits of an alarm bitfield.
    public static func alarms(_ value: ModbusValue, _ r: RegisterDefinition) -> [ModbusAlarm] {
        let label = r.label ?? r.name
        if let faults = r.faults, case .number(let n) = value {
            guard let code = CheckedNumber.exactInt64(n) else {
                // Not an integer code (a float register, 2^63): a fault all the same, named by its value.
                let shown = ModbusValue.number(n).description
                return [ModbusAlarm(code: "\(r.name):invalid", register: r.name,
                                    message: "\(label): the register holds \(shown), which is not a fault code; check the profile's data type")]
            }
            if (r.okValues ?? [0]).contains(code) { return [] }
            let text = faults[String(code)] ?? "fault code \(code), not in the profile's table; look it up in the manual"
            return [ModbusAlarm(code: "\(r.name):\(code)", register: r.name, message: "\(label): \(text) (code \(code))")]
        }
        if r.alarmBits == true, case .flags(let set) = value {
            return set.map { ModbusAlarm(code: "\(r.name):\($0)", register: r.name, message: "\(label): \($0)") }
        }
        return []
    }
}
