#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// The wireless meter profiles of a directory, indexed by (manufacturer, device type, version).
///
/// Detection is at most three hash lookups (exact triple, any version, any type and version), so its
/// cost does not grow with the number of profiles or of registered meters.
public struct ProfileCatalog: Sendable {
    public private(set) var profiles: [MeterProfile] = []
    /// Where each profile came from (file path or "inline"), same order as `profiles`.
    public private(set) var origins: [String] = []
    var compiled: [CompiledProfile] = []
    var exact: [UInt32: Int] = [:]
    var anyVersion: [UInt32: Int] = [:]
    var anyType: [UInt32: Int] = [:]
    /// Every profile's documented compact-frame formats, for `WirelessDecoder.learn(formats:)`.
    public private(set) var compactFormats: [[UInt8]] = []

    public init() {}

    /// Two profiles claiming the same (manufacturer, type, version) is an error: detection must be unambiguous.
    public init(profiles: [MeterProfile], origins: [String]? = nil) throws(ProfileError) {
        for (n, p) in profiles.enumerated() {
            try add(p, origin: origins?[n] ?? "inline")
        }
    }

    public mutating func add(_ p: MeterProfile, origin: String = "inline") throws(ProfileError) {
        try p.validate(origin: origin)
        let index = profiles.count
        var keys: [(WritableKeyPath<ProfileCatalog, [UInt32: Int]>, UInt32)] = []
        for d in p.detect {
            guard let m = ManufacturerCode(d.manufacturer) else { continue }
            let base = UInt32(m.rawValue) << 16
            switch (d.deviceTypes, d.versions) {
            case (let types?, let versions?):
                for t in types { for v in versions { keys.append((\.exact, base | UInt32(t.value) << 8 | UInt32(v.value))) } }
            case (let types?, nil):
                for t in types { keys.append((\.anyVersion, base | UInt32(t.value) << 8)) }
            case (nil, let versions?):
                // Versions without types: every type, these versions.
                for v in versions { for t in 0...255 { keys.append((\.exact, base | UInt32(t) << 8 | UInt32(v.value))) } }
            case (nil, nil):
                keys.append((\.anyType, base))
            }
        }
        for (table, key) in keys {
            if let other = self[keyPath: table][key], other != index {
                throw ProfileError(origin: origin, message: "\(p.id) claims the same meters as \(profiles[other].id) (\(origins[other]))")
            }
        }
        for (table, key) in keys { self[keyPath: table][key] = index }
        profiles.append(p)
        origins.append(origin)
        compiled.append(CompiledProfile(p))
        compactFormats += (p.compactFormats ?? []).compactMap { try? Hex.decode($0) }
    }

    func index(for a: WMBusAddress) -> Int? {
        let base = UInt32(a.manufacturer.rawValue & 0x7FFF) << 16
        let typed = base | UInt32(a.deviceType.rawValue) << 8
        return exact[typed | UInt32(a.version)] ?? anyVersion[typed] ?? anyType[base]
    }

    /// The profile for a meter address, or nil: the telegram then decodes generically (EN 13757-3 only).
    public func profile(for address: WMBusAddress) -> MeterProfile? {
        index(for: address).map { profiles[$0] }
    }

    /// The profile for a telegram: the meter's identity (the long TPL header's behind a radio adapter),
    /// then the link layer's.
    public func detect(_ w: WirelessTelegram) -> MeterProfile? {
        detectIndex(w).map { profiles[$0] }
    }

    func detectIndex(_ w: WirelessTelegram) -> Int? {
        if let i = index(for: w.meterAddress) { return i }
        return w.tpl?.meterAddress != nil ? index(for: w.frame.address) : nil
    }

    /// Detects and evaluates; nil when no profile matches ("generic").
    public func evaluate(_ w: WirelessTelegram) -> ProfileReading? {
        guard let i = detectIndex(w) else { return nil }
        return ProfileEvaluator.evaluate(w, compiled[i])
    }

    // MARK: Loading

    /// What a loaded catalog keeps of each file.
    public enum Retention: Sendable {
        /// Everything, for the technicians' tools (`profiles test|show|list`, `decode`).
        case everything
        /// What detection and evaluation read: each file's tests, sources and model names are checked at
        /// load time and then dropped. The daemon never runs a profile's tests or shows its sources, and
        /// the shipped profiles' test telegrams and expected values are most of their heap (about 1 MiB of
        /// the daemon's resident memory; docs/benchmarks.md).
        case evaluation
    }

    /// Loads every `*.json` of a directory, sorted by name. Any unusable file is an error naming it.
    public static func load(directory: String, keeping retention: Retention = .everything) throws(ProfileError) -> ProfileCatalog {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        } catch {
            throw ProfileError(origin: directory, message: "cannot list the profile directory: check GATEWAYD_PROFILES (the profiles root, holding wmbus/ and modbus/) or the installation")
        }
        var catalog = ProfileCatalog()
        for n in names {
            let path = directory + "/" + n
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ProfileError(origin: path, message: "cannot read the profile file")
            }
            try catalog.add(try MeterProfile.decode(data, origin: path), origin: path)
            if retention == .evaluation {
                // Checked by `add` (a file without a test is refused all the same), then let go.
                let i = catalog.profiles.count - 1
                catalog.profiles[i].tests = []
                catalog.profiles[i].source = []
                catalog.profiles[i].models = nil
            }
        }
        return catalog
    }

    /// Where installed binaries find the wireless profiles: `$GATEWAYD_PROFILES/wmbus` (checked, see
    /// `ProfileRoot`), then /usr/share/gatewayd/profiles/wmbus, then `profiles/wmbus` in a directory above
    /// the executable (a checkout's `.build/release/…`). Nil when the variable is unset and none exists.
    public static func defaultDirectory(environment: [String: String]? = nil, executablePath: String? = nil) throws(ProfileRootError) -> String? {
        try ProfileRoot.wirelessDirectory(environment: environment, executablePath: executablePath)
    }
}
