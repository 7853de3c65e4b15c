import Agent
import CLISupport
import ArgumentParser
import Drivers
import Foundation
import Gateway

/// `gatewayd registry …`: what the building's registry holds, and whether a meter belongs to it.
struct RegistryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry",
        abstract: "Show the building's device registry, or check whether a meter belongs to it.",
        discussion: "Default registry: /var/lib/gatewayd/registry.json (--registry PATH for another).",
        subcommands: [RegistryShow.self, RegistryCheck.self])

    static let defaultPath = "/var/lib/gatewayd/registry.json"

    static func load(_ path: String) throws -> DeviceRegistry {
        do { return try DeviceRegistry.load(path: path) } catch {
            throw CLIError(error.message + (path == defaultPath ? " (or give --registry PATH)" : ""))
        }
    }
}

// MARK: - show

struct RegistryShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "List the building, the gateway and the registered devices.")

    @Option(help: "The building's registry (JSON).")
    var registry = RegistryCommand.defaultPath

    @Flag(help: "Print one JSON object on one line (snake_case keys) instead of a table.")
    var json = false

    struct JSON: Encodable {
        var gateway: String
        var building: String
        var devices: [RegisteredDevice]
    }

    func run() async throws {
        let r = try RegistryCommand.load(registry)
        if json {
            print(jsonLine(JSON(gateway: r.gateway, building: r.building, devices: r.devices)))
        } else {
            print(Self.text(r), terminator: "")
        }
    }

    static func address(_ d: RegisteredDevice) -> String {
        switch d.bus {
        case .modbus:
            return [d.modbusUnit.map { "unit \($0)" }, d.line].compactMap { $0 }.joined(separator: " @ ")
        case .wiredMBus:
            return [d.primaryAddress.map { "address \($0)" }, d.line].compactMap { $0 }.joined(separator: " @ ")
        case .wirelessMBus:
            return "radio"
        case .manual:
            return "by hand"
        }
    }

    static func replaced(_ d: RegisteredDevice) -> String {
        if let by = d.replacedBy { return "on \(d.replacedOn ?? "?") by \(by)" }
        if let old = d.replaces { return "replaces \(old)" }
        return ""
    }

    static func text(_ r: DeviceRegistry) -> String {
        let out = "building \(r.building), gateway \(r.gateway): \(r.devices.count) devices\n"
        guard !r.devices.isEmpty else { return out }
        let rows = r.devices.map { d in
            [d.key, d.bus.rawValue, address(d), d.manufacturer ?? "", d.unit ?? "", d.identification ?? d.serial ?? "", replaced(d)]
        }
        // A registry may come from the portal: its names reach the terminal escaped.
        return TerminalText.lines(out + TextTable.render(header: ["key", "bus", "address/line", "manufacturer", "unit", "serial", "replaced"], rows: rows, indent: "  "))
    }
}

// MARK: - check

struct RegistryCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Say whether a meter's identification number (or a heat pump's serial) belongs to this building.",
        discussion: """
            An 8-digit identification number is checked as the pipeline checks a telegram's sender, with the \
            same reasons (another building, replaced, manufacturer mismatch, not registered); shorter numbers \
            get their leading zeros. Anything else is looked up as a nameplate serial. \
            Exit status 0 when it is a device of this building, 2 when it is not, 1 when the registry cannot be read.
            """)

    @Argument(help: "Identification number (8 digits, as on the meter) or nameplate serial.")
    var serial: String

    @Option(help: "FLAG manufacturer code as the meter sends it (KAM, QDS, …).")
    var manufacturer: String?

    @Option(help: "The building's registry (JSON).")
    var registry = RegistryCommand.defaultPath

    @Flag(help: "Print one JSON object on one line (snake_case keys) instead of a sentence.")
    var json = false

    func validate() throws {
        if let m = manufacturer, ManufacturerCode(m) == nil {
            throw ValidationError("--manufacturer \(m) is not a three-letter code (e.g. KAM)")
        }
        if serial.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("give an identification number or serial") }
    }

    /// What the check found.
    enum Outcome: Equatable {
        case ours(RegisteredDevice)
        case rejected(RejectionReason)

        var exitCode: Int32 { if case .ours = self { 0 } else { 2 } }
    }

    /// Identification number as 8 digits: leading zeros added, spaces dropped; nil when it is not one.
    static func identification(_ text: String) -> String? {
        let digits = text.filter { !$0.isWhitespace }
        guard !digits.isEmpty, digits.count <= 8, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    static func comparable(_ s: String) -> String { String(s.uppercased().filter { !$0.isWhitespace && $0 != "-" }) }

    static func check(_ serial: String, manufacturer: String?, in registry: DeviceRegistry) -> Outcome {
        if let id = identification(serial), let number = IdentificationNumber(id) {
            var header = TelegramHeader()
            header.identification = number
            // A technician may give the serial alone: look it up on the bus and with the maker the registry
            // holds for it (the pipeline itself matches both strictly).
            let registered = registry.devices(identification: id)
            let entry = registered.first(where: { $0.replacedBy == nil && (manufacturer == nil || $0.manufacturer == manufacturer) })
                ?? registered.first
            header.manufacturer = (manufacturer ?? entry?.manufacturer).flatMap { ManufacturerCode($0) }
            switch registry.identify(header, bus: entry?.bus ?? .wirelessMBus) {
            case .success(let d): return .ours(d)
            case .failure(let why): return .rejected(why)
            }
        }
        // A nameplate serial (heat pumps): the current device first, a replaced one only to say so.
        let wanted = comparable(serial)
        let matching = registry.devices.filter { $0.serial.map(comparable) == wanted }
        if let current = matching.first(where: { $0.replacedBy == nil }) { return .ours(current) }
        if let old = matching.first, let by = old.replacedBy {
            return .rejected(.replaced(identification: serial, on: old.replacedOn ?? "?", by: by))
        }
        return .rejected(.notInRegistry(identification: serial, manufacturer: manufacturer?.uppercased()))
    }

    static func verdict(_ outcome: Outcome, building: String) -> String {
        switch outcome {
        case .ours(let d):
            var parts = ["device \(d.key)", "bus \(d.bus.rawValue)"]
            if let u = d.unit { parts.append("unit \(u)") }
            let address = RegistryShow.address(d)
            if !address.isEmpty { parts.append(address) }
            return "belongs to this building (\(building)): " + parts.joined(separator: ", ")
        case .rejected(let why):
            let kind: String
            switch why {
            case .otherBuilding: kind = "another building"
            case .replaced: kind = "a replaced device"
            case .notInRegistry, .noModbusDevice: kind = "not registered"
            case .manufacturerMismatch: kind = "manufacturer does not match"
            case .invalidIdentity: kind = "not a valid identity"
            case .serialPattern, .serialMismatch: kind = "serial does not match"
            case .wrongBus: kind = "registered on another bus"
            case .registryEntryWithoutManufacturer: kind = "registry entry incomplete"
            case .securityDowngrade: kind = "refused as a forgery"
            }
            return "\(kind): \(why)"
        }
    }

    struct JSON: Encodable {
        var serial: String
        var building: String
        var belongs: Bool
        var device: RegisteredDevice?
        var verdict: String
    }

    static func json(_ outcome: Outcome, serial: String, building: String) -> String {
        var device: RegisteredDevice?
        if case .ours(let d) = outcome { device = d }
        return jsonLine(JSON(serial: serial, building: building, belongs: device != nil, device: device,
                             verdict: verdict(outcome, building: building)))
    }

    func run() async throws {
        let r = try RegistryCommand.load(registry)
        let outcome = Self.check(serial, manufacturer: manufacturer, in: r)
        print(json ? Self.json(outcome, serial: serial, building: r.building) : TerminalText.lines(Self.verdict(outcome, building: r.building)))
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }
}
