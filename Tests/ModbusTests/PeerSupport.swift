import Drivers
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Where the package, its profiles and the peer script are.
enum Paths {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let profiles = packageRoot + "/profiles/modbus"
    static let peerScript = packageRoot + "/Tests/ModbusTests/peer/modbus_peer.py"
    static var fixtures: String { Bundle.module.resourcePath! + "/Fixtures" }

    static func shippedProfiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: profiles)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
            .map { profiles + "/" + $0 }
    }
}

/// The independent peer: python3 with pymodbus (the venv scripts/install-deps.sh makes), and socat.
enum PeerEnvironment {
    static let python: String? = {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["GATEWAYD_PYTHON"] { candidates.append(env) }
        candidates.append(Paths.packageRoot + "/.venv-ci/bin/python")
        candidates.append(NSHomeDirectory() + "/.cache/gatewayd-venv/bin/python")
        candidates.append("/usr/bin/python3")
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) {
            if run(c, ["-c", "import pymodbus.simulator"]) == 0 { return c }
        }
        return nil
    }()

    static let socat: String? = ["/usr/bin/socat", "/bin/socat", "/usr/local/bin/socat"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static var pymodbusAvailable: Bool { python != nil }
    static var socatAvailable: Bool { socat != nil && python != nil }

    static let missingPython = "needs python3 with pymodbus ≥ 3.16: run scripts/install-deps.sh (it makes .venv-ci) or set GATEWAYD_PYTHON"
    static let missingSocat = "needs socat and pymodbus: run scripts/install-deps.sh"

    /// posix_spawn + waitpid: Foundation's waitUntilExit spins a run loop on a cooperative thread and
    /// deadlocks when several suites evaluate their traits at once on a 2-core machine.
    static func run(_ path: String, _ args: [String]) -> Int32 {
        ChildProcess.run(path, args)
    }

    /// Ends a child without waitUntilExit (see `run`): SIGTERM, then SIGKILL after a grace period.
    static func end(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + .seconds(2)
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A TCP port nobody listens on now (bind to port 0, read it back, close).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A running pymodbus peer serving one profile's dump.
final class Peer {
    let process = Process()
    let port: Int?

    /// Over TCP on 127.0.0.1.
    init(profile: String, port: Int = freePort(), extra: [String] = []) throws {
        self.port = port
        try start(["--profile", profile, "--tcp-port", String(port)] + extra)
    }

    /// Over RTU on a serial device (one end of a socat pair).
    init(profile: String, serial: String, extra: [String] = []) throws {
        port = nil
        try start(["--profile", profile, "--serial", serial] + extra)
    }

    private func start(_ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: PeerEnvironment.python!)
        process.arguments = [Paths.peerScript] + args
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // "READY" once it listens. Poll with a deadline: EOF never comes if another child process
        // spawned at the same moment inherited the pipe's write end.
        let fd = out.fileHandleForReading.fileDescriptor
        var text = ""
        let deadline = ContinuousClock.now + .seconds(15)
        while !text.contains("READY") {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 100)
            if ready > 0 {
                var buffer = [UInt8](repeating: 0, count: 256)
                let n = read(fd, &buffer, buffer.count)
                if n > 0 { text += String(decoding: buffer[0..<n], as: UTF8.self) }
            }
            if (ready > 0 && p.revents & Int16(POLLHUP) != 0 && !text.contains("READY")) || !process.isRunning || ContinuousClock.now > deadline {
                stop()
                throw PeerError("the pymodbus peer did not start: run it by hand: \(PeerEnvironment.python!) \(Paths.peerScript) \(args.joined(separator: " "))")
            }
        }
    }

    func stop() { PeerEnvironment.end(process) }

    deinit { stop() }
}

/// A socat pseudo-terminal pair: the client opens `a`, the peer `b`.
final class PtyPair {
    let process = Process()
    let a: String
    let b: String

    init() throws {
        let dir = NSTemporaryDirectory() + "gatewayd-modbus-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        a = dir + "/client"
        b = dir + "/peer"
        process.executableURL = URL(fileURLWithPath: PeerEnvironment.socat!)
        process.arguments = ["-d", "pty,raw,echo=0,link=\(a)", "pty,raw,echo=0,link=\(b)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 where !(FileManager.default.fileExists(atPath: a) && FileManager.default.fileExists(atPath: b)) {
            usleep(10_000)
        }
        guard FileManager.default.fileExists(atPath: a) else { throw PeerError("socat did not create the pty pair") }
    }

    deinit { PeerEnvironment.end(process) }
}

struct PeerError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Waits until something accepts on the port (the peer prints READY slightly before the socket is bound).
func waitForPort(_ port: Int) {
    for _ in 0..<200 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let rc = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        close(fd)
        if rc == 0 { return }
        usleep(20_000)
    }
}

func loadProfile(_ path: String) throws -> ModbusProfile {
    try ModbusProfile.load(path: path)
}

/// Compares a reading with the profile's expectations; returns the differences as sentences.
func differences(_ reading: ModbusReading, _ profile: ModbusProfile) -> [String] {
    guard let test = profile.test else { return ["\(profile.id) has no test section"] }
    var out: [String] = []
    for (name, expected) in test.expected.sorted(by: { $0.key < $1.key }) {
        guard let got = reading.value(name) else {
            out.append("\(name): not read (\(reading.failures[name] ?? "no value"))")
            continue
        }
        if !got.matches(expected) { out.append("\(name): got \(got), expected \(expected)") }
    }
    for v in reading.values where test.expected[v.name] == nil { out.append("\(v.name): no expected value in the profile") }
    let alarms = reading.alarms.map(\.code).sorted()
    if alarms != (test.alarms ?? []).sorted() { out.append("alarms \(alarms), expected \(test.alarms ?? [])") }
    return out
}
