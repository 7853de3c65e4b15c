import CUSB
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// USB adapters gatewayd knows: wireless M-Bus dongles and the USB serial bridges inside wired M-Bus
// level converters. The table and the sysfs matching are pure (a root directory is injected); libusb
// only says which devices are on the bus and when that changes.

/// A USB vendor and product id, printed the way lsusb does ("10c4:87ed").
public struct USBID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var vendor: UInt16
    public var product: UInt16
    public init(_ vendor: UInt16, _ product: UInt16) {
        self.vendor = vendor
        self.product = product
    }
    public var description: String { hex4(vendor) + ":" + hex4(product) }
    public static func < (a: USBID, b: USBID) -> Bool { (a.vendor, a.product) < (b.vendor, b.product) }
}

private func hex4(_ v: UInt16) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 4 - s.count) + s
}

/// What a recognised adapter is. The raw value is the prefix of its udev name under /dev/gatewayd/
/// (udev/99-gatewayd.rules gives the same names).
public enum USBAdapterKind: String, Sendable, CaseIterable, Codable {
    /// IMST iM871A-USB, 868 MHz wireless M-Bus (S, T, C modes).
    case im871a
    /// IMST iM170A-USB, 169 MHz wireless M-Bus (N mode); the same HCI protocol as the iM871A.
    case im170a
    /// Amber / Würth Elektronik AMB8465-M, 868 MHz wireless M-Bus.
    case amb8465
    /// Amber / Würth Elektronik AMB8665 (Metis-II USB), 868 MHz wireless M-Bus.
    case amb8665
    /// IMST iU891A(-XL), the iM871A's successor (SLIP HCI; USB CDC on Cypress's id).
    case iu891a
    /// busware CUL with culfw (USB CDC, Atmel's LUFA id). nanoCULs on CH340/FTDI bridges look like M-Bus
    /// converters here: give `type = "cul"` for them.
    case cul
    /// A Silicon Labs CP210x bridge: an M-Bus level converter, or an IMST stick on the generic id.
    case cp210x = "mbus-cp210x"
    /// An FTDI bridge (FT232R/FT-X): an M-Bus level converter, or an Amber stick.
    case ftdi = "mbus-ftdi"
    /// A Prolific PL2303 bridge in an M-Bus level converter.
    case pl2303 = "mbus-pl2303"
    /// A WCH CH340 bridge in a cheap M-Bus level converter (these carry no serial number).
    case ch340 = "mbus-ch340"
    /// An RTL2832U software radio for rtl_wmbus (a USB device, not a tty).
    case rtlsdr

    /// The prefix of its stable name under /dev/gatewayd/.
    public var linkPrefix: String { rawValue }

    /// For people: what the thing is and what gatewayd uses it for.
    public var summary: String {
        switch self {
        case .im871a: return "IMST iM871A wireless M-Bus dongle (868 MHz)"
        case .im170a: return "IMST iM170A wireless M-Bus dongle (169 MHz)"
        case .amb8465: return "Amber AMB8465-M wireless M-Bus dongle (868 MHz)"
        case .amb8665: return "Amber AMB8665 wireless M-Bus dongle (868 MHz)"
        case .iu891a: return "IMST iU891A wireless M-Bus dongle (868 MHz)"
        case .cul: return "busware CUL with culfw, wireless M-Bus mode (868 MHz)"
        case .cp210x: return "CP210x USB serial bridge (wired M-Bus level converter)"
        case .ftdi: return "FTDI USB serial bridge (wired M-Bus level converter)"
        case .pl2303: return "PL2303 USB serial bridge (wired M-Bus level converter)"
        case .ch340: return "CH340 USB serial bridge (wired M-Bus level converter)"
        case .rtlsdr: return "RTL2832U software radio (rtl_wmbus)"
        }
    }

    public var isWirelessDongle: Bool {
        switch self {
        case .im871a, .im170a, .amb8465, .amb8665, .iu891a, .cul, .rtlsdr: return true
        case .cp210x, .ftdi, .pl2303, .ch340: return false
        }
    }
}

/// The vendor/product ids gatewayd recognises. The generic bridge chips are refined by their USB
/// product string where a dongle maker kept the chip's id.
public enum USBAdapterTable {
    public struct Entry: Sendable, Hashable {
        public var id: USBID
        public var kind: USBAdapterKind
        /// When set, the entry only matches a device whose product string contains this text.
        public var productContains: String?
        public var note: String
    }

    public static let entries: [Entry] = [
        // IMST's own id; the kernel's cp210x driver has it since 6.8 (and stable backports) as
        // "IMST USB-Stick for Smart Meter", a rebranded iM871A-USB.
        Entry(id: USBID(0x10c4, 0x87ed), kind: .im170a, productContains: "iM170A", note: "IMST id, iM170A product string"),
        Entry(id: USBID(0x10c4, 0x87ed), kind: .im871a, productContains: nil, note: "IMST iM871A-USB (cp210x, 10c4:87ed)"),
        // Older IMST sticks enumerate with Silicon Labs' generic CP210x id; only the product string tells.
        Entry(id: USBID(0x10c4, 0xea60), kind: .im871a, productContains: "iM871A", note: "IMST stick on the generic CP210x id"),
        Entry(id: USBID(0x10c4, 0xea60), kind: .im170a, productContains: "iM170A", note: "IMST stick on the generic CP210x id"),
        Entry(id: USBID(0x10c4, 0xea60), kind: .cp210x, productContains: nil, note: "Silicon Labs CP210x"),
        // Amber sticks are FT232R bridges with FTDI's id; the product string names the module.
        Entry(id: USBID(0x0403, 0x6001), kind: .amb8465, productContains: "AMB8465", note: "Amber stick on FTDI's id"),
        Entry(id: USBID(0x0403, 0x6001), kind: .amb8665, productContains: "AMB8665", note: "Amber stick on FTDI's id"),
        Entry(id: USBID(0x0403, 0x6001), kind: .ftdi, productContains: nil, note: "FTDI FT232R"),
        Entry(id: USBID(0x0403, 0x6015), kind: .ftdi, productContains: nil, note: "FTDI FT-X (FT230X/FT231X)"),
        // Cypress's id is shared with other sticks (IMST's LoRa iU880B among them): the session checks the
        // module type in Get Device Info and refuses anything but the iU891A family.
        Entry(id: USBID(0x04b4, 0x0003), kind: .iu891a, productContains: nil, note: "IMST iU891A (Cypress's id, module type checked)"),
        Entry(id: USBID(0x03eb, 0x204b), kind: .cul, productContains: nil, note: "busware CUL (Atmel LUFA CDC id)"),
        Entry(id: USBID(0x067b, 0x2303), kind: .pl2303, productContains: nil, note: "Prolific PL2303"),
        Entry(id: USBID(0x1a86, 0x7523), kind: .ch340, productContains: nil, note: "WCH CH340"),
        Entry(id: USBID(0x0bda, 0x2838), kind: .rtlsdr, productContains: nil, note: "Realtek RTL2838 DVB-T (RTL-SDR)"),
        Entry(id: USBID(0x0bda, 0x2832), kind: .rtlsdr, productContains: nil, note: "Realtek RTL2832U (RTL-SDR)"),
    ]

    /// The kind of a device with this id and product string, or nil when gatewayd does not know it.
    /// Entries with a product-string condition win over the plain entry for the same id.
    public static func identify(_ id: USBID, product: String?) -> USBAdapterKind? {
        let candidates = entries.filter { $0.id == id }
        if let product {
            if let refined = candidates.first(where: { e in e.productContains.map { product.contains($0) } ?? false }) {
                return refined.kind
            }
        }
        return candidates.first(where: { $0.productContains == nil })?.kind
    }
}

/// One device as the USB enumerator (libusb, or sysfs) sees it.
public struct USBDeviceRecord: Hashable, Sendable {
    public var busNumber: UInt8
    /// Port numbers from the root hub down; empty for a root hub.
    public var portNumbers: [UInt8]
    public var deviceAddress: UInt8
    public var id: USBID

    public init(busNumber: UInt8, portNumbers: [UInt8], deviceAddress: UInt8, id: USBID) {
        self.busNumber = busNumber
        self.portNumbers = portNumbers
        self.deviceAddress = deviceAddress
        self.id = id
    }

    /// The kernel's name for it under /sys/bus/usb/devices: "1-1.4" (bus 1, port 1, then port 4).
    public var sysfsName: String {
        if portNumbers.isEmpty { return "usb\(busNumber)" }
        return "\(busNumber)-" + portNumbers.map(String.init).joined(separator: ".")
    }

    public var isRootHub: Bool { portNumbers.isEmpty }

    /// Its usbfs node, /dev/bus/usb/BBB/DDD.
    public var usbfsPath: String {
        func pad3(_ v: UInt8) -> String { let s = String(v); return String(repeating: "0", count: 3 - s.count) + s }
        return "/dev/bus/usb/\(pad3(busNumber))/\(pad3(deviceAddress))"
    }
}

/// A recognised adapter with everything a technician needs to configure it.
public struct USBAdapter: Hashable, Sendable {
    public var kind: USBAdapterKind
    public var device: USBDeviceRecord
    public var serial: String?
    public var manufacturer: String?
    public var product: String?
    /// Kernel tty names bound to it ("ttyUSB0"); empty for the SDR or while the driver binds.
    public var ttys: [String]
    /// /dev/gatewayd/… and /dev/serial/by-id/… links that point at its tty or usbfs node.
    public var stableLinks: [String]
    /// The /dev/gatewayd/ name the udev rules give it (whether or not the link exists here).
    public var expectedLink: String

    /// What the configuration should name: the /dev/gatewayd link if present, else by-id, else the
    /// expected name.
    public var preferredPath: String {
        stableLinks.first(where: { $0.hasPrefix("/dev/gatewayd/") })
            ?? stableLinks.first(where: { $0.hasPrefix("/dev/serial/by-id/") })
            ?? expectedLink
    }
}

/// The /dev/gatewayd/ name udev/99-gatewayd.rules gives an adapter: kind, then the serial number as
/// udev's usb_id sanitises it (ID_SERIAL_SHORT), or the USB port path when the chip has no serial.
public enum StableName {
    public static func link(kind: USBAdapterKind, serial: String?, sysfsName: String) -> String {
        if let serial, case let s = sanitizedSerial(serial), !s.isEmpty {
            return "/dev/gatewayd/\(kind.linkPrefix)-\(s)"
        }
        // udev's %b: the kernel name of the USB device the rule's ATTRS matched ("1-1.4").
        return "/dev/gatewayd/\(kind.linkPrefix)-port-\(sysfsName)"
    }

    /// udev's usb_id (udev_replace_whitespace, then udev_replace_chars): surrounding whitespace
    /// dropped, inner runs of whitespace become one '_'; ASCII letters, digits, `#+-.:=@_`, `\x`
    /// escapes and non-ASCII characters stay; any other ASCII character becomes '_'.
    public static func sanitizedSerial(_ raw: String) -> String {
        let scalars = Array(raw.split(whereSeparator: { $0.isWhitespace }).joined(separator: "_").unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            if !c.isASCII || c.properties.isASCIIHexDigit || (c.value >= 0x41 && c.value <= 0x5A)
                || (c.value >= 0x61 && c.value <= 0x7A) || "#+-.:=@_".unicodeScalars.contains(c) {
                out.append(c)
            } else if c == "\\" && i + 1 < scalars.count && scalars[i + 1] == "x" {
                out.append(c)
                out.append(scalars[i + 1])
                i += 1
            } else {
                out.append("_")
            }
            i += 1
        }
        return String(out)
    }
}

// MARK: - sysfs and /dev, under an injectable root

/// Reads what the kernel knows about USB devices from sysfs, and the stable links from /dev.
/// `root` is "/" on a real system and a temporary directory in tests.
public struct USBSysfs: Sendable {
    public var root: String
    public init(root: String = "/") {
        self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    var devicesDirectory: String { root + "/sys/bus/usb/devices" }

    /// A sysfs attribute of a USB device ("serial", "product", "idVendor"), trimmed; nil if absent.
    public func attribute(_ name: String, of sysfsName: String) -> String? {
        guard let text = FileSystem.readSmallFile(devicesDirectory + "/" + sysfsName + "/" + name) else { return nil }
        let trimmed = text.trimmingTrailingNewlines()
        return trimmed.isEmpty ? nil : trimmed
    }

    /// Every USB device sysfs lists (root hubs included), for when libusb is unavailable and for tests.
    public func enumerate() -> [USBDeviceRecord] {
        var records: [USBDeviceRecord] = []
        for name in FileSystem.directoryEntries(devicesDirectory) where !name.contains(":") {
            guard let vendor = attribute("idVendor", of: name).flatMap({ UInt16($0, radix: 16) }),
                  let product = attribute("idProduct", of: name).flatMap({ UInt16($0, radix: 16) }),
                  let bus = attribute("busnum", of: name).flatMap({ UInt8($0) }),
                  let address = attribute("devnum", of: name).flatMap({ UInt8($0) })
            else { continue }
            var ports: [UInt8] = []
            if !name.hasPrefix("usb"), let dash = name.firstIndex(of: "-") {
                ports = name[name.index(after: dash)...].split(separator: ".").compactMap { UInt8($0) }
            }
            records.append(USBDeviceRecord(busNumber: bus, portNumbers: ports, deviceAddress: address,
                                           id: USBID(vendor, product)))
        }
        return records.sorted { naturalOrder($0.sysfsName, $1.sysfsName) }
    }

    /// The tty names bound to a USB device's interfaces. usb-serial drivers (cp210x, ftdi_sio,
    /// pl2303, ch341) put `ttyUSBn/` in the interface directory; cdc_acm puts `tty/ttyACMn/`.
    public func ttys(of sysfsName: String) -> [String] {
        var names: Set<String> = []
        let base = devicesDirectory + "/" + sysfsName
        for entry in FileSystem.directoryEntries(base) where entry.hasPrefix(sysfsName + ":") {
            let interface = base + "/" + entry
            for child in FileSystem.directoryEntries(interface) {
                if child.hasPrefix("ttyUSB") || child.hasPrefix("ttyACM") { names.insert(child) }
                if child == "tty" {
                    for t in FileSystem.directoryEntries(interface + "/tty") where t.hasPrefix("tty") { names.insert(t) }
                }
            }
        }
        return names.sorted(by: naturalOrder)
    }

    /// Symlinks in /dev/gatewayd and /dev/serial/by-id, each with the absolute path it points at.
    public func stableLinks() -> [(link: String, target: String)] {
        var out: [(String, String)] = []
        for dir in ["/dev/gatewayd", "/dev/serial/by-id"] {
            let full = root + dir
            for name in FileSystem.directoryEntries(full).sorted() {
                guard let target = FileSystem.readLink(full + "/" + name) else { continue }
                out.append((dir + "/" + name, Self.resolve(target, relativeTo: dir)))
            }
        }
        return out
    }

    /// "../../ttyUSB0" seen from /dev/serial/by-id → "/dev/ttyUSB0".
    static func resolve(_ target: String, relativeTo directory: String) -> String {
        var parts: [Substring] = target.hasPrefix("/") ? [] : directory.split(separator: "/")
        for component in target.split(separator: "/") {
            switch component {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(component)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Identifies the recognised adapters among `devices` and finds their ttys and links.
    public func adapters(among devices: [USBDeviceRecord]) -> [USBAdapter] {
        let links = stableLinks()
        var adapters: [USBAdapter] = []
        for device in devices where !device.isRootHub {
            let name = device.sysfsName
            let product = attribute("product", of: name)
            guard let kind = USBAdapterTable.identify(device.id, product: product) else { continue }
            let serial = attribute("serial", of: name)
            let ttys = ttys(of: name)
            let nodes = Set(ttys.map { "/dev/" + $0 } + [device.usbfsPath])
            let matched = links.filter { nodes.contains($0.target) }.map(\.link)
            adapters.append(USBAdapter(
                kind: kind, device: device, serial: serial,
                manufacturer: attribute("manufacturer", of: name), product: product,
                ttys: ttys, stableLinks: matched,
                expectedLink: StableName.link(kind: kind, serial: serial, sysfsName: name)))
        }
        return adapters.sorted { naturalOrder($0.device.sysfsName, $1.device.sysfsName) }
    }
}

/// "ttyUSB2" before "ttyUSB10", "1-1.2" before "1-1.10".
func naturalOrder(_ a: String, _ b: String) -> Bool {
    func chunks(_ s: String) -> [(String, Int?)] {
        var out: [(String, Int?)] = []
        var current = ""
        var digits = false
        for ch in s {
            let isDigit = ch.isASCII && ch.isNumber
            if !current.isEmpty && isDigit != digits {
                out.append((current, digits ? Int(current) : nil))
                current = ""
            }
            digits = isDigit
            current.append(ch)
        }
        if !current.isEmpty { out.append((current, digits ? Int(current) : nil)) }
        return out
    }
    let ca = chunks(a), cb = chunks(b)
    for (x, y) in zip(ca, cb) {
        if let nx = x.1, let ny = y.1 {
            if nx != ny { return nx < ny }
        } else if x.0 != y.0 {
            return x.0 < y.0
        }
    }
    return ca.count < cb.count
}

/// What changed between two looks at the bus, keyed by port path and id (a device re-plugged into
/// the same port with the same id and serial is the same adapter).
public struct USBAdapterChanges: Hashable, Sendable {
    public var arrived: [USBAdapter]
    public var departed: [USBAdapter]
    public var isEmpty: Bool { arrived.isEmpty && departed.isEmpty }

    public init(from old: [USBAdapter], to new: [USBAdapter]) {
        func key(_ a: USBAdapter) -> String { "\(a.device.sysfsName) \(a.device.id) \(a.serial ?? "")" }
        let oldKeys = Set(old.map(key)), newKeys = Set(new.map(key))
        arrived = new.filter { !oldKeys.contains(key($0)) }
        departed = old.filter { !newKeys.contains(key($0)) }
    }
}

// MARK: - libusb

/// A failed libusb call, with libusb's own name for the error.
public struct USBError: Error, Hashable, Sendable, CustomStringConvertible {
    public let call: String
    public let code: Int32
    public var description: String {
        let name = libusb_error_name(code).map { String(cString: $0) } ?? "error \(code)"
        return "\(call): \(name)"
    }
}

/// One libusb context: lists the devices on the bus and reports hotplug.
public final class USBBus: @unchecked Sendable {
    // libusb contexts are thread-safe; the pointer itself never changes after init.
    let context: OpaquePointer

    /// libusb_init. Fails where there is no usbfs (some containers); say so and fall back to sysfs.
    public init() throws(USBError) {
        var ctx: OpaquePointer?
        let rc = libusb_init(&ctx)
        guard rc == 0, let ctx else { throw USBError(call: "libusb_init", code: rc) }
        context = ctx
    }

    deinit { libusb_exit(context) }

    /// libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG): whether arrivals and departures are reported
    /// (through netlink/udev on Linux) or must be polled for.
    public var hasHotplug: Bool {
        libusb_has_capability(UInt32(LIBUSB_CAP_HAS_HOTPLUG.rawValue)) != 0
    }

    /// libusb_get_device_list: every device on every bus, root hubs included.
    public func devices() throws(USBError) -> [USBDeviceRecord] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = libusb_get_device_list(context, &list)
        guard count >= 0, let list else { throw USBError(call: "libusb_get_device_list", code: Int32(count)) }
        defer { libusb_free_device_list(list, 1) }
        var records: [USBDeviceRecord] = []
        for i in 0..<count {
            guard let device = list[i] else { continue }
            var descriptor = libusb_device_descriptor()
            guard libusb_get_device_descriptor(device, &descriptor) == 0 else { continue }
            var ports = [UInt8](repeating: 0, count: 8)  // USB 3 allows at most 7 tiers
            let depth = libusb_get_port_numbers(device, &ports, Int32(ports.count))
            records.append(USBDeviceRecord(
                busNumber: libusb_get_bus_number(device),
                portNumbers: depth > 0 ? Array(ports[0..<Int(depth)]) : [],
                deviceAddress: libusb_get_device_address(device),
                id: USBID(descriptor.idVendor, descriptor.idProduct)))
        }
        return records
    }

    /// Calls `onChange` (on a libusb event thread) whenever a device arrives or leaves, until the
    /// returned watcher is stopped. Needs `hasHotplug`.
    public func watchHotplug(_ onChange: @escaping @Sendable () -> Void) throws(USBError) -> USBHotplugWatcher {
        try USBHotplugWatcher(bus: self, onChange: onChange)
    }
}

/// A registered libusb hotplug callback and the thread that runs libusb's event loop for it.
public final class USBHotplugWatcher: Sendable {
    final class Box: Sendable {
        let onChange: @Sendable () -> Void
        init(_ onChange: @escaping @Sendable () -> Void) { self.onChange = onChange }
    }

    let bus: USBBus
    let handle: Int32
    let box: Unmanaged<Box>
    let stopping = Atomic<Bool>(false)
    let finished = Atomic<Bool>(false)

    init(bus: USBBus, onChange: @escaping @Sendable () -> Void) throws(USBError) {
        self.bus = bus
        let box = Unmanaged.passRetained(Box(onChange))
        var handle: libusb_hotplug_callback_handle = 0
        let events = Int32(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED.rawValue | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT.rawValue)
        let rc = libusb_hotplug_register_callback(
            bus.context, events, 0, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
            { _, _, _, userData in
                // Runs inside libusb_handle_events on the watcher's thread; returning 0 keeps it armed.
                Unmanaged<Box>.fromOpaque(userData!).takeUnretainedValue().onChange()
                return 0
            },
            box.toOpaque(), &handle)
        guard rc == 0 else {
            box.release()
            throw USBError(call: "libusb_hotplug_register_callback", code: rc)
        }
        self.handle = handle
        self.box = box

        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { raw in
            let watcher = Unmanaged<USBHotplugWatcher>.fromOpaque(raw!).takeRetainedValue()
            watcher.eventLoop()
            return nil
        }, context)
        precondition(created == 0, "pthread_create failed for the USB hotplug thread: \(created)")
        pthread_detach(thread)
    }

    private func eventLoop() {
        while !stopping.load(ordering: .acquiring) {
            var timeout = timeval(tv_sec: 0, tv_usec: 250_000)
            _ = libusb_handle_events_timeout_completed(bus.context, &timeout, nil)
        }
        libusb_hotplug_deregister_callback(bus.context, handle)
        box.release()
        finished.store(true, ordering: .releasing)
    }

    /// Deregisters the callback; the event thread ends within a quarter of a second.
    public func stop() {
        stopping.store(true, ordering: .releasing)
    }
}

// MARK: - small file-system helpers (Glibc, no Foundation)

enum FileSystem {
    static func directoryEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func readSmallFile(_ path: String, limit: Int = 4096) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: limit)
        var total = 0
        while total < limit {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, limit - total) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            total += n
        }
        return String(decoding: buffer[0..<total], as: UTF8.self)
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

private extension String {
    func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" || last == " " { s.removeLast() }
        return String(s)
    }
}
