import Drivers
import Foundation

/// Which bus a device is read on.
public enum BusKind: String, Codable, Hashable, Sendable {
    case wiredMBus = "mbus"
    case wirelessMBus = "wmbus"
    case modbus
    /// No bus and no radio: read by a technician and entered by hand (`gatewayd reading add`).
    case manual

    /// Read by the gateway itself: manual entry is refused unless forced with a reason.
    public var isReadAutomatically: Bool { self != .manual }
}

/// One device as the building's registry knows it.
public struct RegisteredDevice: Codable, Hashable, Sendable {
    /// Stable key, e.g. "mbus:KAM:06855817"; readings are filed under it.
    public var key: String
    public var bus: BusKind
    /// Unit or apartment ("4.12").
    public var unit: String?
    /// M-Bus/wM-Bus identification number, 8 digits.
    public var identification: String?
    /// FLAG manufacturer code, three letters.
    public var manufacturer: String?
    public var primaryAddress: Int?
    /// Modbus unit id and line.
    public var modbusUnit: Int?
    public var line: String?
    public var profile: String?
    public var medium: String?
    /// Nameplate serial (heat pumps).
    public var serial: String?
    /// Name of the key in the key file (never the key itself).
    public var keyReference: String?
    /// ISO dates.
    public var installed: String?
    public var replacedOn: String?
    /// Key of the device that replaced this one, or that this one replaced.
    public var replacedBy: String?
    public var replaces: String?

    public init(key: String, bus: BusKind, unit: String? = nil, identification: String? = nil, manufacturer: String? = nil,
                primaryAddress: Int? = nil, modbusUnit: Int? = nil, line: String? = nil, profile: String? = nil, medium: String? = nil,
                serial: String? = nil, keyReference: String? = nil, installed: String? = nil, replacedOn: String? = nil,
                replacedBy: String? = nil, replaces: String? = nil) {
        self.key = key
        self.bus = bus
        self.unit = unit
        self.identification = identification
        self.manufacturer = manufacturer
        self.primaryAddress = primaryAddress
        self.modbusUnit = modbusUnit
        self.line = line
        self.profile = profile
        self.medium = medium
        self.serial = serial
        self.keyReference = keyReference
        self.installed = installed
        self.replacedOn = replacedOn
        self.replacedBy = replacedBy
        self.replaces = replaces
    }
}

/// A device the portal knows in another building (a meter moved, or a neighbour's heard by radio).
public struct DeviceElsewhere: Codable, Hashable, Sendable {
    public var identification: String
    public var manufacturer: String?
    public var building: String

    public init(identification: String, manufacturer: String? = nil, building: String) {
        self.identification = identification
        self.manufacturer = manufacturer
        self.building = building
    }
}

/// The registry file (`seeds/demo-building/registry.json`, later the portal's copy).
public struct RegistryDocument: Codable, Hashable, Sendable {
    public var gateway: String
    public var building: String
    public var devices: [RegisteredDevice]
    public var elsewhere: [DeviceElsewhere]?
    /// Nameplate serial pattern per Modbus profile id (`SerialPattern`), e.g. "nibe-s-series": "NIBE-[0-9]{8}".
    public var serialPatterns: [String: String]?

    public init(gateway: String, building: String, devices: [RegisteredDevice], elsewhere: [DeviceElsewhere]? = nil,
                serialPatterns: [String: String]? = nil) {
        self.gateway = gateway
        self.building = building
        self.devices = devices
        self.elsewhere = elsewhere
        self.serialPatterns = serialPatterns
    }
}

/// Why a reading from a device is not accepted, in the words a technician needs.
public enum RejectionReason: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidIdentity([IdentityProblem])
    case notInRegistry(identification: String, manufacturer: String?)
    case otherBuilding(identification: String, building: String, ours: String)
    case replaced(identification: String, on: String, by: String)
    case manufacturerMismatch(identification: String, registered: String, heard: String)
    /// Nothing registered at this Modbus unit on this line.
    case noModbusDevice(line: String, unit: Int)
    /// The heat pump reports a serial its profile's pattern does not allow (garbled register, wrong profile).
    case serialPattern(device: String, profile: String, problem: String)
    /// The heat pump reports another serial than the registry holds: another device is wired to this address.
    case serialMismatch(device: String, reported: String, registered: String)

    public var description: String {
        switch self {
        case .invalidIdentity(let p): return p.map(\.description).joined(separator: "; ")
        case .notInRegistry(let id, let m): return "\(m.map { $0 + " " } ?? "")\(id): no such device in the registry"
        case .otherBuilding(let id, let b, let ours): return "\(id): serial belongs to building \(b), this gateway serves \(ours)"
        case .replaced(let id, let on, let by): return "\(id): replaced on \(on) by \(by)"
        case .manufacturerMismatch(let id, let r, let h):
            return "\(id): the registry says manufacturer \(r), the meter says \(h): check the registry entry or the meter's id"
        case .noModbusDevice(let line, let unit): return "unit \(unit) on \(line): no such device in the registry"
        case .serialPattern(let d, let p, let why): return "\(d): \(why) (profile \(p)): check the profile or the register map"
        case .serialMismatch(let d, let got, let want):
            return "\(d): the device reports serial \(got), the registry expects \(want): check which heat pump is wired to this address"
        }
    }
}

/// Why a registry document cannot be used.
public struct RegistryError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The building's devices, indexed for the pipeline's identify/validate step.
public struct DeviceRegistry: Sendable {
    public let gateway: String
    public let building: String
    public let devices: [RegisteredDevice]
    private let byIdentification: [String: [RegisteredDevice]]
    private let elsewhere: [String: DeviceElsewhere]
    private let byKey: [String: RegisteredDevice]
    private let byModbusAddress: [String: RegisteredDevice]
    /// Compiled `RegistryDocument.serialPatterns`, by profile id.
    public let serialPatterns: [String: SerialPattern]

    public init(_ document: RegistryDocument) throws(RegistryError) {
        gateway = document.gateway
        building = document.building
        devices = document.devices
        var index: [String: [RegisteredDevice]] = [:]
        var keys = Set<String>()
        for d in document.devices {
            guard keys.insert(d.key).inserted else { throw RegistryError(message: "device key \(d.key) appears twice") }
            if let id = d.identification {
                guard IdentificationNumber(id) != nil else {
                    throw RegistryError(message: "device \(d.key): identification \(id) is not 8 decimal digits")
                }
                index[id, default: []].append(d)
            }
            if let m = d.manufacturer, ManufacturerCode(m)?.isValidFlagCode != true {
                throw RegistryError(message: "device \(d.key): manufacturer \(m) is not a three-letter FLAG code")
            }
        }
        var patterns: [String: SerialPattern] = [:]
        for (profile, text) in document.serialPatterns ?? [:] {
            do { patterns[profile] = try SerialPattern(text) } catch {
                throw RegistryError(message: "profile \(profile): \(error.message)")
            }
        }
        var modbus: [String: RegisteredDevice] = [:]
        for d in document.devices where d.bus == .modbus {
            if let unit = d.modbusUnit, let line = d.line, d.replacedBy == nil {
                guard modbus.updateValue(d, forKey: "\(line)#\(unit)") == nil else {
                    throw RegistryError(message: "device \(d.key): unit \(unit) on \(line) is registered twice")
                }
            }
            if let profile = d.profile, let serial = d.serial, let why = patterns[profile]?.mismatch(serial) {
                throw RegistryError(message: "device \(d.key): \(why) (profile \(profile)); correct the registry entry")
            }
        }
        byIdentification = index
        serialPatterns = patterns
        byModbusAddress = modbus
        byKey = Dictionary(document.devices.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        elsewhere = Dictionary((document.elsewhere ?? []).map { ($0.identification, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Loads a registry file (JSON). Errors name the file and what is wrong.
    public static func load(path: String) throws(RegistryError) -> DeviceRegistry {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw RegistryError(message: "cannot read the registry \(path): check the path and its permissions")
        }
        let document: RegistryDocument
        do { document = try JSONDecoder().decode(RegistryDocument.self, from: data) } catch {
            throw RegistryError(message: "\(path) is not a valid registry: \(error)")
        }
        return try DeviceRegistry(document)
    }

    /// The device filed under `key` ("mbus:KAM:06855817"), replaced or not.
    public func device(key: String) -> RegisteredDevice? { byKey[key] }

    /// The current (not replaced) device at a Modbus unit on a line.
    public func device(line: String, unit: Int) -> RegisteredDevice? { byModbusAddress["\(line)#\(unit)"] }

    /// Identifies a heat pump by line and unit, and checks the serials it reports (per role: "monoblock",
    /// "indoor", …) against its profile's pattern and the registry's serial.
    public func identifyModbus(line: String, unit: Int, reported: [ReportedIdentity]) -> Result<RegisteredDevice, RejectionReason> {
        guard let device = device(line: line, unit: unit) else { return .failure(.noModbusDevice(line: line, unit: unit)) }
        for identity in reported {
            guard let serial = identity.serial?.trimmingCharacters(in: .whitespacesAndNewlines.union(.controlCharacters)),
                  !serial.isEmpty else { continue }
            // The registry keeps one nameplate serial: the monoblock's (or the controller's).
            let registered = identity.role == "monoblock" || identity.role == "controller" || reported.count == 1 ? device.serial : nil
            if let registered, Self.comparable(serial) == Self.comparable(registered) { continue }
            // Not the registered serial: a garbled register (outside the pattern) or another heat pump.
            if let profile = device.profile, let why = serialPatterns[profile]?.mismatch(serial) {
                return .failure(.serialPattern(device: device.key, profile: profile, problem: why))
            }
            if let registered { return .failure(.serialMismatch(device: device.key, reported: serial, registered: registered)) }
        }
        return .success(device)
    }

    /// Serials compare without case, spaces and dashes (nameplates and registers format them differently).
    static func comparable(_ s: String) -> String { String(s.uppercased().filter { !$0.isWhitespace && $0 != "-" }) }

    /// Identifies the sender of a telegram and decides whether its readings belong to this building.
    public func identify(_ header: TelegramHeader) -> Result<RegisteredDevice, RejectionReason> {
        let problems = IdentityValidation.problems(in: header)
        guard problems.isEmpty, let id = header.identification?.digits else { return .failure(.invalidIdentity(problems)) }
        let manufacturer = header.manufacturer?.letters
        let candidates = byIdentification[id] ?? []
        // The current device first; a replaced one only to say so.
        let matching = candidates.filter { $0.manufacturer == nil || manufacturer == nil || $0.manufacturer == manufacturer }
        if let current = matching.first(where: { $0.replacedBy == nil }) { return .success(current) }
        if let old = matching.first, let on = old.replacedOn, let by = old.replacedBy {
            return .failure(.replaced(identification: id, on: on, by: by))
        }
        if let other = candidates.first, let registered = other.manufacturer, let heard = manufacturer {
            return .failure(.manufacturerMismatch(identification: id, registered: registered, heard: heard))
        }
        if let away = elsewhere[id], away.building != building {
            return .failure(.otherBuilding(identification: id, building: away.building, ours: building))
        }
        return .failure(.notInRegistry(identification: id, manufacturer: manufacturer))
    }
}

/// Devices heard that the registry does not know (neighbours' radio meters). Only identity, type and
/// signal are kept, never values: their readings are personal data of other households (GDPR).
public actor UnknownDevices {
    public struct Sighting: Hashable, Sendable {
        public var identification: String
        public var manufacturer: String
        public var deviceType: String
        public var count: Int
        public var bestRSSI: Int?
        public var lastRSSI: Int?
    }

    private var seen: [String: Sighting] = [:]
    public init() {}

    public func record(_ header: TelegramHeader, rssi: Int?) {
        guard let id = header.identification?.digits else { return }
        let m = header.manufacturer?.letters ?? "?"
        let key = m + id
        var s = seen[key] ?? Sighting(identification: id, manufacturer: m, deviceType: header.deviceType?.name ?? "?",
                                      count: 0, bestRSSI: nil, lastRSSI: nil)
        s.count += 1
        s.lastRSSI = rssi
        if let r = rssi { s.bestRSSI = max(s.bestRSSI ?? r, r) }
        seen[key] = s
    }

    /// Most often heard first.
    public func sightings() -> [Sighting] {
        seen.values.sorted { ($0.count, $0.identification) > ($1.count, $1.identification) }
    }
}
