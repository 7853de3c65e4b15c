import Drivers
import Foundation
import Gateway
import Logging
import Synchronization

/// One wireless M-Bus receiver: a USB dongle session (which survives unplug and replug) or an rtl_wmbus
/// pipeline, feeding every telegram heard to the pipeline with its RSSI. The pipeline decides what is
/// a registered meter, a duplicate or a stranger.
package struct WirelessRunner: BusRunner {
    package let name: String
    package let source: RadioReceiver
    package let pipeline: ReadingPipeline
    package let board: StatusBoard
    package let logger: Logger

    /// How `gatewayd status` names this receiver.
    package var componentKind: String { source.componentKind }

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
        // A dongle session and an rtl_wmbus pipeline give the same events (Drivers' DongleEvent).
        let kind = componentKind
        await board.update(component, kind: kind, health: .starting, detail: source.startingDetail)
        let events = source.events(name: name)
        for await event in events {
            switch event {
            case .state(let state):
                logger.notice("receiver", metadata: ["state": "\(state)"])
                await board.update(component, kind: kind, health: health(of: state), detail: state.description,
                                   counters: counters.m.withLock { $0 })
            case .telegram(let telegram):
                batcher.add(telegram)
            case .problem(let problem):
                counters.m.withLock { c in
                    c["problems", default: 0] += 1
                    // A telegram the receiver heard but whose CRC failed: a weak or disturbed radio, worth a count of its own.
                    if problem.code == .checksumMismatch { c["crc_failures", default: 0] += 1 }
                }
                logger.debug("receiver problem", metadata: ["problem": "\(problem)"])
            }
        }
        // What was heard before the end is stored before the runner says it stopped.
        batcher.finish()
        await flusher.value
        await board.update(component, kind: kind, health: .stopped, detail: "stopped", counters: counters.m.withLock { $0 })
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
            await board.update("wmbus:\(name)", kind: componentKind, health: .healthy,
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
    package let m = Mutex<[String: Int]>(["telegrams": 0, "problems": 0, "crc_failures": 0, "stored": 0, "duplicates": 0, "strangers": 0])
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
