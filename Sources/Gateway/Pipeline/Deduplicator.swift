/// Drops telegrams heard again: the same radio telegram arrives many times (the meter repeats it, repeaters
/// forward it, two dongles hear it). Keyed by device and a digest of the *content* (see `ContentDigest`):
/// RSSI, C-field, repeater bits (ELL CC) and frame format, which repeaters and receivers change, are not in
/// it; any changed value, status or meter time is. Within the window a telegram is a duplicate when
///
/// 1. its content equals the device's latest stored content (a copy, or a new transmission of unchanged
///    values: the access number is ignored here), or
/// 2. the same content with the same access number was stored before (a repeater's late copy of an older
///    transmission, arriving after a newer one).
///
/// So A, B, A from one meter in three transmissions keeps all three (a status that went back to OK must be
/// heard), while A, B, late copy of A is two readings. A digest stays known for `window` from when it was
/// *first* stored (copies do not extend it), so unchanged values still give one reading per window. Memory is
/// bounded: at most `perDevice` digests per device and `maxDevices` devices; expired entries go first.
public struct Deduplicator: Sendable {
    public struct Options: Hashable, Sendable {
        /// Milliseconds a content digest is remembered.
        public var windowMilliseconds: Int64
        public var perDevice: Int
        public var maxDevices: Int

        public init(windowMilliseconds: Int64 = 300_000, perDevice: Int = 8, maxDevices: Int = 16_384) {
            self.windowMilliseconds = windowMilliseconds
            self.perDevice = max(1, perDevice)
            self.maxDevices = max(1, maxDevices)
        }
    }

    struct Entry: Sendable {
        var digest: UInt64
        var access: UInt8?
        var firstSeen: Int64
    }

    public let options: Options
    private var devices: [String: [Entry]] = [:]

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Devices currently tracked (for tests and health).
    public var trackedDevices: Int { devices.count }
    public var trackedDigests: Int { devices.values.reduce(0) { $0 + $1.count } }

    /// True when this telegram is a copy of one stored within the window (rules above); otherwise remembers it
    /// as the device's latest. `access` is the telegram's access number, nil where there is none (Modbus).
    public mutating func isDuplicate(device: String, digest: UInt64, access: UInt8? = nil, at now: Int64) -> Bool {
        let window = options.windowMilliseconds
        var entries = devices[device] ?? []
        // Expired (and, after a clock step backwards, "future") entries go.
        entries.removeAll { Self.expired($0, now: now, window: window) }
        if entries.last?.digest == digest || (access != nil && entries.contains { $0.digest == digest && $0.access == access }) {
            devices[device] = entries
            return true
        }
        if entries.count >= options.perDevice { entries.removeFirst(entries.count - options.perDevice + 1) }
        entries.append(Entry(digest: digest, access: access, firstSeen: now))
        if devices[device] == nil && devices.count >= options.maxDevices { prune(now: now) }
        devices[device] = entries
        return false
    }

    /// Older than the window, or from the "future" (a clock step backwards). Receive times come from the
    /// clock, a replayed bundle or a fuzzer: a difference that does not fit counts as expired, never traps.
    static func expired(_ e: Entry, now: Int64, window: Int64) -> Bool {
        let (age, overflow) = now.subtractingReportingOverflow(e.firstSeen)
        return overflow || age > window || age < 0
    }

    /// Undoes `isDuplicate` having remembered a digest (the readings were not stored after all).
    public mutating func forget(device: String, digest: UInt64) {
        guard var entries = devices[device] else { return }
        if let i = entries.lastIndex(where: { $0.digest == digest }) { entries.remove(at: i) }
        devices[device] = entries.isEmpty ? nil : entries
    }

    /// Makes room for one more device: drops devices with nothing left in the window, then the stalest.
    private mutating func prune(now: Int64) {
        let window = options.windowMilliseconds
        devices = devices.filter { _, e in e.contains { !Self.expired($0, now: now, window: window) } }
        if devices.count >= options.maxDevices {
            let excess = devices.count - options.maxDevices + 1
            let stalest = devices.map { ($0.key, $0.value.map(\.firstSeen).max() ?? .min) }.sorted { $0.1 < $1.1 }.prefix(excess)
            for (k, _) in stalest { devices[k] = nil }
        }
    }
}

/// A 64-bit FNV-1a digest, stable across runs and processes (unlike `Hasher`), over a reading's content.
public struct ContentDigest: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    @inline(__always) public mutating func add(_ byte: UInt8) {
        value ^= UInt64(byte)
        value &*= 0x0000_0100_0000_01B3
    }

    public mutating func add(_ v: UInt64) {
        var x = v
        for _ in 0..<8 {
            add(UInt8(truncatingIfNeeded: x))
            x >>= 8
        }
    }

    public mutating func add(_ s: String) {
        for b in s.utf8 { add(b) }
        add(UInt8(0xFF))  // separator: "ab"+"c" differs from "a"+"bc"
    }

    /// The content of normalised values: quantity, value bits, unit, meter time, storage, tariff, subunit,
    /// class; plus the status and the alarm flags. Not the receive time, RSSI, source or access number.
    public static func of(_ n: NormalisedTelegram) -> UInt64 {
        var d = ContentDigest()
        d.add(UInt64(n.status))
        for f in n.alarmFlags.map(\.rawValue).sorted() { d.add(f) }
        for c in n.extraConditions.map(\.code).sorted() { d.add(c) }
        d.add(UInt64(n.values.count))
        for v in n.values {
            d.add(v.quantity)
            d.add(v.value.bitPattern)
            d.add(v.unit)
            d.add(UInt64(bitPattern: v.meterTime ?? .min))
            d.add(UInt64(v.storage) << 32 | UInt64(v.tariff) << 16 | UInt64(v.subunit))
            d.add(v.readingClass.rawValue)
        }
        return d.value
    }
}
