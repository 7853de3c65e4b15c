/// Why a Modbus request failed, in the protocol's own words and with what to check next.
///
/// Exception responses keep their Modbus name (`illegal data address`, `server device busy`, …);
/// link failures say whether the device was silent, the connection dropped or the answer was garbled.
public struct ModbusError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public var description: String { name }

        // Exception codes of the Modbus application protocol (V1.1b3, section 7).
        public static let illegalFunction = Code(name: "illegal_function")
        public static let illegalDataAddress = Code(name: "illegal_data_address")
        public static let illegalDataValue = Code(name: "illegal_data_value")
        public static let serverDeviceFailure = Code(name: "server_device_failure")
        public static let acknowledge = Code(name: "acknowledge")
        public static let serverDeviceBusy = Code(name: "server_device_busy")
        public static let negativeAcknowledge = Code(name: "negative_acknowledge")
        public static let memoryParityError = Code(name: "memory_parity_error")
        public static let gatewayPathUnavailable = Code(name: "gateway_path_unavailable")
        public static let gatewayTargetFailedToRespond = Code(name: "gateway_target_failed_to_respond")
        public static let unknownException = Code(name: "unknown_exception")

        // Link and configuration failures.
        public static let timeout = Code(name: "timeout")
        public static let connection = Code(name: "connection")
        public static let invalidResponse = Code(name: "invalid_response")
        public static let notAllowed = Code(name: "not_allowed")
        public static let configuration = Code(name: "configuration")
    }

    public let code: Code
    public let message: String
    /// The exception code byte for exception responses, else nil.
    public let exceptionCode: UInt8?

    public init(_ code: Code, _ message: String, exceptionCode: UInt8? = nil) {
        self.code = code
        self.message = message
        self.exceptionCode = exceptionCode
    }

    public var description: String { message }

    /// True for answers that came from the device (it is alive; the request was refused).
    public var isException: Bool { exceptionCode != nil }

    /// The typed error for a Modbus exception code, with the device and request in the sentence.
    public static func exception(_ byte: UInt8, request: String) -> ModbusError {
        let (code, name, hint): (Code, String, String)
        switch byte {
        case 1: (code, name, hint) = (.illegalFunction, "illegal function", "the device does not support this function code; check the profile's register kind")
        case 2: (code, name, hint) = (.illegalDataAddress, "illegal data address", "the device has no such register; check the profile's addresses (0-based) and the controller model")
        case 3: (code, name, hint) = (.illegalDataValue, "illegal data value", "the device refused the count or value; lower the profile's block size or check the value")
        case 4: (code, name, hint) = (.serverDeviceFailure, "server device failure", "the controller failed internally; look at its display for a fault")
        case 5: (code, name, hint) = (.acknowledge, "acknowledge", "the device accepted a long-running command; ask again later")
        case 6: (code, name, hint) = (.serverDeviceBusy, "server device busy", "the controller is busy; retry later or add a pause between requests in the profile")
        case 7: (code, name, hint) = (.negativeAcknowledge, "negative acknowledge", "the device cannot perform the program function")
        case 8: (code, name, hint) = (.memoryParityError, "memory parity error", "the controller reports a memory fault; service it")
        case 10: (code, name, hint) = (.gatewayPathUnavailable, "gateway path unavailable", "the Modbus gateway has no route to this unit; check the gateway's configuration")
        case 11: (code, name, hint) = (.gatewayTargetFailedToRespond, "gateway target device failed to respond", "the gateway got no answer from the unit on its RS-485 side; check the unit id, wiring and serial settings of the gateway")
        default: (code, name, hint) = (.unknownException, "exception \(byte)", "the device answered with an exception code Modbus does not define")
        }
        return ModbusError(code, "\(request): \(name) (exception \(byte)): \(hint)", exceptionCode: byte)
    }
}
