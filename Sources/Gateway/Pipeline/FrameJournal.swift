import Drivers

/// The last raw inputs of registered devices, as the gateway received them, with what the pipeline made of
/// each: the evidence a support bundle carries home (`gatewayd bundle`) and `gatewayd replay` feeds through
/// the pipeline again at a desk.
///
/// Two bounds: the newest `capacity` inputs (a ring: what happened just now, in order) and, beyond them, the
/// last `perDevice` inputs of every registered device (a building of 3,500 meters fills the ring within
/// seconds, and the meter a technician asks about may have sent ten minutes ago). Only registered devices
/// enter, so the second bound is the registry's size: 3,500 meters × 2 radio telegrams are about 2 MB. Strangers (neighbours' meters) never enter it: their bytes carry other households' values;
/// `UnknownDevices` keeps their identity and signal only.
public struct FrameJournal: Sendable {
    public let capacity: Int
    private var next = 0
    /// Entries written so far (the next entry's sequence number).
    public private(set) var recorded: Int64 = 0

    /// Inputs kept per device besides the ring.
    public let perDevice: Int
    private var lastByDevice: [String: [Item]] = [:]

    public init(capacity: Int = 1000, perDevice: Int = 2) {
        self.capacity = max(0, capacity)
        self.perDevice = max(0, perDevice)
    }

    /// One input of a registered device and its outcome.
    public struct Entry: Hashable, Sendable, Codable {
        public enum Bus: String, Hashable, Sendable, Codable { case mbus, wmbus, modbus }

        /// Order of arrival at the pipeline (replay keeps it: dedup and alarms depend on it).
        public var seq: Int64
        public var receivedAt: Int64
        /// The registry key of the device.
        public var device: String
        public var bus: Bus
        /// Line or dongle name.
        public var source: String
        public var rssi: Int16?
        /// Hex: a radio telegram as received (L-field first), or each RSP_UD frame of a wired readout.
        public var frames: [String]
        /// Radio frame format (`WMBusFrameFormat`: "a", "b", or "no_crc" from a dongle that checked and removed
        /// the CRCs), nil when the decoder guesses.
        public var format: String?
        public var linkMode: String?
        /// A heat-pump read: register words as read and the values the profile made of them.
        public var modbus: ModbusReading?
        /// buffered, duplicate, failed or rejected.
        public var outcome: String
        /// The outcome as the daemon logged it.
        public var detail: String
        /// Values stored (alarm edges not counted).
        public var readings: Int
        /// Fingerprint of the stored values: their `ContentDigest` (quantities, values, units, meter times,
        /// storage numbers, status, alarm flags), so equal fingerprints mean equal readings. Nil when nothing
        /// was stored.
        public var digest: String?
    }

    /// What the ring holds: bytes and the outcome as they are; text only when a snapshot is asked for, so the
    /// journal costs a telegram a copy of its bytes and one hash of its values.
    struct Item: Sendable {
        var seq: Int64
        var receivedAt: Int64
        var device: String
        var bus: Entry.Bus
        var source: String
        var rssi: Int16?
        var frames: [[UInt8]]
        var format: WMBusFrameFormat?
        var linkMode: WMBusLinkMode?
        var modbus: ModbusReading?
        var outcome: PipelineOutcome
        var readings: Int
        var digest: UInt64?
    }
    private var ring: [Item] = []

    /// Records one processed input, when it names a registered device and carries raw bytes. `readings` are
    /// the values stored from it (alarm edges not counted) and `digest` their `ContentDigest`, which the
    /// deduplicator computed already.
    public mutating func record(_ input: PipelineInput, device: String?, outcome: PipelineOutcome, readings: Int, digest: UInt64?) {
        guard capacity > 0, let device, !device.hasPrefix("stranger:") else { return }
        var item = Item(seq: recorded, receivedAt: 0, device: device, bus: .wmbus, source: "", rssi: nil, frames: [],
                        format: nil, linkMode: nil, modbus: nil, outcome: outcome, readings: 0, digest: nil)
        switch input {
        case .wireless(let w):
            guard case .frame(let bytes, let format, let mode) = w.payload else { return }
            item.receivedAt = w.receivedAt
            item.source = w.dongle
            item.rssi = w.rssi
            item.frames = [bytes]
            item.format = format
            item.linkMode = mode
        case .wired(let w):
            var frames = w.frames
            if frames.isEmpty, case .frame(let bytes) = w.payload { frames = [bytes] }
            guard !frames.isEmpty else { return }
            item.bus = .mbus
            item.receivedAt = w.receivedAt
            item.source = w.line
            item.frames = frames
        case .modbus(let m):
            item.bus = .modbus
            item.receivedAt = m.receivedAt
            item.source = m.line
            item.modbus = m.reading
        case .manual:
            return
        }
        item.readings = readings
        item.digest = digest
        recorded += 1
        if perDevice > 0 {
            var last = lastByDevice[device] ?? []
            if last.count >= perDevice { last.removeFirst(last.count - perDevice + 1) }
            last.append(item)
            lastByDevice[device] = last
        }
        if ring.count < capacity {
            ring.append(item)
        } else {
            ring[next] = item
            next = (next + 1) % capacity
        }
    }

    /// Entries oldest first.
    public var entries: [Entry] { entries(from: 0) }

    /// Entries with sequence number `seq` or later (those still kept), oldest first.
    public func entries(from seq: Int64) -> [Entry] {
        var items = (ring[next...] + ring[..<next]).filter { $0.seq >= seq }
        // Devices' last inputs that the ring no longer holds.
        let ringStart = ring.isEmpty ? recorded : (ring.count < capacity ? ring[0].seq : ring[next].seq)
        let older = lastByDevice.values.joined().filter { $0.seq >= seq && $0.seq < ringStart }
        if !older.isEmpty { items = older.sorted { $0.seq < $1.seq } + items }
        return items.map { i in
            Entry(seq: i.seq, receivedAt: i.receivedAt, device: i.device, bus: i.bus, source: i.source, rssi: i.rssi,
                  frames: i.frames.map { Hex.encode($0) }, format: i.format?.rawValue, linkMode: i.linkMode?.rawValue,
                  modbus: i.modbus, outcome: Self.kind(i.outcome), detail: i.outcome.description, readings: i.readings,
                  digest: i.digest.map(Self.hex))
        }
    }

    /// Forgets the last inputs of devices no longer registered (the ring ages out by itself).
    public mutating func keep(only devices: Set<String>) {
        lastByDevice = lastByDevice.filter { devices.contains($0.key) }
    }

    /// Entries kept (ring and devices' last inputs).
    public var count: Int { entries.count }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    static func kind(_ o: PipelineOutcome) -> String {
        switch o {
        case .buffered: "buffered"
        case .duplicate: "duplicate"
        case .unknownDevice: "unknown"
        case .rejected: "rejected"
        case .failed: "failed"
        }
    }

}

/// What a support bundle carries of the pipeline: the frame journal and the strangers' identities.
public struct FrameJournalSnapshot: Hashable, Sendable, Codable {
    public var capacity: Int
    /// Entries recorded since the daemon started; `entries` holds the newest of them.
    public var recorded: Int64
    public var entries: [FrameJournal.Entry]
    /// Neighbours' meters heard: identity and signal only, never what they sent.
    public var strangers: [Stranger]

    public struct Stranger: Hashable, Sendable, Codable {
        public var identification: String
        public var manufacturer: String
        public var deviceType: String
        public var count: Int
        public var lastRssi: Int?
    }

    public init(capacity: Int, recorded: Int64, entries: [FrameJournal.Entry], strangers: [Stranger]) {
        self.capacity = capacity
        self.recorded = recorded
        self.entries = entries
        self.strangers = strangers
    }
}
