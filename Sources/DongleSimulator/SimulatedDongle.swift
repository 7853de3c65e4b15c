import Drivers
import Glibc
import MBusSimulator
import Synchronization

/// State shared by the API and the dongle's thread.
struct DongleSimulatorState: Sendable {
    var firmware: any SimulatedFirmware
    var queue: [SimulatedTelegram]
    var counters = DongleSimulatorCounters()
    var noise: [[UInt8]] = []
    /// Monotonic instant the next telegram is due, once the radio listens.
    var nextDue: Int64? = nil
}

/// A dongle behind a pseudo-terminal, with a stable path (a symlink, as udev would make) that survives
/// unplug and replug. Both simulators are this with their own firmware.
final class SimulatedDongle: Sendable {
    let name: String
    let linkPath: String?
    let timing: DongleSimulatorTiming
    let state: Mutex<DongleSimulatorState>
    private let plug = Mutex<Plug>(Plug())

    private struct Plug: @unchecked Sendable {
        var terminal: DongleTerminal?
        var thread: pthread_t?
        var stopFlag: StopFlag?
        var started = false
    }

    final class StopFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    init(name: String, firmware: any SimulatedFirmware, telegrams: [SimulatedTelegram], linkPath: String?, timing: DongleSimulatorTiming) {
        self.name = name
        self.linkPath = linkPath
        self.timing = timing
        state = Mutex(DongleSimulatorState(firmware: firmware, queue: telegrams))
    }

    deinit { stop() }

    var devicePath: String {
        if let linkPath { return linkPath }
        return plug.withLock { $0.terminal?.devicePath ?? "" }
    }

    /// The pty's own node (/dev/pts/N) of the current plug cycle, nil while unplugged.
    var terminalPath: String? { plug.withLock { $0.terminal?.devicePath } }

    func start() throws(SimulatorError) {
        try plug.withLock { (p: inout Plug) throws(SimulatorError) in
            guard !p.started else { throw SimulatorError(.invalidState, "\(name) simulator already started") }
            p.started = true
            try plugIn(&p)
        }
    }

    func stop() {
        plug.withLock { p in
            pullOut(&p)
            p.started = false
        }
    }

    func unplug() {
        plug.withLock { p in
            guard p.terminal != nil else { return }
            pullOut(&p)
            state.withLock { $0.counters.unplugs += 1 }
        }
    }

    func replug() throws(SimulatorError) {
        try plug.withLock { (p: inout Plug) throws(SimulatorError) in
            guard p.terminal == nil else { return }
            state.withLock { s in
                s.firmware.powerOn()
                s.nextDue = nil
                s.counters.replugs += 1
            }
            try plugIn(&p)
        }
    }

    func wake() {
        plug.withLock { $0.terminal?.wake() }
    }

    private func plugIn(_ p: inout Plug) throws(SimulatorError) {
        let terminal = try DongleTerminal()
        if let linkPath {
            unlink(linkPath)
            guard symlink(terminal.devicePath, linkPath) == 0 else {
                let e = DongleTerminal.error("symlink(\(linkPath))")
                terminal.close()
                throw e
            }
        }
        let flag = StopFlag()
        let engine = DongleEngine(dongle: self, terminal: terminal, stop: flag)
        let context = Unmanaged.passRetained(engine).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let engine = Unmanaged<DongleEngine>.fromOpaque(raw!).takeRetainedValue()
            engine.run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<DongleEngine>.fromOpaque(context).release()
            terminal.close()
            if let linkPath { unlink(linkPath) }
            throw SimulatorError(.systemCall, "pthread_create failed: \(String(cString: strerror(rc)))", errno: rc)
        }
        p.terminal = terminal
        p.thread = thread
        p.stopFlag = flag
    }

    private func pullOut(_ p: inout Plug) {
        if let thread = p.thread, let flag = p.stopFlag, let terminal = p.terminal {
            flag.value.store(true, ordering: .releasing)
            terminal.wake()
            pthread_join(thread, nil)
        }
        // The symlink goes first, as udev removes it when the device node disappears.
        if let linkPath, p.terminal != nil { unlink(linkPath) }
        p.terminal?.close()
        p.terminal = nil
        p.thread = nil
        p.stopFlag = nil
    }
}

/// The thread of one plug cycle: answers requests and emits telegrams on schedule.
final class DongleEngine: @unchecked Sendable {
    let dongle: SimulatedDongle
    let terminal: DongleTerminal
    let stop: SimulatedDongle.StopFlag

    init(dongle: SimulatedDongle, terminal: DongleTerminal, stop: SimulatedDongle.StopFlag) {
        self.dongle = dongle
        self.terminal = terminal
        self.stop = stop
    }

    private func stopping() -> Bool { stop.value.load(ordering: .acquiring) }

    func run() {
        var input = [UInt8](repeating: 0, count: 1024)
        while !stop.value.load(ordering: .acquiring) {
            let now = Monotonic.now()
            emitDue(now: now)
            var timeout: Int32 = 200
            if let due = dongle.state.withLock({ $0.nextDue }) {
                timeout = Int32(clamping: max(0, (due - Monotonic.now() + 999_999) / 1_000_000))
                timeout = min(timeout, 200)
            }
            var fds = [pollfd(fd: terminal.controller, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: terminal.wakeRead, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[1].revents != 0 { terminal.drainWakeups() }
            if fds[0].revents & Int16(POLLIN) != 0 {
                while true {
                    let n = input.withUnsafeMutableBytes { read(terminal.controller, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    let answer = dongle.state.withLock { s in s.firmware.receive(Array(input[0..<n]), counters: &s.counters) }
                    if !answer.isEmpty { terminal.writeAll(answer, abandon: stopping) }
                }
            }
            let noise = dongle.state.withLock { s -> [[UInt8]] in
                defer { s.noise.removeAll() }
                return s.noise
            }
            for n in noise { terminal.writeAll(n, abandon: stopping) }
        }
    }

    /// Emits the telegrams whose time has come, while the radio listens.
    private func emitDue(now: Int64) {
        while true {
            let out = dongle.state.withLock { s -> [UInt8]? in
                guard s.firmware.receiveMode != nil, let next = s.queue.first else {
                    if s.firmware.receiveMode == nil { s.nextDue = nil }
                    if s.queue.isEmpty { s.nextDue = nil }
                    return nil
                }
                guard let due = s.nextDue else {
                    s.nextDue = now + dongle.timing.gap(before: next)
                    return nil
                }
                guard due <= now else { return nil }
                s.queue.removeFirst()
                s.nextDue = s.queue.first.map { due + dongle.timing.gap(before: $0) }
                guard let mode = s.firmware.receiveMode, mode.receives(next.linkMode) else {
                    s.counters.notHeard += 1
                    return []
                }
                s.counters.delivered += 1
                return s.firmware.indication(next, at: now)
            }
            guard let out else { return }
            if !out.isEmpty { terminal.writeAll(out, abandon: stopping) }
        }
    }
}
