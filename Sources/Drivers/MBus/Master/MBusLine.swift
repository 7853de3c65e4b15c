/// Settings of one wired M-Bus line.
public struct MBusLineOptions: Hashable, Sendable {
    public var serial: SerialSettings
    /// Extra response time for USB adapters and TCP converters.
    public var adapterAllowance: Duration
    /// Retries after silence or a garbled answer, for readouts.
    public var retries: Int
    /// Retries per probe during scans (an absent address costs a full response window each time).
    public var scanRetries: Int
    public var echo: EchoHandling
    /// How long to wait for another process (the daemon, a second CLI) to release the bus.
    public var lockWait: Duration
    /// Most telegrams one multi-telegram readout may take before it stops (a slave stuck on DIF 1Fh).
    public var maximumTelegrams: Int
    /// Directory for the cross-process bus lock.
    public var lockDirectory: String

    public init(serial: SerialSettings = SerialSettings(), adapterAllowance: Duration = .milliseconds(30),
                retries: Int = 2, scanRetries: Int = 1, echo: EchoHandling = .auto, lockWait: Duration = .seconds(10),
                maximumTelegrams: Int = 16, lockDirectory: String = BusLockFile.defaultDirectory) {
        self.serial = serial
        self.adapterAllowance = adapterAllowance
        self.retries = retries
        self.scanRetries = scanRetries
        self.echo = echo
        self.lockWait = lockWait
        self.maximumTelegrams = maximumTelegrams
        self.lockDirectory = lockDirectory
    }
}

/// How to reach one meter.
public enum MeterAddress: Hashable, Sendable, CustomStringConvertible {
    case primary(UInt8)
    case secondary(SecondaryAddressMask)

    public var description: String {
        switch self {
        case .primary(let a): return "primary address \(a)"
        case .secondary(let m): return "secondary address \(m)"
        }
    }
}

/// Why a readout or command failed, with what to check.
public struct MBusError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }
        public static let noAnswer = Code(name: "no_answer")
        public static let garbled = Code(name: "garbled_answer")
        public static let notSelected = Code(name: "not_selected")
        public static let invalidAnswer = Code(name: "invalid_answer")
        public static let transport = Code(name: "transport")
        public static let cancelled = Code(name: "cancelled")
    }

    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    static func transport(_ e: TransportError) -> MBusError { MBusError(.transport, e.message) }
}

/// The frames of one readout, assembled from a multi-telegram answer.
public struct Readout: Hashable, Sendable {
    public var address: MeterAddress
    /// Each RSP_UD frame as received, in order.
    public var frames: [[UInt8]]
    /// Each frame decoded.
    public var telegrams: [Telegram]
    /// True when the slave still announced more records at the frame limit.
    public var truncated: Bool

    public init(address: MeterAddress, frames: [[UInt8]], telegrams: [Telegram], truncated: Bool) {
        self.address = address
        self.frames = frames
        self.telegrams = telegrams
        self.truncated = truncated
    }

    /// One telegram: the first one's header with the records of all of them in order.
    public var assembled: Telegram {
        guard var t = telegrams.first else { return Telegram(controlInformation: 0x72) }
        for next in telegrams.dropFirst() { t.records += next.records }
        t.manufacturerData = telegrams.last?.manufacturerData
        t.moreRecordsFollow = truncated
        return t
    }
}

/// One wired M-Bus line (a serial port or a TCP converter): the half-duplex bus and its lock.
///
/// The actor serialises transactions inside the process; the lock file serialises them across
/// processes. Its jobs run on the line's own thread, so blocking I/O never stalls the shared pool.
public actor MBusLine {
    public nonisolated let endpoint: BusEndpoint
    public nonisolated let options: MBusLineOptions
    private let executor: ThreadExecutor
    let link: MBusLink
    private let lock: BusLockFile
    /// Addresses that got SND_NKE in this session (their FCB is in step).
    private var initialised: Set<UInt8> = []

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    public init(endpoint: BusEndpoint, options: MBusLineOptions = MBusLineOptions()) throws(TransportError) {
        let transport: ByteTransport
        switch endpoint {
        case .serial(let path): transport = try SerialPort(path: path, settings: options.serial, role: .mbusLevelConverter)
        case .tcp(let host, let port): transport = try TCPTransport(host: host, port: port, lineSettings: options.serial)
        }
        self.init(endpoint: endpoint, transport: transport, options: options)
    }

    /// A line over an already open transport (tests, simulators).
    public init(endpoint: BusEndpoint, transport: ByteTransport, options: MBusLineOptions = MBusLineOptions()) {
        self.endpoint = endpoint
        self.options = options
        executor = ThreadExecutor(name: "mbus " + endpoint.description)
        link = MBusLink(transport: transport,
                        timing: LinkTiming(settings: options.serial, adapterAllowance: options.adapterAllowance),
                        echo: options.echo)
        lock = BusLockFile(endpoint: endpoint, directory: options.lockDirectory)
    }

    // Not `isolated deinit`: with it, a release build of a module that creates a line fails with
    // "circular reference" (Swift 6.3.1). The link is touched here only after the last reference to
    // the actor is gone, so no job of the line can be running.
    deinit {
        link.transport.close()
        executor.shutdown()
    }

    public func close() {
        link.transport.close()
    }

    public var statistics: LinkStatistics { link.statistics }
    public func resetStatistics() { link.resetStatistics() }

    /// Runs `body` holding the cross-process bus lock: one request/response sequence.
    func transaction<T>(_ body: (MBusLink) throws(TransportError) -> T) throws(MBusError) -> T {
        do {
            try lock.acquire(deadline: .now + options.lockWait)
        } catch {
            throw MBusError.transport(error)
        }
        defer { lock.release() }
        do {
            return try body(link)
        } catch {
            throw MBusError.transport(error)
        }
    }

    // MARK: - Readout

    /// Reads a meter: REQ_UD2 (after selecting it, for a secondary address), following "more records
    /// follow" up to the telegram limit. The first contact with a primary address sends SND_NKE so the
    /// frame count bit is in step.
    public func read(_ address: MeterAddress) throws(MBusError) -> Readout {
        let limit = options.maximumTelegrams
        let retries = options.retries
        let needsReset: Bool
        if case .primary(let a) = address { needsReset = !initialised.contains(a) } else { needsReset = false }
        var lastReply = LinkReply.silence
        var undecodable: DecodeError?
        let result: Readout = try transaction { (link) throws(TransportError) -> Readout in
            let target: UInt8
            switch address {
            case .primary(let a):
                target = a
                if needsReset {
                    // A silent NKE is not fatal: some slaves only answer REQ_UD2.
                    _ = try link.sendNKE(address: a, retries: 0)
                }
            case .secondary(let mask):
                target = LinkAddress.networkLayer
                let reply = try link.select(mask, retries: retries)
                lastReply = reply
                guard case .ack = reply else {
                    return Readout(address: address, frames: [], telegrams: [], truncated: false)
                }
            }
            var frames: [[UInt8]] = []
            var telegrams: [Telegram] = []
            var more = true
            while more && frames.count < limit {
                let reply = try link.requestUserData(address: target, retries: retries)
                lastReply = reply
                guard case .frame(let frame) = reply else { break }
                frames.append(frame.encoded)
                let t: Telegram
                do {
                    t = try TelegramDecoder.decode(frame)
                } catch let error as DecodeError {
                    undecodable = error
                    break
                } catch {
                    break  // TelegramDecoder throws DecodeError only
                }
                telegrams.append(t)
                more = t.moreRecordsFollow
            }
            return Readout(address: address, frames: frames, telegrams: telegrams, truncated: more && frames.count >= limit)
        }
        if case .primary(let a) = address, !result.frames.isEmpty { initialised.insert(a) }
        if result.frames.isEmpty {
            if case .garbled(let bytes, _) = lastReply {
                throw MBusError(.garbled, "\(address) answered with \(bytes.count) garbled bytes after \(retries + 1) tries: several slaves answer to it (duplicate address), or the line is noisy")
            }
            if case .secondary(let mask) = address {
                throw MBusError(.notSelected, "no meter answered the selection of \(mask): check the id and that the meter is on this line")
            }
            throw MBusError(.noAnswer, "no answer from \(address) after \(retries + 1) tries: check the address, the wiring and the bus voltage")
        }
        if let error = undecodable {
            throw MBusError(.invalidAnswer, "\(address) answered a frame that does not decode: \(error.message)")
        }
        return result
    }

    /// SND_NKE: is a slave at this primary address?
    public func ping(primary address: UInt8) throws(MBusError) -> LinkReply {
        let reply = try transaction { (link) throws(TransportError) in try link.sendNKE(address: address, retries: options.retries) }
        if case .ack = reply { initialised.insert(address) }
        return reply
    }

    /// Application reset (CI 50h), optionally with a subcode that selects what the next readouts return.
    public func applicationReset(_ address: MeterAddress, subcode: UInt8? = nil) throws(MBusError) {
        try sendUserData(address, controlInformation: ControlInformation.applicationReset, data: subcode.map { [$0] } ?? [])
    }

    /// Selects the data set the next readouts return (SND_UD CI 51h), e.g. `[0x7F]` for a global readout.
    public func selectDataSet(_ address: MeterAddress, dataRecordHeaders: [UInt8]) throws(MBusError) {
        try sendUserData(address, controlInformation: ControlInformation.dataSend, data: dataRecordHeaders)
    }

    private func sendUserData(_ address: MeterAddress, controlInformation: UInt8, data: [UInt8]) throws(MBusError) {
        let retries = options.retries
        let reply = try transaction { (link) throws(TransportError) -> LinkReply in
            let target: UInt8
            switch address {
            case .primary(let a): target = a
            case .secondary(let mask):
                guard case .ack = try link.select(mask, retries: retries) else { return .silence }
                target = LinkAddress.networkLayer
            }
            return try link.sendUserData(address: target, controlInformation: controlInformation, data: data, retries: retries)
        }
        guard case .ack = reply else {
            throw MBusError(.noAnswer, "\(address) did not acknowledge CI \(Hex.encode([controlInformation])): \(reply)")
        }
    }
}
