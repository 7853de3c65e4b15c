/// What happened on the simulated bus since it was created. A snapshot: read `counters` again for
/// newer values.
public struct SimulatorCounters: Hashable, Sendable {
    /// Frames from the master that decoded (SND_NKE, REQ_UD2, SND_UD, ...), answered or not.
    public var requestsSeen = 0
    /// Bytes from the master that were not part of a valid frame (bad checksum, garbage, a frame
    /// abandoned half-way).
    public var requestBytesDiscarded = 0
    /// Answers each slave put on the line (E5 or RSP_UD), in population order.
    public var responsesPerSlave: [Int]
    /// Primary address of each slave, in population order (several slaves may share one).
    public let primaryAddresses: [UInt8]
    /// Transmissions (answers or noise) that started while another was still on the line.
    public var collisions = 0
    /// Bytes the simulator read from the master.
    public var bytesReceived = 0
    /// Bytes written towards the master, after superposition.
    public var bytesSent = 0
    /// Bytes lost because the master did not read and the pty buffer was full (a UART overrun).
    public var bytesDropped = 0
    /// The latest any byte was written after its instant on the wire: how true the pacing was.
    /// Grows only when the machine is loaded; a bench should report it beside its timings.
    public var worstLateness: Duration = .zero
    /// Characters the master received with a broken stop bit or parity bit (collisions, noise).
    public var framingErrors = 0
    public var parityErrors = 0
    /// Faults injected: corrupted answers sent, noise bursts put on the line, unplug events.
    public var injectedFaults = 0
    public var corruptedResponses = 0
    public var noiseBursts = 0
    public var noiseBytes = 0

    init(primaryAddresses: [UInt8]) {
        self.primaryAddresses = primaryAddresses
        responsesPerSlave = Array(repeating: 0, count: primaryAddresses.count)
    }

    /// Answers sent by all slaves.
    public var responsesSent: Int { responsesPerSlave.reduce(0, +) }

    /// Answers sent by the slaves with this primary address.
    public func responsesSent(primaryAddress: UInt8) -> Int {
        zip(primaryAddresses, responsesPerSlave).reduce(0) { $0 + ($1.0 == primaryAddress ? $1.1 : 0) }
    }
}
