/// Why a simulated bus could not be built or run.
///
/// Codes are static members, so adding one never breaks a caller that switches on the ones it knows.
public struct SimulatorError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// A slave's address, frames or overrides are not usable.
        public static let invalidSlave = Code(name: "invalid_slave")
        /// The JSON file cannot be read or does not have the expected shape.
        public static let invalidConfiguration = Code(name: "invalid_configuration")
        /// A response delay falls outside the EN 13757-2 window for the bus's baud rate.
        public static let responseDelayOutsideWindow = Code(name: "response_delay_outside_window")
        /// Not one of the M-Bus baud rates (300 ... 38400).
        public static let unsupportedBaudRate = Code(name: "unsupported_baud_rate")
        /// A system call (openpty, pipe, pthread_create, ...) failed; `errno` says why.
        public static let systemCall = Code(name: "system_call")
        /// `start()` on a simulator that is running or has been stopped.
        public static let invalidState = Code(name: "invalid_state")
    }

    public let code: Code
    public let message: String
    /// The C `errno` for `.systemCall`.
    public let errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String { "\(message) (\(code))" }
}
