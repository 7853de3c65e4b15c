import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a demo configuration's simulated buses answer: what `gatewayd-sim demo --handshake` prints as
/// its first line once every simulator listens.
package struct DemoEndpoints: Codable, Sendable, Hashable {
    /// Bus name → pty path of its simulated M-Bus line.
    package var mbusLines: [String: String] = [:]
    /// Bus name → simulated dongle's device path.
    package var dongles: [String: String] = [:]
    /// Bus name → port of its simulated Modbus TCP heat pump on 127.0.0.1.
    package var modbusLines: [String: Int] = [:]
    /// The portal sink's base URL, when the demo runs one (it replaces the configured loopback endpoint:
    /// an ephemeral port never clashes with another program).
    package var portalURL: String?
    /// The bearer token file the demo's uplink presents to the sink (the sink checks it, as a portal would).
    package var tokenFile: String?

    package init(mbusLines: [String: String] = [:], dongles: [String: String] = [:], modbusLines: [String: Int] = [:],
                 portalURL: String? = nil, tokenFile: String? = nil) {
        self.mbusLines = mbusLines
        self.dongles = dongles
        self.modbusLines = modbusLines
        self.portalURL = portalURL
        self.tokenFile = tokenFile
    }

    package var isEmpty: Bool { mbusLines.isEmpty && dongles.isEmpty && modbusLines.isEmpty && portalURL == nil }

    /// Does this configuration ask for simulators at all?
    package static func wanted(by config: GatewayConfig) -> Bool {
        if config.demo { return true }
        if config.buses.mbus.contains(where: { if case .simulator = $0.source { true } else { false } }) { return true }
        if config.buses.wmbus.contains(where: { if case .simulator = $0.source { true } else { false } }) { return true }
        return config.buses.modbus.contains(where: { if case .simulator = $0.source { true } else { false } })
    }
}

/// The demo building's simulators, seen from the daemon and from commissioning. They are test doubles,
/// so they live in a program of their own, `gatewayd-sim`: the production binary links none of them.
/// A demo configuration starts `gatewayd-sim demo --handshake` as a child process and reads where each
/// simulator listens from its first line of output. The child watches its standard input: when this
/// process goes away, even by SIGKILL, the pipe closes and the simulators stop with it.
package final class DemoBuilding: Sendable {
    package let endpoints: DemoEndpoints
    private let child: Mutex<Process?>
    private let stdinPipe: Pipe?

    package var mbusLines: [String: String] { endpoints.mbusLines }
    package var dongles: [String: String] { endpoints.dongles }
    package var modbusLines: [String: Int] { endpoints.modbusLines }
    package var portalURL: String? { endpoints.portalURL }
    package var tokenFile: String? { endpoints.tokenFile }

    package init(endpoints: DemoEndpoints = DemoEndpoints()) {
        self.endpoints = endpoints
        child = Mutex(nil)
        stdinPipe = nil
    }

    private init(endpoints: DemoEndpoints, child: Process, stdinPipe: Pipe) {
        self.endpoints = endpoints
        self.child = Mutex(child)
        self.stdinPipe = stdinPipe
    }

    /// The simulator program: $GATEWAYD_SIM, or `gatewayd-sim` beside this executable, or on PATH.
    package static func simulatorExecutable(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let explicit = environment["GATEWAYD_SIM"], !explicit.isEmpty { return explicit }
        let own = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        var candidates = [own.appendingPathComponent("gatewayd-sim").path]
        if let exe = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent() {
            candidates.append(exe.appendingPathComponent("gatewayd-sim").path)
        }
        for dir in (environment["PATH"] ?? "").split(separator: ":") { candidates.append("\(dir)/gatewayd-sim") }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts the simulators `config` (loaded from `configPath`) asks for; with none, starts nothing.
    package static func start(config: GatewayConfig, configPath: String, logger: Logger,
                              timeout: Duration = .seconds(60)) async throws -> DemoBuilding {
        guard DemoEndpoints.wanted(by: config) else { return DemoBuilding() }
        if let explicit = ProcessInfo.processInfo.environment["GATEWAYD_SIM"], !explicit.isEmpty,
           !FileManager.default.isExecutableFile(atPath: explicit) {
            throw DaemonStartError("GATEWAYD_SIM names \(explicit), which is not an executable file; point it at gatewayd-sim, or unset it")
        }
        guard let program = simulatorExecutable() else {
            throw DaemonStartError(
                "this configuration uses simulated buses (a demo), and their simulators are in gatewayd-sim, which was not "
                    + "found beside gatewayd or on PATH; build it (swift build --product gatewayd-sim) or set GATEWAYD_SIM to its path")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = ["demo", "--config", configPath, "--buffer", config.buffer.path, "--handshake"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        // The simulators' own warnings go where the daemon's go.
        process.standardError = FileHandle.standardError
        do { try process.run() } catch {
            throw DaemonStartError("cannot start the demo's simulators (\(program)): \(error)")
        }
        let line: String?
        do {
            line = try await readFirstLine(output.fileHandleForReading.fileDescriptor, timeout: timeout)
        } catch {
            process.terminate()
            throw error
        }
        guard let line, let endpoints = try? JSONDecoder().decode(DemoEndpoints.self, from: Data(line.utf8)) else {
            process.terminate()
            process.waitUntilExit()
            throw DaemonStartError(
                "the demo's simulators (\(program)) did not start"
                    + (process.isRunning ? "" : " (exit status \(process.terminationStatus))") + "; their messages are above")
        }
        for (bus, path) in endpoints.mbusLines.sorted(by: { $0.key < $1.key }) {
            logger.info("demo: simulated M-Bus line", metadata: ["bus": "\(bus)", "pty": "\(path)"])
        }
        for (bus, path) in endpoints.dongles.sorted(by: { $0.key < $1.key }) {
            logger.info("demo: simulated iM871A", metadata: ["bus": "\(bus)", "pty": "\(path)"])
        }
        for (bus, port) in endpoints.modbusLines.sorted(by: { $0.key < $1.key }) {
            logger.info("demo: simulated heat pump", metadata: ["bus": "\(bus)", "endpoint": "127.0.0.1:\(port)"])
        }
        if let url = endpoints.portalURL { logger.info("demo: portal sink", metadata: ["url": "\(url)"]) }
        return DemoBuilding(endpoints: endpoints, child: process, stdinPipe: input)
    }

    /// What the demo's portal sink stored (nil without a sink, or when it does not answer).
    package func portalSummary() async -> PortalSinkSummary? {
        guard let url = portalURL, let origin = url.range(of: "/api/v1").map({ String(url[..<$0.lowerBound]) }) else { return nil }
        do {
            var request = HTTPClientRequest(url: origin + "/_fake/summary")
            request.method = .GET
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            guard response.status == .ok else { return nil }
            let body = try await response.body.collect(upTo: 64 << 20)
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(PortalSinkSummary.self, from: Data(body.readableBytesView))
        } catch {
            return nil
        }
    }

    /// Stops the simulators: closes their input (they stop on end of file), then SIGTERM, then SIGKILL.
    package func stop() {
        guard let process = child.withLock({ p -> Process? in
            let taken = p
            p = nil
            return taken
        }) else { return }
        try? stdinPipe?.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Reads up to the first newline from `fd`, giving up after `timeout`; nil at end of file.
    private static func readFirstLine(_ fd: Int32, timeout: Duration) async throws -> String? {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<String?, any Error>) in
            DispatchQueue.global().async {
                var bytes: [UInt8] = []
                let deadline = ContinuousClock.now + timeout
                var chunk = [UInt8](repeating: 0, count: 4096)
                while true {
                    let left = deadline - ContinuousClock.now
                    guard left > .zero else {
                        c.resume(throwing: DaemonStartError("the demo's simulators did not report ready within \(timeout)"))
                        return
                    }
                    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
                    let ready = poll(&pfd, 1, max(1, ms))
                    if ready < 0 && errno == EINTR { continue }
                    if ready <= 0 { continue }
                    let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 {
                        c.resume(returning: nil)
                        return
                    }
                    bytes += chunk[0..<n]
                    if let nl = bytes.firstIndex(of: 0x0A) {
                        c.resume(returning: String(decoding: bytes[..<nl], as: UTF8.self))
                        return
                    }
                    if bytes.count > 1 << 20 {
                        c.resume(returning: nil)
                        return
                    }
                }
            }
        }
    }
}

/// The demo portal sink's store in numbers (`GET /_fake/summary` of gatewayd-sim's sink).
package struct PortalSinkSummary: Codable, Sendable, Hashable {
    package var readings: Int
    package var resentDuplicates: Int
    package var readingIDs: [Int64]
    package var devices: [String: Int]
    package var alarms: Int
    package var alarmIDs: [String]
    package var healthReports: Int
    package var commissioningReports: Int
}
