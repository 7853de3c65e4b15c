import Drivers
import Glibc
import Synchronization

/// A wired M-Bus line with a population of slaves, behind a pseudo-terminal.
///
/// The gateway's M-Bus master opens `devicePath` like a serial port. The simulator answers as the
/// slaves on a real line would (EN 13757-2 link layer, secondary addressing, multi-telegram readout)
/// and with real timing: a request counts as ended only after its bytes' wire time, each slave answers
/// after its own response delay, and answers go out at 11 bit times per byte. Several slaves answering
/// at once superimpose bit by bit, as on the wire.
///
/// ```swift
/// let bus = try MBusBusSimulator(population: SlavePopulation(contentsOfFile: "seeds/demo-building/mbus-slaves.json"))
/// try bus.start()
/// defer { bus.stop() }
/// // open bus.devicePath in the gateway ...
/// ```
public final class MBusBusSimulator: Sendable {
    public let baudRate: Int
    public let slaves: [SimulatedSlave]
    /// The EN 13757-2 response window at this baud rate: a master's timeout must exceed `latest`.
    public let responseWindow: ResponseWindow

    private let terminal: PseudoTerminal
    private let shared: SharedBus
    private let lifecycle = Mutex(Lifecycle.ready)

    private enum Lifecycle: Sendable {
        case ready
        case running(pthread_t)
        case stopped
    }

    /// Opens the pseudo-terminal; the slaves answer once `start()` is called.
    ///
    /// - Parameter baudRate: 300 ... 38400. A pty does not enforce it; the simulator paces its answers to it.
    public init(slaves: [SimulatedSlave], baudRate: Int = 2400) throws(SimulatorError) {
        guard LineTiming.supportedBaudRates.contains(baudRate) else {
            throw SimulatorError(.unsupportedBaudRate, "\(baudRate) baud is not an M-Bus baud rate (\(LineTiming.supportedBaudRates.map(String.init).joined(separator: ", ")))")
        }
        let window = ResponseWindow(baudRate: baudRate)
        var links: [SlaveLink] = []
        for slave in slaves {
            let delay = slave.responseDelay ?? (slave.behaviour == .slow ? window.slowDelay : window.standardDelay)
            guard window.contains(delay) else {
                throw SimulatorError(.responseDelayOutsideWindow,
                                     "slave \(slave.primaryAddress) (\(slave.name)) answers after \(delay); the window is \(window)")
            }
            links.append(SlaveLink(slave: slave, responseDelay: delay.nanoseconds))
        }
        self.baudRate = baudRate
        self.slaves = slaves
        self.responseWindow = window
        terminal = try PseudoTerminal()
        shared = SharedBus(BusState(slaves: BusSlaves(links: links),
                                    counters: SimulatorCounters(primaryAddresses: slaves.map(\.primaryAddress))))
    }

    public convenience init(population: SlavePopulation) throws(SimulatorError) {
        try self.init(slaves: population.slaves, baudRate: population.baudRate)
    }

    deinit { stop() }

    /// The pty's device side (e.g. /dev/pts/7), for the master to open as its serial port.
    public var devicePath: String { terminal.devicePath }

    /// Starts the bus thread. Throws when already started or stopped.
    public func start() throws(SimulatorError) {
        try lifecycle.withLock { (state: inout Lifecycle) throws(SimulatorError) in
            guard case .ready = state else {
                throw SimulatorError(.invalidState, "the simulator was already started; create a new one to run again")
            }
            let engine = BusEngine(shared: shared, terminal: terminal, timing: LineTiming(baudRate: baudRate))
            state = .running(try BusThread.spawn(engine))
        }
    }

    /// Stops the bus thread, waits for it to end and closes the pty. Safe to call more than once.
    public func stop() {
        lifecycle.withLock { state in
            if case .running(let thread) = state {
                shared.stopRequested.store(true, ordering: .releasing)
                terminal.wake()
                pthread_join(thread, nil)
            }
            state = .stopped
            terminal.close()
        }
    }

    // MARK: - Faults

    /// Takes the slaves at this primary address off the bus: they stop answering, like a dead slave.
    /// Returns false when no slave has the address.
    @discardableResult
    public func unplug(primaryAddress: UInt8) -> Bool {
        shared.state.withLock { state in
            let indices = state.slaves.indices(primaryAddress: primaryAddress)
            for i in indices where state.slaves.links[i].isPluggedIn {
                state.slaves.links[i].isPluggedIn = false
                state.counters.injectedFaults += 1
            }
            return !indices.isEmpty
        }
    }

    /// Puts unplugged slaves back. They power up unselected, with a reset link (FCB and readout position).
    @discardableResult
    public func plug(primaryAddress: UInt8) -> Bool {
        shared.state.withLock { state in
            let indices = state.slaves.indices(primaryAddress: primaryAddress)
            for i in indices where !state.slaves.links[i].isPluggedIn {
                state.slaves.links[i].isPluggedIn = true
                state.slaves.links[i].powerOn()
            }
            return !indices.isEmpty
        }
    }

    /// Sends the next `count` RSP_UD answers of the slaves at this address with a wrong checksum
    /// (E5 answers have none and are not affected). Returns false when no slave has the address.
    @discardableResult
    public func corruptNextResponses(primaryAddress: UInt8, count: Int) -> Bool {
        shared.state.withLock { state in
            let indices = state.slaves.indices(primaryAddress: primaryAddress)
            for i in indices { state.slaves.links[i].pendingCorruptions += max(0, count) }
            return !indices.isEmpty
        }
    }

    /// Puts bytes on the line `delay` from now, at 11 bit times each. They superimpose on anything
    /// else on the line at that moment.
    public func injectNoise(_ bytes: [UInt8], after delay: Duration = .zero) {
        guard !bytes.isEmpty else { return }
        let at = MonotonicClock.now() + max(delay, .zero).nanoseconds
        shared.state.withLock { state in
            state.scheduledNoise.append((at: at, bytes: bytes))
            state.counters.noiseBursts += 1
            state.counters.noiseBytes += bytes.count
            state.counters.injectedFaults += 1
        }
        terminal.wake()
    }

    /// Puts `count` random bytes on the line `delay` from now.
    public func injectNoise(randomByteCount count: Int, after delay: Duration = .zero) {
        var generator = SystemRandomNumberGenerator()
        injectNoise((0..<max(0, count)).map { _ in UInt8.random(in: 0...255, using: &generator) }, after: delay)
    }

    /// Puts bytes on the line just before the next answer from any slave, ending a bit time before it
    /// starts (or running into it when the response delay is too short to hold them).
    public func injectNoiseBeforeNextResponse(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        shared.state.withLock { state in
            state.noiseBeforeNextResponse.append(bytes)
            state.counters.noiseBursts += 1
            state.counters.noiseBytes += bytes.count
            state.counters.injectedFaults += 1
        }
    }

    // MARK: - Observation

    /// A snapshot of the counters.
    public var counters: SimulatorCounters {
        shared.state.withLock { $0.counters }
    }

    /// Primary addresses of the slaves currently selected by secondary address, in population order.
    public var selectedPrimaryAddresses: [UInt8] {
        shared.state.withLock { state in
            state.slaves.links.filter(\.isSelected).map(\.slave.primaryAddress)
        }
    }
}
