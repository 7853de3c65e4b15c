import CModbus
import CUSB

/// Versions of the C libraries the drivers are linked against, for `gatewayd version` and bug reports.
public enum DriverLibraries {
    /// libmodbus version, from its compile-time constants (libmodbus exports no run-time query
    /// other than the `libmodbus_version_*` globals, which are the same numbers).
    public static var modbusVersion: String {
        "\(libmodbus_version_major).\(libmodbus_version_minor).\(libmodbus_version_micro)"
    }

    /// libusb version, from `libusb_get_version()` (the library actually loaded).
    public static var usbVersion: String {
        guard let v = libusb_get_version()?.pointee else { return "unknown" }
        return "\(v.major).\(v.minor).\(v.micro)"
    }
}
