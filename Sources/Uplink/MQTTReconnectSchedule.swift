/// When the MQTT session connects again after a failed attempt or a lost connection: a value with no
/// clock and no I/O (the network thread passes the time in), so the whole policy is tested in virtual
/// time.
///
/// The pause bound doubles from `initial` up to `maximum` with every attempt that fails (the uploader's
/// `RetryPolicy` ceiling), and the pause is drawn from the upper half of that bound, so that a fleet of
/// gateways does not reconnect in step after a broker restart yet never hammers it with near-zero waits.
/// It starts from `initial` again only after a connection that held for `heldLongEnough`: two gateways
/// configured with the same client id would otherwise take the session from each other twice a second.
public struct MQTTReconnectSchedule: Sendable, Equatable {
    public static let heldLongEnough: Duration = .seconds(10)

    /// Its `ceiling(failures:)` is the bound after that many failed attempts.
    public let bounds: RetryPolicy
    /// Attempts that ended since the last connection that held.
    public private(set) var attempt = 0
    private var connectedAt: Duration?

    public init(initial: Duration, maximum: Duration) {
        let base = max(initial, .milliseconds(1))
        bounds = RetryPolicy(base: base, cap: max(maximum, base))
    }

    /// The broker accepted the connection at `now` (time since any fixed origin).
    public mutating func connected(at now: Duration) {
        if connectedAt == nil { connectedAt = now }
    }

    /// The attempt or the connection ended at `now`: the pause before the next connect, in
    /// [bound / 2, bound]. `unit` is the caller's random number in [0, 1) (a test passes a fixed one).
    public mutating func ended(at now: Duration, unit: Double) -> Duration {
        if let since = connectedAt, now - since >= Self.heldLongEnough { attempt = 0 }
        connectedAt = nil
        attempt += 1
        let bound = bounds.ceiling(failures: attempt)
        return bound / 2 + bound / 2 * RetryPolicy.clamped(unit)
    }
}
