#if canImport(Glibc)
import Glibc
#endif

/// rtl_wmbus output as the same events a dongle session gives: telegrams whose CRCs rtl_wmbus checked,
/// problems for invalid lines and for CRC failures (kind `.checksumMismatch`, so a receiver can count
/// them), `.state(.stopped)` at the end. The one rtl_wmbus reader of gatewayd: the daemon, commissioning
/// and `gatewayd listen` all use it.
///
/// Two inputs: a file descriptor (stdin, a pipe, a file; not closed here), or a shell pipeline
/// (`rtl_sdr … | rtl_wmbus`) run through /bin/sh and started again with backoff (1 s doubling to 60 s)
/// when it exits, as when the SDR stick is unplugged; meanwhile the state is `.unplugged`.
///
/// Reads block in poll(2) on the actor's own thread; cancelling the consumer ends the reading at once
/// and stops the pipeline: SIGTERM to its process group, SIGKILL to whatever is left
/// of the group after `stopGrace` (an rtl_sdr stuck in USB I/O must not keep the stick from the next
/// start). The same stop follows a pipeline that ended by itself, so no half of it outlives the other.
public actor RTLWMBusSource {
    /// Waits out a restart pause. Without one, the source waits in poll(2) on its wake signal, so the
    /// pause costs no wake-ups and ends at once when the consumer goes away. Tests pass one that only
    /// records the pause (the backoff runs in virtual time).
    public typealias Pause = @Sendable (Duration) -> Void

    public enum Input: Sendable, Hashable {
        case fileDescriptor(Int32)
        case command(String)
    }

    public let input: Input
    public let receiver: String
    /// How long a stopped pipeline may take to end after SIGTERM before its group gets SIGKILL.
    public let stopGrace: Duration
    private let pause: Pause?
    private let executor: ThreadExecutor
    /// Signalled when the consumer goes away: the reader blocks in poll(2) until input comes or this.
    private nonisolated let wake = WakeSignal()

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    public init(fileDescriptor: Int32 = 0, receiver: String = "rtl_wmbus") {
        self.init(.fileDescriptor(fileDescriptor), receiver: receiver)
    }

    public init(_ input: Input, receiver: String = "rtl_wmbus", stopGrace: Duration = .seconds(5), pause: Pause? = nil) {
        self.input = input
        self.receiver = receiver
        self.stopGrace = stopGrace
        self.pause = pause
        let name: String
        switch input {
        case .fileDescriptor(let fd): name = "rtl_wmbus fd \(fd)"
        case .command: name = "rtl_wmbus pipeline"
        }
        executor = ThreadExecutor(name: name)
    }

    deinit { executor.shutdown() }

    public nonisolated var fileDescriptor: Int32? {
        if case .fileDescriptor(let fd) = input { return fd }
        return nil
    }

    public nonisolated func events(bufferLimit: Int = 4096) -> AsyncStream<DongleEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: DongleEvent.self, bufferingPolicy: .bufferingOldest(bufferLimit))
        let task = Task {
            switch input {
            case .fileDescriptor(let fd):
                await self.read(fd, continuation)
            case .command(let command):
                await self.supervise(command, continuation)
            }
            continuation.yield(.state(.stopped))
            continuation.finish()
        }
        continuation.onTermination = { [wake] _ in
            task.cancel()
            wake.signal()
        }
        return stream
    }

    /// Runs the pipeline, reads it to its end, and starts it again after a pause, until cancelled.
    private func supervise(_ command: String, _ continuation: AsyncStream<DongleEvent>.Continuation) {
        var backoff = RestartBackoff()
        while !Task.isCancelled {
            continuation.yield(.state(.connecting(path: command)))
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else {
                continuation.yield(.state(.failed(DongleError(.transport, "cannot make a pipe for the rtl_wmbus pipeline: \(Errno(errno))"))))
                return
            }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
            posix_spawn_file_actions_addclose(&actions, fds[0])
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            // A process group of its own, so stopping it stops the whole pipeline (rtl_sdr and rtl_wmbus),
            // not only the shell.
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            posix_spawnattr_setpgroup(&attributes, 0)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
            let rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ)
            argv.forEach { free($0) }
            posix_spawnattr_destroy(&attributes)
            posix_spawn_file_actions_destroy(&actions)
            close(fds[1])
            guard rc == 0 else {
                close(fds[0])
                continuation.yield(.state(.failed(DongleError(.transport, "cannot start /bin/sh for the rtl_wmbus pipeline (error \(rc))"))))
                return
            }
            let heard = read(fds[0], continuation)
            close(fds[0])
            let status = stop(group: pid)
            if Task.isCancelled { return }
            let wait = backoff.afterExit(heard: heard)
            continuation.yield(.state(.unplugged(
                path: command, reason: "the rtl_wmbus pipeline exited (wait status \(status)); starting it again in \(wait.components.seconds) s")))
            if let pause { pause(wait) } else { waitOrWake(wait) }
        }
    }

    /// Sleeps `duration` in one poll(2) on the wake signal: returns early when the consumer goes away.
    private func waitOrWake(_ duration: Duration) {
        let deadline = ContinuousClock.now + duration
        while !Task.isCancelled, deadline.pollTimeoutMilliseconds > 0 {
            _ = try? wake.wait(for: nil, timeoutMilliseconds: deadline.pollTimeoutMilliseconds)
        }
    }

    /// Ends the pipeline whose shell is `group`'s leader and reaps the shell; returns its wait status.
    /// SIGTERM first; SIGKILL for whatever of the group is still there after `stopGrace`.
    private func stop(group: pid_t) -> Int32 {
        var status: Int32 = 0
        var reaped = false
        kill(-group, SIGTERM)
        // Polled in 20 ms steps, counted rather than read from a clock.
        var waited: Duration = .zero
        while true {
            if !reaped {
                let r = waitpid(group, &status, WNOHANG)
                if r == group || (r < 0 && errno != EINTR) { reaped = true }
            }
            // The shell gone is not enough: a member that ignores SIGTERM keeps the group alive.
            let groupAlive = kill(-group, 0) == 0
            if reaped && !groupAlive { return status }
            if waited >= stopGrace {
                kill(-group, SIGKILL)
                if !reaped { while waitpid(group, &status, 0) < 0 && errno == EINTR {} }
                return status
            }
            usleep(20_000)
            waited += .milliseconds(20)
        }
    }

    /// Reads `fd` to its end (or until cancelled); true when at least one telegram came through.
    @discardableResult
    private func read(_ fileDescriptor: Int32, _ continuation: AsyncStream<DongleEvent>.Continuation) -> Bool {
        var heard = false
        var reader = RTLWMBusLineReader()
        var buffer = [UInt8](repeating: 0, count: 4096)
        func deliver(_ e: RTLWMBusLineReader.Event) {
            switch e {
            case .line(let line):
                if let t = line.receivedTelegram(receiver: receiver) {
                    heard = true
                    continuation.yield(.telegram(t))
                } else {
                    continuation.yield(.problem(DongleError(.checksumMismatch,
                                                            "rtl_wmbus reported a \(line.crcOK ? "decoding" : "CRC") failure for meter \(line.meterID) at \(line.timestamp): telegram dropped")))
                }
            case .invalid(let error):
                continuation.yield(.problem(error))
            }
        }
        while !Task.isCancelled {
            // Block until input comes or the consumer goes away (`wake`).
            do {
                guard case .ready = try wake.wait(for: fileDescriptor, timeoutMilliseconds: -1) else { continue }
            } catch {
                continuation.yield(.problem(DongleError(.transport, "poll on rtl_wmbus input failed: \(error.errno)")))
                break
            }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fileDescriptor, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                continuation.yield(.problem(DongleError(.transport, "reading rtl_wmbus input failed: \(Errno(errno))")))
                break
            }
            if n == 0 { break }
            reader.append(buffer[0..<n])
            while let e = reader.next() { deliver(e) }
        }
        if !Task.isCancelled, let last = reader.finish() { deliver(last) }
        return heard
    }
}

/// When an rtl_wmbus pipeline that exited is started again: 1 s after the first exit, doubling up to 60 s
/// while it keeps failing (an unplugged stick), and back to 1 s after a run that delivered a telegram.
public struct RestartBackoff: Sendable, Equatable {
    public static let first: Duration = .seconds(1)
    public static let maximum: Duration = .seconds(60)
    public private(set) var next: Duration = RestartBackoff.first

    public init() {}

    /// The pause before the next start, after a run that did or did not deliver a telegram.
    public mutating func afterExit(heard: Bool) -> Duration {
        if heard { next = Self.first }
        let pause = next
        next = min(next * 2, Self.maximum)
        return pause
    }
}
