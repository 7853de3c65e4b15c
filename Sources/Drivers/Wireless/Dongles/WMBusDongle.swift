/// How to run a dongle session.
public struct DongleConfiguration: Hashable, Sendable {
    /// The device node: preferably a stable name (/dev/serial/by-id/…, a udev SYMLINK).
    public var path: String
    /// nil: detect at every (re)connect, HCI ping first, then Amber's CMD_SERIALNO_REQ.
    public var kind: DongleKind?
    public var linkMode: DongleLinkMode
    /// nil: the kind's factory speed (57600 HCI, 9600 Amber).
    public var baudRate: Int?
    /// How long to wait for each answer during the handshake.
    public var responseTimeout: Duration
    /// Attempts per handshake request before giving up on the dongle.
    public var attempts: Int
    /// First wait before reopening a missing or failed dongle; doubled up to `maximumBackoff`, back to
    /// the first once the dongle is ready again (`ReopenBackoff`).
    public var initialBackoff: Duration
    public var maximumBackoff: Duration
    /// A message arrives in one burst: bytes left this long without completing one are reported and dropped.
    public var idleResync: Duration

    public init(path: String, kind: DongleKind? = nil, linkMode: DongleLinkMode = .c1t1, baudRate: Int? = nil,
                responseTimeout: Duration = .seconds(1), attempts: Int = 3,
                initialBackoff: Duration = .seconds(1), maximumBackoff: Duration = .seconds(30),
                idleResync: Duration = .milliseconds(300)) {
        self.path = path
        self.kind = kind
        self.linkMode = linkMode
        self.baudRate = baudRate
        self.responseTimeout = responseTimeout
        self.attempts = max(1, attempts)
        self.initialBackoff = initialBackoff
        self.maximumBackoff = max(initialBackoff, maximumBackoff)
        self.idleResync = idleResync
    }
}

/// The waits between attempts to reopen a dongle that is missing or fails its handshake: `initial`,
/// doubled after every failed attempt up to `maximum`, back to `initial` once the dongle is ready.
///
/// A pulled stick may stay away for weeks; retrying every quarter second kept a 2-core board busy
/// (about 200 context switches a second) for nothing. Half a minute is still short next to a meter's
/// send interval.
public struct ReopenBackoff: Hashable, Sendable {
    public let initial: Duration
    public let maximum: Duration
    public private(set) var next: Duration

    public init(initial: Duration, maximum: Duration) {
        self.initial = max(initial, .milliseconds(1))
        self.maximum = max(self.initial, maximum)
        next = self.initial
    }

    /// The wait before the next attempt, after a failed one; the one after it is twice as long.
    public mutating func failed() -> Duration {
        let wait = next
        next = min(next * 2, maximum)
        return wait
    }

    /// The dongle answered: the next failure starts again from `initial`.
    public mutating func succeeded() { next = initial }
}

/// Where a session is. Reported on change, so a technician sees each transition once.
public enum DongleState: Hashable, Sendable, CustomStringConvertible {
    case connecting(path: String)
    /// Handshake done: pinged, identified, link mode set.
    case ready(DongleIdentity)
    /// The node is gone or reads fail with EIO/ENODEV; the session retries with backoff.
    case unplugged(path: String, reason: String)
    /// The node is there but the handshake failed (wrong dongle type, rejected mode); retried with backoff.
    case failed(DongleError)
    case stopped

    public var description: String {
        switch self {
        case .connecting(let path): return "opening dongle at \(path)"
        case .ready(let identity): return "dongle ready: \(identity)"
        case .unplugged(let path, let reason): return "dongle at \(path) unplugged, waiting for it to return (\(reason))"
        case .failed(let error): return "dongle not usable, retrying: \(error)"
        case .stopped: return "dongle session stopped"
        }
    }
}

public enum DongleEvent: Hashable, Sendable {
    case state(DongleState)
    case telegram(ReceivedTelegram)
    /// Line noise, a broken message, a telegram too short to be one: reported, then skipped.
    case problem(DongleError)
}

import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A wireless M-Bus receiver on a serial port, run as a session: handshake (ping, identify, set the
/// link mode), then received telegrams as an `AsyncStream`, surviving unplug and replug.
///
/// The actor runs on its own thread (`ThreadExecutor`): reads block in poll(2) and must stay off the
/// cooperative pool.
///
/// ```swift
/// let dongle = WMBusDongle(DongleConfiguration(path: "/dev/serial/by-id/usb-IMST_iM871A-if00", kind: .im871a, linkMode: .c1t1))
/// for await event in dongle.events() { ... }   // ends when the consuming task is cancelled
/// ```
public actor WMBusDongle {
    public let configuration: DongleConfiguration
    private let executor: ThreadExecutor
    private nonisolated let stopRequested = Atomic<Bool>(false)
    private nonisolated let started = Atomic<Bool>(false)
    /// Waits between reopen attempts are measured on this clock (a test's manual clock, or the real one).
    private let clock: any Clock<Duration>
    /// The sleep of a pause in progress, for `stop()` to cut short without the pause polling for it.
    private nonisolated let pauseInProgress = Mutex<Task<Void, Never>?>(nil)
    /// Wakes the receive loop out of poll(2) for `stop()` and cancellation, so it can block until bytes
    /// come instead of waking ten times a second to look for a stop request.
    private nonisolated let wake = WakeSignal()
    /// Times the session tried to open the port and handshake (each reopen of a missing dongle counts).
    public private(set) var openAttempts = 0
    private var lastState: DongleState?
    private var continuation: AsyncStream<DongleEvent>.Continuation?
    /// Events the stream had no room for (a consumer that stopped reading).
    public private(set) var droppedEvents = 0

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    public init(_ configuration: DongleConfiguration, clock: any Clock<Duration> = ContinuousClock()) {
        self.configuration = configuration
        self.clock = clock
        executor = ThreadExecutor(name: "dongle \(configuration.path)")
    }

    deinit { executor.shutdown() }

    /// Graceful shutdown: the session closes the port, reports `.stopped` and finishes the stream
    /// (at once while receiving; a handshake in progress finishes first).
    public nonisolated func stop() {
        stopRequested.store(true, ordering: .releasing)
        pauseInProgress.withLock { $0?.cancel() }
        wake.signal()
    }

    /// How often an open port's path is checked for a vanished or replaced device: the one wake-up an
    /// idle receiver has (most adapters report a pull at once as a hang-up; this is for those that don't).
    static let nodeCheckInterval: Duration = .seconds(2)

    private var shouldStop: Bool { Task.isCancelled || stopRequested.load(ordering: .acquiring) }

    /// Starts the session and returns its events. Call once (a second call gets a stream that reports
    /// the mistake and ends); the session stops when the consumer stops
    /// iterating (its task is cancelled or the stream is dropped).
    public nonisolated func events(bufferLimit: Int = 4096) -> AsyncStream<DongleEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: DongleEvent.self, bufferingPolicy: .bufferingOldest(bufferLimit))
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else {
            // One port, one reader: a second session on the same actor would steal its bytes.
            continuation.yield(.state(.failed(DongleError(.unsupported, "events() of the dongle at \(configuration.path) was already called: create one WMBusDongle per consumer"))))
            continuation.finish()
            return stream
        }
        let task = Task { await self.run(continuation) }
        continuation.onTermination = { [wake] _ in
            task.cancel()
            wake.signal()
        }
        return stream
    }

    /// One handshake without a session (`gatewayd dongle detect`): opens the port, pings, identifies
    /// (detecting the type when `kind` is nil), sets the link mode, closes the port. Not while this
    /// dongle's `events()` session runs: the session holds the actor's thread.
    public func identify() -> Result<DongleIdentity, DongleError> {
        switch connect() {
        case .success(let (port, _, identity)):
            port.close()
            return .success(identity)
        case .failure(let error):
            return .failure(error)
        }
    }

    // MARK: - Session loop

    private func run(_ continuation: AsyncStream<DongleEvent>.Continuation) async {
        self.continuation = continuation
        var backoff = ReopenBackoff(initial: configuration.initialBackoff, maximum: configuration.maximumBackoff)
        while !shouldStop {
            report(.connecting(path: configuration.path))
            openAttempts += 1
            switch connect() {
            case .success(let (port, link, identity)):
                let node = DeviceNode(path: configuration.path)
                backoff.succeeded()
                report(.ready(identity))
                var link = link
                let reason = receive(port, &link, identity, node: node)
                port.close()
                if let reason { report(.unplugged(path: configuration.path, reason: reason)) }
            case .failure(let error):
                if error.code == .transport, let t = error.transport,
                   t.code == .deviceMissing || t.code == .disconnected {
                    report(.unplugged(path: configuration.path, reason: t.message))
                } else {
                    report(.failed(error))
                }
                await pause(backoff.failed())
                continue
            }
            // Unplugged: a short pause before the first reopen, the device node takes a moment to vanish.
            await pause(configuration.initialBackoff)
        }
        report(.stopped)
        continuation.finish()
        self.continuation = nil
    }

    /// Sleeps on the session's clock, waking early for `stop()` or cancellation: one timer per pause, no
    /// polling, so a session waiting for a pulled dongle costs nothing between attempts.
    private func pause(_ duration: Duration) async {
        guard !shouldStop else { return }
        let sleeper = Task { [clock] in _ = try? await clock.sleep(for: duration) }
        pauseInProgress.withLock { $0 = sleeper }
        // stop() may have run between the check above and the store: it found no sleeper to cancel.
        if stopRequested.load(ordering: .acquiring) { sleeper.cancel() }
        await withTaskCancellationHandler {
            await sleeper.value
        } onCancel: {
            sleeper.cancel()
        }
        pauseInProgress.withLock { $0 = nil }
    }

    private func report(_ state: DongleState) {
        // A repeated "connecting" between two failures adds nothing; the failure itself is news.
        if case .connecting = state, case .unplugged? = lastState { return }
        if case .connecting = state, case .failed? = lastState { return }
        guard state != lastState else { return }
        lastState = state
        emit(.state(state))
    }

    private func emit(_ event: DongleEvent) {
        guard let continuation else { return }
        if case .dropped = continuation.yield(event) { droppedEvents += 1 }
    }

    private func deliver(_ outputs: [LinkOutput], _ identity: DongleIdentity?, kind: DongleKind) {
        for o in outputs {
            switch o {
            case .telegram(let bytes, let rssi):
                emit(.telegram(ReceivedTelegram(bytes: bytes, rssiDBm: rssi, receivedAt: .now(),
                                                linkMode: identity?.linkMode.singleLinkMode ?? configuration.linkMode.singleLinkMode,
                                                receiver: "\(kind) \(configuration.path)")))
            case .problem(let e):
                emit(.problem(e))
            case .response:
                break // an answer nobody waits for (a late one after a timeout)
            }
        }
    }

    /// Reads until the port fails (returns why) or the task is cancelled (returns nil).
    private func receive(_ port: SerialPort, _ link: inout any DongleLink, _ identity: DongleIdentity, node: DeviceNode?) -> String? {
        var lastByte = ContinuousClock.now
        var lastNodeCheck = ContinuousClock.now
        while !shouldStop {
            // Some adapters go silent instead of failing when pulled, and a quick replug can put a new
            // device behind the same by-id link: check that the path still names the node we opened.
            if ContinuousClock.now - lastNodeCheck >= Self.nodeCheckInterval {
                lastNodeCheck = .now
                if let node, let change = node.change(at: configuration.path) {
                    deliver(link.flush(), identity, kind: identity.kind)
                    return change
                }
            }
            // Block until bytes come, the next device-node check, or the end of a half-received frame;
            // stop() and cancellation signal `wake`.
            var deadline = lastNodeCheck + Self.nodeCheckInterval
            if link.pendingByteCount > 0 { deadline = min(deadline, lastByte + configuration.idleResync) }
            let bytes: [UInt8]
            do {
                bytes = try port.read(maximum: 4096, deadline: deadline, wakingOn: wake)
            } catch {
                deliver(link.flush(), identity, kind: identity.kind)
                return error.message
            }
            if bytes.isEmpty {
                if link.pendingByteCount > 0 && ContinuousClock.now - lastByte >= configuration.idleResync {
                    deliver(link.flush(), identity, kind: identity.kind)
                }
                continue
            }
            lastByte = .now
            deliver(link.decode(bytes), identity, kind: identity.kind)
        }
        return nil
    }

    // MARK: - Handshake

    private func connect() -> Result<(SerialPort, any DongleLink, DongleIdentity), DongleError> {
        if let kind = configuration.kind {
            return handshake(kind: kind, detecting: false)
        }
        // --type auto: HCI first (its ping is harmless to an Amber module), then Amber.
        var errors: [DongleError] = []
        for kind in [DongleKind.im871a, .amb8465, .iu891a, .cul] {
            switch handshake(kind: kind, detecting: true) {
            case .success(let found): return .success(found)
            case .failure(let e):
                if e.code != .timeout { return .failure(e) }
                errors.append(e)
            }
        }
        return .failure(DongleError(.notDetected,
                                    "no dongle answered at \(configuration.path): tried the HCI ping (iM871A, iM170A) at 57600 baud, CMD_SERIALNO_REQ (AMB8465, AMB8665) at 9600 baud, the SLIP ping (iU891A) at 115200 baud and culfw's V (CUL) at 38400 baud; check the path with `ls -l /dev/serial/by-id/` and give --type"))
    }

    private func handshake(kind: DongleKind, detecting: Bool) -> Result<(SerialPort, any DongleLink, DongleIdentity), DongleError> {
        let settings = SerialSettings(baudRate: configuration.baudRate ?? kind.defaultBaudRate, parity: .none, stopBits: 1)
        let port: SerialPort
        do {
            port = try SerialPort(path: configuration.path, settings: settings, role: .wmbusDongle)
        } catch {
            return .failure(DongleError(.transport, error.message, transport: error))
        }
        do {
            try port.discardInput()
            switch kind.family {
            case .hci:
                var link = HCILink()
                let identity = try hciHandshake(port, &link, kind: kind, detecting: detecting)
                return .success((port, link, identity))
            case .amber:
                var link = AmberLink()
                let identity = try amberHandshake(port, &link, kind: kind, detecting: detecting)
                return .success((port, link, identity))
            case .slip:
                var link = IU891Link()
                let identity = try iu891Handshake(port, &link, detecting: detecting)
                return .success((port, link, identity))
            case .culfw:
                var link = CULLink()
                let identity = try culHandshake(port, &link, detecting: detecting)
                return .success((port, link, identity))
            }
        } catch let error as DongleError {
            port.close()
            return .failure(error)
        } catch let error as TransportError {
            port.close()
            return .failure(DongleError(.transport, error.message, transport: error))
        } catch {
            port.close()
            return .failure(DongleError(.transport, "\(error)"))
        }
    }

    /// Sends `request` and waits for the response with `key`, passing telegrams that arrive meanwhile on.
    func transact<L: DongleLink>(_ port: SerialPort, _ link: inout L, _ request: [UInt8], key: UInt16, kind: DongleKind,
                                         what: String, hint: String) throws(DongleError) -> [UInt8] {
        for _ in 0..<configuration.attempts {
            do {
                try port.write(request)
            } catch {
                throw DongleError(.transport, error.message, transport: error)
            }
            let deadline = ContinuousClock.now + configuration.responseTimeout
            while ContinuousClock.now < deadline {
                let bytes: [UInt8]
                do {
                    bytes = try port.read(maximum: 1024, deadline: deadline)
                } catch {
                    throw DongleError(.transport, error.message, transport: error)
                }
                var answer: [UInt8]? = nil
                var others: [LinkOutput] = []
                for o in link.decode(bytes) {
                    if case .response(let k, let payload) = o, k == key, answer == nil {
                        answer = payload
                    } else {
                        others.append(o)
                    }
                }
                deliver(others, nil, kind: kind)
                if let answer { return answer }
            }
            // A half-received answer is garbage now; start the retry clean.
            deliver(link.flush(), nil, kind: kind)
        }
        throw DongleError(.timeout, "dongle at \(configuration.path) did not answer \(what) within \(configuration.responseTimeout) (\(configuration.attempts) attempts): \(hint)")
    }

    private func hciHandshake(_ port: SerialPort, _ link: inout HCILink, kind: DongleKind, detecting: Bool) throws(DongleError) -> DongleIdentity {
        let hint = detecting ? "not an HCI module" : "is it an \(kind)? try --type \(kind.otherFamilyHint) or --type auto"
        _ = try transact(port, &link, HCI.ping(), key: HCILink.key(endpoint: HCI.deviceManagement, messageID: HCI.pingResponse),
                         kind: kind, what: "the HCI ping", hint: hint)
        let infoPayload = try transact(port, &link, HCI.getDeviceInfo(),
                                       key: HCILink.key(endpoint: HCI.deviceManagement, messageID: HCI.getDeviceInfoResponse),
                                       kind: kind, what: "GET_DEVICEINFO", hint: hint)
        let info = try HCI.DeviceInfo.parse(infoPayload)
        let found: DongleKind = info.moduleType == HCI.moduleIM170A ? .im170a : (detecting ? .im871a : kind)
        let mode = configuration.linkMode
        if mode == .c1t1 && !info.supportsCombinedC1T1 {
            throw DongleError(.unsupported, "\(info.moduleName) firmware \(info.firmware) at \(configuration.path) cannot listen to C1 and T1 at once (firmware 1.4 or later can): use --mode c1 or --mode t1, or update the firmware")
        }
        let status = try transact(port, &link, HCI.setConfiguration(linkMode: mode),
                                  key: HCILink.key(endpoint: HCI.deviceManagement, messageID: HCI.setConfigResponse),
                                  kind: found, what: "SET_CONFIG (link mode \(mode))", hint: hint)
        guard status.first == 0 else {
            throw DongleError(.rejected, "\(info.moduleName) at \(configuration.path) rejected link mode \(mode) (status \(Hex.encode(status.prefix(1)))h): check that the module supports it")
        }
        let id = info.uniqueID
        return DongleIdentity(kind: found, path: configuration.path, firmware: info.firmware,
                              serialNumber: Hex.encode([UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF)]),
                              linkMode: mode)
    }

    private func amberHandshake(_ port: SerialPort, _ link: inout AmberLink, kind: DongleKind, detecting: Bool) throws(DongleError) -> DongleIdentity {
        let hint = detecting ? "not an Amber module" : "is it an \(kind)? try --type \(kind.otherFamilyHint) or --type auto"
        let serialPayload = try transact(port, &link, Amber.querySerialNumber(), key: UInt16(Amber.serialNumberRequest | Amber.responseFlag),
                                         kind: kind, what: "CMD_SERIALNO_REQ", hint: hint)
        let serial = try Amber.serialNumber(AmberMessage(command: Amber.serialNumberRequest | Amber.responseFlag, payload: serialPayload))
        let fwPayload = try transact(port, &link, Amber.queryFirmwareVersion(), key: UInt16(Amber.firmwareVersionRequest | Amber.responseFlag),
                                     kind: kind, what: "CMD_FWV_REQ", hint: hint)
        let firmware = try Amber.firmwareVersion(AmberMessage(command: Amber.firmwareVersionRequest | Amber.responseFlag, payload: fwPayload))
        // Whether telegrams carry an RSSI byte is a stored parameter: read it rather than write the flash.
        let getPayload = try transact(port, &link, Amber.get(position: Amber.parameterRSSIEnable, count: 1),
                                      key: UInt16(Amber.getRequest | Amber.responseFlag), kind: kind, what: "CMD_GET_REQ (RSSI_Enable)", hint: hint)
        let parameters = try Amber.parameters(AmberMessage(command: Amber.getRequest | Amber.responseFlag, payload: getPayload))
        link.reader.rssiAppended = parameters.values.first.map { $0 != 0 } ?? true
        let mode = configuration.linkMode
        let status = try transact(port, &link, Amber.setMode(mode), key: UInt16(Amber.setModeRequest | Amber.responseFlag),
                                  kind: kind, what: "CMD_SET_MODE_REQ (\(mode))", hint: hint)
        guard status.first == 0 else {
            throw DongleError(.rejected, "\(kind) at \(configuration.path) rejected mode \(mode) (status \(Hex.encode(status.prefix(1)))h)")
        }
        return DongleIdentity(kind: kind, path: configuration.path, firmware: firmware, serialNumber: serial, linkMode: mode)
    }
}

extension WMBusDongle {
    fileprivate func iu891Handshake(_ port: SerialPort, _ link: inout IU891Link, detecting: Bool) throws(DongleError) -> DongleIdentity {
        let hint = detecting ? "not an iU891A" : "is it an iU891A? try --type auto"
        let ping = try transact(port, &link, IU891.ping(), key: IU891Link.key(sap: IU891.deviceManagement, messageID: IU891.pingRequest + 1),
                                kind: .iu891a, what: "the SLIP ping", hint: hint)
        guard ping.first == 0 else { throw DongleError(.rejected, "the iU891A at \(configuration.path) refused the ping (status \(ping.first ?? 0xFF))") }
        let infoPayload = try transact(port, &link, IU891.getDeviceInfo(),
                                       key: IU891Link.key(sap: IU891.deviceManagement, messageID: IU891.getDeviceInfoRequest + 1),
                                       kind: .iu891a, what: "Get Device Info", hint: hint)
        let info = try IU891.DeviceInfo.parse(infoPayload)
        // The USB ids (04B4:0003, Cypress's) are shared with other sticks: the module type decides.
        guard IU891.moduleTypes[info.moduleType] != nil else {
            throw DongleError(.unsupported, "the device at \(configuration.path) speaks IMST's SLIP HCI but is \(info.moduleName), not a wM-Bus stick of the iU891A family")
        }
        let current = try transact(port, &link, IU891.getActiveConfiguration(),
                                   key: IU891Link.key(sap: IU891.wmbusGateway, messageID: IU891.getActiveConfigRequest + 1),
                                   kind: .iu891a, what: "Get Active Configuration", hint: hint)
        guard current.first == 0 else { throw DongleError(.rejected, "the iU891A refused Get Active Configuration (status \(current.first ?? 0xFF))") }
        let mode = configuration.linkMode
        // Read-modify-write: only the mode and the two receive options change; LEDs and calibration stay.
        let wanted = try IU891.configuration(Array(current.dropFirst()), linkMode: mode)
        let status = try transact(port, &link, IU891.setActiveConfiguration(wanted),
                                  key: IU891Link.key(sap: IU891.wmbusGateway, messageID: IU891.setActiveConfigRequest + 1),
                                  kind: .iu891a, what: "Set Active Configuration (link mode \(mode))", hint: hint)
        guard status.first == 0 else {
            throw DongleError(.rejected, "\(info.moduleName) at \(configuration.path) rejected link mode \(mode) (status \(status.first ?? 0xFF))")
        }
        let id = info.uniqueID
        return DongleIdentity(kind: .iu891a, path: configuration.path, firmware: info.moduleName,
                              serialNumber: Hex.encode([UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF)]),
                              linkMode: mode)
    }

    fileprivate func culHandshake(_ port: SerialPort, _ link: inout CULLink, detecting: Bool) throws(DongleError) -> DongleIdentity {
        let hint = detecting ? "not a CUL" : "is it a CUL with culfw? try --type auto"
        let version = String(decoding: try transact(port, &link, CUL.version(), key: CULLink.versionKey, kind: .cul, what: "V (version)", hint: hint),
                             as: UTF8.self)
        let mode = configuration.linkMode
        let (command, answer) = CUL.mode(mode)
        let got = String(decoding: try transact(port, &link, command, key: CULLink.modeKey, kind: .cul, what: String(decoding: command.dropLast(2), as: UTF8.self),
                                                hint: "does its culfw have wM-Bus (the 'b' command)?"), as: UTF8.self)
        guard got == answer else {
            throw DongleError(.unsupported, "the CUL at \(configuration.path) (\(version)) answered \(got) to \(String(decoding: command.dropLast(2), as: UTF8.self)): its firmware has no \(mode == .c1 || mode == .c1t1 ? "C mode (official culfw r571 has it, a-culfw does not): use --mode t1 or s1" : "\(mode) mode")")
        }
        // Signal reports after the mode is on: X21 does not touch the radio then.
        do { try port.write(CUL.reportSignal()) } catch { throw DongleError(.transport, error.message, transport: error) }
        return DongleIdentity(kind: .cul, path: configuration.path, firmware: String(version.dropFirst(2)), serialNumber: "-", linkMode: mode)
    }
}

/// The device a path names (following symlinks), to notice it vanish or change under an open port.
struct DeviceNode: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64
    let rdev: UInt64

    /// Wraps stat(2); nil when the path names nothing.
    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        rdev = UInt64(st.st_rdev)
    }

    /// Why `path` no longer names this node, or nil when it still does.
    func change(at path: String) -> String? {
        guard let now = DeviceNode(path: path) else { return "the device node \(path) disappeared" }
        return now == self ? nil : "\(path) now names another device (replugged)"
    }
}
