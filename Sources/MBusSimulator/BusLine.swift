/// Characters one sender puts on the line, starting at an absolute instant, back to back at
/// 11 bit times each.
struct Transmission: Hashable, Sendable {
    enum Source: Hashable, Sendable {
        /// A slave's answer; the index is the slave's position in the population.
        case slave(Int)
        /// Injected line noise.
        case noise
    }

    let source: Source
    /// Instant of the first start bit, monotonic nanoseconds.
    let start: Int64
    let bytes: [UInt8]

    func end(_ timing: LineTiming) -> Int64 {
        start + timing.duration(characters: bytes.count)
    }

    func overlaps(_ other: Transmission, _ timing: LineTiming) -> Bool {
        start < other.end(timing) && other.start < end(timing)
    }

    /// Bit `k` (0...10) of a character on the wire: true is mark (1, the idle level), false is space (0).
    static func bit(_ k: Int, of byte: UInt8) -> Bool {
        switch k {
        case 0: return false  // start bit
        case 9: return byte.nonzeroBitCount % 2 == 1  // even parity: the ones, parity included, are even
        case 10: return true  // stop bit
        default: return (byte >> UInt8(k - 1)) & 1 == 1  // data, least significant bit first
        }
    }
}

/// The line level over time when several senders drive it.
///
/// M-Bus slaves answer by modulating current; a space (0) from any slave pulls the whole line to
/// space, so the line is the AND of all senders. Built by a sweep over the instants where some sender
/// changes level, so twenty colliding long frames cost a sort of their edges, not a scan of every
/// bit against every sender.
struct LineLevels {
    /// Where the line changes, alternating between space and mark; it is at mark before the first.
    private(set) var changes: [(time: Int64, mark: Bool)] = []

    init(_ transmissions: [Transmission], _ timing: LineTiming) {
        // +1 when a sender starts driving space, -1 when it lets go.
        var events: [(time: Int64, delta: Int)] = []
        for t in transmissions {
            var level = true
            var bit: Int64 = 0
            for byte in t.bytes {
                for k in 0..<Int(LineTiming.bitsPerCharacter) {
                    let value = Transmission.bit(k, of: byte)
                    if value != level {
                        events.append((t.start + timing.duration(bits: bit), value ? -1 : 1))
                        level = value
                    }
                    bit += 1
                }
            }
            // The stop bit leaves every sender at mark, so no closing event is needed.
        }
        events.sort { $0.time < $1.time }
        var spaces = 0
        var mark = true
        var i = 0
        while i < events.count {
            let time = events[i].time
            while i < events.count && events[i].time == time {
                spaces += events[i].delta
                i += 1
            }
            if (spaces == 0) != mark {
                mark = spaces == 0
                changes.append((time, mark))
            }
        }
    }

    /// The level at `t`: that of the last change at or before `t`.
    func isMark(at t: Int64) -> Bool {
        var low = 0
        var high = changes.count
        while low < high {
            let mid = (low + high) / 2
            if changes[mid].time <= t { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? true : changes[low - 1].mark
    }
}

/// A character as the master's UART hands it over, and when.
struct ReceivedCharacter: Hashable, Sendable {
    /// When the character is complete on the wire (end of its stop bit): the instant to write it to the pty.
    let deadline: Int64
    let value: UInt8
    /// The stop bit was sampled as space: overlapping senders or noise broke the character.
    let framingError: Bool
    /// The even-parity bit does not match the data bits.
    let parityError: Bool
}

/// What the master's UART receives from everything on the line.
///
/// The UART resynchronises on each falling edge and samples the middle of each bit, as real receivers
/// do, so senders whose timing differs by more than half a bit garble each other while identical,
/// aligned answers (E5 from several selected slaves) come through clean.
enum UARTReceiver {
    static func receive(_ transmissions: [Transmission], _ timing: LineTiming) -> [ReceivedCharacter] {
        let line = LineLevels(transmissions, timing)
        let changes = line.changes
        var received: [ReceivedCharacter] = []
        var j = 0
        while j < changes.count {
            // Changes alternate, so every change to space is a falling edge.
            let t = changes[j].time
            guard !changes[j].mark, !line.isMark(at: t + timing.middle(ofBit: 0)) else {
                j += 1  // a rising edge, or a dip shorter than half a bit: no start bit
                continue
            }
            var value: UInt8 = 0
            for k in 0..<8 where line.isMark(at: t + timing.middle(ofBit: Int64(k) + 1)) {
                value |= 1 << UInt8(k)
            }
            let parity = line.isMark(at: t + timing.middle(ofBit: 9))
            let stopSample = t + timing.middle(ofBit: 10)
            let stop = line.isMark(at: stopSample)
            received.append(ReceivedCharacter(
                deadline: t + timing.characterTime, value: value, framingError: !stop,
                parityError: (value.nonzeroBitCount + (parity ? 1 : 0)) % 2 != 0))
            // The UART looks for the next start bit only after it has sampled the stop bit.
            while j < changes.count && changes[j].time <= stopSample { j += 1 }
        }
        return received
    }
}

/// The bus as the master hears it: transmissions placed on the line, and the characters its UART
/// receives from them, in time order, until they are handed out.
///
/// Transmissions that overlap form a burst, received as a whole each time one joins. That is safe
/// because a UART is causal: characters completed before the newcomer starts come out the same, and
/// only those can have been handed out. A transmission that starts after the burst has ended starts a
/// new burst, so the cost never grows with the history of the line.
struct BusLine: Sendable {
    let timing: LineTiming
    /// Characters of finished bursts not yet handed out, earliest first.
    private var backlog: [ReceivedCharacter] = []
    private(set) var burst: [Transmission] = []
    private var burstCharacters: [ReceivedCharacter] = []
    private var burstDelivered = 0

    init(timing: LineTiming) {
        self.timing = timing
    }

    /// Puts transmissions on the line (all answers to one request at once, so the burst is received
    /// once). Returns how many of them collide with one already on the line or earlier in the batch.
    mutating func transmit(_ batch: [Transmission]) -> Int {
        guard let first = batch.map(\.start).min() else { return 0 }
        if let end = burst.map({ $0.end(timing) }).max(), end <= first {
            backlog += burstCharacters[burstDelivered...]
            burst.removeAll(keepingCapacity: true)
            burstCharacters.removeAll(keepingCapacity: true)
            burstDelivered = 0
        }
        var collisions = 0
        for transmission in batch {
            if burst.contains(where: { $0.overlaps(transmission, timing) }) { collisions += 1 }
            burst.append(transmission)
        }
        burstCharacters = UARTReceiver.receive(burst, timing)
        burstDelivered = min(burstDelivered, burstCharacters.count)
        return collisions
    }

    /// When the next received character is due, if any.
    var nextDeadline: Int64? {
        backlog.first?.deadline ?? (burstDelivered < burstCharacters.count ? burstCharacters[burstDelivered].deadline : nil)
    }

    /// Characters due at `now`, marked as handed out.
    mutating func takeDue(now: Int64) -> [ReceivedCharacter] {
        var due: [ReceivedCharacter] = []
        let fromBacklog = backlog.prefix { $0.deadline <= now }.count
        due += backlog[..<fromBacklog]
        backlog.removeFirst(fromBacklog)
        if backlog.isEmpty {
            while burstDelivered < burstCharacters.count && burstCharacters[burstDelivered].deadline <= now {
                due.append(burstCharacters[burstDelivered])
                burstDelivered += 1
            }
        }
        return due
    }
}
