import Drivers

/// A telegram a simulated meter sends over the air, as the dongle will deliver it.
public struct SimulatedTelegram: Hashable, Sendable {
    /// L-field first, without data-link CRCs (the dongle strips them).
    public var bytes: [UInt8]
    public var rssiDBm: Double
    public var linkMode: WMBusLinkMode

    public init(bytes: [UInt8], rssiDBm: Double = -70, linkMode: WMBusLinkMode = .t1) {
        self.bytes = bytes
        self.rssiDBm = rssiDBm
        self.linkMode = linkMode
    }

    /// A captured telegram (`ReplayFile`), sent again as the capture says; unknown RSSI or mode become
    /// -80 dBm and T1.
    public init(_ entry: ReplayEntry) {
        self.init(bytes: entry.bytes, rssiDBm: entry.rssiDBm ?? -80, linkMode: entry.linkMode ?? .t1)
    }

    /// Time on the air at 868 MHz (EN 13757-4): the frame in format A (with CRCs) plus preamble and sync.
    /// T1: 100 kchip/s, 3-out-of-6 (12 chips a byte); C1: 100 kchip/s NRZ (8 chips a byte); S1: 32.768
    /// kchip/s Manchester (16 chips a byte) with its long preamble.
    public var airtime: Duration {
        let l = Int(bytes.first ?? 0)
        let onAir = WMBusFrameCodec.formatALength(l: max(l, 9))
        switch linkMode {
        case .t1: return .microseconds(Int64(onAir * 120 + 480))
        case .c1: return .microseconds(Int64(onAir * 80 + 640))
        case .s1: return .microseconds(Int64(Double(onAir * 16 + 576) * 1_000_000 / 32_768))
        }
    }
}

/// When a simulated dongle emits its telegrams: one every `interval` (at least its airtime), the
/// whole schedule divided by `acceleration`. The first one comes an interval after the radio is
/// configured to a receive mode.
public struct DongleSimulatorTiming: Hashable, Sendable {
    public var interval: Duration
    public var acceleration: Double

    public init(interval: Duration = .seconds(1), acceleration: Double = 1) {
        self.interval = interval
        self.acceleration = acceleration.isFinite && acceleration > 0 ? acceleration : 1
    }

    func gap(before telegram: SimulatedTelegram) -> Int64 {
        let d = max(interval, telegram.airtime)
        let (s, atto) = d.components
        let ns = Double(s) * 1e9 + Double(atto) / 1e9
        return Int64(ns / acceleration)
    }
}

/// What a simulated dongle did, for tests to assert on.
public struct DongleSimulatorCounters: Hashable, Sendable {
    /// Telegrams written to the line as data indications.
    public var delivered = 0
    /// Telegrams sent in a mode the radio was not listening to.
    public var notHeard = 0
    /// Requests answered.
    public var requests = 0
    /// Request bytes that formed no request.
    public var skippedRequestBytes = 0
    /// Configuration writes to non-volatile memory (IMST SET_CONFIG with the NVM flag, Amber CMD_SET_REQ).
    public var nonVolatileWrites = 0
    /// Link mode changes.
    public var modeChanges = 0
    public var unplugs = 0
    public var replugs = 0
    public var noiseBytes = 0
}

/// The protocol side of a simulated dongle: answers requests, formats indications.
protocol SimulatedFirmware: Sendable {
    /// Bytes from the gateway; returns what to write back.
    mutating func receive(_ bytes: [UInt8], counters: inout DongleSimulatorCounters) -> [UInt8]
    /// The mode the radio listens in, nil when idle.
    var receiveMode: DongleLinkMode? { get }
    func indication(_ telegram: SimulatedTelegram, at: Int64) -> [UInt8]
    /// A power cycle: RAM settings back to the stored ones, receive buffer empty.
    mutating func powerOn()
}
