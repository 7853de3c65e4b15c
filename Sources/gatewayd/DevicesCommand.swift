import Agent
import CLISupport
import ArgumentParser
import Drivers
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct Devices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the USB adapters gatewayd recognises (wM-Bus dongles, M-Bus level converters) and their stable paths.",
        discussion: """
            Each adapter is shown with its USB port path, serial number, tty and the stable names \
            that point at it: /dev/gatewayd/… (udev/99-gatewayd.rules) and /dev/serial/by-id/…. \
            Configure buses by those names, never by /dev/ttyUSBn, which changes on replug.
            With --watch, arrivals and departures are printed as they happen (libusb hotplug, or a \
            look every 2 s where hotplug is unavailable) until Ctrl-C.
            Without --watch, exit status 0 when every recognised adapter has its tty and its /dev/gatewayd \
            name, 2 when one lacks either (the listing says what to do).
            """)

    @Flag(help: "Keep watching and print adapters as they are plugged in or pulled out.")
    var watch = false

    @Flag(help: "Print one JSON object per line (snake_case keys) instead of a table: the listing, then one per event with --watch.")
    var json = false

    @Option(help: ArgumentHelp("Read sysfs and /dev under this directory instead of /.", visibility: .hidden))
    var root = "/"

    func run() async throws {
        let sysfs = USBSysfs(root: root)
        let source = DeviceSource(sysfs: sysfs)
        let first = source.look()
        if json {
            print(jsonLine(DevicesJSON(first, source: source.description)))
        } else {
            print(DevicesText.listing(first, source: source.description), terminator: "")
        }
        FileHandleOutput.flush()
        guard watch else {
            if DevicesText.needsAttention(first) { throw ExitCode(2) }
            return
        }
        try await watchLoop(source: source, from: first)
    }

    private func watchLoop(source: DeviceSource, from first: DeviceLook) async throws {
        let (changes, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        var watcher: USBHotplugWatcher?
        if let bus = source.bus, bus.hasHotplug {
            do throws(USBError) {
                watcher = try bus.watchHotplug { continuation.yield() }
            } catch {
                FileHandleOutput.standardError("gatewayd: hotplug unavailable (\(error)); looking every 2 s instead\n")
            }
        }
        let mode = watcher == nil ? "looking every 2 s" : "libusb hotplug"
        if !json {
            print("watching for adapters (\(mode)); Ctrl-C to stop")
            FileHandleOutput.flush()
        } else if isatty(2) == 1 {
            // JSON stays machine-readable on stdout; a person at the terminal still learns it is waiting.
            FileHandleOutput.standardError("watching for adapters (\(mode)); Ctrl-C to stop\n")
        }
        let poller: Task<Void, Never>? = watcher == nil ? Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                continuation.yield()
            }
        } : nil
        // Ctrl-C ends the stream, so the loop below ends and the defer cleans up.
        let interrupt = InterruptHandler { continuation.finish() }
        defer {
            interrupt.restore()
            watcher?.stop()
            poller?.cancel()
        }

        var previous = first.adapters
        for await _ in changes {
            // The hotplug event comes before the driver binds the tty and before udev makes the
            // links: let them settle, then look again.
            if watcher != nil { try? await Task.sleep(for: .milliseconds(700)) }
            let look = source.look()
            let delta = USBAdapterChanges(from: previous, to: look.adapters)
            previous = look.adapters
            guard !delta.isEmpty else { continue }
            for a in delta.departed { emit(a, event: "departed") }
            for a in delta.arrived { emit(a, event: "arrived") }
            FileHandleOutput.flush()
        }
    }

    private func emit(_ adapter: USBAdapter, event: String) {
        if json {
            print(jsonLine(DevicesJSON.Event(event: event, adapter: DevicesJSON.Adapter(adapter))))
        } else {
            print(DevicesText.event(adapter, event: event), terminator: "")
        }
    }
}

/// One look at the bus: every device, and the recognised adapters among them.
struct DeviceLook {
    var deviceCount: Int
    var adapters: [USBAdapter]
    var warning: String?
}

/// libusb for the device list, sysfs for names; sysfs alone where libusb cannot start.
struct DeviceSource: CustomStringConvertible {
    let sysfs: USBSysfs
    let bus: USBBus?
    let initError: USBError?

    init(sysfs: USBSysfs) {
        self.sysfs = sysfs
        if sysfs.root != "" && sysfs.root != "/" {
            // A test tree: libusb would describe the real machine, not the tree.
            bus = nil
            initError = nil
            return
        }
        do throws(USBError) {
            bus = try USBBus()
            initError = nil
        } catch {
            bus = nil
            initError = error
        }
    }

    var description: String { bus != nil ? "libusb" : "sysfs" }

    func look() -> DeviceLook {
        var warning: String?
        var devices: [USBDeviceRecord]
        if let bus {
            do throws(USBError) {
                devices = try bus.devices()
            } catch {
                warning = "libusb could not list devices (\(error)); listed from sysfs instead"
                devices = sysfs.enumerate()
            }
        } else {
            devices = sysfs.enumerate()
            if let initError {
                warning = "libusb did not start (\(initError)); listed from sysfs instead"
            }
        }
        let plugged = devices.filter { !$0.isRootHub }
        return DeviceLook(deviceCount: plugged.count, adapters: sysfs.adapters(among: plugged), warning: warning)
    }
}

enum DevicesText {
    static func listing(_ look: DeviceLook, source: String) -> String {
        var out = ""
        if let w = look.warning { out += "note: \(w)\n" }
        guard !look.adapters.isEmpty else {
            out += "no recognised adapters connected; plugged-in USB devices: \(look.deviceCount)\n"
            if look.deviceCount == 0 {
                out += "(plug in a wM-Bus dongle or an M-Bus level converter; in a container or VM, pass the USB device through)\n"
            } else {
                out += "(gatewayd knows: \(knownIDs()); see docs/operations.md)\n"
            }
            return out
        }
        out += "\(look.adapters.count) recognised adapter\(look.adapters.count == 1 ? "" : "s") of \(look.deviceCount) plugged-in USB device\(look.deviceCount == 1 ? "" : "s"):\n"
        var rows: [[String]] = []
        for a in look.adapters {
            rows.append([
                a.device.sysfsName, a.device.id.description, a.kind.rawValue, a.serial ?? "-",
                a.ttys.isEmpty ? (a.kind == .rtlsdr ? a.device.usbfsPath : "-") : a.ttys.map { "/dev/" + $0 }.joined(separator: ","),
                a.preferredPath,
            ])
        }
        out += TextTable.render(header: ["port", "id", "kind", "serial", "tty", "use"], rows: rows, indent: "  ")
        for a in look.adapters {
            out += "  \(a.device.sysfsName): \(a.kind.summary)"
            if let p = a.product { out += ", product \"\(p)\"" }
            out += "\n"
            for link in a.stableLinks { out += "    \(link)\n" }
            if !a.stableLinks.contains(a.expectedLink) {
                out += "    \(a.expectedLink) is missing: install udev/99-gatewayd.rules (scripts/install.sh) and run `udevadm trigger`\n"
            }
            if a.ttys.isEmpty && a.kind != .rtlsdr {
                out += "    no tty bound yet: check `dmesg` for the \(driverName(a.kind)) driver\n"
            }
        }
        // Serial numbers and product strings are whatever the USB device says about itself.
        return TerminalText.lines(out)
    }

    /// An adapter without its tty (driver not bound) or its /dev/gatewayd link (udev rules missing).
    static func needsAttention(_ look: DeviceLook) -> Bool {
        look.adapters.contains { !$0.stableLinks.contains($0.expectedLink) || ($0.ttys.isEmpty && $0.kind != .rtlsdr) }
    }

    static func event(_ a: USBAdapter, event: String) -> String {
        var line = "\(event): \(a.device.sysfsName) \(a.device.id) \(a.kind.rawValue)"
        if let s = a.serial { line += " serial \(s)" }
        if !a.ttys.isEmpty { line += " " + a.ttys.map { "/dev/" + $0 }.joined(separator: ",") }
        if event == "arrived" { line += " -> \(a.preferredPath)" }
        return TerminalText.line(line) + "\n"
    }

    static func knownIDs() -> String {
        var seen: [String] = []
        for e in USBAdapterTable.entries where !seen.contains(e.id.description) { seen.append(e.id.description) }
        return seen.joined(separator: ", ")
    }

    static func driverName(_ kind: USBAdapterKind) -> String {
        switch kind {
        case .im871a, .im170a, .cp210x: return "cp210x"
        case .amb8465, .amb8665, .ftdi: return "ftdi_sio"
        case .pl2303: return "pl2303"
        case .ch340: return "ch341"
        case .iu891a, .cul: return "cdc_acm"
        case .rtlsdr: return "rtl2832/dvb_usb_rtl28xxu"
        }
    }
}

struct DevicesJSON: Encodable {
    struct Adapter: Encodable {
        var kind: String
        var summary: String
        var usbId: String
        var port: String
        var bus: UInt8
        var address: UInt8
        var serial: String?
        var manufacturer: String?
        var product: String?
        var ttys: [String]
        var stableLinks: [String]
        var expectedLink: String
        var path: String

        init(_ a: USBAdapter) {
            kind = a.kind.rawValue
            summary = a.kind.summary
            usbId = a.device.id.description
            port = a.device.sysfsName
            bus = a.device.busNumber
            address = a.device.deviceAddress
            serial = a.serial
            manufacturer = a.manufacturer
            product = a.product
            ttys = a.ttys.map { "/dev/" + $0 }
            stableLinks = a.stableLinks
            expectedLink = a.expectedLink
            path = a.preferredPath
        }
    }

    struct Event: Encodable {
        var event: String
        var adapter: Adapter
    }

    var source: String
    var usbDevices: Int
    var adapters: [Adapter]
    var warning: String?

    init(_ look: DeviceLook, source: String) {
        self.source = source
        usbDevices = look.deviceCount
        adapters = look.adapters.map(Adapter.init)
        warning = look.warning
    }
}
