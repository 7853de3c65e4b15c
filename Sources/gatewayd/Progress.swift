import Agent
import CLISupport
import Drivers
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One line of progress on stderr, redrawn in place. Only on a terminal: piped or logged output
/// stays free of carriage returns and escape codes.
final class ProgressLine: Sendable {
    let enabled: Bool
    /// Serialises drawing, so a ticker task and the command never interleave half lines.
    private let shown = Mutex<Bool>(false)

    init(enabled: Bool = isatty(2) == 1) {
        self.enabled = enabled
    }

    func show(_ text: String) {
        guard enabled else { return }
        shown.withLock { shown in
            FileHandleOutput.standardError("\r\u{1B}[K" + TerminalText.line(text))
            shown = true
        }
    }

    /// Clears the line; call before any other stderr output and when done.
    func clear() {
        guard enabled else { return }
        shown.withLock { shown in
            if shown { FileHandleOutput.standardError("\r\u{1B}[K") }
            shown = false
        }
    }

    /// A message for the technician (statistics, warnings) that must not land on the progress line.
    func message(_ text: String) {
        clear()
        FileHandleOutput.standardError(TerminalText.lines(text))
    }

    var scanUpdate: ScanProgressHandler {
        { [self] p in
            var line = "\(p.probes) probes, \(p.found) found, at \(p.current), \(Int(p.fractionDone * 100))%"
            if let left = p.estimatedRemaining { line += ", about \(left.components.seconds + 1) s left" }
            show(line)
        }
    }
}

/// For waits that report nothing of their own (a meter's answer, the daemon's socket, a big query):
/// silent for the first second, then "what … N s" once a second until stopped.
final class ProgressTicker: Sendable {
    private let line: ProgressLine
    private let what: Mutex<String>
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)
    /// Drawing happens under this lock, so nothing is drawn after stop() returned.
    private let stopped = Mutex<Bool>(false)

    init(_ what: String, line: ProgressLine = ProgressLine()) {
        self.line = line
        self.what = Mutex(what)
        guard line.enabled else { return }
        let started = ContinuousClock.now
        let t = Task { [weak self] in
            var next = started + .seconds(1)
            while !Task.isCancelled {
                try? await Task.sleep(until: next, clock: .continuous)
                guard !Task.isCancelled, let self else { return }
                let elapsed = (ContinuousClock.now - started).components.seconds
                let text = "\(self.what.withLock { $0 }) \(elapsed) s"
                self.stopped.withLock { if !$0 { self.line.show(text) } }
                next += .seconds(1)
            }
        }
        task.withLock { $0 = t }
    }

    /// Changes the text from the next tick on (a new phase of the same wait).
    func update(_ what: String) { self.what.withLock { $0 = what } }

    func stop() {
        stopped.withLock { $0 = true }
        task.withLock { $0?.cancel(); $0 = nil }
        line.clear()
    }

    deinit { task.withLock { $0?.cancel() } }
}
