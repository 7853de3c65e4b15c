import Drivers

/// IMST HCI as an iM871A (or iM170A) answers it.
struct HCIFirmware: SimulatedFirmware {
    var info: HCI.DeviceInfo
    var attachCRC: Bool
    /// What SET_CONFIG with the NVM flag would store; the radio listens in it after power-on.
    var storedMode: DongleLinkMode?
    var storedRSSI = false
    var storedTimestamp = false
    var mode: DongleLinkMode?
    var rssiAttached = false
    var timestampAttached = false
    var reader = HCIFrameReader()

    init(info: HCI.DeviceInfo, attachCRC: Bool, powerOnMode: DongleLinkMode?) {
        self.info = info
        self.attachCRC = attachCRC
        storedMode = powerOnMode
        mode = powerOnMode
    }

    var receiveMode: DongleLinkMode? { mode }

    mutating func powerOn() {
        mode = storedMode
        rssiAttached = storedRSSI
        timestampAttached = storedTimestamp
        reader = HCIFrameReader()
    }

    func message(_ endpoint: UInt8, _ id: UInt8, _ payload: [UInt8] = []) -> [UInt8] {
        HCI.encode(HCIMessage(endpoint: endpoint, messageID: id, payload: payload, hasCRC: attachCRC))
    }

    mutating func receive(_ bytes: [UInt8], counters: inout DongleSimulatorCounters) -> [UInt8] {
        reader.append(bytes)
        var out: [UInt8] = []
        while let event = reader.next() {
            switch event {
            case .skipped(let skipped, _):
                counters.skippedRequestBytes += skipped.count
            case .message(let m):
                guard m.endpoint == HCI.deviceManagement else { continue }
                counters.requests += 1
                out += answer(m, &counters)
            }
        }
        return out
    }

    private mutating func answer(_ m: HCIMessage, _ counters: inout DongleSimulatorCounters) -> [UInt8] {
        let dm = HCI.deviceManagement
        switch m.messageID {
        case HCI.pingRequest:
            return message(dm, HCI.pingResponse)
        case HCI.getDeviceInfoRequest:
            return message(dm, HCI.getDeviceInfoResponse, info.payload)
        case HCI.getFirmwareInfoRequest:
            return message(dm, HCI.getFirmwareInfoResponse, [info.firmwareVersion, 0x00, 0x2A, 0x00])
        case HCI.getConfigRequest:
            let modeByte = mode.map(HCI.linkModeByte) ?? 0xFF
            return message(dm, HCI.getConfigResponse, [0x03, 0x00, modeByte, 0x30, rssiAttached ? 1 : 0, timestampAttached ? 1 : 0])
        case HCI.setConfigRequest:
            guard m.payload.count >= 2, let config = try? HCI.Configuration.parse(Array(m.payload.dropFirst())) else {
                return message(dm, HCI.setConfigResponse, [0x01])
            }
            if let byte = config.linkModeByte {
                guard let newMode = config.linkMode, newMode != .c1t1 || info.supportsCombinedC1T1,
                      info.moduleType == HCI.moduleIM871A else {
                    return message(dm, HCI.setConfigResponse, [0x01])
                }
                _ = byte
                if newMode != mode { counters.modeChanges += 1 }
                mode = newMode
            }
            if let r = config.rssiAttached { rssiAttached = r }
            if let t = config.timestampAttached { timestampAttached = t }
            if m.payload[0] != 0 {
                counters.nonVolatileWrites += 1
                storedMode = mode
                storedRSSI = rssiAttached
                storedTimestamp = timestampAttached
            }
            return message(dm, HCI.setConfigResponse, [0x00])
        case HCI.resetRequest:
            powerOn()
            return message(dm, HCI.resetResponse, [0x00])
        default:
            return []
        }
    }

    func indication(_ t: SimulatedTelegram, at now: Int64) -> [UInt8] {
        // The module's RTC counts in 1/32768 s since power-on; a monotonic reading serves.
        let ticks = UInt32(truncatingIfNeeded: now / 30_518)
        return HCI.encode(HCIMessage(endpoint: HCI.radioLink, messageID: HCI.wmbusMessageIndication,
                                     payload: Array(t.bytes.dropFirst()),
                                     timestamp: timestampAttached ? ticks : nil,
                                     rssi: rssiAttached ? HCI.rawRSSI(dBm: t.rssiDBm) : nil,
                                     hasCRC: attachCRC))
    }
}

/// Amber's CMD protocol as an AMB8465 answers it, with its non-volatile parameter memory.
struct AmberFirmware: SimulatedFirmware {
    var serialNumber: [UInt8]
    var firmwareVersion: [UInt8]
    /// The 128 bytes of user settings; CMD_SET_REQ writes here, a reset applies them.
    var parameters: [UInt8]
    var mode: DongleLinkMode?
    var commandOutput: Bool
    var rssiEnabled: Bool
    var reader = AmberFrameReader(rssiAppended: false)

    init(serialNumber: [UInt8], firmwareVersion: [UInt8], commandOutput: Bool, rssiEnabled: Bool, powerOnMode: DongleLinkMode?) {
        self.serialNumber = serialNumber
        self.firmwareVersion = firmwareVersion
        var p = [UInt8](repeating: 0xFF, count: 128)
        p[0] = 0x00
        p[Int(Amber.parameterCommandOutputEnable)] = commandOutput ? 1 : 0
        p[Int(Amber.parameterRSSIEnable)] = rssiEnabled ? 1 : 0
        p[Int(Amber.parameterModePreselect)] = powerOnMode.map(Amber.modeByte) ?? 0x00
        parameters = p
        self.commandOutput = commandOutput
        self.rssiEnabled = rssiEnabled
        mode = powerOnMode
    }

    var receiveMode: DongleLinkMode? { mode }

    mutating func powerOn() {
        commandOutput = parameters[Int(Amber.parameterCommandOutputEnable)] != 0
        rssiEnabled = parameters[Int(Amber.parameterRSSIEnable)] != 0
        mode = Amber.linkMode(byte: parameters[Int(Amber.parameterModePreselect)])
        reader = AmberFrameReader(rssiAppended: false)
    }

    func confirm(_ command: UInt8, _ payload: [UInt8]) -> [UInt8] {
        Amber.encode(AmberMessage(command: command | Amber.responseFlag, payload: payload))
    }

    mutating func receive(_ bytes: [UInt8], counters: inout DongleSimulatorCounters) -> [UInt8] {
        reader.append(bytes)
        var out: [UInt8] = []
        while let event = reader.next() {
            switch event {
            case .skipped(let skipped, _):
                counters.skippedRequestBytes += skipped.count
            case .telegram(let t, _, _):
                counters.skippedRequestBytes += t.count
            case .command(let m):
                guard !m.isResponse else { continue }
                counters.requests += 1
                out += answer(m, &counters)
            }
        }
        return out
    }

    private mutating func answer(_ m: AmberMessage, _ counters: inout DongleSimulatorCounters) -> [UInt8] {
        switch m.command {
        case Amber.serialNumberRequest:
            return confirm(m.command, serialNumber)
        case Amber.firmwareVersionRequest:
            return confirm(m.command, firmwareVersion)
        case Amber.setModeRequest:
            guard m.payload.count == 1, let newMode = Amber.linkMode(byte: m.payload[0]) else { return confirm(m.command, [0x01]) }
            if newMode != mode { counters.modeChanges += 1 }
            mode = newMode
            return confirm(m.command, [0x00])
        case Amber.getRequest:
            guard m.payload.count == 2, Int(m.payload[0]) + Int(m.payload[1]) <= parameters.count else { return confirm(m.command, [0x01]) }
            let from = Int(m.payload[0])
            return confirm(m.command, [m.payload[0], m.payload[1]] + parameters[from..<(from + Int(m.payload[1]))])
        case Amber.setRequest:
            guard m.payload.count >= 2, Int(m.payload[1]) == m.payload.count - 2,
                  Int(m.payload[0]) + Int(m.payload[1]) <= parameters.count else { return confirm(m.command, [0x01]) }
            let from = Int(m.payload[0])
            parameters.replaceSubrange(from..<(from + Int(m.payload[1])), with: m.payload.dropFirst(2))
            counters.nonVolatileWrites += 1
            return confirm(m.command, [0x00])
        case Amber.resetRequest:
            let reply = confirm(m.command, [0x00])
            powerOn()
            return reply
        default:
            return []
        }
    }

    func indication(_ t: SimulatedTelegram, at: Int64) -> [UInt8] {
        let rssi: [UInt8] = rssiEnabled ? [Amber.rawRSSI(dBm: t.rssiDBm)] : []
        if commandOutput {
            return Amber.encode(AmberMessage(command: Amber.dataIndication, payload: Array(t.bytes.dropFirst()) + rssi))
        }
        return t.bytes + rssi
    }
}
