import Drivers
import Glibc
import Synchronization

/// State the API and the bus thread share, behind one lock so a fault injected before a request is
/// written is always seen by that request.
struct BusState: Sendable {
    var slaves: BusSlaves
    var counters: SimulatorCounters
    /// Noise to put on the line at an absolute instant (monotonic nanoseconds).
    var scheduledNoise: [(at: Int64, bytes: [UInt8])] = []
    /// Noise to put on the line just before the next answer.
    var noiseBeforeNextResponse: [[UInt8]] = []
}

final class SharedBus: Sendable {
    let state: Mutex<BusState>
    let stopRequested = Atomic<Bool>(false)

    init(_ state: BusState) {
        self.state = Mutex(state)
    }
}

/// The simulator's thread: reads requests from the pty, lets the slaves answer, and writes what the
/// master's UART would receive at the instants it would receive it.
///
/// It runs on its own pthread rather than the Swift concurrency pool because it sleeps to
/// sub-millisecond deadlines and must not be delayed by, or delay, the gateway's tasks.
final class BusEngine {
    private let shared: SharedBus
    private let terminal: PseudoTerminal
    private let timing: LineTiming
    private var line: BusLine
    private var reader = FrameReader()
    /// When each byte held by `reader` ends on the wire, in the same order.
    private var wireEnds: [Int64] = []
    /// End of the last request byte on the wire: bytes the master writes at once follow each other.
    private var lastWireEnd: Int64 = 0
    /// Silence after which a half-received frame is dropped, as a slave's receiver does; generous so
    /// a master process that is descheduled mid-frame is not punished.
    private let idleReset: Int64
    /// Below this, waits use clock_nanosleep instead of poll(2), whose timeout is in whole milliseconds.
    private static let fineWait: Int64 = 2_000_000

    init(shared: SharedBus, terminal: PseudoTerminal, timing: LineTiming) {
        self.shared = shared
        self.terminal = terminal
        self.timing = timing
        line = BusLine(timing: timing)
        idleReset = timing.duration(bits: 33) + 100_000_000
    }

    func run() {
        var input = [UInt8](repeating: 0, count: 1024)
        while !shared.stopRequested.load(ordering: .acquiring) {
            deliverDue()
            guard wait(&input) else { return }
        }
    }

    // MARK: - Waiting

    /// Waits for a request, an API call or the next output deadline. False when the pty is unusable.
    private func wait(_ input: inout [UInt8]) -> Bool {
        var timeout: Int32 = -1
        if let deadline = line.nextDeadline {
            let remaining = deadline - MonotonicClock.now()
            if remaining <= 0 {
                timeout = 0
            } else if remaining < Self.fineWait {
                MonotonicClock.sleep(until: deadline)
                timeout = 0
            } else {
                // Wake a millisecond early and finish the wait with clock_nanosleep.
                timeout = Int32(clamping: remaining / 1_000_000 - 1)
            }
        }
        var fds = [pollfd(fd: terminal.controller, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: terminal.wakeRead, events: Int16(POLLIN), revents: 0)]
        let ready = poll(&fds, nfds_t(fds.count), timeout)
        if ready < 0 { return errno == EINTR }
        if fds[1].revents != 0 { terminal.drainWakeups() }
        let events = Int32(fds[0].revents)
        if events & Int32(POLLIN) != 0 {
            readRequests(&input)
        } else if events & Int32(POLLNVAL | POLLERR | POLLHUP) != 0 {
            // The simulator holds the device side open, so this means the pty is being torn down.
            return false
        }
        startScheduledNoise()
        return true
    }

    // MARK: - Requests

    private func readRequests(_ input: inout [UInt8]) {
        while true {
            let count = input.withUnsafeMutableBytes { buffer in
                SystemCall.retryingEINTR { read(terminal.controller, buffer.baseAddress, buffer.count) }
            }
            guard count > 0 else { return }
            receive(input[0..<count], at: MonotonicClock.now())
        }
    }

    /// Feeds bytes from the master into the frame reader and answers each complete request.
    ///
    /// The master wrote them to the pty at once, but on a real bus they take 11 bit times each, starting
    /// when the first arrived (or when the previous byte ended): the answer must not come before that.
    func receive(_ bytes: ArraySlice<UInt8>, at arrival: Int64) {
        if reader.pendingByteCount > 0 && arrival - lastWireEnd > idleReset {
            let dropped = reader.pendingByteCount
            reader.reset()
            wireEnds.removeAll(keepingCapacity: true)
            shared.state.withLock { $0.counters.requestBytesDiscarded += dropped }
        }
        var end = max(arrival, lastWireEnd)
        for _ in bytes {
            end += timing.characterTime
            wireEnds.append(end)
        }
        lastWireEnd = end
        reader.append(bytes)
        shared.state.withLock { $0.counters.bytesReceived += bytes.count }

        while let event = reader.next() {
            switch event {
            case .frame(let frame):
                let length = FrameCodec.encode(frame).count
                let requestEnd = wireEnds[length - 1]
                wireEnds.removeFirst(length)
                answer(frame, requestEnd: requestEnd)
            case .skipped(let skipped, _):
                wireEnds.removeFirst(skipped.count)
                shared.state.withLock { $0.counters.requestBytesDiscarded += skipped.count }
            }
        }
    }

    private func answer(_ request: MBusFrame, requestEnd: Int64) {
        let (replies, noise) = shared.state.withLock { state -> ([SlaveReply], [[UInt8]]) in
            // Only frames the master sends count: an echo of an answer (a port left in ECHO mode) does not.
            switch request {
            case .short(let f) where f.control.isFromMaster: state.counters.requestsSeen += 1
            case .long(let f) where f.control.isFromMaster: state.counters.requestsSeen += 1
            default: break
            }
            let replies = state.slaves.replies(to: request)
            for reply in replies {
                state.counters.responsesPerSlave[reply.slaveIndex] += 1
                if reply.corrupted {
                    state.counters.corruptedResponses += 1
                    state.counters.injectedFaults += 1
                }
            }
            var noise: [[UInt8]] = []
            if !replies.isEmpty {
                swap(&noise, &state.noiseBeforeNextResponse)
            }
            return (replies, noise)
        }
        guard let earliest = replies.map({ requestEnd + $0.delay }).min() else { return }
        // Noise ends a bit time before the first answer starts, but cannot start before the request
        // has ended; if it is longer than the gap it runs into the answer, as it would on the wire.
        var batch = noise.filter { !$0.isEmpty }.map { bytes in
            Transmission(source: .noise, start: max(requestEnd, earliest - timing.duration(characters: bytes.count) - timing.bitTime),
                         bytes: bytes)
        }
        batch += replies.map { Transmission(source: .slave($0.slaveIndex), start: requestEnd + $0.delay, bytes: $0.bytes) }
        put(batch)
    }

    /// Puts transmissions on the line and counts their collisions.
    private func put(_ batch: [Transmission]) {
        let collisions = line.transmit(batch)
        if collisions > 0 {
            shared.state.withLock { $0.counters.collisions += collisions }
        }
    }

    private func startScheduledNoise() {
        let scheduled = shared.state.withLock { state -> [(at: Int64, bytes: [UInt8])] in
            var taken: [(at: Int64, bytes: [UInt8])] = []
            swap(&taken, &state.scheduledNoise)
            return taken
        }
        guard !scheduled.isEmpty else { return }
        let now = MonotonicClock.now()
        put(scheduled.filter { !$0.bytes.isEmpty }.map { Transmission(source: .noise, start: max($0.at, now), bytes: $0.bytes) })
    }

    // MARK: - Answers

    /// Writes every character whose stop bit has passed. Deadlines are absolute, so a late wake-up
    /// sends the overdue characters together and the following ones stay on their own slots.
    private func deliverDue() {
        let now = MonotonicClock.now()
        let due = line.takeDue(now: now)
        guard let first = due.first else { return }
        let bytes = due.map(\.value)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { buffer in
                SystemCall.retryingEINTR { write(terminal.controller, buffer.baseAddress, buffer.count) }
            }
            guard count > 0 else { break }
            written += count
        }
        let framing = due.reduce(0) { $0 + ($1.framingError ? 1 : 0) }
        let parity = due.reduce(0) { $0 + ($1.parityError ? 1 : 0) }
        shared.state.withLock { state in
            state.counters.bytesSent += written
            state.counters.bytesDropped += bytes.count - written
            state.counters.framingErrors += framing
            state.counters.parityErrors += parity
            // The first due character waited longest.
            state.counters.worstLateness = max(state.counters.worstLateness, .nanoseconds(now - first.deadline))
        }
    }
}

/// The joinable pthread the engine runs on.
enum BusThread {
    static func spawn(_ engine: BusEngine) throws(SimulatorError) -> pthread_t {
        let context = Unmanaged.passRetained(engine).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { context in
            let engine = Unmanaged<BusEngine>.fromOpaque(context!).takeRetainedValue()
            engine.run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<BusEngine>.fromOpaque(context).release()
            throw SimulatorError(.systemCall, "pthread_create failed: \(String(cString: strerror(result)))", errno: result)
        }
        return thread
    }
}
