#if canImport(Glibc)
import Glibc
#endif

/// posix_spawn for the tests' child processes (the daemon, the CLI, brokers, pymodbus, Chromium, crash
/// probes): one copy for every test target. Not Foundation.Process: its waitUntilExit spins a run loop on a
/// cooperative thread and can starve or deadlock on a loaded 2-core machine. The child starts with no
/// signal blocked and default handlers, whatever the spawning thread had (dispatch workers block SIGTERM,
/// and a child would inherit that).
public enum ChildProcess {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Where a child's standard output goes.
    public enum Output: Sendable {
        case null
        /// A file, truncated first unless `append`.
        case file(String, append: Bool = false)
        /// An open descriptor (a pipe's write end); `closeInChild` is the other end, closed in the child.
        case descriptor(Int32, closeInChild: Int32?)
    }

    /// Starts `executable` with stdin from /dev/null. Standard error goes to `stderr`, or with standard
    /// output when nil. With `ownGroup`, the child leads a process group of its own, so killing the group
    /// (`kill(-pid, …)`) takes its helpers with it.
    public static func spawn(_ executable: String, _ arguments: [String], output: Output, stderr: String? = nil,
                             ownGroup: Bool = false) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        switch output {
        case .null:
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        case .file(let path, let append):
            posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0o644)
        case .descriptor(let fd, let other):
            posix_spawn_file_actions_adddup2(&actions, fd, 1)
            if let other { posix_spawn_file_actions_addclose(&actions, other) }
        }
        if let stderr {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGHUP, SIGINT, SIGPIPE] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw Failure(description: "posix_spawn \(executable) failed: \(String(cString: strerror(rc)))") }
        return child
    }

    /// The older spelling used by the CLI tests: standard output to a file.
    public static func spawn(_ executable: String, _ arguments: [String], stdout: String, stderr: String? = nil,
                             ownGroup: Bool = false) throws -> pid_t {
        try spawn(executable, arguments, output: .file(stdout), stderr: stderr, ownGroup: ownGroup)
    }

    /// Waits for `pid` (EINTR retried) and returns its wait status.
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// Runs to the end with output discarded; the exit code (minus the signal when killed), -1 when it
    /// could not start.
    public static func run(_ executable: String, _ arguments: [String]) -> Int32 {
        guard let pid = try? spawn(executable, arguments, output: .null, stderr: "/dev/null") else { return -1 }
        return exitCode(wait(pid))
    }

    /// A wait status as an exit code; killed by a signal gives minus the signal.
    public static func exitCode(_ status: Int32) -> Int32 {
        (status & 0x7F) == 0 ? (status >> 8) & 0xFF : -(status & 0x7F)
    }
}
