/// EN 13757-2 link-layer timing, scaled to the line speed.
public struct LinkTiming: Hashable, Sendable {
    /// Line speed used for timeouts. For TCP converters without a configured speed, 2400 baud is assumed.
    public var settings: SerialSettings
    /// Extra time for USB serial adapters and TCP converters, which deliver bytes in bursts.
    public var adapterAllowance: Duration
    /// The longest pause tolerated between two bytes of one frame, in bit times (before the allowance).
    public var interByteBitTimes: Int

    public init(settings: SerialSettings = SerialSettings(), adapterAllowance: Duration = .milliseconds(30),
                interByteBitTimes: Int = 40) {
        self.settings = settings
        self.adapterAllowance = adapterAllowance
        self.interByteBitTimes = interByteBitTimes
    }

    public var byteTime: Duration { settings.bitTime * settings.bitsPerByte }

    /// EN 13757-2: a slave starts answering at most 330 bit times + 50 ms after the request ended.
    public var responseWindow: Duration { settings.bitTime * 330 + .milliseconds(50) + adapterAllowance }

    /// How long the line may stay quiet inside a frame before the frame counts as cut off.
    ///
    /// EN 13757-2 allows no pause inside a frame, but USB adapters deliver in bursts (an FTDI chip every
    /// 16 ms) and a loaded host schedules late, so 50 ms are added. It only costs time after garbage:
    /// a complete frame ends the wait at once.
    public var interByteTimeout: Duration { settings.bitTime * interByteBitTimes + .milliseconds(50) + adapterAllowance }

    /// Wire time of `count` bytes.
    public func wireTime(bytes count: Int) -> Duration { byteTime * count }
}

/// What came back for one request.
public enum LinkReply: Hashable, Sendable {
    /// The single character E5.
    case ack
    /// A valid frame.
    case frame(MBusFrame)
    /// Nothing within the response window.
    case silence
    /// Bytes that are not a valid frame: several slaves answered at once, or noise, or a bad checksum.
    case garbled(bytes: [UInt8], reason: FrameError?)
}

/// Counters a technician reads at the end of a scan or readout (as mbpoll prints them).
public struct LinkStatistics: Hashable, Sendable, CustomStringConvertible {
    public var requests = 0
    public var retries = 0
    public var timeouts = 0
    public var checksumErrors = 0
    public var garbledReplies = 0
    public var echoesRemoved = 0
    /// E5 bytes that arrived while a long answer was expected (late acknowledgements of a select).
    public var staleAcks = 0
    public var bytesSent = 0
    public var bytesReceived = 0
    /// Time spent inside transactions.
    public var busTime: Duration = .zero
    /// Wire time of all bytes sent and received at the line speed.
    public var wireTime: Duration = .zero

    public init() {}

    public var description: String {
        let busMS = Double(busTime.components.seconds) * 1000 + Double(busTime.components.attoseconds) / 1e15
        let wireMS = Double(wireTime.components.seconds) * 1000 + Double(wireTime.components.attoseconds) / 1e15
        let load = busMS > 0 ? Int((wireMS / busMS * 100).rounded()) : 0
        return "requests \(requests), retries \(retries), timeouts \(timeouts), checksum errors \(checksumErrors), "
            + "garbled \(garbledReplies), bytes sent \(bytesSent), received \(bytesReceived), "
            + "wire time \(Int(wireMS)) ms of \(Int(busMS)) ms on the bus (\(load)%)"
    }
}

extension MBusFrame {
    /// REQ_UD1/REQ_UD2 are answered with a long frame (RSP_UD), everything else with E5.
    var expectsLongFrame: Bool {
        if case .short(let f) = self { return f.control.function == 0x0B || f.control.function == 0x0A }
        return false
    }
}

/// Whether the adapter echoes what the master sends (some level converters do).
public enum EchoHandling: String, Hashable, Sendable {
    /// Strip an exact echo of the request wherever one arrives first.
    case auto
    case off
}

/// One M-Bus line's link layer: sends a request, collects the answer with EN 13757-2 timing,
/// strips echoes, resynchronises on garbage, and counts everything.
///
/// Not thread-safe: a `MBusLine` actor owns it and runs it on the line's own thread. It is marked
/// Sendable only so the line's deinit may close it.
public final class MBusLink: @unchecked Sendable {
    public let transport: ByteTransport
    public var timing: LinkTiming
    public var echo: EchoHandling
    public private(set) var statistics = LinkStatistics()
    /// The next frame count bit per address (EN 13757-2 5.6: FCB starts at 1 after SND_NKE).
    private var nextFCB: [UInt8: Bool] = [:]
    /// Set after a garbled answer: other slaves may still be transmitting.
    private var lineMayBeBusy = false

    /// Reads and drops bytes until the line has been quiet for one inter-byte timeout, for at most the
    /// time of the longest frame (261 bytes) plus the response window.
    private func waitForQuietLine() throws(TransportError) {
        let limit = ContinuousClock.now + timing.wireTime(bytes: 261) + timing.responseWindow
        while ContinuousClock.now < limit {
            let quietUntil = min(ContinuousClock.now + timing.interByteTimeout, limit)
            let chunk = try transport.read(maximum: 512, deadline: quietUntil)
            if chunk.isEmpty { return }
            statistics.bytesReceived += chunk.count
        }
    }

    public init(transport: ByteTransport, timing: LinkTiming = LinkTiming(), echo: EchoHandling = .auto) {
        self.transport = transport
        self.timing = timing
        self.echo = echo
    }

    public func resetStatistics() { statistics = LinkStatistics() }

    // MARK: - One exchange

    /// Sends `request` and returns what came back. `expectsReply` false (broadcasts) returns `.silence`
    /// after the request is out.
    public func exchange(_ request: MBusFrame, expectsReply: Bool = true) throws(TransportError) -> LinkReply {
        let started = ContinuousClock.now
        defer { statistics.busTime += ContinuousClock.now - started }
        let bytes = request.encoded
        if lineMayBeBusy {
            // After a garbled answer slaves may still be sending (several answers of different length).
            // Talking into that would garble the next answer too; wait until the line is quiet.
            try waitForQuietLine()
            lineMayBeBusy = false
        }
        try transport.discardInput()
        try transport.write(bytes)
        statistics.requests += 1
        statistics.bytesSent += bytes.count
        statistics.wireTime += timing.wireTime(bytes: bytes.count)
        guard expectsReply else { return .silence }

        // The write may return before the bytes are on the wire (pty, TCP), so the window also covers
        // the request's own transmission time.
        var deadline = ContinuousClock.now + timing.wireTime(bytes: bytes.count) + timing.responseWindow
        var reader = FrameReader()
        var received: [UInt8] = []
        var pendingEcho = echo == .auto ? bytes[...] : []
        var garbage: [UInt8] = []
        var firstError: FrameError?
        while true {
            let chunk = try transport.read(maximum: 512, deadline: deadline)
            if chunk.isEmpty {
                // Line quiet until the deadline.
                if let tail = reader.finish(), case .skipped(let b, let reason) = tail {
                    garbage += b
                    firstError = firstError ?? reason
                }
                break
            }
            statistics.bytesReceived += chunk.count
            statistics.wireTime += timing.wireTime(bytes: chunk.count)
            var data = chunk[...]
            // Echo: the adapter hands our own request back before the answer.
            if !pendingEcho.isEmpty && received.isEmpty {
                let n = min(pendingEcho.count, data.count)
                if data.prefix(n).elementsEqual(pendingEcho.prefix(n)) {
                    pendingEcho = pendingEcho.dropFirst(n)
                    data = data.dropFirst(n)
                    if pendingEcho.isEmpty { statistics.echoesRemoved += 1 }
                    deadline = ContinuousClock.now + timing.responseWindow
                    if data.isEmpty { continue }
                } else {
                    pendingEcho = []
                }
            }
            pendingEcho = []
            received += data
            reader.append(data)
            while let event = reader.next() {
                switch event {
                case .frame(let frame):
                    if case .ack = frame, request.expectsLongFrame {
                        // A late E5 from a select that several slaves acknowledged at slightly different
                        // times: not the answer to this request. Keep listening for the real one.
                        statistics.staleAcks += 1
                        deadline = ContinuousClock.now + timing.responseWindow
                        continue
                    }
                    if garbage.isEmpty {
                        if case .ack = frame { return .ack }
                        return .frame(frame)
                    }
                    if case .ack = frame {
                        // An E5 inside garbage is one more garbled byte (colliding answers), not an ACK.
                        garbage.append(MBusFrame.ackByte)
                        continue
                    }
                    // A whole long frame after garbage: noise before a good answer. Keep the answer, but
                    // let the line settle before the next request.
                    statistics.garbledReplies += 1
                    lineMayBeBusy = true
                    return .frame(frame)
                case .skipped(let b, let reason):
                    garbage += b
                    if firstError == nil { firstError = reason }
                }
            }
            // Inside a frame the next byte must follow quickly; a long pause ends the reply.
            deadline = ContinuousClock.now + timing.interByteTimeout
        }
        if received.isEmpty {
            statistics.timeouts += 1
            return .silence
        }
        lineMayBeBusy = true
        if firstError?.code == .checksumMismatch { statistics.checksumErrors += 1 }
        statistics.garbledReplies += 1
        return .garbled(bytes: received, reason: firstError)
    }

    /// `exchange` with retries on silence and garbled replies. Retries repeat the same frame (same FCB),
    /// so a slave that answered but was not heard repeats its answer.
    public func exchange(_ request: MBusFrame, retries: Int) throws(TransportError) -> LinkReply {
        var reply = try exchange(request)
        var attempt = 0
        while attempt < retries {
            switch reply {
            case .silence, .garbled:
                attempt += 1
                statistics.retries += 1
                reply = try exchange(request)
            default:
                return reply
            }
        }
        return reply
    }

    // MARK: - Link services

    /// SND_NKE: resets the slave's link layer (FCB) and tells whether it is there.
    public func sendNKE(address: UInt8, retries: Int = 0) throws(TransportError) -> LinkReply {
        let reply = try exchange(.sndNKE(address: address), retries: retries)
        if case .ack = reply { nextFCB[address] = true }
        return reply
    }

    /// REQ_UD2 with the FCB toggled after each answered request.
    public func requestUserData(address: UInt8, retries: Int) throws(TransportError) -> LinkReply {
        let fcb = nextFCB[address] ?? true
        let reply = try exchange(.reqUD2(address: address, frameCountBit: fcb), retries: retries)
        if case .frame = reply { nextFCB[address] = !fcb }
        return reply
    }

    /// SND_UD with application data; the slave acknowledges with E5.
    public func sendUserData(address: UInt8, controlInformation: UInt8, data: [UInt8], retries: Int) throws(TransportError) -> LinkReply {
        let fcb = nextFCB[address] ?? true
        let reply = try exchange(.sndUD(address: address, frameCountBit: fcb, controlInformation: controlInformation, data: data),
                                 retries: retries)
        if case .ack = reply { nextFCB[address] = !fcb }
        return reply
    }

    /// Select by secondary address (CI 52h to FDh). A new selection starts a new FCB sequence.
    public func select(_ mask: SecondaryAddressMask, retries: Int = 0) throws(TransportError) -> LinkReply {
        let reply = try exchange(.selectSecondary(mask), retries: retries)
        nextFCB[LinkAddress.networkLayer] = true
        return reply
    }

    /// Forget FCB state for an address (after a slave was replaced or reset out of band).
    public func forgetFrameCount(address: UInt8) { nextFCB[address] = nil }
}
