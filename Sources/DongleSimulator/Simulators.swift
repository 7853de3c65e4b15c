import Drivers
import MBusSimulator

/// An IMST iM871A on a pseudo-terminal, speaking HCI: answers ping, device info, firmware info,
/// get/set configuration and reset, and emits WMBUSMSG_IND for its telegrams while its radio listens in
/// a mode that hears them (RSSI and timestamp attached as configured, CRC16 on every message).
///
/// ```swift
/// let dongle = try IM871ASimulator(telegrams: [...], linkPath: "/tmp/test/im871a",
///                                  timing: DongleSimulatorTiming(interval: .seconds(2), acceleration: 100))
/// try dongle.start()
/// // open dongle.devicePath; dongle.unplug(); try dongle.replug()
/// ```
public final class IM871ASimulator: SimulatedStick, @unchecked Sendable {
    /// - Parameters:
    ///   - linkPath: a symlink to the pty, kept at the same path across replugs (like a udev SYMLINK).
    ///   - powerOnMode: the mode stored in the module's NVM; nil: the radio hears nothing until configured.
    ///   - moduleType: `HCI.moduleIM871A` or `HCI.moduleIM170A`.
    public init(telegrams: [SimulatedTelegram] = [], linkPath: String? = nil, timing: DongleSimulatorTiming = DongleSimulatorTiming(),
                moduleType: UInt8 = HCI.moduleIM871A, firmwareVersion: UInt8 = 0x15, uniqueID: UInt32 = 0x0150_2A17,
                attachCRC: Bool = true, powerOnMode: DongleLinkMode? = nil) {
        let info = HCI.DeviceInfo(moduleType: moduleType, deviceMode: 0, firmwareVersion: firmwareVersion, hciVersion: 0x17, uniqueID: uniqueID)
        super.init(SimulatedDongle(name: "iM871A", firmware: HCIFirmware(info: info, attachCRC: attachCRC, powerOnMode: powerOnMode),
                                   telegrams: telegrams, linkPath: linkPath, timing: timing))
    }

}

/// An Amber AMB8465 (or the AMB8665 stick) on a pseudo-terminal, speaking the CMD protocol: serial
/// number, firmware version, get/set of the parameter memory, set mode and reset; telegrams as
/// CMD_DATA_IND, or raw L-first in transparent mode (`commandOutput: false`) with confirmations still
/// framed in between. RSSI byte appended when `rssiEnabled`.
public final class AMB8465Simulator: SimulatedStick, @unchecked Sendable {
    public init(telegrams: [SimulatedTelegram] = [], linkPath: String? = nil, timing: DongleSimulatorTiming = DongleSimulatorTiming(),
                commandOutput: Bool = true, rssiEnabled: Bool = true,
                serialNumber: [UInt8] = [0x00, 0x12, 0x34, 0x56], firmwareVersion: [UInt8] = [1, 6, 2],
                powerOnMode: DongleLinkMode? = nil) {
        let firmware = AmberFirmware(serialNumber: serialNumber, firmwareVersion: firmwareVersion, commandOutput: commandOutput,
                                     rssiEnabled: rssiEnabled, powerOnMode: powerOnMode)
        super.init(SimulatedDongle(name: "AMB8465", firmware: firmware, telegrams: telegrams, linkPath: linkPath, timing: timing))
    }

}

/// What every simulated stick offers a test or the demo: its path, plug cycles, telegrams and noise to
/// send, and what it counted. Subclasses only choose the firmware. (`@unchecked Sendable`: a class that is
/// not final cannot be checked, but it holds one immutable, Sendable `SimulatedDongle`.)
public class SimulatedStick: @unchecked Sendable {
    let core: SimulatedDongle

    init(_ core: SimulatedDongle) { self.core = core }

    /// The path to open: the link path when given, else the current pty.
    public var devicePath: String { core.devicePath }
    /// The pty node of the current plug cycle, nil while unplugged.
    public var terminalPath: String? { core.terminalPath }
    public func start() throws(SimulatorError) { try core.start() }
    /// Ends the thread, closes the pty and removes the symlink. Safe to call more than once.
    public func stop() { core.stop() }
    /// The USB stick pulled: the pty closes (the gateway's reads fail with EIO) and the symlink goes.
    public func unplug() { core.unplug() }
    /// Plugged back: a new pty at the same symlink, the module powered up with its stored configuration.
    public func replug() throws(SimulatorError) { try core.replug() }
    /// More telegrams to send, after the queued ones.
    public func enqueue(_ telegrams: [SimulatedTelegram]) {
        core.state.withLock { $0.queue += telegrams }
        core.wake()
    }
    /// Garbage on the line, between messages.
    public func injectNoise(_ bytes: [UInt8]) {
        core.state.withLock { s in
            s.noise.append(bytes)
            s.counters.noiseBytes += bytes.count
        }
        core.wake()
    }
    public var counters: DongleSimulatorCounters { core.state.withLock { $0.counters } }
    public var receiveMode: DongleLinkMode? { core.state.withLock { $0.firmware.receiveMode } }
    public var pendingTelegrams: Int { core.state.withLock { $0.queue.count } }
}
