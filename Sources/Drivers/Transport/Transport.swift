/// Why a transport cannot move bytes, and what the technician should do about it.
public struct TransportError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }
        public static let deviceMissing = Code(name: "device_missing")
        public static let deviceBusy = Code(name: "device_busy")
        public static let permissionDenied = Code(name: "permission_denied")
        public static let notASerialPort = Code(name: "not_a_serial_port")
        public static let unsupportedSetting = Code(name: "unsupported_setting")
        public static let invalidEndpoint = Code(name: "invalid_endpoint")
        public static let hostNotFound = Code(name: "host_not_found")
        public static let connectionFailed = Code(name: "connection_failed")
        public static let disconnected = Code(name: "disconnected")
        public static let io = Code(name: "io_error")
    }

    public let code: Code
    public let message: String
    /// The system call behind it, if any.
    public let underlying: SystemCallError?

    public init(_ code: Code, _ message: String, underlying: SystemCallError? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { message }
}

/// Anything that moves bytes to and from an M-Bus line: a serial port, a TCP converter, a
/// pseudo-terminal driven by a simulator.
///
/// Calls block the calling thread; bus lines run them on their own executor, never on the shared
/// concurrency pool.
public protocol ByteTransport: AnyObject {
    /// A name for messages: "/dev/ttyUSB0", "tcp://10.0.0.5:10001".
    var name: String { get }
    /// Writes all bytes (and waits until the UART has them, where the transport can tell).
    func write(_ bytes: [UInt8]) throws(TransportError)
    /// Returns the bytes available before `deadline`, at most `maximum`; empty when none came in time.
    func read(maximum: Int, deadline: Deadline) throws(TransportError) -> [UInt8]
    /// Drops bytes received but not yet read (stale answers, line noise).
    func discardInput() throws(TransportError)
    /// Time on the wire for one byte, if the transport knows its line speed.
    var byteTime: Duration? { get }
    func close()
}

/// Where a bus is: a serial device path, or `tcp://host:port` for a transparent M-Bus/TCP converter.
public enum BusEndpoint: Hashable, Sendable, CustomStringConvertible {
    case serial(path: String)
    case tcp(host: String, port: UInt16)

    public init(_ text: String) throws(TransportError) {
        if text.hasPrefix("tcp://") {
            let rest = text.dropFirst("tcp://".count)
            // [v6]:port or host:port
            let hostPart: Substring
            let portPart: Substring
            if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
                hostPart = rest[rest.index(after: rest.startIndex)..<close]
                let after = rest[rest.index(after: close)...]
                guard after.hasPrefix(":") else {
                    throw TransportError(.invalidEndpoint, "\(text): expected tcp://[address]:port")
                }
                portPart = after.dropFirst()
            } else {
                guard let colon = rest.lastIndex(of: ":") else {
                    throw TransportError(.invalidEndpoint, "\(text): expected tcp://host:port, e.g. tcp://192.0.2.10:10001")
                }
                hostPart = rest[..<colon]
                portPart = rest[rest.index(after: colon)...]
            }
            guard !hostPart.isEmpty, let port = UInt16(portPart), port > 0 else {
                throw TransportError(.invalidEndpoint, "\(text): expected tcp://host:port with a port from 1 to 65535")
            }
            self = .tcp(host: String(hostPart), port: port)
        } else if text.hasPrefix("/") {
            self = .serial(path: text)
        } else {
            throw TransportError(.invalidEndpoint,
                                 "\(text): give a device path (/dev/serial/by-id/…, /dev/ttyUSB0) or tcp://host:port")
        }
    }

    public var description: String {
        switch self {
        case .serial(let path): return path
        case .tcp(let host, let port): return host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        }
    }
}
