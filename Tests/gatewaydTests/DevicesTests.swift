@testable import Agent
import CLISupport
import Foundation
import Testing
@testable import Drivers
@testable import gatewayd

/// A fake sysfs + /dev tree in a temporary directory, laid out the way the kernel and udev do it.
final class FakeDeviceTree {
    let root: String

    init() throws {
        root = FileManager.default.temporaryDirectory
            .appendingPathComponent("usbtree-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: root + "/sys/bus/usb/devices", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/sys/devices/pci0000:00/usb1", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// A USB device directory with its attributes; like the kernel, /sys/bus/usb/devices/<name> is a
    /// symlink into /sys/devices.
    func device(_ name: String, vendor: String, product: String, bus: Int, address: Int,
                attributes: [String: String] = [:]) throws {
        let real = root + "/sys/devices/pci0000:00/usb1/" + name
        try FileManager.default.createDirectory(atPath: real, withIntermediateDirectories: true)
        var all = ["idVendor": vendor, "idProduct": product, "busnum": String(bus), "devnum": String(address)]
        all.merge(attributes) { $1 }
        for (key, value) in all {
            try (value + "\n").write(toFile: real + "/" + key, atomically: false, encoding: .utf8)
        }
        try FileManager.default.createSymbolicLink(
            atPath: root + "/sys/bus/usb/devices/" + name, withDestinationPath: "../../../devices/pci0000:00/usb1/" + name)
    }

    /// usb-serial layout: <dev>/<dev>:1.0/ttyUSBn/tty/ttyUSBn
    func usbSerialTTY(_ device: String, _ tty: String) throws {
        let dir = root + "/sys/devices/pci0000:00/usb1/\(device)/\(device):1.0/\(tty)/tty/\(tty)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    /// cdc_acm layout: <dev>/<dev>:1.0/tty/ttyACMn
    func acmTTY(_ device: String, _ tty: String) throws {
        let dir = root + "/sys/devices/pci0000:00/usb1/\(device)/\(device):1.0/tty/\(tty)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func link(_ path: String, to target: String) throws {
        let full = root + path
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: full, withDestinationPath: target)
    }

    /// A plant-room board: an iM871A, an Amber stick, a CH340 level converter behind a hub (no
    /// serial), a PL2303 converter, an RTL-SDR, a mouse receiver and the root hub.
    static func plantRoom() throws -> FakeDeviceTree {
        let t = try FakeDeviceTree()
        try t.device("usb1", vendor: "1d6b", product: "0002", bus: 1, address: 1)
        try t.device("1-1", vendor: "10c4", product: "87ed", bus: 1, address: 4,
                     attributes: ["serial": "00001234", "product": "iM871A-USB", "manufacturer": "IMST GmbH"])
        try t.usbSerialTTY("1-1", "ttyUSB0")
        try t.device("1-2", vendor: "0403", product: "6001", bus: 1, address: 5,
                     attributes: ["serial": "A9 XK/2", "product": "AMB8465-M", "manufacturer": "AMBER wireless"])
        try t.usbSerialTTY("1-2", "ttyUSB1")
        try t.device("1-3", vendor: "05e3", product: "0608", bus: 1, address: 6, attributes: ["product": "USB2.0 Hub"])
        try t.device("1-3.2", vendor: "1a86", product: "7523", bus: 1, address: 7, attributes: ["product": "USB Serial"])
        try t.usbSerialTTY("1-3.2", "ttyUSB10")
        try t.device("1-3.10", vendor: "067b", product: "2303", bus: 1, address: 8,
                     attributes: ["serial": "PL0001", "product": "USB-Serial Controller"])
        try t.usbSerialTTY("1-3.10", "ttyUSB2")
        try t.device("2-1", vendor: "0bda", product: "2838", bus: 2, address: 3, attributes: ["serial": "00000001"])
        try t.device("1-4", vendor: "046d", product: "c52b", bus: 1, address: 9, attributes: ["product": "USB Receiver"])

        try t.link("/dev/gatewayd/im871a-00001234", to: "../ttyUSB0")
        try t.link("/dev/serial/by-id/usb-IMST_GmbH_iM871A-USB_00001234-if00-port0", to: "../../ttyUSB0")
        try t.link("/dev/gatewayd/mbus-ch340-port-1-3.2", to: "../ttyUSB10")
        try t.link("/dev/gatewayd/rtlsdr-00000001", to: "../bus/usb/002/003")
        try t.link("/dev/serial/by-id/usb-gone-if00-port0", to: "../../ttyUSB9")  // stale: nothing has ttyUSB9
        return t
    }
}

@Suite("USB adapters and `gatewayd devices`")
struct DevicesTests {

    @Test("the id table: IMST, Amber and generic bridges, refined by product string")
    func identify() {
        #expect(USBAdapterTable.identify(USBID(0x10c4, 0x87ed), product: "iM871A-USB") == .im871a)
        #expect(USBAdapterTable.identify(USBID(0x10c4, 0x87ed), product: nil) == .im871a)
        #expect(USBAdapterTable.identify(USBID(0x10c4, 0x87ed), product: "iM170A-USB") == .im170a)
        #expect(USBAdapterTable.identify(USBID(0x10c4, 0xea60), product: "CP2102 USB to UART Bridge Controller") == .cp210x)
        #expect(USBAdapterTable.identify(USBID(0x10c4, 0xea60), product: "iM871A-USB") == .im871a)
        #expect(USBAdapterTable.identify(USBID(0x10c4, 0xea60), product: nil) == .cp210x)
        #expect(USBAdapterTable.identify(USBID(0x0403, 0x6001), product: "AMB8465-M") == .amb8465)
        #expect(USBAdapterTable.identify(USBID(0x0403, 0x6001), product: "AMB8665") == .amb8665)
        #expect(USBAdapterTable.identify(USBID(0x0403, 0x6001), product: "FT232R USB UART") == .ftdi)
        #expect(USBAdapterTable.identify(USBID(0x0403, 0x6015), product: nil) == .ftdi)
        #expect(USBAdapterTable.identify(USBID(0x067b, 0x2303), product: nil) == .pl2303)
        #expect(USBAdapterTable.identify(USBID(0x1a86, 0x7523), product: nil) == .ch340)
        #expect(USBAdapterTable.identify(USBID(0x0bda, 0x2838), product: nil) == .rtlsdr)
        #expect(USBAdapterTable.identify(USBID(0x046d, 0xc52b), product: "USB Receiver") == nil)
        #expect(USBAdapterTable.identify(USBID(0x0403, 0x6010), product: "AMB8465-M") == nil, "FT2232 is not in the table")
        #expect(USBID(0x10c4, 0x87ed).description == "10c4:87ed")
        #expect(USBID(0x0403, 0x6001).description == "0403:6001")
    }

    @Test("every id has a plain entry, so an unexpected product string still gets a kind")
    func tableHasFallbacks() {
        for id in Set(USBAdapterTable.entries.map(\.id)) {
            #expect(USBAdapterTable.entries.contains { $0.id == id && $0.productContains == nil }, "\(id)")
        }
    }

    @Test("serials are sanitised as udev's usb_id does for ID_SERIAL_SHORT", arguments: [
        ("00001234", "00001234"),
        ("  A9 XK/2 ", "A9_XK_2"),
        ("a\t\tb", "a_b"),
        ("x#+-.:=@_y", "x#+-.:=@_y"),
        ("ab$c*", "ab_c_"),
        ("K\u{00FC}hler", "K\u{00FC}hler"),  // valid UTF-8 is kept
        ("a\\x20b", "a\\x20b"),              // \x escapes are kept
        ("a\\b", "a_b"),
    ])
    func sanitize(_ raw: String, _ expected: String) {
        #expect(StableName.sanitizedSerial(raw) == expected)
    }

    @Test("stable names: kind and serial, or kind and USB port when there is no serial")
    func stableNames() {
        #expect(StableName.link(kind: .im871a, serial: "00001234", sysfsName: "1-1") == "/dev/gatewayd/im871a-00001234")
        #expect(StableName.link(kind: .ftdi, serial: "A9 XK/2", sysfsName: "1-2") == "/dev/gatewayd/mbus-ftdi-A9_XK_2")
        #expect(StableName.link(kind: .ch340, serial: nil, sysfsName: "1-3.2") == "/dev/gatewayd/mbus-ch340-port-1-3.2")
        #expect(StableName.link(kind: .cp210x, serial: "   ", sysfsName: "3-1") == "/dev/gatewayd/mbus-cp210x-port-3-1")
    }

    @Test("sysfs enumeration finds every device with its bus, ports and address")
    func enumerate() throws {
        let tree = try FakeDeviceTree.plantRoom()
        let records = USBSysfs(root: tree.root).enumerate()
        #expect(records.map(\.sysfsName) == ["1-1", "1-2", "1-3", "1-3.2", "1-3.10", "1-4", "2-1", "usb1"])
        let ch340 = try #require(records.first { $0.sysfsName == "1-3.2" })
        #expect(ch340 == USBDeviceRecord(busNumber: 1, portNumbers: [3, 2], deviceAddress: 7, id: USBID(0x1a86, 0x7523)))
        #expect(try #require(records.last).isRootHub)
        #expect(USBDeviceRecord(busNumber: 2, portNumbers: [1], deviceAddress: 3, id: USBID(0x0bda, 0x2838)).usbfsPath
                    == "/dev/bus/usb/002/003")
    }

    @Test("adapters are matched to their ttys and to the links that point at them")
    func adapters() throws {
        let tree = try FakeDeviceTree.plantRoom()
        let sysfs = USBSysfs(root: tree.root)
        let adapters = sysfs.adapters(among: sysfs.enumerate())
        #expect(adapters.map(\.kind) == [.im871a, .amb8465, .ch340, .pl2303, .rtlsdr])

        let imst = adapters[0]
        #expect(imst.serial == "00001234")
        #expect(imst.manufacturer == "IMST GmbH")
        #expect(imst.ttys == ["ttyUSB0"])
        #expect(imst.stableLinks == [
            "/dev/gatewayd/im871a-00001234", "/dev/serial/by-id/usb-IMST_GmbH_iM871A-USB_00001234-if00-port0",
        ])
        #expect(imst.preferredPath == "/dev/gatewayd/im871a-00001234")

        let amber = adapters[1]
        #expect(amber.ttys == ["ttyUSB1"])
        #expect(amber.stableLinks.isEmpty, "rules not installed in this tree")
        #expect(amber.expectedLink == "/dev/gatewayd/amb8465-A9_XK_2")
        #expect(amber.preferredPath == amber.expectedLink)

        let ch340 = adapters[2]
        #expect(ch340.serial == nil)
        #expect(ch340.ttys == ["ttyUSB10"])
        #expect(ch340.stableLinks == ["/dev/gatewayd/mbus-ch340-port-1-3.2"])
        #expect(ch340.expectedLink == "/dev/gatewayd/mbus-ch340-port-1-3.2")

        #expect(adapters[3].ttys == ["ttyUSB2"])
        #expect(adapters[3].expectedLink == "/dev/gatewayd/mbus-pl2303-PL0001")

        let sdr = adapters[4]
        #expect(sdr.ttys.isEmpty)
        #expect(sdr.stableLinks == ["/dev/gatewayd/rtlsdr-00000001"], "matched through its usbfs node")
    }

    @Test("cdc_acm ttys (tty/ttyACMn) are found as well as usb-serial ones")
    func acmLayout() throws {
        let tree = try FakeDeviceTree()
        try tree.device("1-1", vendor: "2341", product: "0043", bus: 1, address: 2)
        try tree.acmTTY("1-1", "ttyACM0")
        #expect(USBSysfs(root: tree.root).ttys(of: "1-1") == ["ttyACM0"])
        #expect(USBSysfs(root: tree.root).ttys(of: "9-9").isEmpty)
    }

    @Test("relative link targets resolve against the link's directory")
    func resolve() {
        #expect(USBSysfs.resolve("../../ttyUSB0", relativeTo: "/dev/serial/by-id") == "/dev/ttyUSB0")
        #expect(USBSysfs.resolve("../ttyUSB3", relativeTo: "/dev/gatewayd") == "/dev/ttyUSB3")
        #expect(USBSysfs.resolve("/dev/ttyACM0", relativeTo: "/dev/gatewayd") == "/dev/ttyACM0")
        #expect(USBSysfs.resolve("./../bus/usb/001/004", relativeTo: "/dev/gatewayd") == "/dev/bus/usb/001/004")
    }

    @Test("ports sort naturally: 1-3.2 before 1-3.10, ttyUSB2 before ttyUSB10")
    func natural() {
        #expect(naturalOrder("1-3.2", "1-3.10"))
        #expect(!naturalOrder("1-3.10", "1-3.2"))
        #expect(naturalOrder("ttyUSB2", "ttyUSB10"))
        #expect(naturalOrder("1-3", "1-3.2"))
    }

    @Test("hotplug: arrivals and departures between two looks")
    func changes() throws {
        let tree = try FakeDeviceTree.plantRoom()
        let sysfs = USBSysfs(root: tree.root)
        let before = sysfs.adapters(among: sysfs.enumerate())
        let withoutAmber = before.filter { $0.kind != .amb8465 }
        var replugged = before[0]
        replugged.device.portNumbers = [5]  // the iM871A moved to another port

        let pulled = USBAdapterChanges(from: before, to: withoutAmber)
        #expect(pulled.departed.map(\.kind) == [.amb8465])
        #expect(pulled.arrived.isEmpty)

        let back = USBAdapterChanges(from: withoutAmber, to: before)
        #expect(back.arrived.map(\.kind) == [.amb8465])
        #expect(back.departed.isEmpty)

        let moved = USBAdapterChanges(from: before, to: [replugged] + before.dropFirst())
        #expect(moved.arrived.map(\.device.sysfsName) == ["5"].map { "1-" + $0 })
        #expect(moved.departed.map(\.device.sysfsName) == ["1-1"])

        #expect(USBAdapterChanges(from: before, to: before).isEmpty)
    }

    @Test("with no adapters the listing says so, counts the USB devices, and suggests what to do")
    func emptyListing() {
        let none = DevicesText.listing(DeviceLook(deviceCount: 0, adapters: []), source: "libusb")
        #expect(none.hasPrefix("no recognised adapters connected; plugged-in USB devices: 0\n"))
        let other = DevicesText.listing(DeviceLook(deviceCount: 2, adapters: []), source: "libusb")
        #expect(other.hasPrefix("no recognised adapters connected; plugged-in USB devices: 2\n"))
        #expect(other.contains("10c4:87ed"))
    }

    @Test("the listing shows each adapter's port, tty and the path to configure, and flags missing links")
    func listing() throws {
        let tree = try FakeDeviceTree.plantRoom()
        let look = DeviceSource(sysfs: USBSysfs(root: tree.root)).look()
        #expect(look.deviceCount == 7, "root hub not counted")
        let text = DevicesText.listing(look, source: "sysfs")
        #expect(text.hasPrefix("5 recognised adapters of 7 plugged-in USB devices:\n"))
        #expect(text.contains("1-1     10c4:87ed  im871a       00001234  /dev/ttyUSB0"))
        #expect(text.contains("/dev/gatewayd/amb8465-A9_XK_2 is missing: install udev/99-gatewayd.rules"))
        #expect(!text.contains("im871a-00001234 is missing"))

        let json = try #require(
            JSONSerialization.jsonObject(with: Data(jsonLine(DevicesJSON(look, source: "sysfs")).utf8)) as? [String: Any])
        #expect(json["usb_devices"] as? Int == 7)
        let adapters = try #require(json["adapters"] as? [[String: Any]])
        #expect(adapters.count == 5)
        #expect(adapters[0]["kind"] as? String == "im871a")
        #expect(adapters[0]["usb_id"] as? String == "10c4:87ed")
        #expect(adapters[0]["port"] as? String == "1-1")
        #expect(adapters[0]["ttys"] as? [String] == ["/dev/ttyUSB0"])
        #expect(adapters[0]["path"] as? String == "/dev/gatewayd/im871a-00001234")

        let event = DevicesText.event(look.adapters[2], event: "arrived")
        #expect(event == "arrived: 1-3.2 1a86:7523 mbus-ch340 /dev/ttyUSB10 -> /dev/gatewayd/mbus-ch340-port-1-3.2\n")
    }

    @Test("libusb and sysfs agree on the devices of this machine")
    func libusbMatchesSysfs() throws {
        let bus = try USBBus()
        let fromLibusb = Set(try bus.devices().filter { !$0.isRootHub }.map(\.sysfsName))
        let fromSysfs = Set(USBSysfs().enumerate().filter { !$0.isRootHub }.map(\.sysfsName))
        #expect(fromLibusb == fromSysfs)
    }

    // MARK: udev rules

    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The rules as (line number, [(key, operator, value)]), checked for the syntax udev accepts.
    static func parseRules() throws -> [(line: Int, pairs: [(key: String, op: String, value: String)])] {
        let text = try String(contentsOf: repository.appendingPathComponent("udev/99-gatewayd.rules"), encoding: .utf8)
        var rules: [(Int, [(String, String, String)])] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var pairs: [(String, String, String)] = []
            var rest = Substring(line)
            while !rest.isEmpty {
                guard let opStart = rest.firstIndex(where: { "=!+-:".contains($0) }) else {
                    Issue.record("line \(index + 1): no operator in '\(rest)'")
                    break
                }
                let key = String(rest[..<opStart]).trimmingCharacters(in: .whitespaces)
                var afterOp = opStart
                while afterOp < rest.endIndex, "=!+-:".contains(rest[afterOp]) { afterOp = rest.index(after: afterOp) }
                let op = String(rest[opStart..<afterOp])
                guard afterOp < rest.endIndex, rest[afterOp] == "\"" else {
                    Issue.record("line \(index + 1): value of \(key) is not quoted")
                    break
                }
                let valueStart = rest.index(after: afterOp)
                guard let valueEnd = rest[valueStart...].firstIndex(of: "\"") else {
                    Issue.record("line \(index + 1): unterminated quote after \(key)")
                    break
                }
                pairs.append((key, op, String(rest[valueStart..<valueEnd])))
                rest = rest[rest.index(after: valueEnd)...].drop(while: { $0 == " " })
                if rest.first == "," { rest = rest.dropFirst().drop(while: { $0 == " " }) } else if !rest.isEmpty {
                    Issue.record("line \(index + 1): expected ',' before '\(rest)'")
                    break
                }
            }
            rules.append((index + 1, pairs))
        }
        return rules
    }

    @Test("udev rules: known keys, valid operators, every GOTO has its LABEL")
    func udevSyntax() throws {
        let rules = try Self.parseRules()
        #expect(rules.count > 10)
        let matchKeys: Set<String> = ["ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "DRIVERS"]
        var labels: Set<String> = [], gotos: [(Int, String)] = []
        for (line, pairs) in rules {
            for (key, op, value) in pairs {
                let base = key.split(separator: "{").first.map(String.init) ?? key
                switch base {
                case _ where matchKeys.contains(base), "ATTRS":
                    #expect(op == "==" || op == "!=", "line \(line): \(key) only matches")
                case "ATTR", "ENV":
                    #expect(["==", "!=", "="].contains(op), "line \(line): \(key)\(op)")
                case "SYMLINK", "TAG":
                    #expect(["+=", "=", "-=", "==", "!="].contains(op), "line \(line): \(key)\(op)")
                    if base == "SYMLINK" && op == "+=" { #expect(value.hasPrefix("gatewayd/"), "line \(line): links go under /dev/gatewayd") }
                case "GROUP", "MODE", "IMPORT":
                    #expect(op == "=", "line \(line): \(key)\(op)")
                case "GOTO": gotos.append((line, value))
                case "LABEL": labels.insert(value)
                default: Issue.record("line \(line): unknown key \(key)")
                }
                if key.contains("{") { #expect(key.hasSuffix("}"), "line \(line): \(key)") }
            }
        }
        for (line, target) in gotos { #expect(labels.contains(target), "line \(line): GOTO \(target) has no LABEL") }
        let assignments = rules.flatMap(\.pairs)
        #expect(assignments.contains { $0.key == "GROUP" && $0.value == "dialout" })
        #expect(assignments.contains { $0.key == "MODE" && $0.value == "0660" })
        #expect(assignments.contains { $0.key == "TAG" && $0.op == "+=" && $0.value == "systemd" })
    }

    @Test("udev rules and the id table name the same devices with the same kinds")
    func udevAgreesWithTable() throws {
        let rules = try Self.parseRules()
        var ruleKinds: Set<String> = []
        for (_, pairs) in rules {
            func value(_ key: String) -> String? { pairs.first { $0.key == key && $0.op == "==" }?.value }
            guard let vendor = value("ATTRS{idVendor}") ?? value("ATTR{idVendor}"),
                  let product = value("ATTRS{idProduct}") ?? value("ATTR{idProduct}") else { continue }
            let productString = value("ATTRS{product}").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "*")) }
            let kind = pairs.first { $0.key == "ENV{GATEWAYD_KIND}" && $0.op == "=" }?.value
                ?? (pairs.first { $0.key == "GOTO" }?.value == "gatewayd_rtlsdr" ? "rtlsdr" : nil)
            let id = try #require(UInt16(vendor, radix: 16).flatMap { v in UInt16(product, radix: 16).map { USBID(v, $0) } })
            let tableKind = USBAdapterTable.identify(id, product: productString)
            #expect(tableKind?.rawValue == kind, "rule \(vendor):\(product) \(productString ?? "") is \(kind ?? "-"), table says \(tableKind?.rawValue ?? "-")")
            ruleKinds.insert("\(id) \(productString ?? "")")
        }
        for e in USBAdapterTable.entries {
            #expect(ruleKinds.contains("\(e.id) \(e.productContains ?? "")"), "no udev rule for \(e.id) \(e.productContains ?? "")")
        }
    }

    // MARK: install.sh

    @Test("install.sh stages the FHS layout into DESTDIR and keeps an existing config")
    func installScript() throws {
        let stage = FileManager.default.temporaryDirectory.appendingPathComponent("stage-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: stage) }
        func run() throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = [Self.repository.appendingPathComponent("scripts/install.sh").path, "--destdir", stage]
            var env = ProcessInfo.processInfo.environment
            env["BINARY"] = "/bin/true"
            p.environment = env
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = pipe
            try p.run()
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return (p.terminationStatus, out)
        }
        let (status, output) = try run()
        #expect(status == 0, "\(output)")
        let fm = FileManager.default
        for path in ["/usr/bin/gatewayd", "/lib/systemd/system/gatewayd.service", "/lib/udev/rules.d/99-gatewayd.rules",
                     "/usr/share/gatewayd/profiles/modbus", "/usr/share/gatewayd/profiles/wmbus",
                     "/usr/share/doc/gatewayd/README.md", "/etc/gatewayd"] {
            #expect(fm.fileExists(atPath: stage + path), "\(path)")
        }
        #expect(fm.isExecutableFile(atPath: stage + "/usr/bin/gatewayd"))
        let mode = try #require(try fm.attributesOfItem(atPath: stage + "/etc/gatewayd")[.posixPermissions] as? Int)
        #expect(mode == 0o750)
        #expect(output.contains("not done in a staging tree"))

        try "# mine\n".write(toFile: stage + "/etc/gatewayd/gatewayd.toml", atomically: false, encoding: .utf8)
        let (again, _) = try run()
        #expect(again == 0)
        #expect(try String(contentsOfFile: stage + "/etc/gatewayd/gatewayd.toml", encoding: .utf8) == "# mine\n")
    }
}
