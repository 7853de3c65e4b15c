import Drivers
import Foundation

/// Which bus a device is read on.
public enum BusKind: String, Codable, Hashable, Sendable {
    case wiredMBus = "mbus"
    case wirelessMBus = "wmbus"
    case modbus
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
}

/// A device the portal knows in another building (a meter moved, or a neighbour's heard by radio).
public struct DeviceElsewhere: Codable, Hashable, Sendable {
    public var identification: String
    public var manufacturer: String?
    public var building: String
}

/// The registry file (`seeds/demo-building/registry.json`, later the portal's copy).
public struct RegistryDocument: Codable, Hashable, Sendable {
    public var gateway: String
    public var building: String
    public var devices: [RegisteredDevice]
    public var elsewhere: [DeviceElsewhere]?
}

/// Why a reading from a device is not accepted, in the words a technician needs.
public enum RejectionReason: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidIdentity([IdentityProblem])
    case notInRegistry(identification: String, manufacturer: String?)
    case otherBuilding(identification: String, building: String, ours: String)
    case replaced(identification: String, on: String, by: String)
    case manufacturerMismatch(identification: String, registered: String, heard: String)

    public var description: String {
        switch self {
        case .invalidIdentity(let p): return p.map(\.description).joined(separator: "; ")
        case .notInRegistry(let id, let m): return "\(m.map { $0 + " " } ?? "")\(id): no such device in the registry"
        case .otherBuilding(let id, let b, let ours): return "\(id): serial belongs to building \(b), this gateway serves \(ours)"
        case .replaced(let id, let on, let by): return "\(id): replaced on \(on) by \(by)"
        case .manufacturerMismatch(let id, let r, let h):
            return "\(id): the registry says manufacturer \(r), the meter says \(h): check the registry entry or the meter's id"
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
        byIdentification = index
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
