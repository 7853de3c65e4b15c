import CModbus
#if canImport(Glibc)
import Glibc
#endif

/// Where a Modbus device is: a TCP server (a heat pump's own port or an RS-485 gateway) or an RTU line.
public enum ModbusEndpoint: Hashable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    /// An RS-485 line: device path, serial settings, and whether to switch the UART to RS-485 mode
    /// (TIOCSRS485; only for adapters whose driver supports it, not for USB-serial converters).
    case rtu(path: String, serial: SerialSettings, rs485: Bool)

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        case .rtu(let path, let serial, _): return "\(path) (\(serial))"
        }
    }

    public var isRTU: Bool { if case .rtu = self { return true } else { return false } }
}

/// Timeouts and retries of one line.
public struct ModbusLineOptions: Hashable, Sendable {
    /// Time from the end of a request to the first byte of the answer.
    public var responseTimeout: Duration
    /// Longest silence inside one answer.
    public var byteTimeout: Duration
    /// Repeats after a timeout (never after an exception: the device answered).
    public var retries: Int
    /// How long to wait for another process (the daemon, a second CLI) to release an RTU line.
    public var lockWait: Duration
    public var lockDirectory: String
    /// Pause after a connection opens, before its first request.
    public var connectPause: Duration = .zero

    public init(responseTimeout: Duration = .seconds(1), byteTimeout: Duration = .milliseconds(100), retries: Int = 0,
                lockWait: Duration = .seconds(10), lockDirectory: String = BusLockFile.defaultDirectory) {
        self.responseTimeout = responseTimeout
        self.byteTimeout = byteTimeout
        self.retries = retries
        self.lockWait = lockWait
        self.lockDirectory = lockDirectory
    }
}

/// Counters a technician reads after a poll (mbpoll-style).
public struct ModbusStatistics: Hashable, Sendable, Codable, CustomStringConvertible {
    public var requests = 0
    public var responses = 0
    public var timeouts = 0
    public var exceptions = 0
    public var otherErrors = 0
    public var reconnects = 0
    public var roundTripTotalMs = 0.0
    public var roundTripMinMs: Double? = nil
    public var roundTripMaxMs: Double? = nil

    public init() {}

    public var roundTripMeanMs: Double? { responses + exceptions > 0 ? roundTripTotalMs / Double(responses + exceptions) : nil }

    mutating func answered(after ms: Double) {
        roundTripTotalMs += ms
        roundTripMinMs = min(roundTripMinMs ?? ms, ms)
        roundTripMaxMs = max(roundTripMaxMs ?? ms, ms)
    }

    public var description: String {
        func f(_ v: Double?) -> String { v.map { ModbusValue.format(($0 * 10).rounded() / 10) } ?? "-" }
        return "\(requests) requests, \(responses) answered, \(timeouts) timeouts, \(exceptions) exceptions, "
            + "\(otherErrors) other errors, \(reconnects) reconnects; round trip min/mean/max "
            + "\(f(roundTripMinMs))/\(f(roundTripMeanMs))/\(f(roundTripMaxMs)) ms"
    }
}

/// One libmodbus context. Not thread-safe: only `ModbusLine` touches it, on the line's own thread.
final class ModbusContext {
    let endpoint: ModbusEndpoint
    private(set) var handle: OpaquePointer
    private(set) var isConnected = false

    /// modbus_new_tcp_pi(3) / modbus_new_rtu(3).
    init(_ endpoint: ModbusEndpoint, options: ModbusLineOptions) throws(ModbusError) {
        self.endpoint = endpoint
        let created: OpaquePointer?
        switch endpoint {
        case .tcp(let host, let port):
            created = modbus_new_tcp_pi(host, String(port))
        case .rtu(let path, let serial, _):
            let parity: CChar
            switch serial.parity {
            case .even: parity = CChar(UInt8(ascii: "E"))
            case .odd: parity = CChar(UInt8(ascii: "O"))
            case .none: parity = CChar(UInt8(ascii: "N"))
            }
            created = modbus_new_rtu(path, Int32(serial.baudRate), parity, 8, Int32(serial.stopBits))
        }
        guard let created else {
            throw ModbusError(.configuration, "cannot set up \(endpoint): \(String(cString: modbus_strerror(errno))); check the host name or device path and the serial settings")
        }
        handle = created
        _ = modbus_set_error_recovery(handle, MODBUS_ERROR_RECOVERY_PROTOCOL)
        Self.set(options.responseTimeout) { modbus_set_response_timeout(created, $0, $1) }
        Self.set(options.byteTimeout) { modbus_set_byte_timeout(created, $0, $1) }
    }

    deinit {
        modbus_close(handle)
        modbus_free(handle)
    }

    private static func set(_ d: Duration, _ body: (UInt32, UInt32) -> Int32) {
        let (s, atto) = d.components
        _ = body(UInt32(max(0, s)), UInt32(max(0, atto / 1_000_000_000_000)))
    }

    /// modbus_connect(3), and modbus_rtu_set_serial_mode(3) for RS-485 mode.
    func connect() throws(ModbusError) {
        if isConnected { return }
        if modbus_connect(handle) != 0 {
            let e = errno
            throw ModbusError(.connection, "cannot open \(endpoint): \(String(cString: strerror(e))); " + Self.openHint(endpoint, e))
        }
        if case .rtu(_, _, true) = endpoint, modbus_rtu_set_serial_mode(handle, Int32(MODBUS_RTU_RS485)) != 0 {
            let e = errno
            modbus_close(handle)
            throw ModbusError(.configuration, "\(endpoint): the adapter's driver refused RS-485 mode (\(String(cString: strerror(e)))); leave --rs485 off for USB converters that switch direction themselves")
        }
        isConnected = true
    }

    func close() {
        modbus_close(handle)
        isConnected = false
    }

    func flush() { _ = modbus_flush(handle) }

    func setUnit(_ unit: Int) { _ = modbus_set_slave(handle, Int32(unit)) }

    static func openHint(_ endpoint: ModbusEndpoint, _ e: Int32) -> String {
        switch (endpoint, e) {
        case (.tcp, ECONNREFUSED): return "nothing listens there; check the port (502 by default) and that Modbus TCP is enabled on the device"
        case (.tcp, _): return "check the address, the network and the device's power"
        case (.rtu, EACCES): return "add the service user to the dialout group"
        case (.rtu, ENOENT), (.rtu, ENODEV), (.rtu, ENXIO): return "is \(SerialPortRole.rs485Adapter.thing) plugged in? " + SerialPortRole.rs485Adapter.whereToLook
        case (.rtu, EBUSY): return "another program holds the port"
        case (.rtu, _): return "check the adapter"
        }
    }
}

/// One Modbus line: a TCP connection, or an RS-485 bus shared by the daemon and the CLI.
///
/// The actor sends one request at a time; on an RTU line an flock per request keeps other processes off
/// the bus. Its jobs run on the line's own thread because libmodbus blocks. A dropped connection or an
/// unplugged adapter closes the context; the next request opens it again.
public actor ModbusLine {
    public nonisolated let endpoint: ModbusEndpoint
    public nonisolated let options: ModbusLineOptions
    private let executor: ThreadExecutor
    private let context: ModbusContext
    private let lock: BusLockFile?
    private var stats = ModbusStatistics()
    private var everConnected = false
    private var lastRequestEnd: ContinuousClock.Instant?
    /// `holdingLine` holds the lock for a whole poll; requests inside it keep it.
    private var pollHeld = false
    /// A late answer to a timed-out RTU request may still arrive: drop it before the next request.
    private var flushBeforeNext = false

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    public init(endpoint: ModbusEndpoint, options: ModbusLineOptions = ModbusLineOptions()) throws(ModbusError) {
        self.endpoint = endpoint
        self.options = options
        context = try ModbusContext(endpoint, options: options)
        executor = ThreadExecutor(name: "modbus " + endpoint.description)
        if case .rtu(let path, _, _) = endpoint {
            lock = BusLockFile(endpoint: .serial(path: path), directory: options.lockDirectory)
        } else {
            lock = nil
        }
    }

    deinit {
        executor.shutdown()
    }

    public var statistics: ModbusStatistics { stats }
    public func resetStatistics() { stats = ModbusStatistics() }

    /// Opens the connection now (otherwise the first request does), to report a wrong port early.
    public func connect() throws(ModbusError) {
        try context.connect()
        everConnected = true
    }

    public func close() { context.close() }

    // MARK: - Requests

    /// FC 03 / 04: registers; FC 01 / 02: bits (as 0/1 words).
    /// `retries` overrides the line's for this request (a probe of a backed-off device tries once).
    public func read(_ kind: RegisterKind, address: Int, count: Int, unit: Int, pause: Duration = .zero,
                     retries: Int? = nil) throws(ModbusError) -> [UInt16] {
        guard count >= 1, count <= kind.protocolLimit, address >= 0, address + count <= 65536 else {
            throw ModbusError(.configuration, "\(kind) \(address)+\(count): a read takes 1 to \(kind.protocolLimit) items within 0…65535")
        }
        let what = "unit \(unit) \(kind) \(address)+\(count) (FC 0\(kind.readFunction))"
        return try transact(what, unit: unit, pause: pause, retries: retries) { h in
            if kind.isRegister {
                var dest = [UInt16](repeating: 0, count: count)
                let n = dest.withUnsafeMutableBufferPointer { p in
                    kind == .holding ? modbus_read_registers(h, Int32(address), Int32(count), p.baseAddress)
                                     : modbus_read_input_registers(h, Int32(address), Int32(count), p.baseAddress)
                }
                return n == count ? dest : nil
            } else {
                var dest = [UInt8](repeating: 0, count: count)
                let n = dest.withUnsafeMutableBufferPointer { p in
                    kind == .coil ? modbus_read_bits(h, Int32(address), Int32(count), p.baseAddress)
                                  : modbus_read_input_bits(h, Int32(address), Int32(count), p.baseAddress)
                }
                return n == count ? dest.map { UInt16($0) } : nil
            }
        }
    }

    /// FC 05 / 06 (one value) or 15 / 16 (several).
    public func write(_ kind: RegisterKind, address: Int, values: [UInt16], unit: Int) throws(ModbusError) {
        guard kind == .coil || kind == .holding else {
            throw ModbusError(.notAllowed, "\(kind) registers are read-only in Modbus; only coils and holding registers can be written")
        }
        guard !values.isEmpty, values.count <= (kind == .coil ? 1968 : 123) else {
            throw ModbusError(.configuration, "a write takes 1 to \(kind == .coil ? 1968 : 123) values")
        }
        let fc = kind == .coil ? (values.count == 1 ? 5 : 15) : (values.count == 1 ? 6 : 16)
        let what = "unit \(unit) write \(kind) \(address)+\(values.count) (FC \(fc))"
        _ = try transact(what, unit: unit, pause: .zero) { h -> [UInt16]? in
            let rc: Int32
            switch (kind, values.count) {
            case (.coil, 1): rc = modbus_write_bit(h, Int32(address), values[0] != 0 ? 1 : 0)
            case (.coil, _):
                let bits = values.map { $0 != 0 ? UInt8(1) : 0 }
                rc = bits.withUnsafeBufferPointer { modbus_write_bits(h, Int32(address), Int32(bits.count), $0.baseAddress) }
            case (_, 1): rc = modbus_write_register(h, Int32(address), values[0])
            default: rc = values.withUnsafeBufferPointer { modbus_write_registers(h, Int32(address), Int32(values.count), $0.baseAddress) }
            }
            return rc >= 0 ? [] : nil
        }
    }

    /// Writes a value a profile marks writable, scaled back to its raw form.
    public func write(_ name: String, value: Double, profile: ModbusProfile, unit: Int) throws(ModbusError) {
        guard let r = profile.register(named: name) else {
            throw ModbusError(.configuration, "profile \(profile.id) has no register \"\(name)\"")
        }
        guard r.writable == true else {
            throw ModbusError(.notAllowed, "profile \(profile.id) does not allow writing \(name); only registers marked writable may be changed")
        }
        let raw = ((value - (r.offset ?? 0)) / (r.scale ?? 1)).rounded()
        let word: UInt16
        switch r.type {
        case .i16:
            guard let v = Int16(exactly: raw) else { throw ModbusError(.configuration, "\(value) is out of range for \(name)") }
            word = UInt16(bitPattern: v)
        case .u16:
            guard let v = UInt16(exactly: raw) else { throw ModbusError(.configuration, "\(value) is out of range for \(name)") }
            word = v
        default:
            throw ModbusError(.notAllowed, "\(name) is a \(r.type); writes are supported for u16 and i16 registers and coils")
        }
        try write(r.kind, address: r.address, values: [word], unit: unit)
    }

    /// FC 11h Report Server ID: the raw data bytes (byte count stripped).
    public func reportServerID(unit: Int) throws(ModbusError) -> [UInt8] {
        try transact("unit \(unit) report server id (FC 11h)", unit: unit, pause: .zero) { h -> [UInt8]? in
            var dest = [UInt8](repeating: 0, count: 256)
            let n = dest.withUnsafeMutableBufferPointer { modbus_report_slave_id(h, Int32(256), $0.baseAddress) }
            return n >= 0 ? Array(dest.prefix(Int(min(n, 256)))) : nil
        }
    }

    /// Runs `body` with the line held for all its requests (a whole poll of one device): another process on
    /// the same RS-485 adapter (a technician's `gatewayd modbus read`, a write) waits behind the poll instead
    /// of slipping between its requests. On TCP there is no lock and this only runs `body`.
    public func holdingLine<T>(_ body: @Sendable (isolated ModbusLine) throws(ModbusError) -> T) throws(ModbusError) -> T {
        if let lock, !pollHeld {
            do { try lock.acquire(deadline: .now + options.lockWait) } catch {
                throw ModbusError(.connection, "\(endpoint): \(error.message)")
            }
            pollHeld = true
            defer {
                pollHeld = false
                lock.release()
            }
            return try body(self)
        }
        return try body(self)
    }

    /// One request with the line held: connect if needed, count, time, map errors, reconnect after a drop.
    private func transact<T>(_ what: String, unit: Int, pause: Duration, retries: Int? = nil,
                             _ body: (OpaquePointer) -> T?) throws(ModbusError) -> T {
        let retries = max(0, retries ?? options.retries)
        if let lock {
            do { try lock.acquire(deadline: .now + options.lockWait) } catch {
                throw ModbusError(.connection, "\(endpoint): \(error.message)")
            }
        }
        defer { if !pollHeld { lock?.release() } }
        if let last = lastRequestEnd, pause > .zero {
            let wait = last + pause - .now
            if wait > .zero { Self.sleep(wait) }
        }
        defer { lastRequestEnd = .now }
        var attempt = 0
        var reconnectedForThis = false
        while true {
            if !context.isConnected {
                do {
                    try context.connect()
                } catch {
                    stats.otherErrors += 1
                    throw error
                }
                if everConnected { stats.reconnects += 1 }
                everConnected = true
                // Some controllers (and TCP gateways to RS-485) need a moment after a connection opens.
                if options.connectPause > .zero { Self.sleep(options.connectPause) }
            }
            context.setUnit(unit)
            if flushBeforeNext {
                context.flush()
                flushBeforeNext = false
            }
            stats.requests += 1
            let start = ContinuousClock.now
            errno = 0
            if let value = body(context.handle) {
                stats.responses += 1
                stats.answered(after: Self.ms(.now - start))
                return value
            }
            let e = errno
            let elapsed = Self.ms(.now - start)
            let error = classify(e, what: what)
            switch error.code {
            case _ where error.isException:
                stats.exceptions += 1
                stats.answered(after: elapsed)
                throw error
            case .timeout:
                stats.timeouts += 1
                // A late answer must not be taken for the next request's: start afresh.
                if endpoint.isRTU { flushBeforeNext = true } else { context.close() }
                if attempt < retries { attempt += 1; continue }
                throw error
            case .connection:
                stats.otherErrors += 1
                context.close()
                // The peer closed an idle connection (restart, gateway timeout): one fresh attempt.
                if !reconnectedForThis { reconnectedForThis = true; continue }
                throw error
            default:
                stats.otherErrors += 1
                context.flush()
                if attempt < retries { attempt += 1; continue }
                throw error
            }
        }
    }

    private func classify(_ e: Int32, what: String) -> ModbusError {
        let base = Int32(MODBUS_ENOBASE)
        if e > base && e <= base + 11 { return ModbusError.exception(UInt8(e - base), request: what) }
        switch e - base {
        case 12: return ModbusError(.invalidResponse, "\(what): the answer failed its CRC check; check the baud rate, parity, termination and line noise")
        case 13, 16: return ModbusError(.invalidResponse, "\(what): the answer did not match the request; another master may be on the bus, or the unit id is shared")
        case 14, 15: return ModbusError(.invalidResponse, "\(what): the answer carried an invalid exception code")
        case 17: return ModbusError(.invalidResponse, "\(what): the answer came from another unit id; two devices may share this id")
        default: break
        }
        switch e {
        case ETIMEDOUT, EAGAIN:
            let hint = endpoint.isRTU
                ? "check the unit id, A/B wiring, baud rate and parity, and that the controller's Modbus is enabled"
                : "check the unit id and, behind an RS-485 gateway, the gateway's serial side"
            return ModbusError(.timeout, "\(what): no answer within \(ModbusValue.format(Self.ms(options.responseTimeout))) ms; \(hint)")
        case ECONNRESET, EPIPE, EBADF, ENOTCONN, ECONNREFUSED, ECONNABORTED, EIO, ENXIO, ENODEV, ESHUTDOWN, EHOSTUNREACH, ENETUNREACH:
            let hint = endpoint.isRTU ? "the adapter was unplugged or failed; plug it back in, the next poll reopens it"
                                      : "the connection dropped; the next poll reconnects"
            return ModbusError(.connection, "\(what): \(String(cString: strerror(e))); \(hint)")
        default:
            return ModbusError(.invalidResponse, "\(what): \(String(cString: modbus_strerror(e)))")
        }
    }

    public static func milliseconds(_ d: Duration) -> Double { ms(d) }

    static func ms(_ d: Duration) -> Double {
        let (s, a) = d.components
        return Double(s) * 1000 + Double(a) / 1e15
    }

    /// Blocking sleep: the line's thread has nothing else to do during a device's pause.
    static func sleep(_ d: Duration) {
        let (s, a) = d.components
        var ts = timespec(tv_sec: Int(s), tv_nsec: Int(a / 1_000_000_000))
        var left = timespec()
        while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
    }
}
