import Drivers
import MBusSimulator

/// IMST's second HCI as an iU891A-XL answers it: ping, device info, get/set active configuration;
/// 09h/20h for each telegram while receive notification is on and the radio listens in a mode that hears it.
/// "Set Active" lives in RAM only, as on the stick: a power cycle returns to the stored configuration.
struct IU891Firmware: SimulatedFirmware {
    var info: IU891.DeviceInfo
    /// The default (NVM) configuration: mode off, filter on, notification off, LEDs and calibration set.
    var stored: [UInt8] = [0x00, 0x01, 0x00, 0x05, 0x00, 0x32, 0x00, 0xC0, 0x27, 0x09, 0x00]
    var active: [UInt8]
    var reader = IU891FrameReader()

    init(info: IU891.DeviceInfo) {
        self.info = info
        active = stored
    }

    var receiveMode: DongleLinkMode? {
        // Only with receive notification on (option bit 1) does the host hear anything.
        guard active[1] & 0x02 != 0 else { return nil }
        switch active[0] {
        case 1: return .s1
        case 2: return .t1
        case 3: return .c1t1
        case 5: return .c1
        default: return nil
        }
    }

    mutating func powerOn() {
        active = stored
        reader = IU891FrameReader()
    }

    func reply(_ sap: UInt8, _ id: UInt8, _ payload: [UInt8]) -> [UInt8] {
        IU891.encode(IU891Message(sap: sap, messageID: id &+ 1, payload: payload))
    }

    mutating func receive(_ bytes: [UInt8], counters: inout DongleSimulatorCounters) -> [UInt8] {
        reader.append(bytes)
        var out: [UInt8] = []
        while let event = reader.next() {
            switch event {
            case .skipped(let skipped, _):
                counters.skippedRequestBytes += skipped.count
            case .message(let m):
                counters.requests += 1
                out += answer(m, &counters)
            }
        }
        return out
    }

    private mutating func answer(_ m: IU891Message, _ counters: inout DongleSimulatorCounters) -> [UInt8] {
        switch (m.sap, m.messageID) {
        case (IU891.deviceManagement, IU891.pingRequest):
            return reply(m.sap, m.messageID, [0x00])
        case (IU891.deviceManagement, IU891.getDeviceInfoRequest):
            return reply(m.sap, m.messageID, info.payload)
        case (IU891.wmbusGateway, IU891.getActiveConfigRequest):
            return reply(m.sap, m.messageID, [0x00] + active)
        case (IU891.wmbusGateway, IU891.setActiveConfigRequest):
            // Status 7: wrong message length; 3: wrong parameter (a link mode the stick does not have).
            guard m.payload.count == 11 else { return reply(m.sap, m.messageID, [0x07]) }
            guard [0, 1, 2, 3, 5, 6].contains(m.payload[0]) else { return reply(m.sap, m.messageID, [0x03]) }
            let before = receiveMode
            active = m.payload
            if receiveMode != before { counters.modeChanges += 1 }
            return reply(m.sap, m.messageID, [0x00])
        default:
            // Status 2: command not supported.
            return reply(m.sap, m.messageID, [0x02])
        }
    }

    func indication(_ t: SimulatedTelegram, at now: Int64) -> [UInt8] {
        // The stick's clock starts at 2000-01-01 on power-up; seconds since then serve.
        let seconds = UInt32(truncatingIfNeeded: (now / 1000) & 0xFFFF_FFFF)
        return IU891.encode(IU891Message(sap: IU891.wmbusGateway, messageID: IU891.receivedTelegram,
                                         payload: IU891.telegramPayload(frame: t.bytes, rssiDBm: t.rssiDBm, stickSeconds: seconds)))
    }
}

/// culfw as a CUL answers it: V, X21, brs/brt/brc (brc only when `hasCMode`, as in official r571), brx;
/// telegrams as `b…` (format A) or `bY…` (format B, C mode) lines with the CRCs, LQI and RSSI.
struct CULFirmware: SimulatedFirmware {
    var version: String
    var hasCMode: Bool
    var mode: DongleLinkMode?
    var signalReports = false
    var pendingLine: [UInt8] = []

    var receiveMode: DongleLinkMode? { mode }

    mutating func powerOn() {
        mode = nil
        signalReports = false
        pendingLine = []
    }

    mutating func receive(_ bytes: [UInt8], counters: inout DongleSimulatorCounters) -> [UInt8] {
        var out: [UInt8] = []
        for b in bytes {
            if b == 0x0D || b == 0x0A {
                if !pendingLine.isEmpty {
                    counters.requests += 1
                    out += answer(String(decoding: pendingLine, as: UTF8.self), &counters)
                }
                pendingLine = []
            } else if pendingLine.count < 128 {
                pendingLine.append(b)
            } else {
                counters.skippedRequestBytes += 1
            }
        }
        return out
    }

    private mutating func answer(_ command: String, _ counters: inout DongleSimulatorCounters) -> [UInt8] {
        func line(_ s: String) -> [UInt8] { Array((s + "\r\n").utf8) }
        func set(_ m: DongleLinkMode?) {
            if m != mode { counters.modeChanges += 1 }
            mode = m
        }
        switch command {
        case "V": return line(version)
        case "X21": signalReports = true; return []
        case "X00": signalReports = false; return []
        case "brs": set(.s1); return line("SMODE")
        case "brt": set(.t1); return line("TMODE")
        case "brc":
            guard hasCMode else { return line("OFF") }
            set(.c1t1)
            return line("CMODE")
        case "brx": set(nil); return line("OFF")
        default: return line("? (\(command) is unknown) Use one of b V X")
        }
    }

    func indication(_ t: SimulatedTelegram, at: Int64) -> [UInt8] {
        guard let frame = try? WMBusFrameCodec.decode(t.bytes, format: .noCRC) else { return [] }
        // C1 frames go out in format B here (as C-mode meters mostly send), T1 and S1 in format A.
        let format: WMBusFrameFormat = t.linkMode == .c1 ? .b : .a
        let wire = WMBusFrameCodec.encode(control: frame.control, address: frame.address, payload: frame.payload, format: format)
        var text = (format == .b ? "bY" : "b") + Hex.encode(wire)
        if signalReports { text += Hex.encode([0x2F, CUL.rawRSSI(dBm: t.rssiDBm)]) }
        return Array((text + "\r\n").utf8)
    }
}

/// An IMST iU891A-XL on a pseudo-terminal, speaking the SLIP HCI.
public final class IU891ASimulator: SimulatedStick, @unchecked Sendable {
    public init(telegrams: [SimulatedTelegram] = [], linkPath: String? = nil, timing: DongleSimulatorTiming = DongleSimulatorTiming(),
                moduleType: UInt8 = 0x6E, uniqueID: UInt32 = 0x0891_2A17) {
        super.init(SimulatedDongle(name: "iU891A", firmware: IU891Firmware(info: IU891.DeviceInfo(moduleType: moduleType, uniqueID: uniqueID)),
                                   telegrams: telegrams, linkPath: linkPath, timing: timing))
    }

}

/// A CUL (culfw) on a pseudo-terminal, in wM-Bus mode.
public final class CULSimulator: SimulatedStick, @unchecked Sendable {
    /// - Parameter hasCMode: official culfw r571 has `brc`; a-culfw answers OFF.
    public init(telegrams: [SimulatedTelegram] = [], linkPath: String? = nil, timing: DongleSimulatorTiming = DongleSimulatorTiming(),
                version: String = "V 1.67 nanoCUL868", hasCMode: Bool = true) {
        super.init(SimulatedDongle(name: "CUL", firmware: CULFirmware(version: version, hasCMode: hasCMode),
                                   telegrams: telegrams, linkPath: linkPath, timing: timing))
    }

}
