import Drivers
import Foundation
import Gateway
import Logging
import Synchronization

/// One wireless M-Bus receiver: a USB dongle session (which survives unplug and replug) or an rtl_wmbus
/// pipeline, feeding every telegram heard to the pipeline with its RSSI. The pipeline decides what is
/// a registered meter, a duplicate or a stranger.
package struct WirelessRunner: BusRunner {
    package enum Source: Sendable {
        case dongle(DongleConfiguration)
        case command(String)
    }

    package let name: String
    package let source: Source
    package let pipeline: ReadingPipeline
    package let board: StatusBoard
    package let logger: Logger

    package static func make(_ config: GatewayConfig.WMBusDongleConfig, demo: DemoBuilding, pipeline: ReadingPipeline,
                     board: StatusBoard, logger: Logger) -> WirelessRunner? {
        let mode = DongleLinkMode(text: config.linkMode.rawValue) ?? .c1t1
        let kind: DongleKind? = config.type == .auto ? nil : DongleKind(rawValue: config.type.rawValue)
        let source: Source
        switch config.source {
        case .device(let path):
            source = .dongle(DongleConfiguration(path: path, kind: kind, linkMode: mode))
        case .command(let command):
            source = .command(command)
        case .simulator:
            guard let path = demo.dongles[config.name] else {
                logger.error("no simulator runs for this dongle", metadata: ["bus": "\(config.name)"])
                return nil
            }
            source = .dongle(DongleConfiguration(path: path, kind: .im871a, linkMode: mode))
        }
        return WirelessRunner(name: config.name, source: source, pipeline: pipeline, board: board, logger: logger)
    }

    package func run() async {
        let counters = Tally()
        let component = "wmbus:\(name)"
        let batcher = TelegramBatcher()
        let flusher = Task { [self] in
            // One transaction per batch, not per telegram: on a busy channel (a whole street's meters) the
            // commit is what costs, and an SD card wears with every one. A batch waits at most `window`.
            for await _ in batcher.signals {
                try? await Task.sleep(for: TelegramBatcher.window)
                let batch = batcher.takeAll()
                if !batch.isEmpty { await handle(batch, counters: counters) }
            }
            let rest = batcher.takeAll()
            if !rest.isEmpty { await handle(rest, counters: counters) }
        }
        defer { flusher.cancel() }
        switch source {
        case .dongle(let configuration):
            await board.update(component, kind: "wireless dongle", health: .starting, detail: "opening \(configuration.path)")
            let dongle = WMBusDongle(configuration)
            for await event in dongle.events() {
                switch event {
                case .state(let state):
                    logger.notice("dongle", metadata: ["state": "\(state)"])
                    await board.update(component, kind: "wireless dongle", health: health(of: state), detail: state.description,
                                       counters: counters.m.withLock { $0 })
                case .telegram(let telegram):
                    batcher.add(telegram)
                case .problem(let problem):
                    counters.m.withLock { $0["problems", default: 0] += 1 }
                    logger.debug("dongle line problem", metadata: ["problem": "\(problem)"])
                }
            }
        case .command(let command):
            await board.update(component, kind: "rtl_wmbus receiver", health: .starting, detail: "starting \(command)")
            let process = LineProcess(command: command, logger: logger)
            for await event in process.events() {
                switch event {
                case .started:
                    await board.update(component, kind: "rtl_wmbus receiver", health: .healthy, detail: "listening", counters: counters.m.withLock { $0 })
                case .exited(let why):
                    await board.update(component, kind: "rtl_wmbus receiver", health: .degraded, detail: "\(why); restarting", counters: counters.m.withLock { $0 })
                case .telegram(let t):
                    batcher.add(t)
                case .badLine:
                    counters.m.withLock { $0["problems", default: 0] += 1 }
                }
            }
        }
        // What was heard before the end is stored before the runner says it stopped.
        batcher.finish()
        await flusher.value
        await board.update(component, kind: "wireless dongle", health: .stopped, detail: "stopped", counters: counters.m.withLock { $0 })
    }

    package func handle(_ telegrams: [ReceivedTelegram], counters: Tally) async {
        counters.m.withLock { $0["telegrams", default: 0] += telegrams.count }
        let inputs = telegrams.map { t -> PipelineInput in
            let rssi = t.rssiDBm.map { Int16(clamping: Int($0.rounded())) }
            return .wireless(WirelessInput(.frame(t.bytes, format: .noCRC, linkMode: t.linkMode),
                                           dongle: name, rssi: rssi, receivedAt: t.receivedAt.millisecondsSince1970))
        }
        let outcomes = await feed(pipeline, inputs, logger: logger)
        counters.m.withLock { c in
            for outcome in outcomes {
                switch outcome {
                case .buffered: c["stored", default: 0] += 1
                case .duplicate: c["duplicates", default: 0] += 1
                case .unknownDevice: c["strangers", default: 0] += 1
                default: break
                }
            }
        }
        if !telegrams.isEmpty {
            await board.update("wmbus:\(name)", kind: "wireless dongle", health: .healthy,
                               detail: Self.statusDetail(telegrams, outcomes), counters: counters.m.withLock { $0 })
        }
    }

    /// The status line after a batch. The status socket is read by everyone in the operators' group, so
    /// it names only registered devices; a stranger's telegram (a neighbour's meter) shows as a count,
    /// never as bytes or values. The strangers' identities are in the status's unknown-devices list.
    package static func statusDetail(_ telegrams: [ReceivedTelegram], _ outcomes: [PipelineOutcome]) -> String {
        for (telegram, outcome) in zip(telegrams, outcomes).reversed() {
            let device: String
            switch outcome {
            case .buffered(let d, _, _), .duplicate(let d): device = d
            default: continue
            }
            let rssi = telegram.rssiDBm.map { ", \(Int($0.rounded())) dBm" } ?? ""
            let mode = telegram.linkMode.map { " \($0.rawValue.uppercased())" } ?? ""
            return "receiving; last from \(device)\(mode)\(rssi) at \(telegram.receivedAt)"
        }
        let strangers = outcomes.filter { if case .unknownDevice = $0 { return true } else { return false } }.count
        return strangers > 0
            ? "receiving; last \(strangers == 1 ? "telegram" : "\(strangers) telegrams") from devices not in the registry"
            : "receiving; last \(telegrams.count == 1 ? "telegram" : "\(telegrams.count) telegrams") not stored (see the log)"
    }

    private func health(of state: DongleState) -> Health {
        switch state {
        case .connecting: .starting
        case .ready: .healthy
        case .unplugged, .failed: .degraded
        case .stopped: .stopped
        }
    }
}

/// A receiver's counters, shared between its event loop and status updates.
package final class Tally: Sendable {
    package let m = Mutex<[String: Int]>(["telegrams": 0, "problems": 0, "stored": 0, "duplicates": 0, "strangers": 0])
}

/// An rtl_wmbus pipeline (`rtl_sdr … | rtl_wmbus`) run through /bin/sh: its standard output is read
/// line by line. When it exits (the SDR was unplugged), it is started again with backoff.
package final class LineProcess: Sendable {
    package enum Event: Sendable {
        case started
        case exited(String)
        case telegram(ReceivedTelegram)
        case badLine
    }

    package let command: String
    package let logger: Logger

    package init(command: String, logger: Logger) {
        self.command = command
        self.logger = logger
    }

    package func events() -> AsyncStream<Event> {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let child = Mutex<pid_t>(0)
        let thread = Thread { [command, logger] in
            var backoff: UInt32 = 1
            while true {
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else { continuation.finish(); return }
                var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
                posix_spawn_file_actions_init(&actions)
                posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
                posix_spawn_file_actions_addclose(&actions, fds[0])
                var pid: pid_t = 0
                let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
                let rc = posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ)
                argv.forEach { free($0) }
                posix_spawn_file_actions_destroy(&actions)
                close(fds[1])
                if rc != 0 {
                    close(fds[0])
                    continuation.yield(.exited("cannot start /bin/sh (error \(rc))"))
                    continuation.finish()
                    return
                }
                child.withLock { $0 = pid }
                continuation.yield(.started)
                var reader = RTLWMBusLineReader()
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    reader.append(buffer[0..<n])
                    while let event = reader.next() { Self.forward(event, continuation) }
                }
                if let last = reader.finish() { Self.forward(last, continuation) }
                close(fds[0])
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                child.withLock { $0 = 0 }
                if case .terminated = continuation.yield(.exited("rtl_wmbus pipeline exited (status \(status))")) { return }
                logger.warning("rtl_wmbus pipeline exited; restarting", metadata: ["status": "\(status)", "in_seconds": "\(backoff)"])
                sleep(backoff)
                backoff = min(backoff * 2, 60)
            }
        }
        continuation.onTermination = { _ in
            let pid = child.withLock { $0 }
            if pid > 0 { kill(pid, SIGTERM) }
        }
        thread.start()
        return stream
    }

    private static func forward(_ event: RTLWMBusLineReader.Event, _ c: AsyncStream<Event>.Continuation) {
        switch event {
        case .line(let line):
            if let t = line.receivedTelegram(receiver: "rtl_wmbus") { c.yield(.telegram(t)) }
        default:
            c.yield(.badLine)
        }
    }
}

/// Telegrams heard and not yet handed to the pipeline, with a coalescing wake-up for the flusher.
package final class TelegramBatcher: Sendable {
    /// How long the first telegram of a batch waits for others: short next to a meter's send interval
    /// (minutes), long next to a telegram's airtime (milliseconds).
    package static let window: Duration = .milliseconds(200)

    package let signals: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let pending = Mutex<[ReceivedTelegram]>([])

    package init() {
        (signals, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    package func add(_ telegram: ReceivedTelegram) {
        pending.withLock { $0.append(telegram) }
        wake.yield()
    }

    package func takeAll() -> [ReceivedTelegram] {
        pending.withLock { p in
            defer { p.removeAll(keepingCapacity: true) }
            return p
        }
    }

    package func finish() { wake.finish() }
}
