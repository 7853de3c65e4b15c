@testable import Agent
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The production binary carries no test double (issue 16 item 3): the simulators and the portal fake are
/// in gatewayd-sim, which `run --demo` starts as a child process and which dies with it.
@Suite("production binary and gatewayd-sim", .serialized)
struct ProductBinaryTests {
    /// Swift symbol names spell their module with its length ("10PortalFake"): a linked module leaves them.
    static let doubles = ["10PortalFake", "13MBusSimulator", "15DongleSimulator", "12gatewayd_sim"]

    static func modules(in path: String) throws -> Set<String> {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        return Set(doubles.filter { bytes.range(of: Data($0.utf8)) != nil })
    }

    @Test("gatewayd links no simulator and no portal fake; gatewayd-sim has them all")
    func noDoublesInProduction() throws {
        let gatewayd = try #require(DecodeCommandTests.executable(named: "gatewayd"))
        let sim = try #require(DecodeCommandTests.executable(named: "gatewayd-sim"))
        #expect(try Self.modules(in: gatewayd.path).isEmpty)
        // The search itself works: the simulator program holds every one of them.
        #expect(try Self.modules(in: sim.path) == Set(Self.doubles))
    }

    @Test("gatewayd does not link libmosquitto (nor, through it, OpenSSL): the MQTT uplink loads it on first use")
    func mosquittoLoadedOnUse() throws {
        let gatewayd = try #require(DecodeCommandTests.executable(named: "gatewayd"))
        let readelf = Process()
        readelf.executableURL = URL(fileURLWithPath: "/usr/bin/readelf")
        readelf.arguments = ["-d", gatewayd.path]
        let pipe = Pipe()
        readelf.standardOutput = pipe
        try readelf.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        readelf.waitUntilExit()
        let needed = output.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        // The search works: the C libraries gatewayd does link are listed.
        #expect(needed.contains { $0.contains("libsqlite3") })
        #expect(!needed.contains { $0.contains("mosquitto") || $0.contains("libssl") || $0.contains("libcrypto") }, "\(needed)")
    }

    /// The PIDs whose parent is `parent` and whose command name starts with `name`.
    static func children(of parent: pid_t, named name: String) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let comm = stat[stat.index(after: open)..<close]
            let rest = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard rest.count > 1, pid_t(rest[1]) == parent, comm.hasPrefix(name) else { return nil }
            return pid
        }
    }

    @Test("run --demo starts gatewayd-sim as its child; SIGKILL of the daemon takes the simulators with it")
    func simulatorsDieWithTheDaemon() async throws {
        let ws = try DaemonTests.workspace()
        let daemon = try DaemonProcess(["run", "--config", ws.config, "--duration", "5m"], log: ws.dir + "/log")
        var sim: pid_t?
        for _ in 0..<300 where daemon.isRunning {
            // The kernel's command name is cut to 15 characters: "gatewayd-sim".
            if let child = Self.children(of: daemon.pid, named: "gatewayd-sim").first { sim = child; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let child = try #require(sim, "no gatewayd-sim child of the daemon; log:\n\(daemon.log())")
        daemon.signal(SIGKILL)
        _ = await daemon.wait(timeoutSeconds: 30)
        // The child is reparented and reaped by init once it exits; its /proc entry goes.
        var gone = false
        for _ in 0..<200 {
            if !FileManager.default.fileExists(atPath: "/proc/\(child)") { gone = true; break }
            if let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8), stat.contains(") Z ") { gone = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        if !gone { kill(child, SIGKILL) }
        #expect(gone, "gatewayd-sim (pid \(child)) outlived the daemon by 20 s")
    }

    @Test("a demo without gatewayd-sim stops at start with a message that says where it was looked for")
    func missingSimulator() throws {
        let ws = try DaemonTests.workspace()
        let p = Process()
        p.executableURL = try #require(DecodeCommandTests.executable(named: "gatewayd"))
        p.arguments = ["run", "--config", ws.config, "--cycles", "1"]
        p.environment = ProcessInfo.processInfo.environment.merging(["GATEWAYD_SIM": "/nonexistent/gatewayd-sim"]) { $1 }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 1, "\(text)")
        #expect(text.contains("/nonexistent/gatewayd-sim") && text.contains("GATEWAYD_SIM"), "\(text)")
    }
}
