/// The MQTT transport's flow control as a value state machine: which QoS 1 publishes await a PUBACK, how
/// many bytes that is, PUBACKs that overtook the registration of their publish, and the safety nets that
/// keep the window from staying full for good. No clock and no I/O: every call takes `now` (time since
/// any fixed origin), so tests drive it through hours in microseconds. `MQTTSession` holds one under its
/// lock and keeps the waiting deliveries (continuations) by the tokens this hands out.
struct MQTTFlowWindow: Sendable {
    struct Publish: Sendable, Hashable {
        /// The delivery waiting for this PUBACK; nil once it gave up (timeout, shutdown).
        var token: UInt64?
        var bytes: Int
        var topic: String
        /// When its delivery gave up; the entry stays until the PUBACK or `orphanLifetime`.
        var orphanedAt: Duration?
    }

    /// What a PUBACK meant.
    enum Acknowledgement: Sendable, Hashable {
        /// For a publish of the transport's own (status): nobody waits.
        case internalPublish
        /// Before its publish was registered (libmosquitto's network thread can be that fast): kept briefly.
        case early
        /// Its delivery had given up already.
        case late
        /// Answers the delivery holding `token`.
        case resolves(token: UInt64, topic: String)
    }

    /// What registering a published message found.
    enum Registration: Sendable, Hashable {
        case waiting
        /// Its PUBACK had come already: the delivery has its answer.
        case acknowledged(reason: Int32)
    }

    let maximumCount: Int
    let maximumBytes: Int
    /// After this long an orphaned publish stops counting against the window.
    let orphanLifetime: Duration
    /// Unclaimed early PUBACKs are dropped after this, so a reused mid never takes an old answer.
    let earlyLifetime: Duration = .seconds(5)

    private(set) var inFlight: [Int32: Publish] = [:]
    private(set) var early: [Int32: (reason: Int32, at: Duration)] = [:]
    private(set) var internalMids: Set<Int32> = []
    /// Payload bytes published (or about to be) and not yet acknowledged.
    private(set) var unacknowledgedBytes = 0
    /// Deliveries between their window check and their publish's registration.
    private(set) var reservations = 0
    private var nextToken: UInt64 = 0

    init(maximumCount: Int, maximumBytes: Int, orphanLifetime: Duration) {
        self.maximumCount = maximumCount
        self.maximumBytes = maximumBytes
        self.orphanLifetime = orphanLifetime
    }

    /// A place in the window for a publish of `bytes`, or nil when the window is full. One message larger
    /// than the byte limit still goes when nothing else is unacknowledged (it could never go otherwise).
    /// Returns the token the delivery waits under, and how many stale entries it forgot.
    mutating func reserve(bytes: Int, now: Duration) -> (token: UInt64?, forgotten: Int) {
        let forgotten = forgetStale(now: now)
        if inFlight.count + reservations >= maximumCount || (unacknowledgedBytes > 0 && unacknowledgedBytes + bytes > maximumBytes) {
            return (nil, forgotten)
        }
        reservations += 1
        unacknowledgedBytes += bytes
        nextToken += 1
        return (nextToken, forgotten)
    }

    /// The publish failed before reaching libmosquitto's queue: its place is free again.
    mutating func cancel(bytes: Int) {
        reservations -= 1
        unacknowledgedBytes -= bytes
    }

    /// The publish is queued as `mid`.
    mutating func register(mid: Int32, bytes: Int, topic: String, token: UInt64) -> Registration {
        reservations -= 1
        if let e = early.removeValue(forKey: mid) {
            unacknowledgedBytes -= bytes
            return .acknowledged(reason: e.reason)
        }
        inFlight[mid] = Publish(token: token, bytes: bytes, topic: topic, orphanedAt: nil)
        return .waiting
    }

    /// A publish of the transport's own went out as `mid`.
    mutating func registerInternal(mid: Int32) {
        if early.removeValue(forKey: mid) == nil { internalMids.insert(mid) }
    }

    mutating func acknowledge(mid: Int32, reason: Int32, now: Duration) -> Acknowledgement {
        if internalMids.remove(mid) != nil { return .internalPublish }
        guard let entry = inFlight.removeValue(forKey: mid) else {
            early[mid] = (reason, now)
            return .early
        }
        unacknowledgedBytes -= entry.bytes
        guard let token = entry.token else { return .late }
        return .resolves(token: token, topic: entry.topic)
    }

    /// The delivery holding `token` gives up waiting for `mid`; true when it was still waiting. The
    /// publish stays in libmosquitto's queue (resent after a reconnect) and keeps its place until its
    /// PUBACK comes or `orphanLifetime` passes.
    mutating func expire(mid: Int32, token: UInt64, now: Duration) -> Bool {
        guard inFlight[mid]?.token == token else { return false }
        inFlight[mid]?.token = nil
        inFlight[mid]?.orphanedAt = now
        return true
    }

    /// Every waiting delivery gives up (shutdown); their tokens.
    mutating func orphanAll(now: Duration) -> [UInt64] {
        var tokens: [UInt64] = []
        for key in inFlight.keys {
            if let t = inFlight[key]?.token { tokens.append(t) }
            inFlight[key]?.token = nil
            inFlight[key]?.orphanedAt = now
        }
        return tokens
    }

    /// Forgets orphans older than `orphanLifetime` and early PUBACKs older than `earlyLifetime`; how many
    /// orphans it forgot.
    mutating func forgetStale(now: Duration) -> Int {
        var forgotten = 0
        for (mid, entry) in inFlight {
            if let orphanedAt = entry.orphanedAt, now - orphanedAt > orphanLifetime {
                inFlight[mid] = nil
                unacknowledgedBytes -= entry.bytes
                forgotten += 1
            }
        }
        if !early.isEmpty { early = early.filter { now - $0.value.at < earlyLifetime } }
        return forgotten
    }
}
