#if canImport(Glibc)
import Glibc
#endif

/// Line settings of a serial port. M-Bus uses 8 data bits, even parity, one stop bit (8E1).
public struct SerialSettings: Hashable, Sendable, CustomStringConvertible {
    public enum Parity: String, Hashable, Sendable, CaseIterable {
        case even, odd, none
    }

    public var baudRate: Int
    public var parity: Parity
    public var stopBits: Int

    public init(baudRate: Int = 2400, parity: Parity = .even, stopBits: Int = 1) {
        self.baudRate = baudRate
        self.parity = parity
        self.stopBits = stopBits
    }

    /// Rates M-Bus slaves use (EN 13757-2 allows 300 to 38400; faster ones for converters).
    public static let supportedBaudRates = [300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]

    /// Bits on the wire per byte: start + 8 data + parity + stop bits.
    public var bitsPerByte: Int { 1 + 8 + (parity == .none ? 0 : 1) + stopBits }

    /// Time of one bit.
    public var bitTime: Duration { .nanoseconds(1_000_000_000 / Int64(baudRate)) }

    public var description: String {
        "\(baudRate) baud, 8\(parity == .even ? "E" : parity == .odd ? "O" : "N")\(stopBits)"
    }

    func speed() throws(TransportError) -> speed_t {
        switch baudRate {
        case 300: return speed_t(B300)
        case 600: return speed_t(B600)
        case 1200: return speed_t(B1200)
        case 2400: return speed_t(B2400)
        case 4800: return speed_t(B4800)
        case 9600: return speed_t(B9600)
        case 19200: return speed_t(B19200)
        case 38400: return speed_t(B38400)
        case 57600: return speed_t(B57600)
        case 115200: return speed_t(B115200)
        default:
            throw TransportError(.unsupportedSetting,
                                 "\(baudRate) baud is not a serial speed; use one of \(Self.supportedBaudRates.map(String.init).joined(separator: ", "))")
        }
    }
}

/// What a serial port is for, so that an error names the thing a technician has to look at: a missing
/// wM-Bus dongle is not a missing M-Bus level converter, and neither is an RS-485 adapter.
public enum SerialPortRole: String, Hashable, Sendable, CaseIterable {
    /// A wired M-Bus level converter (USB serial bridge or an M-Bus HAT's UART).
    case mbusLevelConverter
    /// A wireless M-Bus receiver stick (iM871A, iM170A, AMB8465, AMB8665).
    case wmbusDongle
    /// An RS-485 adapter for Modbus RTU (USB converter or an RS-485 HAT's UART).
    case rs485Adapter

    /// "the wM-Bus dongle", for messages.
    public var thing: String {
        switch self {
        case .mbusLevelConverter: "the M-Bus level converter"
        case .wmbusDongle: "the wM-Bus dongle"
        case .rs485Adapter: "the RS-485 adapter"
        }
    }

    /// Where to look when the device node is missing: the stable names udev/99-gatewayd.rules gives this
    /// kind of adapter, and the commands that list what is plugged in.
    public var whereToLook: String {
        switch self {
        case .mbusLevelConverter:
            "USB converters get /dev/gatewayd/mbus-<chip>-<serial> (`gatewayd devices` lists them, `ls -l /dev/serial/by-id/` shows every USB serial adapter); an M-Bus HAT is an on-board UART such as /dev/ttyAMA0 or /dev/serial0"
        case .wmbusDongle:
            "dongles get /dev/gatewayd/im871a-<serial>, amb8465-<serial> and the like (`gatewayd devices` lists the dongles present, `ls -l /dev/serial/by-id/` every USB serial adapter)"
        case .rs485Adapter:
            "USB converters appear in `ls -l /dev/serial/by-id/`; an RS-485 HAT is an on-board UART such as /dev/ttyAMA0, /dev/ttyS0 or /dev/ttySC0 (is its overlay enabled in the boot config?)"
        }
    }

    /// The full hint for a device node that does not exist.
    public func missingHint(_ path: String) -> String {
        "\(path) does not exist: is \(thing) plugged in? \(whereToLook)"
    }
}

/// A serial port (termios), raw and non-blocking, read with poll() against deadlines.
public final class SerialPort: ByteTransport {
    public let name: String
    public let settings: SerialSettings
    /// What the port is for: decides the hints in its errors.
    public let role: SerialPortRole
    private var fd: Int32

    /// Opens and configures the port. Errors say what to check: plugged in, in use, dialout group.
    public init(path: String, settings: SerialSettings = SerialSettings(), role: SerialPortRole) throws(TransportError) {
        name = path
        self.settings = settings
        self.role = role
        let speed = try settings.speed()
        guard settings.stopBits == 1 || settings.stopBits == 2 else {
            throw TransportError(.unsupportedSetting, "\(settings.stopBits) stop bits: use 1 or 2")
        }
        do {
            fd = try systemCall("open(\(path))") { open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) }
        } catch {
            throw Self.openError(path, error, role: role)
        }
        do {
            var tio = termios()
            guard tcgetattr(fd, &tio) == 0 else {
                let e = errno
                Glibc.close(fd)
                throw TransportError(.notASerialPort, "\(path) is not a serial port (\(Errno(e)))")
            }
            cfmakeraw(&tio)
            tio.c_cflag &= ~(tcflag_t(CSIZE) | tcflag_t(PARENB) | tcflag_t(PARODD) | tcflag_t(CSTOPB) | tcflag_t(CRTSCTS))
            tio.c_cflag |= tcflag_t(CS8 | CLOCAL | CREAD)
            switch settings.parity {
            case .even: tio.c_cflag |= tcflag_t(PARENB)
            case .odd: tio.c_cflag |= tcflag_t(PARENB | PARODD)
            case .none: break
            }
            if settings.stopBits == 2 { tio.c_cflag |= tcflag_t(CSTOPB) }
            // Non-blocking reads: poll() decides how long to wait, VMIN/VTIME must not.
            withUnsafeMutableBytes(of: &tio.c_cc) { cc in
                cc[Int(VMIN)] = 0
                cc[Int(VTIME)] = 0
            }
            cfsetispeed(&tio, speed)
            cfsetospeed(&tio, speed)
            if tcsetattr(fd, TCSANOW, &tio) != 0 {
                let e = errno
                // A pseudo-terminal (a simulator's line) keeps no parity or stop-bit setting, and glibc
                // reports the difference as EINVAL. Real ports must take the settings as given.
                guard e == EINVAL, Self.isPseudoTerminal(fd) else {
                    throw SystemCallError(call: "tcsetattr(\(path))", errno: Errno(e))
                }
                tio.c_cflag &= ~(tcflag_t(PARENB) | tcflag_t(PARODD) | tcflag_t(CSTOPB))
                _ = try systemCall("tcsetattr(\(path))") { tcsetattr(fd, TCSANOW, &tio) }
            }
            _ = try systemCall("tcflush(\(path))") { tcflush(fd, TCIOFLUSH) }
        } catch let e as SystemCallError {
            Glibc.close(fd)
            throw TransportError(.io, "cannot configure \(path) for \(settings): \(e.errno)", underlying: e)
        } catch let e as TransportError {
            throw e
        } catch {
            Glibc.close(fd)
            throw TransportError(.io, "cannot configure \(path): \(error)")
        }
    }

    /// Unix98 pseudo-terminal slaves have majors 136 to 143.
    static func isPseudoTerminal(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        let major = (st.st_rdev >> 8) & 0xFFF
        return (136...143).contains(major)
    }

    static func openError(_ path: String, _ e: SystemCallError, role: SerialPortRole) -> TransportError {
        switch e.errno.rawValue {
        case ENOENT, ENODEV, ENXIO:
            return TransportError(.deviceMissing, role.missingHint(path), underlying: e)
        case EACCES, EPERM:
            return TransportError(.permissionDenied,
                                  "no permission to open \(path): add the user to the dialout group (`sudo usermod -aG dialout $USER`, then log in again)",
                                  underlying: e)
        case EBUSY:
            return TransportError(.deviceBusy,
                                  "\(path) is in exclusive use by another program: find it with `fuser -v \(path)`",
                                  underlying: e)
        default:
            return TransportError(.io, "cannot open \(path): \(e.errno)", underlying: e)
        }
    }

    deinit { close() }

    public var byteTime: Duration? { settings.bitTime * settings.bitsPerByte }

    public func write(_ bytes: [UInt8]) throws(TransportError) {
        guard fd >= 0 else { throw TransportError(.disconnected, "\(name) is closed") }
        if let e = writeAll(fd, bytes, write: { Glibc.write($0, $1, $2) }) {
            throw Self.ioError(name, SystemCallError(call: "write(\(name))", errno: e.errno), role: role)
        }
        // Wait until the UART has sent it: the response window starts at the end of the request.
        _ = tcdrain(fd)
    }

    public func read(maximum: Int, deadline: Deadline) throws(TransportError) -> [UInt8] {
        try read(maximum: maximum, deadline: deadline, wakingOn: nil)
    }

    /// `read(maximum:deadline:)` that also returns (empty) as soon as `wake` is signalled, so a reader can
    /// wait with a long deadline and still stop at once.
    public func read(maximum: Int, deadline: Deadline, wakingOn wake: WakeSignal?) throws(TransportError) -> [UInt8] {
        guard fd >= 0 else { throw TransportError(.disconnected, "\(name) is closed") }
        let revents: Int16
        do {
            if let wake {
                guard case .ready(let r) = try wake.wait(for: fd, timeoutMilliseconds: deadline.pollTimeoutMilliseconds) else { return [] }
                revents = r
            } else {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if try systemCall("poll(\(name))", { poll(&p, 1, deadline.pollTimeoutMilliseconds) }) == 0 { return [] }
                revents = p.revents
            }
        } catch {
            throw Self.ioError(name, error, role: role)
        }
        if revents & Int16(POLLIN) == 0 && revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
            throw TransportError(.disconnected, "\(name) went away: was \(role.thing) unplugged?")
        }
        var buffer = [UInt8](repeating: 0, count: maximum)
        var n = -1
        while n < 0 {
            n = buffer.withUnsafeMutableBytes { raw in Glibc.read(fd, raw.baseAddress!, raw.count) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN { return [] }
                throw Self.ioError(name, SystemCallError(call: "read(\(name))", errno: Errno(e)), role: role)
            }
        }
        // poll() said readable and read() gave nothing: the other end hung up.
        if n == 0 { throw TransportError(.disconnected, "\(name) went away: was \(role.thing) unplugged?") }
        buffer.removeSubrange(n...)
        return buffer
    }

    public func discardInput() throws(TransportError) {
        guard fd >= 0 else { return }
        _ = tcflush(fd, TCIFLUSH)
    }

    public func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    static func ioError(_ name: String, _ e: SystemCallError, role: SerialPortRole) -> TransportError {
        switch e.errno.rawValue {
        case EIO, ENXIO, ENODEV:
            return TransportError(.disconnected, "\(name) went away (\(e.errno)): was \(role.thing) unplugged?", underlying: e)
        default:
            return TransportError(.io, "\(e)", underlying: e)
        }
    }
}
