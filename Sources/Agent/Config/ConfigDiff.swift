/// What a reload changed, so that the daemon restarts only those services.
///
/// Buses are compared one by one, by name: a bus whose settings (or Modbus devices, or their profiles)
/// changed is in `changedBuses`; the other buses keep running.
package struct ConfigChanges: Hashable, Sendable, CustomStringConvertible {
    package enum Section: String, Hashable, Sendable, CaseIterable, Comparable {
        /// gateway_id or building: everything restarts (uploads and the registry are keyed by them).
        case identity
        case demo
        case keys
        case buses
        case schedules
        case buffer
        case uplink
        case registry
        case metrics
        case status
        /// `[alarms]`: the pipeline's silence policy is set at start.
        case alarms

        package static func < (a: Section, b: Section) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    package var sections: Set<Section> = []
    package var addedBuses: [String] = []
    package var removedBuses: [String] = []
    package var changedBuses: [String] = []

    package var isEmpty: Bool { sections.isEmpty }

    package func contains(_ section: Section) -> Bool { sections.contains(section) }

    /// Sections a reload does not apply: the services that own them (buffer, uploader, endpoints) are
    /// built once at start, and identity or demo change what everything else is keyed by. The daemon
    /// keeps running on the old values and says so (log, status, systemd STATUS=) until a restart.
    /// What reload does apply: buses (added, removed, changed, with their schedules), keys, and the
    /// registry file's contents.
    package var needsRestart: [Section] {
        let deferred: Set<Section> = [.identity, .demo, .buffer, .uplink, .metrics, .status, .alarms]
        var out = sections.intersection(deferred)
        if registryModeChanged { out.insert(.registry) }
        return out.sorted()
    }

    /// The registry moved between a file and the portal, or the portal sync settings changed: the
    /// uploader's registry sync is set up at start.
    package var registryModeChanged = false

    /// What the daemon applies at once on SIGHUP.
    package var appliedNow: [Section] {
        sections.subtracting(needsRestart).sorted()
    }

    /// "buses (added line-2; changed rs485-1), uplink" or "nothing".
    package var description: String {
        if sections.isEmpty { return "nothing" }
        return sections.sorted().map { section in
            guard section == .buses else { return section.rawValue }
            var details: [String] = []
            if !addedBuses.isEmpty { details.append("added " + addedBuses.joined(separator: ", ")) }
            if !removedBuses.isEmpty { details.append("removed " + removedBuses.joined(separator: ", ")) }
            if !changedBuses.isEmpty { details.append("changed " + changedBuses.joined(separator: ", ")) }
            return details.isEmpty ? "buses" : "buses (\(details.joined(separator: "; ")))"
        }.joined(separator: ", ")
    }
}

extension GatewayConfig {
    /// The sections that differ between this (running) configuration and `new`.
    package func changes(to new: GatewayConfig) -> ConfigChanges {
        var c = ConfigChanges()
        if gatewayID != new.gatewayID || building != new.building { c.sections.insert(.identity) }
        if demo != new.demo { c.sections.insert(.demo) }
        if keys != new.keys { c.sections.insert(.keys) }
        if schedules != new.schedules { c.sections.insert(.schedules) }
        if buffer != new.buffer { c.sections.insert(.buffer) }
        if uplink != new.uplink { c.sections.insert(.uplink) }
        if registry != new.registry {
            c.sections.insert(.registry)
            if case .file = registry, case .file = new.registry {} else { c.registryModeChanged = true }
        }
        if metrics != new.metrics { c.sections.insert(.metrics) }
        if status != new.status { c.sections.insert(.status) }
        if alarms != new.alarms { c.sections.insert(.alarms) }

        let old = buses.byName, next = new.buses.byName
        c.addedBuses = new.buses.names.filter { old[$0] == nil }
        c.removedBuses = buses.names.filter { next[$0] == nil }
        c.changedBuses = buses.names.filter { name in next[name].map { $0 != old[name]! } ?? false }
        if !c.addedBuses.isEmpty || !c.removedBuses.isEmpty || !c.changedBuses.isEmpty { c.sections.insert(.buses) }
        return c
    }
}

extension GatewayConfig.Buses {
    /// One bus of any kind, for comparing by name.
    package enum AnyBus: Hashable, Sendable {
        case mbus(GatewayConfig.MBusLineConfig)
        case wmbus(GatewayConfig.WMBusDongleConfig)
        case modbus(GatewayConfig.ModbusLineConfig)
    }

    package var byName: [String: AnyBus] {
        var out: [String: AnyBus] = [:]
        for b in mbus { out[b.name] = .mbus(b) }
        for b in wmbus { out[b.name] = .wmbus(b) }
        for b in modbus { out[b.name] = .modbus(b) }
        return out
    }
}
