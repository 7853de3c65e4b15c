import Drivers
import Foundation
import Glibc
import Testing

/// The eventfd that lets readers block in poll(2) until bytes come, and still stop at once.
@Suite("wake signal and reader threads")
struct WakeSignalTests {
    @Test("a signal makes a pending poll readable; drain clears it; repeated signals count once")
    func signalAndDrain() {
        let wake = WakeSignal()
        #expect(wake.isAvailable)
        var p = pollfd(fd: wake.fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 0) == 0)
        wake.signal()
        wake.signal()
        #expect(poll(&p, 1, 0) == 1)
        #expect(wake.drain())
        #expect(poll(&p, 1, 0) == 0)
        #expect(!wake.drain())
    }

    @Test("a serial read with a far deadline returns empty as soon as another thread signals")
    func readWakesEarly() throws {
        var master: Int32 = -1, slave: Int32 = -1
        var name = [CChar](repeating: 0, count: 256)
        #expect(openpty(&master, &slave, &name, nil, nil) == 0)
        defer { close(master); close(slave) }
        let port = try SerialPort(path: String(cString: name), settings: SerialSettings(baudRate: 9600), role: .wmbusDongle)
        defer { port.close() }
        let wake = WakeSignal()
        let deadline = ContinuousClock.now + .seconds(60)
        // From another thread, before or while the read waits: either way the read must not sit out its
        // deadline (an eventfd stays readable until drained).
        Thread.detachNewThread { wake.signal() }
        let bytes = try port.read(maximum: 64, deadline: deadline, wakingOn: wake)
        #expect(bytes.isEmpty)
        // Returned on the signal, not at the deadline (a broken wake would block the full minute).
        #expect(ContinuousClock.now < deadline)
        // Bytes still come through the same call, and the drained signal does not fire again.
        _ = "7E".utf8.withContiguousStorageIfAvailable { write(master, $0.baseAddress, 2) }
        let got = try port.read(maximum: 64, deadline: .now + .seconds(10), wakingOn: wake)
        #expect(got == Array("7E".utf8))
    }

    @Test("wait: input reported with its revents, the signal alone as woken (and cleared), the timeout as timed out")
    func waitOutcomes() throws {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let wake = WakeSignal()
        #expect(try wake.wait(for: fds[0], timeoutMilliseconds: 0) == .timedOut)
        wake.signal()
        #expect(try wake.wait(for: fds[0], timeoutMilliseconds: 0) == .woken)
        #expect(try wake.wait(for: nil, timeoutMilliseconds: 0) == .timedOut)   // cleared by the first wait
        _ = write(fds[1], "x", 1)
        wake.signal()
        // Input and signal together: the input wins (the reader reads before it looks for a stop).
        guard case .ready(let revents) = try wake.wait(for: fds[0], timeoutMilliseconds: 0) else {
            Issue.record("input not reported")
            return
        }
        #expect(revents & Int16(POLLIN) != 0)
        #expect(!wake.drain())
        wake.signal()
        #expect(try wake.wait(for: nil, timeoutMilliseconds: -1) == .woken)
    }

    @Test("reader threads carry their line's name (ps -L, top -H)")
    func threadNames() async throws {
        let executor = ThreadExecutor(name: "dongle /dev/ttyUSB7")
        defer { executor.shutdown() }
        let actor = NamedThreadProbe(executor: executor)
        let name = await actor.threadName()
        // Linux keeps 15 bytes; the end of the name (the device) is kept.
        #expect(name == "le /dev/ttyUSB7")
    }
}

private actor NamedThreadProbe {
    let executor: ThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    init(executor: ThreadExecutor) { self.executor = executor }

    func threadName() -> String {
        // /proc/thread-self/comm names the thread this runs on: the executor's.
        (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }
}
