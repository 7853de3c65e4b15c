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

    /// The bus in a technician's words.
    public var wording: String {
        switch self {
        case .wiredMBus: "a wired M-Bus line"
        case .wirelessMBus: "radio (wireless M-Bus)"
        case .modbus: "a Modbus bus"
        case .manual: "manual entry"
        }
    }
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
    /// A radio meter's transmit interval in seconds, where the portal knows it (else it is learned from the
    /// telegrams): the `not_heard` alarm waits for three of them.
    public var transmitInterval: Int?

    public init(key: String, bus: BusKind, unit: String? = nil, identification: String? = nil, manufacturer: String? = nil,
                primaryAddress: Int? = nil, modbusUnit: Int? = nil, line: String? = nil, profile: String? = nil, medium: String? = nil,
                serial: String? = nil, keyReference: String? = nil, installed: String? = nil, replacedOn: String? = nil,
                replacedBy: String? = nil, replaces: String? = nil, transmitInterval: Int? = nil) {
        self.transmitInterval = transmitInterval
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
    /// A telegram carries the id of a device registered on another bus (a radio telegram naming a wired meter).
    case wrongBus(device: String, registered: BusKind, heard: BusKind)
    /// The registry entry with this id names no manufacturer, so it cannot be told from another maker's meter.
    case registryEntryWithoutManufacturer(device: String, heard: String?)
    /// A meter whose key is known (or that the registry says encrypts) sent a telegram in the clear, or one
    /// that announces encryption but carries plain data: a forgery or a downgrade, never filed.
    case securityDowngrade(device: String, found: String)

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
        case .wrongBus(let d, let registered, let heard):
            return "\(d) is registered on \(registered.wording), but this telegram came by \(heard.wording): refused (the bus is part of a device's identity); if the meter really moved, correct the registry"
        case .registryEntryWithoutManufacturer(let d, let heard):
            return "\(d): the registry entry names no manufacturer\(heard.map { " (the meter says \($0))" } ?? ""): add its three-letter FLAG code to the registry"
        case .securityDowngrade(let d, let found):
            return "\(d): \(found), but its key is known and it must send encrypted telegrams: refused as a possible forgery (security_downgrade)"
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

    /// Every entry with this identification number, on any bus, replaced or not (for lookups by people).
    public func devices(identification: String) -> [RegisteredDevice] { byIdentification[identification] ?? [] }

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

    /// Identifies the sender of a telegram heard on `bus` and decides whether its readings belong to this building.
    ///
    /// The bus is part of a device's identity: a radio telegram is never filed under a meter registered on a
    /// wired line or a Modbus bus (anyone with a transmitter could otherwise overwrite a wired meter's
    /// readings). The manufacturer must match exactly: a registry entry without one matches nothing, so an
    /// incomplete entry cannot adopt every maker's meter with the same eight digits (`warnings` names it).
    public func identify(_ header: TelegramHeader, bus: BusKind) -> Result<RegisteredDevice, RejectionReason> {
        let problems = IdentityValidation.problems(in: header)
        guard problems.isEmpty, let id = header.identification?.digits else { return .failure(.invalidIdentity(problems)) }
        let manufacturer = header.manufacturer?.letters
        let candidates = byIdentification[id] ?? []
        let onBus = candidates.filter { $0.bus == bus }
        let matching = onBus.filter { $0.manufacturer != nil && $0.manufacturer == manufacturer }
        // The current device first; a replaced one only to say so.
        if let current = matching.first(where: { $0.replacedBy == nil }) { return .success(current) }
        if let old = matching.first, let on = old.replacedOn, let by = old.replacedBy {
            return .failure(.replaced(identification: id, on: on, by: by))
        }
        if let incomplete = onBus.first(where: { $0.manufacturer == nil && $0.replacedBy == nil }) {
            return .failure(.registryEntryWithoutManufacturer(device: incomplete.key, heard: manufacturer))
        }
        if let other = onBus.first, let registered = other.manufacturer, let heard = manufacturer {
            return .failure(.manufacturerMismatch(identification: id, registered: registered, heard: heard))
        }
        if let elsewhereOnOtherBus = candidates.first(where: { $0.bus != bus && ($0.manufacturer == nil || $0.manufacturer == manufacturer) }) {
            return .failure(.wrongBus(device: elsewhereOnOtherBus.key, registered: elsewhereOnOtherBus.bus, heard: bus))
        }
        if let away = elsewhere[id], away.building != building {
            return .failure(.otherBuilding(identification: id, building: away.building, ours: building))
        }
        return .failure(.notInRegistry(identification: id, manufacturer: manufacturer))
    }

    /// Entries that are valid but will not work as the operator expects, in words for `config check` and
    /// `registry check`: a wired or radio meter without a manufacturer matches no telegram.
    public var warnings: [String] {
        devices.compactMap { d in
            guard d.bus == .wiredMBus || d.bus == .wirelessMBus, d.replacedBy == nil, d.manufacturer == nil else { return nil }
            return "device \(d.key): no manufacturer: its telegrams will be refused until the registry names its three-letter FLAG code (e.g. \"KAM\")"
        }
    }
}

/// Devices heard that the registry does not know (neighbours' radio meters). Only identity, type and
/// signal are kept, never values: their readings are personal data of other households (GDPR).
///
/// Bounded: anyone with a transmitter can invent ids faster than the gateway can forget them, so at most
/// `capacity` sightings are kept and the one heard longest ago makes room (least recently used). Evictions
/// are counted; a real neighbour heard again simply comes back.
public actor UnknownDevices {
    public struct Sighting: Hashable, Sendable {
        public var identification: String
        public var manufacturer: String
        public var deviceType: String
        public var count: Int
        public var bestRSSI: Int?
        public var lastRSSI: Int?
    }

    /// Default bound: a dense city block hears a few hundred strangers; 2,048 leaves room and stays small
    /// (about 200 bytes each).
    public static let defaultCapacity = 2048

    public nonisolated let capacity: Int
    /// Sightings dropped to stay within `capacity` since start.
    public private(set) var evicted = 0
    private var seen: [String: Entry] = [:]
    /// Recency: a counter stamp per entry; the smallest stamp is the least recently heard.
    private var clock: UInt64 = 0
    private struct Entry {
        var sighting: Sighting
        var lastHeard: UInt64
    }

    public init(capacity: Int = UnknownDevices.defaultCapacity) {
        self.capacity = max(1, capacity)
    }

    public func record(_ header: TelegramHeader, rssi: Int?) {
        guard let id = header.identification?.digits else { return }
        let m = header.manufacturer?.letters ?? "?"
        let key = m + id
        clock &+= 1
        if var e = seen[key] {
            e.sighting.count += 1
            e.sighting.lastRSSI = rssi
            if let r = rssi { e.sighting.bestRSSI = max(e.sighting.bestRSSI ?? r, r) }
            e.lastHeard = clock
            seen[key] = e
            return
        }
        if seen.count >= capacity { evictLeastRecent() }
        seen[key] = Entry(sighting: Sighting(identification: id, manufacturer: m, deviceType: header.deviceType?.name ?? "?",
                                             count: 1, bestRSSI: rssi, lastRSSI: rssi), lastHeard: clock)
    }

    /// Drops the least recently heard eighth at once, so a flood of new ids costs one O(n) pass per
    /// capacity/8 insertions instead of one per insertion.
    private func evictLeastRecent() {
        let drop = max(1, capacity / 8)
        let oldest = seen.sorted { $0.value.lastHeard < $1.value.lastHeard }.prefix(drop)
        for (key, _) in oldest { seen.removeValue(forKey: key) }
        evicted += oldest.count
    }

    /// Most often heard first.
    public func sightings() -> [Sighting] {
        seen.values.map(\.sighting).sorted { ($0.count, $0.identification) > ($1.count, $1.identification) }
    }

    /// How many strangers are held now.
    public var count: Int { seen.count }
}
