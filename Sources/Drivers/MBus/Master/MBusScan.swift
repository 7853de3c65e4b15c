/// A meter's full secondary address as it identifies itself in its long header.
public struct SecondaryAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var identification: IdentificationNumber
    public var manufacturer: ManufacturerCode
    public var version: UInt8
    public var deviceType: DeviceType

    public init(identification: IdentificationNumber, manufacturer: ManufacturerCode, version: UInt8, deviceType: DeviceType) {
        self.identification = identification
        self.manufacturer = manufacturer
        self.version = version
        self.deviceType = deviceType
    }

    init?(_ t: Telegram) {
        guard let id = t.header.identification, let m = t.header.manufacturer, let v = t.header.version,
              let d = t.header.deviceType else { return nil }
        self.init(identification: id, manufacturer: m, version: v, deviceType: d)
    }

    /// Selects exactly this meter.
    public var mask: SecondaryAddressMask {
        SecondaryAddressMask(identification: identification.rawValue, manufacturer: manufacturer.rawValue,
                             version: version, deviceType: deviceType.rawValue)
    }

    public var description: String { mask.description }

    public static func < (a: Self, b: Self) -> Bool { a.description < b.description }
}

/// A meter found on the bus.
public struct FoundMeter: Hashable, Sendable {
    public var primaryAddress: UInt8?
    public var secondaryAddress: SecondaryAddress?
    /// The first telegram it answered, if it was read.
    public var telegram: Telegram?
}

/// Where a scan stands, for a progress line on the terminal.
public struct ScanProgress: Hashable, Sendable {
    /// What was just tried: "address 17" or a secondary mask.
    public var current: String
    public var probes: Int
    public var found: Int
    /// 0…1, as far as it can be known.
    public var fractionDone: Double
    public var elapsed: Duration

    /// Time left, extrapolated from the fraction done.
    public var estimatedRemaining: Duration? {
        guard fractionDone > 0.01 else { return nil }
        let total = elapsed / fractionDone
        return total - elapsed
    }
}

/// The outcome of a scan or a registry verification.
public struct ScanReport: Hashable, Sendable {
    public var found: [FoundMeter] = []
    /// Expected meters that did not answer (registry verification).
    public var missing: [SecondaryAddress] = []
    /// Places where several slaves answered and could not be told apart, in words.
    public var collisions: [String] = []
    /// Select frames (secondary) or SND_NKE frames (primary) sent.
    public var probes = 0
    /// REQ_UD2 readouts made to identify what answered.
    public var reads = 0
    public var elapsed: Duration = .zero
    public var statistics = LinkStatistics()
    public var cancelled = false
}

/// Registry entry to verify on the bus.
public struct ExpectedMeter: Hashable, Sendable {
    public var identification: IdentificationNumber
    public var manufacturer: ManufacturerCode?
    public var version: UInt8?
    public var deviceType: DeviceType?

    public init(identification: IdentificationNumber, manufacturer: ManufacturerCode? = nil, version: UInt8? = nil, deviceType: DeviceType? = nil) {
        self.identification = identification
        self.manufacturer = manufacturer
        self.version = version
        self.deviceType = deviceType
    }

    var mask: SecondaryAddressMask {
        SecondaryAddressMask(identification: identification, manufacturer: manufacturer, version: version, deviceType: deviceType)
    }
}

public typealias ScanProgressHandler = @Sendable (ScanProgress) -> Void

extension MBusLine {
    // MARK: - Primary scan

    /// SND_NKE to every primary address; each that acknowledges is read once to identify it.
    /// A garbled answer means two slaves share the address (or heavy noise) and is reported.
    public func scanPrimary(addresses: ClosedRange<UInt8> = 0...LinkAddress.maximumPrimary, identify: Bool = true,
                            progress: ScanProgressHandler? = nil) throws(MBusError) -> ScanReport {
        var report = ScanReport()
        let start = ContinuousClock.now
        let before = link.statistics
        let total = Double(addresses.count)
        for (i, address) in addresses.enumerated() {
            if Task.isCancelled {
                report.cancelled = true
                break
            }
            // Silence is not repeated (an empty address would cost two response windows, and most
            // addresses are empty); a garbled answer is, to tell noise from two slaves on one address.
            let reply = try transaction { (link) throws(TransportError) -> LinkReply in
                let first = try link.sendNKE(address: address, retries: 0)
                if case .garbled = first, options.scanRetries > 0 { return try link.sendNKE(address: address, retries: 0) }
                return first
            }
            report.probes += 1
            switch reply {
            case .ack:
                var meter = FoundMeter(primaryAddress: address)
                if identify {
                    report.reads += 1
                    do {
                        let readout = try read(.primary(address))
                        meter.telegram = readout.telegrams.first
                        meter.secondaryAddress = readout.telegrams.first.flatMap(SecondaryAddress.init)
                    } catch where error.code == .garbled {
                        // Identical E5s superimpose cleanly; different answers do not.
                        report.collisions.append("primary address \(address): acknowledged, but the readout was garbled: two slaves share this address")
                    } catch where error.code == .transport {
                        throw error
                    } catch {
                        report.collisions.append("primary address \(address): acknowledged SND_NKE but \(error.message)")
                    }
                }
                report.found.append(meter)
            case .garbled(let bytes, _):
                report.collisions.append("primary address \(address): garbled answer (\(bytes.count) bytes): two slaves share this address, or the line is noisy")
            case .frame(let f):
                report.collisions.append("primary address \(address): answered SND_NKE with \(f) instead of E5")
            case .silence:
                break
            }
            progress?(ScanProgress(current: "address \(address)", probes: report.probes, found: report.found.count,
                                   fractionDone: Double(i + 1) / total, elapsed: ContinuousClock.now - start))
        }
        report.elapsed = ContinuousClock.now - start
        report.statistics = link.statistics.subtracting(before)
        return report
    }

    // MARK: - Registry-assisted verification

    /// Selects each expected meter directly (one select each) and reads those that answer.
    /// With `lookForStrangers`, a blind secondary scan follows and reports meters not expected.
    public func verify(_ expected: [ExpectedMeter], read readMeters: Bool = true, lookForStrangers: Bool = false,
                       progress: ScanProgressHandler? = nil) throws(MBusError) -> ScanReport {
        var report = ScanReport()
        let start = ContinuousClock.now
        let before = link.statistics
        for (i, meter) in expected.enumerated() {
            if Task.isCancelled {
                report.cancelled = true
                break
            }
            let mask = meter.mask
            let retries = options.scanRetries
            let outcome = try transaction { (link) throws(TransportError) -> (LinkReply, LinkReply?) in
                let selected = try link.select(mask, retries: retries)
                guard case .ack = selected, readMeters else { return (selected, nil) }
                return (selected, try link.requestUserData(address: LinkAddress.networkLayer, retries: retries))
            }
            report.probes += 1
            switch outcome.0 {
            case .ack:
                var found = FoundMeter()
                if let reply = outcome.1 {
                    report.reads += 1
                    if case .frame(let frame) = reply, let t = try? TelegramDecoder.decode(frame) {
                        found.telegram = t
                        found.secondaryAddress = SecondaryAddress(t)
                    } else {
                        report.collisions.append("\(meter.identification): selected, but the readout was \(reply.summary): two meters with this id, or noise")
                    }
                }
                if found.secondaryAddress == nil, let m = meter.manufacturer {
                    found.secondaryAddress = SecondaryAddress(identification: meter.identification, manufacturer: m,
                                                              version: meter.version ?? 0, deviceType: meter.deviceType ?? .other)
                }
                report.found.append(found)
            case .garbled:
                report.collisions.append("\(meter.identification): garbled answer to its selection: two meters answer to this id")
            case .silence, .frame:
                report.missing.append(SecondaryAddress(identification: meter.identification,
                                                       manufacturer: meter.manufacturer ?? ManufacturerCode(rawValue: 0xFFFF),
                                                       version: meter.version ?? 0xFF, deviceType: meter.deviceType ?? DeviceType(rawValue: 0xFF)))
            }
            progress?(ScanProgress(current: meter.identification.digits, probes: report.probes, found: report.found.count,
                                   fractionDone: Double(i + 1) / Double(max(expected.count, 1)) * (lookForStrangers ? 0.2 : 1),
                                   elapsed: ContinuousClock.now - start))
        }
        if lookForStrangers && !report.cancelled {
            let known = Set(expected.map(\.identification))
            let blind = try scanSecondary(progress: progress)
            report.probes += blind.probes
            report.reads += blind.reads
            report.collisions += blind.collisions
            report.cancelled = blind.cancelled
            for m in blind.found where !(m.secondaryAddress.map { known.contains($0.identification) } ?? false) {
                report.found.append(m)
            }
        }
        report.elapsed = ContinuousClock.now - start
        report.statistics = link.statistics.subtracting(before)
        return report
    }

    // MARK: - Blind secondary scan

    /// Finds every meter by its secondary address without knowing any: a collision-driven tree search.
    ///
    /// A wildcard select that gets a clean E5 is followed by one REQ_UD2: several selected meters'
    /// E5s superimpose into one clean E5 on the wire, but their long answers do not, so a clean
    /// answer proves exactly one meter. Otherwise the subtree is split on one more digit. Digits are
    /// split from the least significant up, because meters from one batch have consecutive ids that
    /// differ first in their last digit. A subtree whose siblings were all silent under a colliding
    /// parent must hold the collision, so it is split without spending a select on it.
    public func scanSecondary(progress: ScanProgressHandler? = nil) throws(MBusError) -> ScanReport {
        var search = TreeSearch(progress: progress, before: link.statistics)
        _ = try search.explore(self, SecondaryAddressMask(), depth: 0, weight: 1, knownCollision: false)
        var report = search.report
        report.found.sort { ($0.secondaryAddress?.description ?? "") < ($1.secondaryAddress?.description ?? "") }
        return report
    }

    /// Select then (optionally) read, as one transaction. Returns the select reply and the read reply.
    ///
    /// Selects are not repeated on silence: on a working line a slave that matches answers, and each
    /// repeat would cost a whole response window on every empty subtree (libmbus does not repeat either).
    /// A garbled read is not repeated either: under a wildcard it is the expected sign of several meters,
    /// and a repeat would cost another full collision.
    func probe(_ mask: SecondaryAddressMask, read: Bool) throws(MBusError) -> (LinkReply, LinkReply?) {
        try transaction { (link) throws(TransportError) -> (LinkReply, LinkReply?) in
            let selected = try link.select(mask, retries: 0)
            guard case .ack = selected, read else { return (selected, nil) }
            var reply = try link.requestUserData(address: LinkAddress.networkLayer, retries: 0)
            if case .silence = reply {
                // Selected but silent: a lost request is more likely than a meter without data.
                reply = try link.requestUserData(address: LinkAddress.networkLayer, retries: 0)
            }
            return (selected, reply)
        }
    }
}

/// State of one blind secondary scan.
struct TreeSearch {
    let progress: ScanProgressHandler?
    let before: LinkStatistics
    var report = ScanReport()
    let start = ContinuousClock.now
    /// Share of the id space finished so far, for the progress line.
    var done = 0.0

    init(progress: ScanProgressHandler?, before: LinkStatistics) {
        self.progress = progress
        self.before = before
    }

    /// The id has 8 digits; depth d fixes nibble d, the least significant first.
    static let digits = 8

    /// Returns true when nothing answered to `mask`.
    mutating func explore(_ line: isolated MBusLine, _ mask: SecondaryAddressMask, depth: Int, weight: Double,
                          knownCollision: Bool) throws(MBusError) -> Bool {
        if Task.isCancelled {
            report.cancelled = true
            return false
        }
        if !knownCollision {
            // At the root nearly every bus has several meters: reading there would only cost a garbled answer.
            var (selected, read) = try line.probe(mask, read: depth > 0)
            if case .garbled = selected {
                // A garbled answer to a select is either several E5s out of step or noise. One more
                // select tells them apart; taking noise for a collision would cost ten empty selects.
                report.probes += 1
                (selected, read) = try line.probe(mask, read: depth > 0)
            }
            report.probes += 1
            if read != nil { report.reads += 1 }
            var resolved = false
            var silent = false
            switch (selected, read) {
            case (.silence, _):
                resolved = true
                silent = true
            case (.ack, nil):
                break  // the root answered: split
            case (.ack, .frame(let frame)?):
                if let t = try? TelegramDecoder.decode(frame), let address = SecondaryAddress(t) {
                    if !report.found.contains(where: { $0.secondaryAddress == address }) {
                        report.found.append(FoundMeter(primaryAddress: nil, secondaryAddress: address, telegram: t))
                    }
                    resolved = true
                }
            default:
                break
            }
            finishProgress(mask, resolved ? weight : 0)
            if resolved {
                report.elapsed = ContinuousClock.now - start
                report.statistics = line.link.statistics.subtracting(before)
                return silent
            }
        }
        // Several meters (or noise) answer to this mask: fix one more field.
        guard depth < Self.digits else {
            try splitBeyondDigits(line, mask, weight: weight)
            return false
        }
        let nibble = depth
        var silentSiblings = 0
        for digit in 0...9 {
            if report.cancelled { return false }
            var child = mask
            let shift = UInt32(4 * nibble)
            child.identification = (child.identification & ~(0xF << shift)) | UInt32(digit) << shift
            // The parent collided and the first nine children were silent: the tenth has the collision.
            // Only one level deep: a parent whose collision was itself inferred is probed, so a false
            // collision (noise) cannot send the search down a chain of empty subtrees.
            let inferred = digit == 9 && silentSiblings == 9 && !knownCollision
            if try explore(line, child, depth: depth + 1, weight: weight / 10, knownCollision: inferred) {
                silentSiblings += 1
            }
        }
        report.elapsed = ContinuousClock.now - start
        report.statistics = line.link.statistics.subtracting(before)
        return false
    }

    /// All eight digits fixed and still a collision: meters share an id. Split on device type,
    /// then version, which is where real duplicates differ (a heat and a water meter of one maker).
    mutating func splitBeyondDigits(_ line: isolated MBusLine, _ mask: SecondaryAddressMask, weight: Double) throws(MBusError) {
        var foundAny = false
        if mask.deviceType == 0xFF {
            for medium in UInt8(0x00)...0x3F {
                var child = mask
                child.deviceType = medium
                let before = report.found.count
                _ = try explore(line, child, depth: TreeSearch.digits, weight: weight / 64, knownCollision: false)
                if report.found.count > before { foundAny = true }
                if report.cancelled { return }
            }
        } else if mask.version == 0xFF {
            for version in UInt8(0)...UInt8(0xFE) {
                var child = mask
                child.version = version
                let before = report.found.count
                _ = try explore(line, child, depth: TreeSearch.digits, weight: weight / 255, knownCollision: false)
                if report.found.count > before { foundAny = true }
                if report.cancelled { return }
            }
        }
        if !foundAny {
            report.collisions.append("secondary address \(mask): several answers that no further split separates (same id, device type and version, or persistent noise)")
        }
    }

    mutating func finishProgress(_ mask: SecondaryAddressMask, _ share: Double) {
        done += share
        progress?(ScanProgress(current: mask.description, probes: report.probes, found: report.found.count,
                               fractionDone: min(done, 1), elapsed: ContinuousClock.now - start))
    }
}

extension LinkStatistics {
    func subtracting(_ earlier: LinkStatistics) -> LinkStatistics {
        var s = LinkStatistics()
        s.requests = requests - earlier.requests
        s.retries = retries - earlier.retries
        s.timeouts = timeouts - earlier.timeouts
        s.checksumErrors = checksumErrors - earlier.checksumErrors
        s.garbledReplies = garbledReplies - earlier.garbledReplies
        s.echoesRemoved = echoesRemoved - earlier.echoesRemoved
        s.staleAcks = staleAcks - earlier.staleAcks
        s.bytesSent = bytesSent - earlier.bytesSent
        s.bytesReceived = bytesReceived - earlier.bytesReceived
        s.busTime = busTime - earlier.busTime
        s.wireTime = wireTime - earlier.wireTime
        return s
    }
}

extension LinkReply {
    var summary: String {
        switch self {
        case .ack: return "E5"
        case .frame(let f): return "a frame (\(f))"
        case .silence: return "silence"
        case .garbled(let b, _): return "garbled (\(b.count) bytes)"
        }
    }
}
