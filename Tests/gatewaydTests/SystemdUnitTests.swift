@testable import Agent
import CLISupport
import Foundation
import Testing

/// The shipped unit file, read as systemd would read its [Service] settings: a hardening line that
/// blocks the hardware the daemon is for only shows on a real board, so it is checked here.
@Suite("systemd unit file")
struct SystemdUnitTests {
    static let unitPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("systemd/gatewayd.service").path

    /// Every `Key=value` line of the file, comments and blank lines skipped, in order.
    static func settings() throws -> [(key: String, value: String)] {
        let text = try String(contentsOfFile: unitPath, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), !trimmed.hasPrefix("["), let eq = trimmed.firstIndex(of: "=") else { return nil }
            return (String(trimmed[..<eq]), String(trimmed[trimmed.index(after: eq)...]))
        }
    }

    @Test("a configuration that does not load (exit 78) is not restarted in a loop; other failures are")
    func configErrorsNotRestarted() throws {
        let settings = try Self.settings()
        #expect(settings.contains { $0.key == "Restart" && $0.value == "on-failure" })
        #expect(settings.contains { $0.key == "RestartPreventExitStatus" && $0.value.split(separator: " ").contains("78") })
    }

    @Test("DevicePolicy=closed lets through USB serial, on-board UARTs of M-Bus and RS-485 HATs, and raw USB, read and write")
    func serialDevicesAllowed() throws {
        let all = try Self.settings()
        #expect(all.filter { $0.key == "DevicePolicy" }.map(\.value) == ["closed"])
        var allowed: [String: String] = [:]
        for (key, value) in all where key == "DeviceAllow" {
            let parts = value.split(separator: " ")
            try #require(parts.count == 2, "DeviceAllow=\(value): expected a device and an access mode")
            allowed[String(parts[0])] = String(parts[1])
        }
        // The /proc/devices names: USB bridges, CDC-ACM, 8250/16550 and the Pi's mini UART, the Pi's PL011,
        // i.MX UARTs, SC16IS7xx SPI UARTs, and libusb's raw USB nodes.
        for group in ["ttyUSB", "ttyACM", "ttyS", "ttyAMA", "ttymxc", "ttySC", "usb_device"] {
            #expect(allowed["char-" + group] == "rw", "DeviceAllow=char-\(group) rw is missing")
        }
        // Nothing broader than serial ports and USB: no pattern that opens every character device.
        for device in allowed.keys {
            #expect(device.hasPrefix("char-tty") || device == "char-usb_device", "unexpected DeviceAllow=\(device)")
            #expect(!device.contains("*"), "DeviceAllow=\(device): a pattern defeats DevicePolicy=closed")
        }
    }

    @Test("the daemon's own shutdown limit (services cancelled after it) ends well before systemd's TimeoutStopSec kills it")
    func shutdownLimitUnderStopTimeout() throws {
        let values = try Self.settings().filter { $0.key == "TimeoutStopSec" }.map(\.value)
        let value = try #require(values.last, "TimeoutStopSec is not set: systemd's default (90 s) would apply")
        let seconds = try #require(Int64(value.hasSuffix("s") ? String(value.dropLast()) : value), "TimeoutStopSec=\(value): expected seconds")
        // Room after the limit for what the daemon writes once its services stopped (evidence, statistics).
        #expect(Daemon.maximumShutdown + .seconds(5) <= .seconds(seconds), "TimeoutStopSec=\(value) leaves no room after the \(Daemon.maximumShutdown) limit")
    }
}
