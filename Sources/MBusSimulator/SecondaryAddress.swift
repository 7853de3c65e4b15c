import Drivers

// A slave's secondary address is Drivers' `SecondaryAddress` (the four long-header fields a
// selection compares); the simulator adds reading it from a raw frame and the slave's side of matching.
extension SecondaryAddress {
    /// Reads the header of a long frame with CI 72h (least significant byte first) or 76h (most
    /// significant first). Nil for other CI fields and for user data shorter than the 12-byte header:
    /// such a slave cannot be selected.
    init?(longHeaderOf frame: LongFrame) {
        let d = frame.userData
        guard d.count >= 12 else { return nil }
        let identification: UInt32
        let manufacturer: UInt16
        switch frame.controlInformation {
        case ControlInformation.variableDataLongHeader:
            identification = UInt32(d[3]) << 24 | UInt32(d[2]) << 16 | UInt32(d[1]) << 8 | UInt32(d[0])
            manufacturer = UInt16(d[5]) << 8 | UInt16(d[4])
        case ControlInformation.variableDataMSBFirst:
            identification = UInt32(d[0]) << 24 | UInt32(d[1]) << 16 | UInt32(d[2]) << 8 | UInt32(d[3])
            manufacturer = UInt16(d[4]) << 8 | UInt16(d[5])
        default:
            return nil
        }
        self.init(identification: IdentificationNumber(rawValue: identification), manufacturer: ManufacturerCode(rawValue: manufacturer),
                  version: d[6], deviceType: DeviceType(rawValue: d[7]))
    }

    /// Whether a selection (CI 52h) with this mask selects the meter: nibble Fh matches any
    /// identification digit, FFFFh any manufacturer, FFh any version or device type.
    public func isSelected(by mask: SecondaryAddressMask) -> Bool {
        for shift in stride(from: UInt32(0), to: 32, by: 4) {
            let wanted = (mask.identification >> shift) & 0xF
            if wanted != 0xF && wanted != (identification.rawValue >> shift) & 0xF { return false }
        }
        if mask.manufacturer != 0xFFFF && mask.manufacturer != manufacturer.rawValue { return false }
        if mask.version != 0xFF && mask.version != version { return false }
        if mask.deviceType != 0xFF && mask.deviceType != deviceType.rawValue { return false }
        return true
    }
}
