#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The four Modbus data tables.
public enum RegisterKind: String, Codable, Hashable, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case coil, discrete, holding, input

    /// 16-bit registers (holding, input) rather than single bits (coil, discrete input).
    public var isRegister: Bool { self == .holding || self == .input }
    /// Function code that reads this table (01, 02, 03, 04).
    public var readFunction: UInt8 {
        switch self {
        case .coil: return 0x01
        case .discrete: return 0x02
        case .holding: return 0x03
        case .input: return 0x04
        }
    }
    /// The most items one read may ask for (Modbus application protocol, section 6).
    public var protocolLimit: Int { isRegister ? 125 : 2000 }
    public var description: String { rawValue }
    public static func < (a: Self, b: Self) -> Bool { a.readFunction < b.readFunction }
}

/// How a register's words become a value.
public enum RegisterType: String, Codable, Hashable, Sendable {
    case u16, i16, u32, i32, u64, i64, f32, f64, string, bitfield

    /// Words the type occupies; strings take `count` words.
    func words(count: Int?) -> Int {
        switch self {
        case .u16, .i16, .bitfield: return count ?? 1
        case .u32, .i32, .f32: return 2
        case .u64, .i64, .f64: return 4
        case .string: return count ?? 1
        }
    }
}

/// Order of words in a multi-word value, or of the two bytes in a word.
public enum Endianness: String, Codable, Hashable, Sendable {
    /// Most significant first (Modbus default).
    case big
    /// Least significant first ("word swap" / "byte swap").
    case little
}

/// An inclusive address range in one table, e.g. registers the device answers only one at a time.
public struct AddressRange: Codable, Hashable, Sendable {
    public var kind: RegisterKind
    public var from: Int
    public var to: Int
    public var note: String?

    public init(kind: RegisterKind, from: Int, to: Int, note: String? = nil) {
        self.kind = kind
        self.from = from
        self.to = to
        self.note = note
    }

    public var range: ClosedRange<Int> { from...max(from, to) }
}

/// One value in the device: where it lives and how to read it.
public struct RegisterDefinition: Codable, Hashable, Sendable {
    /// Stable key (snake_case), used in readings, expectations and the identity section.
    public var name: String
    /// Words for people, as the manufacturer names it.
    public var label: String?
    public var kind: RegisterKind
    /// 0-based protocol address (what goes into the request PDU).
    public var address: Int
    /// The manufacturer's own numbering of this register (e.g. "40106" or "1-based 106"), for technicians.
    public var documented: String?
    public var type: RegisterType
    /// Words for strings and multi-register bitfields; ignored for fixed-width types.
    public var count: Int?
    public var wordOrder: Endianness?
    public var byteOrder: Endianness?
    /// value = raw × scale + offset.
    public var scale: Double?
    public var offset: Double?
    public var unit: String?
    public var quantity: String?
    /// Raw values (the unsigned integer of all words) that mean "no sensor / not available".
    public var notAvailable: [UInt64]?
    /// Raw value → label (operating modes, states).
    public var `enum`: [String: String]?
    /// Bit number → name, for bitfields.
    public var bits: [String: String]?
    /// Fault code → description. A code not in `okValues` raises an alarm.
    public var faults: [String: String]?
    /// Codes that mean "no fault" (default [0]).
    public var okValues: [Int64]?
    /// For bitfields: each set bit is an alarm.
    public var alarmBits: Bool?
    /// For multi-word unsigned values whose words are decimal digits groups (value = high × radix + low).
    public var radix: Int?
    /// Polling group name; the profile's first group when absent.
    public var group: String?
    /// Must be read in a request of its own.
    public var alone: Bool?
    /// May be written (FC 05/06/15/16) through `ModbusLine.write`.
    public var writable: Bool?

    public var words: Int { kind.isRegister ? type.words(count: count) : max(1, count ?? 1) }
}

/// A polling group: registers read together at one interval.
public struct PollGroup: Codable, Hashable, Sendable {
    public var name: String
    public var intervalSeconds: Int
}

/// Request limits the device imposes.
public struct ProfileLimits: Codable, Hashable, Sendable {
    /// Largest register block (≤ 125).
    public var maxRegisters: Int?
    /// Largest coil / discrete-input block (≤ 2000).
    public var maxBits: Int?
    /// Most consecutive unwanted registers a request may include to save a request.
    public var gapFill: Int?
    /// Pause after each request, for controllers that need breathing time.
    public var pauseMs: Int?
    /// Zones the device answers only one value at a time.
    public var readAlone: [AddressRange]?
    /// Addresses that must never be read (the device answers "illegal data address" for the whole block).
    public var unreadable: [AddressRange]?
}

/// Where one unit of the device (a monoblock, or the indoor or outdoor part of a split unit) tells who it is.
public struct IdentityUnit: Codable, Hashable, Sendable {
    /// "monoblock", "indoor", "outdoor", "controller"…
    public var role: String
    /// Register names (from `registers`) holding the serial, model and firmware, when the device exposes them.
    public var serial: String?
    public var model: String?
    public var firmware: String?
}

public struct IdentitySpec: Codable, Hashable, Sendable {
    public var units: [IdentityUnit]
    /// The device answers function 11h (Report Server ID).
    public var reportServerId: Bool?
    /// Why the serial cannot be read, when it cannot (shown with "not verified").
    public var note: String?
}

/// How a profile proves it fits the device in front of it, read before anything else (issue 18): register
/// values that identify the controller (a model code, a device-type word) and the firmware range the map
/// was written for. A device that does not match is refused with a sentence naming what it reported.
public struct ProfileFingerprint: Codable, Hashable, Sendable {
    /// Register name → the decoded values (as text: "5", "3.12", an enum label, a trimmed string) that
    /// identify this controller.
    public var expect: [String: [String]]?
    public var firmware: FirmwareRange?
}

/// The firmware versions a register map applies to; versions compare by their digit groups ("V3.88.1"
/// is 3.88.1, a decoded 3.12 is 3.12).
public struct FirmwareRange: Codable, Hashable, Sendable {
    /// The register holding the firmware or software version.
    public var register: String
    /// Inclusive bounds; either may be absent.
    public var min: String?
    public var max: String?
}

/// Service data a platform plans inspections by (issue 18): the register holding run hours and the
/// inspection interval in those hours (a device's configuration may override it).
public struct ServiceSpec: Codable, Hashable, Sendable {
    public var runHours: String
    public var inspectionIntervalHours: Double?
}

/// A recorded register dump of a real or documented device state, with the values it must decode to.
public struct ProfileTest: Codable, Hashable, Sendable {
    public struct Block: Codable, Hashable, Sendable {
        public var address: Int
        public var values: [Int]
    }
    public var unit: Int?
    /// Dump per table: "holding", "input", "coil", "discrete".
    public var dump: [String: [Block]]
    public var expected: [String: ModbusValue]
    /// Alarm codes expected (`ModbusAlarm.code`).
    public var alarms: [String]?
    /// Serials expected per identity role.
    public var identity: [String: String]?
}

/// One controller model as data: registers, limits, polling groups and identity.
public struct ModbusProfile: Codable, Hashable, Sendable {
    public var id: String
    public var name: String
    public var manufacturer: String
    public var models: [String]?
    /// Public register maps this profile was taken from.
    public var source: [String]
    /// How the manufacturer numbers registers, and how that maps to the 0-based addresses used here.
    public var numbering: String
    public var serial: String?
    public var wordOrder: Endianness?
    public var byteOrder: Endianness?
    public var limits: ProfileLimits?
    public var groups: [PollGroup]?
    public var registers: [RegisterDefinition]
    public var identity: IdentitySpec?
    /// What proves the profile fits the device (model registers, firmware range); checked first.
    public var fingerprint: ProfileFingerprint?
    /// Profiles of one controller line that differ by firmware share a family; a configuration may name the
    /// family and the firmware register picks the member.
    public var family: String?
    public var service: ServiceSpec?
    /// What of the map is confirmed on a real unit and what still needs confirming.
    public var confirmation: String?
    public var test: ProfileTest?

    public static func load(path: String) throws(ModbusError) -> ModbusProfile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModbusError(.configuration, "cannot read profile \(path): check the path and that you may read it")
        }
        return try decode(data, origin: path)
    }

    public static func decode(_ data: Data, origin: String = "profile") throws(ModbusError) -> ModbusProfile {
        let profile: ModbusProfile
        do {
            profile = try JSONDecoder().decode(ModbusProfile.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw ModbusError(.configuration, "\(origin): missing \"\(key.stringValue)\" at \(Self.path(context.codingPath))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw ModbusError(.configuration, "\(origin): wrong type at \(Self.path(context.codingPath)): \(context.debugDescription)")
        } catch let DecodingError.dataCorrupted(context) {
            throw ModbusError(.configuration, "\(origin): invalid value at \(Self.path(context.codingPath)): \(context.debugDescription)")
        } catch {
            throw ModbusError(.configuration, "\(origin): not a profile: \(error)")
        }
        try profile.validate(origin: origin)
        return profile
    }

    private static func path(_ keys: [CodingKey]) -> String {
        keys.isEmpty ? "top level" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    /// Checks what JSONDecoder cannot: unique names, address ranges, limits, references.
    public func validate(origin: String = "profile") throws(ModbusError) {
        func fail(_ text: String) -> ModbusError { ModbusError(.configuration, "\(origin): \(text)") }
        var names = Set<String>()
        let groupNames = Set((groups ?? []).map(\.name))
        for r in registers {
            guard names.insert(r.name).inserted else { throw fail("register name \"\(r.name)\" is used twice") }
            guard r.address >= 0, r.address + r.words <= 65536 else { throw fail("\(r.name): address \(r.address) is outside 0…65535") }
            if !r.kind.isRegister && ![.u16, .bitfield].contains(r.type) {
                throw fail("\(r.name): a \(r.kind) holds one bit; use type u16")
            }
            if let g = r.group, !groupNames.contains(g) { throw fail("\(r.name): unknown polling group \"\(g)\"") }
            if r.words > maxBlock(r.kind) { throw fail("\(r.name): \(r.words) words exceed the block limit \(maxBlock(r.kind))") }
        }
        if let m = limits?.maxRegisters, !(1...125).contains(m) { throw fail("limits.maxRegisters must be 1…125") }
        if let m = limits?.maxBits, !(1...2000).contains(m) { throw fail("limits.maxBits must be 1…2000") }
        if let g = limits?.gapFill, g < 0 { throw fail("limits.gapFill must not be negative") }
        for unit in identity?.units ?? [] {
            for ref in [unit.serial, unit.model, unit.firmware].compactMap({ $0 }) where !names.contains(ref) {
                throw fail("identity \(unit.role) names register \"\(ref)\", which the profile does not define")
            }
        }
        for ref in (fingerprint?.expect ?? [:]).keys.sorted() where !names.contains(ref) {
            throw fail("fingerprint.expect names register \"\(ref)\", which the profile does not define")
        }
        if let f = fingerprint?.expect?.first(where: { $0.value.isEmpty }) {
            throw fail("fingerprint.expect.\(f.key) lists no accepted value")
        }
        if let firmware = fingerprint?.firmware {
            guard names.contains(firmware.register) else {
                throw fail("fingerprint.firmware names register \"\(firmware.register)\", which the profile does not define")
            }
            for bound in [firmware.min, firmware.max].compactMap({ $0 }) where FirmwareVersion(bound) == nil {
                throw fail("fingerprint.firmware bound \"\(bound)\" is not a version (digits, e.g. 3.90)")
            }
        }
        if let service {
            guard names.contains(service.runHours) else {
                throw fail("service.runHours names register \"\(service.runHours)\", which the profile does not define")
            }
            if let h = service.inspectionIntervalHours, !(h.isFinite && h > 0) {
                throw fail("service.inspectionIntervalHours must be a positive number of hours")
            }
        }
    }

    public func maxBlock(_ kind: RegisterKind) -> Int {
        kind.isRegister ? min(125, limits?.maxRegisters ?? 125) : min(2000, limits?.maxBits ?? 2000)
    }

    public func register(named name: String) -> RegisterDefinition? { registers.first { $0.name == name } }

    /// The group a register polls in.
    public func group(of r: RegisterDefinition) -> PollGroup? {
        let all = groups ?? []
        if let g = r.group { return all.first { $0.name == g } }
        return all.first
    }

    /// Planner constraints for one table.
    public func constraints(_ kind: RegisterKind) -> PlanConstraints {
        PlanConstraints(
            maxCount: maxBlock(kind),
            gapFill: limits?.gapFill ?? 0,
            readAlone: (limits?.readAlone ?? []).filter { $0.kind == kind }.map(\.range),
            unreadable: (limits?.unreadable ?? []).filter { $0.kind == kind }.map(\.range))
    }

    /// The requests that read `selected` registers (all when nil), fewest first, table by table.
    public func plan(_ selected: [RegisterDefinition]? = nil) -> [ReadRequest] {
        let wanted = selected ?? registers
        var out: [ReadRequest] = []
        for kind in RegisterKind.allCases.sorted() {
            let fields = wanted.filter { $0.kind == kind }.map { PlanField(address: $0.address, count: $0.words, alone: $0.alone ?? false) }
            if fields.isEmpty { continue }
            out += ReadPlanner.plan(fields, constraints(kind)).map { ReadRequest(kind: kind, address: $0.lowerBound, count: $0.count) }
        }
        return out
    }
}

/// A decoded value.
public enum ModbusValue: Hashable, Sendable, Codable, CustomStringConvertible {
    case number(Double)
    /// Strings and enumeration labels.
    case text(String)
    /// Names of the set bits of a bitfield.
    case flags([String])
    /// The device reports "no sensor / not available".
    case notAvailable

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .notAvailable; return }
        if let d = try? c.decode(Double.self) { self = .number(d); return }
        if let s = try? c.decode(String.self) { self = .text(s); return }
        self = .flags(try c.decode([String].self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let d): try c.encode(d)
        case .text(let s): try c.encode(s)
        case .flags(let f): try c.encode(f)
        case .notAvailable: try c.encodeNil()
        }
    }

    public var description: String {
        switch self {
        case .number(let d): return ModbusValue.format(d)
        case .text(let s): return s
        case .flags(let f): return f.isEmpty ? "-" : f.joined(separator: ", ")
        case .notAvailable: return "n/a"
        }
    }

    /// Equal within the rounding a scale of 0.001 leaves, for comparisons with expected values.
    public func matches(_ other: ModbusValue) -> Bool {
        if case .number(let a) = self, case .number(let b) = other { return abs(a - b) <= max(1e-9, abs(b) * 1e-9) + 1e-6 }
        return self == other
    }

    static func format(_ d: Double) -> String {
        if d == d.rounded() && abs(d) < 1e15 { return String(Int64(d)) }
        var s = String((d * 1e6).rounded() / 1e6)
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s
    }
}
