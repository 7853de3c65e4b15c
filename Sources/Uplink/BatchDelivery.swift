/// What happens to one leased batch, answer by answer: a value state machine with no clock and no I/O.
/// The `Uploader` asks `next()` for the part to send, hands each portal answer to `answer(_:jitter:)` and
/// carries out the action it gets (send, acknowledge, quarantine, wait, pause). Tests drive it through
/// every answer without a network and without waiting.
///
/// Rules, in the order of the portal's answers:
/// - 200: the part's readings are acknowledged; the failure count starts again.
/// - 400 naming readings of the part: exactly those are quarantined, the rest acknowledged.
/// - 400 naming none of them: a proxy or a WAF answered, not the portal judging readings; the part is
///   held (never deleted) and retried after a backoff; the first hold says so once.
/// - 413: the part is split in two and both halves are sent, the first half first; a single reading the
///   portal still refuses is quarantined.
/// - 401/403: uploading pauses until the credentials change (or the slow retry period passes).
/// - 5xx, timeouts, resets: retried after full-jitter exponential backoff, never sooner than Retry-After.
public struct BatchDelivery: Sendable {
    public enum Action: Sendable, Hashable {
        /// Mark these readings delivered.
        case acknowledge([String])
        /// Quarantine `rejected` for `reason`, then acknowledge `accepted` (either may be empty).
        case quarantine(rejected: [String], reason: String, accepted: [String])
        /// The part (of `bytes`) was too large: it was split in two; send the next part.
        case split(bytes: Int)
        /// Hold the part and send it again after `delay` (the uploader raises the hold alarm once).
        case hold(why: String, delay: Duration)
        /// Send the part again after `delay`.
        case retry(after: Duration, reason: String)
        /// Stop until the credentials change, then send the part again.
        case pauseForCredentials(reason: String)
    }

    public let batchID: String
    public let retry: RetryPolicy
    /// Parts still to send, the next one last.
    public private(set) var pending: [UplinkBatch]
    /// Failed attempts in a row (backoff grows with it; a success resets it).
    public private(set) var failures = 0

    public init(_ batch: UplinkBatch, retry: RetryPolicy) {
        batchID = batch.id
        self.retry = retry
        pending = [batch]
    }

    /// The part to send now; nil when the batch is done.
    public var next: UplinkBatch? { pending.last }

    public var isDone: Bool { pending.isEmpty }

    /// The portal's answer to the part `next` returned. `jitter` is a number in [0, 1) for the backoff
    /// (the caller's random source; a test passes a fixed one).
    public mutating func answer(_ outcome: DeliveryOutcome, jitter: Double) -> Action {
        guard let part = pending.last else { return .acknowledge([]) }
        switch outcome {
        case .accepted:
            pending.removeLast()
            failures = 0
            return .acknowledge(part.readingIDs)
        case .rejectedReadings(let ids, let reason):
            let inPart = Set(part.readingIDs)
            let bad = ids.filter { inPart.contains($0) }
            guard !bad.isEmpty else {
                failures += 1
                let why = "the portal answered 400 without naming any reading of batch \(part.id) (\(reason)); the batch is held and retried. Check a proxy or firewall between the gateway and the portal"
                return .hold(why: why, delay: retry.delay(failures: failures, retryAfter: nil, unit: jitter))
            }
            pending.removeLast()
            failures = 0
            let badSet = Set(bad)
            return .quarantine(rejected: bad, reason: reason, accepted: part.readingIDs.filter { !badSet.contains($0) })
        case .tooLarge:
            pending.removeLast()
            guard let (a, b) = ReadingsBody.split(part) else {
                return .quarantine(rejected: part.readingIDs, reason: "too large for the portal (413) even alone", accepted: [])
            }
            pending.append(b)
            pending.append(a)
            return .split(bytes: part.body.count)
        case .unauthorized(let reason):
            return .pauseForCredentials(reason: reason)
        case .transient(let reason, let retryAfter):
            failures += 1
            return .retry(after: retry.delay(failures: failures, retryAfter: retryAfter, unit: jitter), reason: reason)
        }
    }
}
