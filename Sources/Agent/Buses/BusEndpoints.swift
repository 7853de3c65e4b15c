import Drivers
import Gateway

/// The one place that turns a configured bus into something to open, and a registered wired meter into
/// the address it is read by. The daemon's runners (`BusContext`) and `CommissioningRun` both go through
/// it, so a commissioning run checks the buses exactly as the daemon will read them afterwards: the same
/// serial port or simulator, the same addressing, the same words when a bus cannot be reached.
package struct BusEndpoints: Sendable {
    /// The demo's simulators (empty outside a demo configuration).
    package let demo: DemoBuilding

    package init(demo: DemoBuilding) { self.demo = demo }

    /// The wired M-Bus line's serial port or TCP converter.
    package func wired(_ line: GatewayConfig.MBusLineConfig) -> Result<BusEndpoint, BusUnavailable> {
        switch line.source {
        case .endpoint(let e): return .success(e)
        case .simulator:
            guard let path = demo.mbusLines[line.name] else { return .failure(.simulatorNotRunning(bus: line.name)) }
            return .success(.serial(path: path))
        }
    }

    /// The Modbus line's RTU port or TCP peer.
    package func modbus(_ line: GatewayConfig.ModbusLineConfig) -> Result<ModbusEndpoint, BusUnavailable> {
        switch line.source {
        case .endpoint(let e): return .success(e)
        case .simulator:
            guard let port = demo.modbusLines[line.name] else { return .failure(.simulatorNotRunning(bus: line.name)) }
            return .success(.tcp(host: "127.0.0.1", port: port))
        }
    }

    /// The radio receiver: a USB dongle (the demo's simulated iM871A included) or an rtl_wmbus pipeline.
    package func receiver(_ dongle: GatewayConfig.WMBusDongleConfig) -> Result<RadioReceiver, BusUnavailable> {
        let mode = DongleLinkMode(text: dongle.linkMode.rawValue) ?? .c1t1
        let kind: DongleKind? = dongle.type == .auto ? nil : DongleKind(rawValue: dongle.type.rawValue)
        switch dongle.source {
        case .device(let path):
            return .success(.dongle(DongleConfiguration(path: path, kind: kind, linkMode: mode)))
        case .command(let command):
            return .success(.command(command))
        case .simulator:
            guard let path = demo.dongles[dongle.name] else { return .failure(.simulatorNotRunning(bus: dongle.name)) }
            return .success(.dongle(DongleConfiguration(path: path, kind: .im871a, linkMode: mode)))
        }
    }
}

/// Why a configured bus has nothing to open.
package enum BusUnavailable: Error, Equatable, CustomStringConvertible {
    /// A demo bus whose simulator did not start (gatewayd-sim missing or exited early).
    case simulatorNotRunning(bus: String)

    package var description: String {
        switch self {
        case .simulatorNotRunning(let bus):
            "the simulator of \(bus) is not running: check that gatewayd-sim started (the log says why it did not)"
        }
    }
}

/// A radio receiver the daemon and commissioning listen to; both give the same `DongleEvent`s.
package enum RadioReceiver: Sendable, Equatable {
    case dongle(DongleConfiguration)
    case command(String)

    /// How `gatewayd status` and commissioning name it.
    package var componentKind: String {
        if case .command = self { return "rtl_wmbus receiver" }
        return "wireless dongle"
    }

    /// What the status line says while it starts.
    package var startingDetail: String {
        switch self {
        case .dongle(let c): "opening \(c.path)"
        case .command(let command): "starting \(command)"
        }
    }

    /// The receiver's events until the stream's consumer stops listening. `name` labels the telegrams of
    /// an rtl_wmbus pipeline (a dongle labels its own).
    package func events(name: String) -> AsyncStream<DongleEvent> {
        switch self {
        case .dongle(let configuration): WMBusDongle(configuration).events()
        case .command(let command): RTLWMBusSource(.command(command), receiver: name).events()
        }
    }
}

extension GatewayConfig.MBusLineConfig.Addressing {
    /// The address a registered meter is read by on a line with this addressing, or why it has none.
    /// Secondary addressing falls back to the primary address for a meter whose identification the
    /// registry does not give; primary addressing never selects (the line's meters may not support it).
    package func address(of device: RegisteredDevice) -> Result<MeterAddress, WiredAddressProblem> {
        // The registry's primary address as a bus address: nil when it gives none, a failure when it is no byte.
        let primary: Result<MeterAddress, WiredAddressProblem>? = device.primaryAddress.map { p in
            UInt8(exactly: p).map { .success(.primary($0)) } ?? .failure(.primaryOutOfRange(p))
        }
        switch self {
        case .primary:
            return primary ?? .failure(.noPrimaryAddress)
        case .secondary:
            if let text = device.identification, let id = IdentificationNumber(text) {
                let manufacturer = device.manufacturer.flatMap { ManufacturerCode($0) }
                return .success(.secondary(SecondaryAddressMask(identification: id, manufacturer: manufacturer, version: nil, deviceType: nil)))
            }
            return primary ?? .failure(.noAddress)
        }
    }
}

/// Why a registered wired meter cannot be addressed on its line; the text says what to fix in the registry.
package enum WiredAddressProblem: Error, Equatable, CustomStringConvertible {
    /// A primary-addressed line, and the registry gives the meter no primary address.
    case noPrimaryAddress
    /// A secondary-addressed line, and the registry gives neither an identification nor a primary address.
    case noAddress
    /// The registry's primary address is not a byte.
    case primaryOutOfRange(Int)

    package var description: String {
        switch self {
        case .noPrimaryAddress:
            "its line reads by primary address and the registry gives it none: add its primary address (1-250) to the registry"
        case .noAddress:
            "the registry gives neither its identification nor a primary address: add its 8-digit identification to the registry"
        case .primaryOutOfRange(let p):
            "the registry's primary address \(p) is not an M-Bus address (0-250): correct it in the registry"
        }
    }
}
