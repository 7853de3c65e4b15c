/// When the MQTT session connects again after a failed attempt or a lost connection: a value with no
/// clock and no I/O (the network thread passes the time in), so the whole policy is tested in virtual
/// time.
///
/// The pause doubles from `initial` up to `maximum` with every attempt that fails, drawn at random from
/// the upper half of that bound so that a fleet of gateways does not reconnect in step after a broker
/// restart. It starts from `initial` again only after a connection that held for `heldLongEnough`: two
/// gateways configured with the same client id would otherwise take the session from each other twice
/// a second.
public struct MQTTReconnectSchedule: Sendable, Equatable {
    public static let heldLongEnough: Duration = .seconds(10)

    public let initial: Duration
    public let maximum: Duration
    /// Attempts that ended since the last connection that held.
    public private(set) var attempt = 0
    private var connectedAt: Duration?

    public init(initial: Duration, maximum: Duration) {
        self.initial = max(initial, .milliseconds(1))
        self.maximum = max(maximum, self.initial)
    }

    /// The broker accepted the connection at `now` (time since any fixed origin).
    public mutating func connected(at now: Duration) {
        if connectedAt == nil { connectedAt = now }
    }

    /// The upper bound of the pause after `attempt` failed attempts (1-based).
    public func upperBound(attempt: Int) -> Duration {
        var upper = initial
        var n = 1
        while n < attempt && upper < maximum {
            upper *= 2
            n += 1
        }
        return min(upper, maximum)
    }

    /// The attempt or the connection ended at `now`: the pause before the next connect, in
    /// [bound / 2, bound]. `random` draws a number of nanoseconds from the range it is given.
    public mutating func ended(at now: Duration, random: (ClosedRange<Int64>) -> Int64) -> Duration {
        if let since = connectedAt, now - since >= Self.heldLongEnough { attempt = 0 }
        connectedAt = nil
        attempt += 1
        let upper = Self.nanoseconds(upperBound(attempt: attempt))
        let drawn = random((upper / 2)...upper)
        return .nanoseconds(min(max(drawn, upper / 2), upper))
    }

    private static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, a) = d.components
        return max(1, s.multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ a / 1_000_000_000)
    }
}
