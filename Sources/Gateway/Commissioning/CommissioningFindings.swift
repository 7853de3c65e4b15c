/// Turns what commissioning saw into what the installer should do: one sentence per finding, naming
/// the unit and the device as they are written on the door and the nameplate, and the next step.
enum CommissioningFindings {
    static func findings(devices: [CommissioningReport.DeviceResult], heatPumps: [CommissioningReport.HeatPumpResult],
                         unknown: [CommissioningReport.UnknownDevice], buses: [CommissioningReport.BusResult],
                         options: CommissioningOptions) -> [CommissioningReport.Finding] {
        var out: [CommissioningReport.Finding] = []
        // A bus that never worked explains its devices' silence: say it first.
        for b in buses where b.state != "ok" {
            out.append(.init(severity: .action, code: "bus_failed",
                             message: "\(b.name) (\(busWord(b.kind))): \(b.state); its \(b.expected) devices could not be checked", devices: []))
        }
        for d in devices where !d.heard {
            switch d.bus {
            case BusKind.wirelessMBus.rawValue:
                out.append(.init(severity: .action, code: "not_heard",
                                 message: "\(place(d))\(shortKind(d.kind)) \(d.identification ?? d.key) not heard: check it is mounted and active",
                                 devices: [d.key]))
            case BusKind.modbus.rawValue:
                let hp = heatPumps.first { $0.key == d.key }
                out.append(.init(severity: .action, code: "heat_pump_silent",
                                 message: "\(place(d))heat pump \(d.key) (unit \(hp?.modbusUnit ?? 0) on \(d.line ?? "its line")) did not answer"
                                    + (d.error.map { " (\($0))" } ?? "") + ": check the RS-485 wiring, the unit id and the line settings",
                                 devices: [d.key]))
            default:
                out.append(.init(severity: .action, code: "no_answer",
                                 message: "\(place(d))\(shortKind(d.kind)) \(d.identification ?? d.key) on \(d.line ?? "the M-Bus line") did not answer"
                                    + (d.error.map { " (\($0))" } ?? "") + ": check its wiring to the bus and its address",
                                 devices: [d.key]))
            }
        }
        for d in devices where d.heard {
            let who = "\(d.identification ?? d.key)\(d.unit.map { " (unit \($0))" } ?? "")"
            switch d.decryption {
            case .wrongKey:
                if let other = d.keyFiledUnder {
                    let otherDevice = devices.first { $0.identification == other && $0.bus == d.bus }
                    out.append(.init(severity: .action, code: "key_of_another_meter",
                                     message: "the key filed under \(other)\(otherDevice?.unit.map { " (unit \($0))" } ?? "") opens the telegrams of \(who): the two rows of the key file are probably swapped; file each key under its own meter",
                                     devices: [d.key] + (otherDevice.map { [$0.key] } ?? [])))
                } else {
                    out.append(.init(severity: .action, code: "wrong_key",
                                     message: "key rejected for \(who): request the key from the manufacturer", devices: [d.key]))
                }
            case .noKey:
                out.append(.init(severity: .action, code: "no_key",
                                 message: "no key for \(who), it sends encrypted: add its key from the manufacturer to the key file",
                                 devices: [d.key]))
            case .unsupported:
                out.append(.init(severity: .action, code: "unsupported_security",
                                 message: "\(who) encrypts in a security mode gatewayd cannot open: ask the manufacturer to configure mode 5 or 7",
                                 devices: [d.key]))
            default:
                break
            }
            if let why = d.securityDowngrade {
                out.append(.init(severity: .action, code: "security_downgrade",
                                 message: "\(who) must encrypt (its key is on file) but \(why): check the meter's security mode on site; "
                                    + "a telegram like this may be forged, and the daemon refuses it", devices: [d.key]))
            }
            if d.serialMatch == .mismatch, d.bus == BusKind.modbus.rawValue {
                let hp = heatPumps.first { $0.key == d.key }
                out.append(.init(severity: .action, code: "serial_mismatch",
                                 message: "heat pump \(d.key) (unit \(hp?.modbusUnit ?? 0) on \(d.line ?? "its line")) \(d.serialDetail ?? "reports another serial than the registry"): check which heat pump is wired to this address and correct the registry or the wiring",
                                 devices: [d.key]))
            } else if d.serialMatch == .mismatch {
                out.append(.init(severity: .action, code: "serial_mismatch",
                                 message: "\(place(d))\(shortKind(d.kind)) \(d.identification ?? d.key): \(d.serialDetail ?? "identity does not match the registry"): check which device is installed and correct the registry or the wiring",
                                 devices: [d.key]))
            }
        }
        // Weak devices, grouped by floor: one repeater usually serves a floor.
        var weakByFloor: [String: [(key: String, median: Double)]] = [:]
        for d in devices {
            if let r = d.rssi, r.median < options.weakSignalBelow { weakByFloor[d.floor, default: []].append((d.key, r.median)) }
        }
        for floor in CommissioningSession.sortFloors(Array(weakByFloor.keys)) {
            let weak = weakByFloor[floor]!
            let weakest = weak.map(\.median).min()!
            let count = weak.count == 1 ? "1 device" : "\(weak.count) devices"
            let whereText = floor == "-" ? "without a unit" : "on floor \(floor)"
            out.append(.init(severity: .warning, code: "weak_signal",
                             message: "weak signal (\(Int(weakest.rounded())) dBm) on \(count) \(whereText): consider a repeater",
                             devices: weak.map(\.key)))
        }
        // A meter answering on our own wire but missing from the registry: the registry is incomplete.
        let wiredLines = Set(buses.filter { $0.kind == BusKind.wiredMBus.rawValue }.map(\.name))
        for u in unknown where wiredLines.contains(u.heardOn ?? "") {
            out.append(.init(severity: .warning, code: "wired_unregistered",
                             message: "\(u.type.lowercased()) \(u.identification) (\(u.manufacturer)) answers on \(u.heardOn!) but is not in the registry: add it to the registry, or disconnect it if it belongs elsewhere",
                             devices: []))
        }
        if !unknown.isEmpty {
            let elsewhere = unknown.filter { $0.note != nil }.count
            out.append(.init(severity: .info, code: "unknown_nearby",
                             message: "\(unknown.count) unknown device\(unknown.count == 1 ? "" : "s") nearby (not in the registry"
                                + (elsewhere > 0 ? "; \(elsewhere) registered in another building" : "")
                                + "): their values are not recorded; check the list if a meter of this building is among them",
                             devices: []))
        }
        // Stable order: severity, then the order above (which is by kind of problem, then registry order).
        return out.enumerated().sorted { ($0.element.severity, $0.offset) < ($1.element.severity, $1.offset) }.map(\.element)
    }

    private static func place(_ d: CommissioningReport.DeviceResult) -> String {
        d.unit.map { "unit \($0) " } ?? ""
    }

    /// How installers say it: "HCA 12345678".
    static func shortKind(_ kind: String) -> String {
        kind == "heat-cost allocator" ? "HCA" : kind
    }

    private static func busWord(_ kind: String) -> String {
        switch kind {
        case BusKind.wirelessMBus.rawValue: return "wireless M-Bus dongle"
        case BusKind.wiredMBus.rawValue: return "wired M-Bus line"
        default: return "Modbus line"
        }
    }
}
