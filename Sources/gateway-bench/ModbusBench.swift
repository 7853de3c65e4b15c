// gateway-bench modbus: the Modbus read planner and the RTU client against wire time (docs/benchmarks.md).
//
//   gateway-bench modbus [--profiles DIR] [--profile FILE] [--reads N] [--baud N] [--parts plan,rtu]
//
// (a) plan: for each shipped profile and table, the planner's request count against the exhaustive
//           optimum (ReadPlanner.bruteForceMinimum, canonical search, the one the planner tests use).
// (b) rtu:  reading one profile over RTU through a pacing relay. A pty does not enforce the baud rate,
//           so the bench makes two pty pairs (openpty): ModbusLine opens one slave side, the pymodbus peer
//           (Tests/ModbusTests/peer/modbus_peer.py, the tests' script and venv python) the other, and one
//           relay thread per direction copies bytes between the two master sides, releasing byte k at
//               release_k = max(arrival_k, release_(k-1)) + 11 bits / baud
//           on CLOCK_MONOTONIC with absolute deadlines (clock_nanosleep TIMER_ABSTIME), so the line
//           carries at most one 8E1 character per 11 bit times and the error does not accumulate.
//           The peer runs 8N1 on its pty (pyserial cannot set parity on a pty); the pacing counts 11 bits
//           per byte regardless.
//
//           Wire time, per request i (FC 01–04, RTU framing: unit + FC + … + CRC16):
//               request bytes  = 8
//               response bytes = 5 + 2·count (registers) or 5 + ceil(count / 8) (bits)
//               wire = Σ_i (8 + response_i + 2 × 3.5) × 11 / baud
//           i.e. every byte at 11 bit times, plus one 3.5-character silent interval after each frame.
import Agent
import Dispatch
import Drivers
import FoundationEssentials
import Glibc
import Synchronization

struct ModbusBenchOptions {
    var profiles = "profiles/modbus"
    var profile: String? = nil
    var reads = 9
    var baud = 9600
    var parts = ["plan", "rtu"]

    static let usage = """
        usage: gateway-bench modbus [--profiles DIR] [--profile FILE] [--reads N] [--baud N] [--parts plan,rtu]
        """

    static func parse(_ arguments: [String]) throws -> ModbusBenchOptions {
        var o = ModbusBenchOptions()
        var args = arguments[...]
        while let arg = args.popFirst() {
            guard let v = args.popFirst() else { throw BenchError(description: "\(arg) needs a value\n\(usage)") }
            switch arg {
            case "--profiles": o.profiles = v
            case "--profile": o.profile = v
            case "--reads":
                guard let n = Int(v), n >= 1 else { throw BenchError(description: "--reads needs a positive number") }
                o.reads = n
            case "--baud":
                guard let b = Int(v), b > 0 else { throw BenchError(description: "--baud needs a number") }
                o.baud = b
            case "--parts": o.parts = v.split(separator: ",").map(String.init)
            default: throw BenchError(description: "unknown option \(arg)\n\(usage)")
            }
        }
        return o
    }
}

func runModbusBench(_ arguments: [String]) -> Int32 {
    let o: ModbusBenchOptions
    do { o = try ModbusBenchOptions.parse(arguments) } catch {
        printError("\(error)")
        return 64
    }
    do {
        let paths = try listFiles(o.profiles, suffix: ".json").sorted().map { $0.hasPrefix("/") ? $0 : o.profiles + "/" + $0 }
        let profiles = try paths.map { path throws -> (String, ModbusProfile) in (path, try ModbusProfile.load(path: path)) }
        print("gateway-bench modbus")
        if o.parts.contains("plan") { benchPlans(profiles) }
        if o.parts.contains("rtu") {
            let chosen: (String, ModbusProfile)
            if let p = o.profile {
                chosen = (p, try ModbusProfile.load(path: p))
            } else {
                // The profile whose plan reads closest to 60 registers.
                guard let best = profiles.min(by: { abs(wordsRead($0.1) - 60) < abs(wordsRead($1.1) - 60) }) else {
                    throw BenchError(description: "no profiles in \(o.profiles)")
                }
                chosen = best
            }
            try benchRTU(path: chosen.0, profile: chosen.1, options: o)
        }
        return 0
    } catch {
        printError("gateway-bench modbus: \(error)")
        return 1
    }
}

/// Registers (or bits) the profile's plan reads, gap fill included.
func wordsRead(_ p: ModbusProfile) -> Int { p.plan().reduce(0) { $0 + $1.count } }

// MARK: - (a) planner against the exhaustive optimum

func benchPlans(_ profiles: [(String, ModbusProfile)]) {
    print("")
    print("[request count: planner against exhaustive search]")
    print("| profile | table | fields | addresses read | planner | exhaustive optimum | equal |")
    print("|---|---|---|---|---|---|---|")
    var allEqual = true
    for (_, p) in profiles {
        var total = (planner: 0, optimum: 0)
        for kind in RegisterKind.allCases.sorted() {
            let fields = p.registers.filter { $0.kind == kind }.map { PlanField(address: $0.address, count: $0.words, alone: $0.alone ?? false) }
            if fields.isEmpty { continue }
            let c = p.constraints(kind)
            let plan = ReadPlanner.plan(fields, c)
            let optimum = ReadPlanner.bruteForceMinimum(fields, c, canonical: true)
            let equal = optimum == plan.count
            allEqual = allEqual && equal
            total.planner += plan.count
            total.optimum += optimum ?? 0
            print("| \(p.id) | \(kind) (FC 0\(kind.readFunction)) | \(fields.count) | \(plan.reduce(0) { $0 + $1.count }) | \(plan.count) | \(optimum.map(String.init) ?? "budget exceeded") | \(equal ? "yes" : "NO") |")
        }
        print("| \(p.id) | all | \(p.registers.count) | \(wordsRead(p)) | \(total.planner) | \(total.optimum) | \(total.planner == total.optimum ? "yes" : "NO") |")
    }
    line("planner optimal everywhere", allEqual ? "yes" : "NO")
}

// MARK: - (b) RTU read time against wire time

func benchRTU(path: String, profile: ModbusProfile, options o: ModbusBenchOptions) throws {
    let plan = profile.plan()
    let char = 11.0 / Double(o.baud)
    var bytes = 0
    for r in plan { bytes += 8 + 5 + (r.kind.isRegister ? 2 * r.count : (r.count + 7) / 8) }
    let gaps = 2 * plan.count
    let wire = (Double(bytes) + 3.5 * Double(gaps)) * char
    let pause = Double(profile.limits?.pauseMs ?? 0) / 1000 * Double(max(0, plan.count - 1))

    print("")
    print("[RTU read over a paced pty relay]")
    line("profile", "\(profile.id) (\(path)): \(profile.registers.count) values, \(wordsRead(profile)) addresses in \(plan.count) requests")
    for r in plan { line("  request", r.description) }
    line("line", "\(o.baud) baud, 11 bits per byte (8E1 timing) = \(fixed(char * 1000, 3)) ms per byte")
    line("wire time", "(\(bytes) bytes + 3.5 × \(gaps) gaps) × 11 / \(o.baud) = \(fixed(wire * 1000, 1)) ms"
        + (pause > 0 ? " (+ \(fixed(pause * 1000, 0)) ms of profile pauses, added to the bound)" : ""))

    let relay = try PacedRelay(baud: o.baud)
    defer { relay.stop() }
    let peer = try ModbusPeerProcess(profile: path, serial: relay.peerPath)
    defer { peer.stop() }

    // The client asks for 8E1; a pty accepts the setting and the relay keeps its timing.
    let endpoint = ModbusEndpoint.rtu(path: relay.clientPath, serial: SerialSettings(baudRate: o.baud, parity: .even), rs485: false)
    let lineOptions = ModbusLineOptions(responseTimeout: .seconds(2), byteTimeout: .milliseconds(500), lockDirectory: "/tmp")
    let client = try ModbusLine(endpoint: endpoint, options: lineOptions)
    let unit = profile.test?.unit ?? 1

    // One untimed read: opens the port, and checks the values against the profile's expectations.
    let first = try blocking { try await client.read(profile: profile, unit: unit) }
    var wrong = first.failures.map { "\($0.key): \($0.value)" }
    for (name, expected) in profile.test?.expected ?? [:] where !(first.value(name)?.matches(expected) ?? false) {
        wrong.append("\(name): \(first.value(name).map { "\($0)" } ?? "missing"), expected \(expected)")
    }
    line("values", wrong.isEmpty ? "all \(first.values.count) equal the profile's expected values" : "WRONG: " + wrong.sorted().joined(separator: "; "))

    var times: [Double] = []
    for _ in 0..<o.reads {
        let start = ContinuousClock.now
        _ = try blocking { try await client.read(profile: profile, unit: unit) }
        times.append(seconds(ContinuousClock.now - start))
    }
    let stats = try blocking { await client.statistics }
    times.sort()
    let median = times[times.count / 2]
    let bound = wire + pause
    line("reads", "\(o.reads) timed (+1 untimed); \(stats)")
    line("read time min/median/max", "\(fixed(times.first! * 1000, 1)) / \(fixed(median * 1000, 1)) / \(fixed(times.last! * 1000, 1)) ms")
    line("median / wire time", "\(fixed(median / bound, 3))× (target ≤ 1.2×: \(median / bound <= 1.2 ? "met" : "NOT met"))")
    // The peer answers sooner than 3.5 characters after a request, so the gaps in `wire` are partly
    // unused: the ratio against the bytes alone shows the client's own overhead.
    line("median / bytes alone", "\(fixed(median / (Double(bytes) * char + pause), 3))× (\(bytes) × 11 / \(o.baud) = \(fixed(Double(bytes) * char * 1000, 1)) ms, no gaps)")
    line("relay bytes", "client→peer \(relay.forwarded(.toPeer)), peer→client \(relay.forwarded(.toClient))")
}

// MARK: - Pacing relay

/// Two pty pairs joined at their master sides by one pacing thread per direction.
final class PacedRelay: Sendable {
    enum Direction: Int { case toPeer = 0, toClient = 1 }

    let clientPath: String
    let peerPath: String
    private let clientMaster: Int32
    private let peerMaster: Int32
    /// The slave sides stay open here so the masters never read EIO while nobody else holds them.
    private let slaves: [Int32]
    private let byteNanos: UInt64
    private let stopping = Atomic<Bool>(false)
    private let toPeerCount = Atomic<Int>(0)
    private let toClientCount = Atomic<Int>(0)
    private let finished = DispatchGroup()

    init(baud: Int) throws {
        let a = try Self.openPair()
        let b = try Self.openPair()
        clientMaster = a.master
        peerMaster = b.master
        clientPath = a.path
        peerPath = b.path
        slaves = [a.slave, b.slave]
        byteNanos = UInt64((11.0 / Double(baud) * 1e9).rounded())
        start(from: clientMaster, to: peerMaster, .toPeer)
        start(from: peerMaster, to: clientMaster, .toClient)
    }

    func forwarded(_ d: Direction) -> Int {
        d == .toPeer ? toPeerCount.load(ordering: .relaxed) : toClientCount.load(ordering: .relaxed)
    }

    func stop() {
        if stopping.exchange(true, ordering: .relaxed) { return }
        finished.wait()
        for fd in [clientMaster, peerMaster] + slaves { close(fd) }
    }

    deinit { stop() }

    /// openpty(3); the slave side set raw (libmodbus and pyserial set their own termios when they open it).
    private static func openPair() throws -> (master: Int32, slave: Int32, path: String) {
        var master: Int32 = -1
        var slave: Int32 = -1
        guard openpty(&master, &slave, nil, nil, nil) == 0 else {
            throw BenchError(description: "openpty: \(String(cString: strerror(errno)))")
        }
        var name = [CChar](repeating: 0, count: 128)
        guard ttyname_r(slave, &name, name.count) == 0 else { throw BenchError(description: "ttyname_r failed") }
        let path = String(cString: name)
        var t = termios()
        tcgetattr(slave, &t)
        cfmakeraw(&t)
        tcsetattr(slave, TCSANOW, &t)
        return (master, slave, path)
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private static func sleep(until deadline: UInt64) {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }

    private func start(from source: Int32, to sink: Int32, _ direction: Direction) {
        let queue = DispatchQueue(label: "modbus relay \(direction)")
        finished.enter()
        queue.async { [self] in
            defer { finished.leave() }
            var lastRelease: UInt64 = 0
            var buffer = [UInt8](repeating: 0, count: 512)
            while !stopping.load(ordering: .relaxed) {
                var p = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, 50)
                if ready <= 0 { continue }
                if p.revents & Int16(POLLIN) == 0 {
                    usleep(1000)  // POLLHUP without data: the other side is not open (yet)
                    continue
                }
                let n = read(source, &buffer, buffer.count)
                if n <= 0 { continue }
                let arrival = Self.now()
                for k in 0..<n {
                    // The byte's own 11 bit times start when it arrived or when the previous one was out.
                    let release = max(arrival, lastRelease) + byteNanos
                    Self.sleep(until: release)
                    var byte = buffer[k]
                    while write(sink, &byte, 1) < 0 && (errno == EINTR || errno == EAGAIN) {}
                    lastRelease = release
                }
                if direction == .toPeer { toPeerCount.add(n, ordering: .relaxed) } else { toClientCount.add(n, ordering: .relaxed) }
            }
        }
    }
}

// MARK: - The pymodbus peer, started as Tests/ModbusTests/PeerSupport.swift starts it

/// posix_spawn of `python modbus_peer.py --profile P --serial PTY --parity N`, waiting for its "READY".
final class ModbusPeerProcess {
    let pid: pid_t

    static let script = "Tests/ModbusTests/peer/modbus_peer.py"

    /// The same candidates as the tests: $GATEWAYD_PYTHON, .venv-ci, ~/.cache/gatewayd-venv, python3.
    static func python() -> String? {
        var candidates: [String] = []
        if let env = getenv("GATEWAYD_PYTHON") { candidates.append(String(cString: env)) }
        candidates.append(".venv-ci/bin/python")
        if let home = getenv("HOME") { candidates.append(String(cString: home) + "/.cache/gatewayd-venv/bin/python") }
        candidates.append("/usr/bin/python3")
        return candidates.first { access($0, X_OK) == 0 }
    }

    init(profile: String, serial: String) throws {
        guard let python = Self.python() else {
            throw BenchError(description: "needs python3 with pymodbus ≥ 3.16: run scripts/install-deps.sh (it makes .venv-ci) or set GATEWAYD_PYTHON")
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw BenchError(description: "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let args = [python, Self.script, "--profile", profile, "--serial", serial, "--parity", "N"]
        let argv = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, python, &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw BenchError(description: "cannot start \(python): \(String(cString: strerror(rc)))")
        }
        pid = child
        defer { close(fds[0]) }
        var text = ""
        let deadline = ContinuousClock.now + .seconds(15)
        while !text.contains("READY") {
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) > 0 {
                var buffer = [UInt8](repeating: 0, count: 256)
                let n = read(fds[0], &buffer, buffer.count)
                if n > 0 { text += String(decoding: buffer[0..<n], as: UTF8.self) }
                if n == 0 { break }
            }
            if ContinuousClock.now > deadline { break }
        }
        if !text.contains("READY") {
            stop()
            throw BenchError(description: "the pymodbus peer did not start: run it by hand: \(args.joined(separator: " "))")
        }
    }

    /// SIGTERM, then SIGKILL after 2 s; reaped with waitpid.
    func stop() {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) != 0 { return }
        kill(pid, SIGTERM)
        for _ in 0..<200 {
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
    }

    deinit { stop() }
}
