import Synchronization
import Foundation
import Glibc
import Drivers
import Testing

@Suite("rtl_wmbus lines")
struct RTLWMBusTests {
    @Test func parsesT1AndC1Lines() throws {
        let t = Fixtures.take(2)
        let line = try RTLWMBusLine.parse("T1;1;1;2019-02-09 07:14:18.000;117;102;94740459;0x\(Hex.encode(t[0]))", lineNumber: 1)
        #expect(line.linkMode == .t1)
        #expect(line.crcOK && line.decodingOK)
        #expect(line.timestamp.description == "2019-02-09T07:14:18.000Z")
        #expect(line.packetRSSI == 117 && line.currentRSSI == 102)
        #expect(line.meterID == "94740459")
        #expect(line.bytes == t[0])
        let telegram = try #require(line.receivedTelegram())
        #expect(telegram.linkMode == .t1)
        #expect(telegram.rssiDBm == nil)   // rtl_wmbus RSSI is relative, not dBm
        _ = try telegram.frame()

        let c1 = try RTLWMBusLine.parse("C1;1;1;2020-01-31 23:59:59.999;12.5;-3;00000001;0x\(Hex.encode(t[1]).lowercased())\r", lineNumber: 7)
        #expect(c1.linkMode == .c1)
        #expect(c1.timestamp.description == "2020-01-31T23:59:59.999Z")
        #expect(c1.bytes == t[1])

        let failed = try RTLWMBusLine.parse("C1;0;1;2020-01-31 23:59:59.999;1;1;00000001;0x\(Hex.encode(t[1]))", lineNumber: 8)
        #expect(failed.receivedTelegram() == nil)
    }

    @Test func badLinesAreTypedErrorsWithTheirLineNumber() {
        let hex = Hex.encode(Fixtures.take(1)[0])
        let bad = [
            "T1;1;1;2019-02-09 07:14:18.000;117;102;94740459",                // 7 fields
            "X1;1;1;2019-02-09 07:14:18.000;117;102;94740459;0x\(hex)",        // mode
            "T1;2;1;2019-02-09 07:14:18.000;117;102;94740459;0x\(hex)",        // flag
            "T1;1;1;2019-02-30T07:14;117;102;94740459;0x\(hex)",               // timestamp
            "T1;1;1;2019-02-09 07:14:18.000;loud;102;94740459;0x\(hex)",       // RSSI
            "T1;1;1;2019-02-09 07:14:18.000;117;102;94740459;0x4E44G1",        // hex
            "T1;1;1;2019-02-09 07:14:18.000;117;102;94740459;0x4E44",          // too short
        ]
        for (i, text) in bad.enumerated() {
            do {
                _ = try RTLWMBusLine.parse(text, lineNumber: i + 10)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.code == .invalidLine)
                #expect(error.offset == i + 10)
                #expect(error.message.contains("line \(i + 10)"))
            }
        }
    }

    @Test func readerSplitsLinesWhateverTheChunking() {
        let t = Fixtures.take(3)
        var text = "# rtl_wmbus capture\n\n"
        text += "T1;1;1;2019-02-09 07:14:18.000;117;102;1;0x\(Hex.encode(t[0]))\r\n"
        text += "garbage from the SDR\n"
        text += "C1;1;1;2019-02-09 07:14:19.000;110;100;2;0x\(Hex.encode(t[1]))\n"
        text += "T1;1;1;2019-02-09 07:14:20.000;90;80;3;0x\(Hex.encode(t[2]))"   // no final newline
        let events = StreamVerifier.verify(Array(text.utf8)) { RTLWMBusLineReader() }
        #expect(events.count == 4)
        var lines: [RTLWMBusLine] = []
        var errorLines: [Int?] = []
        for e in events {
            switch e {
            case .line(let l): lines.append(l)
            case .invalid(let error): errorLines.append(error.offset)
            }
        }
        #expect(lines.map(\.bytes) == t)
        #expect(errorLines == [4])
    }
}

@Suite("Replay source")
struct ReplayTests {
    static func capture(_ telegrams: [[UInt8]]) -> String {
        var text = "# captured on the bench\n"
        for (i, t) in telegrams.enumerated() {
            let mode = ["t1", "c1", "-"][i % 3]
            let rssi = i % 4 == 3 ? "-" : String(-60 - i)
            text += "2026-11-21T08:00:\(String(format2(i * 2))).\(i % 2 == 0 ? "123" : "5")Z \(mode) \(rssi) \(Hex.encode(t))\n"
        }
        return text
    }

    static func format2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

    @Test func parsesTheDocumentedFormat() throws {
        let t = Fixtures.take(5)
        let entries = try ReplayFile.parse(Self.capture(t))
        #expect(entries.map(\.bytes) == t)
        #expect(entries[0].linkMode == .t1 && entries[1].linkMode == .c1 && entries[2].linkMode == nil)
        #expect(entries[0].rssiDBm == -60 && entries[3].rssiDBm == nil)
        #expect(entries[1].timestamp.millisecondsSince1970 - entries[0].timestamp.millisecondsSince1970 == 2000 - 123 + 500)
        // Its own lines read back the same.
        #expect(try ReplayFile.parse(entries.map(\.line).joined(separator: "\n")) == entries)
    }

    @Test func badLinesNameTheirNumber() {
        let hex = Hex.encode(Fixtures.take(1)[0])
        let cases: [(String, Int)] = [
            ("2026-11-21T08:00:00Z t1 -71\n", 1),
            ("# ok\n2026-11-21T08:00:00Z x9 -71 \(hex)\n", 2),
            ("\n\n2026-11-21T08:00:00Z t1 loud \(hex)\n", 3),
            ("2026-11-21T08:00:01Z t1 -71 \(hex)\n2026-11-21T08:00:00Z t1 -71 \(hex)\n", 2),
            ("2026-11-21 t1 -71 \(hex)\n", 1),
            ("2026-11-21T08:00:00Z t1 -71 4E44\n", 1),
        ]
        for (text, line) in cases {
            do {
                _ = try ReplayFile.parse(text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.code == .invalidLine)
                #expect(error.offset == line, "\(text)")
            }
        }
    }

    @Test func acceleratedReplayKeepsOrderAndCount() async throws {
        let t = Fixtures.take(6)
        let entries = try ReplayFile.parse(Self.capture(t))
        let source = ReplaySource(entries: entries, speed: 1000, receiver: "replay bench.log")
        var got: [ReceivedTelegram] = []
        for await telegram in source { got.append(telegram) }
        #expect(got.map(\.bytes) == t)
        #expect(got.map(\.receivedAt) == entries.map(\.timestamp))
        #expect(got.allSatisfy { $0.receiver == "replay bench.log" })
        // The waits are the recorded gaps divided by the speed.
        #expect(source.delay(before: 0) == .zero)
        #expect(source.delay(before: 1) == .microseconds(2377))
        #expect(ReplaySource(entries: entries, speed: .infinity).delay(before: 1) == .zero)
    }

    @Test func replayStopsWhenCancelled() async throws {
        let t = Fixtures.take(3)
        // A day between telegrams: only cancellation can end this replay.
        let text = "2026-11-21T08:00:00Z t1 -70 \(Hex.encode(t[0]))\n2026-11-22T08:00:00Z t1 -70 \(Hex.encode(t[1]))\n"
        let source = ReplaySource(entries: try ReplayFile.parse(text), speed: 1)
        let task = Task {
            var n = 0
            for await _ in source { n += 1 }
            return n
        }
        try await Task.sleep(for: .milliseconds(50))
        task.cancel()
        #expect(await task.value == 1)
    }
}

@Suite("rtl_wmbus from a pipe")
struct RTLWMBusSourceTests {
    @Test func readsLinesFromAPipeUntilItCloses() async throws {
        let t = Fixtures.take(3)
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        let text = "T1;1;1;2019-02-09 07:14:18.000;117;102;1;0x\(Hex.encode(t[0]))\n"
            + "T1;0;1;2019-02-09 07:14:19.000;117;102;2;0x\(Hex.encode(t[1]))\n"
            + "not a line\n"
            + "C1;1;1;2019-02-09 07:14:20.000;117;102;3;0x\(Hex.encode(t[2]))"
        let source = RTLWMBusSource(fileDescriptor: fds[0])
        let stream = source.events()
        let bytes = Array(text.utf8)
        // Written in two pieces, split inside a line.
        _ = bytes[0..<50].withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        _ = bytes[50...].withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        close(fds[1])
        var events: [DongleEvent] = []
        for await e in stream { events.append(e) }
        close(fds[0])
        let telegrams = events.compactMap { if case .telegram(let x) = $0 { return x } else { return nil } }
        let problems = events.compactMap { if case .problem(let p) = $0 { return p } else { return nil } }
        #expect(telegrams.map(\.bytes) == [t[0], t[2]])
        #expect(telegrams.map(\.linkMode) == [.t1, .c1])
        #expect(problems.map(\.code) == [.checksumMismatch, .invalidLine])
        #expect(problems.last?.offset == 3)
        #expect(events.last == .state(.stopped))
    }
}

@Suite("rtl_wmbus pipeline")
struct RTLWMBusPipelineTests {
    /// The daemon's and commissioning's rtl_wmbus source is the same reader behind a shell pipeline: CRC
    /// failures arrive as `.checksumMismatch` problems (the daemon counts them), and an exited pipeline is
    /// `.unplugged` and started again.
    @Test func aPipelineIsReadAndStartedAgainWhenItExits() async throws {
        let t = Fixtures.take(2)
        let dir = NSTemporaryDirectory() + "rtl-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let text = "T1;1;1;2019-02-09 07:14:18.000;117;102;1;0x\(Hex.encode(t[0]))\n"
            + "T1;0;1;2019-02-09 07:14:19.000;117;102;2;0x\(Hex.encode(t[1]))\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/lines"))
        // Each run prints the two lines and exits at once, as rtl_wmbus does when the SDR goes away. The
        // restart pause is recorded, not slept, and the next start waits for the test: virtual time.
        let gate = PauseGate()
        defer { gate.openForGood() }
        let source = RTLWMBusSource(.command("cat '\(dir)/lines'"), receiver: "sdr-1", pause: gate.pause)
        var telegrams: [ReceivedTelegram] = [], problems: [DongleError] = [], states: [DongleState] = []
        for await e in source.events() {
            switch e {
            case .telegram(let x): telegrams.append(x)
            case .problem(let p): problems.append(p)
            case .state(let s):
                states.append(s)
                if case .unplugged = s { gate.proceed() }
            }
            if telegrams.count == 2 { break }
        }
        #expect(telegrams.map(\.bytes) == [t[0], t[0]])
        #expect(telegrams.allSatisfy { $0.receiver == "sdr-1" })
        #expect(problems.first?.code == .checksumMismatch)
        let connects = states.filter { if case .connecting = $0 { true } else { false } }.count
        let exits = states.filter { if case .unplugged = $0 { true } else { false } }.count
        #expect(connects == 2 && exits == 1, "\(states)")
        // Every run delivered a telegram, so every pause is the first one. The second run's exit may have
        // recorded its pause before the test stopped reading; no third run started.
        let recorded = gate.pauses
        #expect(recorded == [.seconds(1)] || recorded == [.seconds(1), .seconds(1)], "\(recorded)")
    }

    @Test func theRestartPauseDoublesToAMinuteAndResetsAfterATelegram() {
        var backoff = RestartBackoff()
        let failing = (0..<8).map { _ in backoff.afterExit(heard: false).components.seconds }
        #expect(failing == [1, 2, 4, 8, 16, 32, 60, 60])
        #expect(backoff.afterExit(heard: true) == .seconds(1))
        #expect(backoff.afterExit(heard: false) == .seconds(2))
    }

    /// A pipeline that keeps failing (the SDR stick unplugged) is started again with growing pauses, in
    /// virtual time: five exits give the pauses 1, 2, 4, 8, 16 s without a second of waiting.
    @Test func aFailingPipelineBacksOffInVirtualTime() async {
        let gate = PauseGate()
        defer { gate.openForGood() }
        let source = RTLWMBusSource(.command("exit 3"), receiver: "sdr-1", pause: gate.pause)
        var exits: [String] = []
        for await e in source.events() {
            if case .state(.unplugged(_, let reason)) = e {
                exits.append(reason)
                // Pause n is recorded before run n + 1 starts, so by the sixth exit the first five are in.
                if exits.count == 6 { break }
                gate.proceed()
            }
        }
        #expect(gate.pauses.prefix(5).map(\.components.seconds) == [1, 2, 4, 8, 16])
        #expect(exits.first?.contains("wait status 768") == true, "\(exits)")  // exit 3, as waitpid reports it
        #expect(exits[4].contains("starting it again in 16 s"), "\(exits)")
    }

    /// A pipeline member that ignores SIGTERM (an rtl_sdr stuck in USB I/O) is killed when the consumer stops
    /// listening, so the stick is free for the next start.
    @Test func aPipelineThatIgnoresSIGTERMIsKilled() async throws {
        let dir = NSTemporaryDirectory() + "rtl-stuck-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // An ignored signal stays ignored across exec: the sleep ignores SIGTERM.
        let source = RTLWMBusSource(.command("trap '' TERM; echo $$ > '\(dir)/pid'; exec sleep 600"), receiver: "sdr-1",
                                    stopGrace: .milliseconds(300))
        var pid: pid_t?
        for await e in source.events() {
            if case .state(.connecting) = e {
                for _ in 0..<200 {
                    if let text = try? String(contentsOfFile: dir + "/pid", encoding: .utf8), let p = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                        pid = p
                        break
                    }
                    try await Task.sleep(for: .milliseconds(25))
                }
                break
            }
        }
        let stuck = try #require(pid, "the pipeline never wrote its pid")
        // Ignoring SIGTERM, only the SIGKILL after the grace ends it; without it this waits out its 10 s.
        var alive = true
        for _ in 0..<200 where alive {
            alive = kill(stuck, 0) == 0
            if alive { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(!alive, "the pipeline that ignores SIGTERM is still running")
    }
}

@Suite("rtl_wmbus long lines")
struct RTLWMBusLongLineTests {
    @Test func anOverlongLineIsOneErrorWhateverTheChunking() {
        let t = Fixtures.take(1)[0]
        let long = String(repeating: "x", count: RTLWMBusLineReader.maximumLineLength + 10) + "\n"
        let good = "T1;1;1;2019-02-09 07:14:18.000;117;102;1;0x\(Hex.encode(t))\n"
        let events = StreamVerifier.verify(Array((long + good).utf8)) { RTLWMBusLineReader() }
        #expect(events.count == 2)
        guard case .invalid(let error)? = events.first else {
            Issue.record("no error for the long line")
            return
        }
        #expect(error.offset == 1)
        #expect(events.last.map { if case .line(let l) = $0 { return l.bytes == t } else { return false } } == true)
    }
}

/// The restart pause of an `RTLWMBusSource`, driven by the test: each pause is recorded and holds the source
/// until the test has read the exit it follows (`proceed`), so restarts run in lock step with the test and
/// nothing waits in real time. `openForGood` lets every later pause pass, for the source's way out.
final class PauseGate: Sendable {
    private let state = Mutex<(pauses: [Duration], open: Bool)>(([], false))
    private let semaphore = DispatchSemaphore(value: 0)

    var pause: RTLWMBusSource.Pause {
        { [self] d in
            let open = state.withLock { s -> Bool in
                s.pauses.append(d)
                return s.open
            }
            if !open { semaphore.wait() }
        }
    }

    var pauses: [Duration] { state.withLock { $0.pauses } }

    func proceed() { semaphore.signal() }

    func openForGood() {
        state.withLock { $0.open = true }
        semaphore.signal()
    }
}
