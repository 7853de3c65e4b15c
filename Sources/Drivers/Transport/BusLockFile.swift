#if canImport(Glibc)
import Glibc
#endif

/// The cross-process half of a bus line's lock: an flock(2) on a lock file named after the line.
///
/// The daemon and a technician's CLI may both have the same serial port open; each request/response
/// pair is sent only while this lock is held, so the two never talk over each other. The holder's
/// pid is written into the file so the other side can say who is using the bus.
public final class BusLockFile {
    public let path: String
    private var fd: Int32 = -1
    private var held = false

    /// Where lock files go: $GATEWAYD_LOCK_DIR, else /run/lock (world-writable on Debian), else /tmp.
    public static var defaultDirectory: String {
        if let dir = getenv("GATEWAYD_LOCK_DIR") { return String(cString: dir) }
        if access("/run/lock", W_OK) == 0 { return "/run/lock" }
        return "/tmp"
    }

    /// The group a new lock file is given when it exists: the service's own group, which technicians who
    /// run `gatewayd mbus …` beside the daemon are members of (docs/operations.md).
    public static let sharedGroup = "gatewayd"

    /// Lock files are for the daemon's user and its group only: in a world-writable /run/lock a file
    /// anyone may write lets any local user hold the bus (and stop every readout) or rewrite the pid.
    public static let mode: mode_t = 0o660

    /// The group new lock files get (nil: the creator's own group).
    public let group: String?

    public init(endpoint: BusEndpoint, directory: String = BusLockFile.defaultDirectory, group: String? = BusLockFile.sharedGroup) {
        var safe = ""
        for c in endpoint.description.unicodeScalars {
            safe.unicodeScalars.append(LockFileName.isPortable(c) ? c : "_")
        }
        path = directory + "/gatewayd-bus" + safe + ".lock"
        self.group = group
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Takes the lock, waiting until `deadline`. On timeout the error names the holder.
    public func acquire(deadline: Deadline) throws(TransportError) {
        if held { return }
        if fd < 0 { fd = try openLockFile() }
        var pause: Duration = .milliseconds(5)
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                held = true
                let me = "\(getpid())\n"
                _ = ftruncate(fd, 0)
                _ = me.withCString { pwrite(fd, $0, strlen($0), 0) }
                return
            }
            let e = errno
            guard e == EWOULDBLOCK || e == EINTR else {
                throw TransportError(.io, "cannot lock \(path): \(Errno(e))")
            }
            if ContinuousClock.now >= deadline {
                throw TransportError(.deviceBusy, "the bus is in use by \(holderDescription()); try again when its readout is done, or stop it (`systemctl stop gatewayd`)")
            }
            var ts = timespec(tv_sec: 0, tv_nsec: Int(pause.components.attoseconds / 1_000_000_000))
            nanosleep(&ts, nil)
            pause = min(pause * 2, .milliseconds(100))
        }
    }

    /// Opens the lock file, creating it 0660 (group `group`) when it is not there yet.
    ///
    /// An existing file is opened without O_CREAT: in a sticky world-writable directory such as /run/lock,
    /// fs.protected_regular refuses O_CREAT on a file another user owns even when we may write it.
    /// O_NOFOLLOW and the regular-file check keep a planted symlink or device node from being truncated.
    private func openLockFile() throws(TransportError) -> Int32 {
        while true {
            let existing = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
            if existing >= 0 { return try checkedRegularFile(existing) }
            var e = errno
            if e == EINTR { continue }
            guard e == ENOENT else { throw openError(e) }
            let created = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, Self.mode)
            if created >= 0 {
                shareWithGroup(created)
                return created
            }
            e = errno
            // Another process created it between the two calls: open theirs.
            if e == EEXIST || e == EINTR { continue }
            throw openError(e)
        }
    }

    private func checkedRegularFile(_ descriptor: Int32) throws(TransportError) -> Int32 {
        var st = stat()
        guard fstat(descriptor, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            Glibc.close(descriptor)
            throw TransportError(.permissionDenied, "the bus lock \(path) is not a plain file; remove it (someone may have put it there on purpose) or set GATEWAYD_LOCK_DIR to a directory only gatewayd's group can write")
        }
        return descriptor
    }

    /// The umask (UMask=0027 in the unit) may have taken the group's write bit: set the mode outright,
    /// then hand the file to the shared group. A creator outside that group keeps its own; members of the
    /// group it was meant for then get the "add yourself to the group" error below.
    private func shareWithGroup(_ descriptor: Int32) {
        _ = fchmod(descriptor, Self.mode)
        guard let group, let entry = getgrnam(group) else { return }
        _ = fchown(descriptor, uid_t.max, entry.pointee.gr_gid)
    }

    private func openError(_ e: Int32) -> TransportError {
        switch e {
        case EACCES, EPERM:
            let who = group.map { "add yourself to group \($0) (sudo usermod -aG \($0) $USER, then log in again)" } ?? "run as the user that created it"
            return TransportError(.permissionDenied, "cannot open the bus lock \(path) (\(Errno(e))): it belongs to another user; \(who), or set GATEWAYD_LOCK_DIR to a directory you can write")
        case ELOOP:
            return TransportError(.permissionDenied, "the bus lock \(path) is a symbolic link; remove it (someone may have put it there on purpose) or set GATEWAYD_LOCK_DIR to a directory only gatewayd's group can write")
        default:
            return TransportError(.permissionDenied, "cannot create the bus lock \(path) (\(Errno(e))); set GATEWAYD_LOCK_DIR to a writable directory")
        }
    }

    public func release() {
        guard held else { return }
        held = false
        _ = flock(fd, LOCK_UN)
    }

    /// "gatewayd (pid 1234)" from the pid in the file and /proc.
    func holderDescription() -> String {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = pread(fd, &buffer, 31, 0)
        guard n > 0, let pid = Int32(String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").first ?? "") else {
            return "another process"
        }
        var comm = [UInt8](repeating: 0, count: 64)
        let cfd = open("/proc/\(pid)/comm", O_RDONLY | O_CLOEXEC)
        if cfd >= 0 {
            let m = Glibc.read(cfd, &comm, 63)
            Glibc.close(cfd)
            if m > 0 {
                let name = String(decoding: comm[0..<m], as: UTF8.self).split(separator: "\n").first ?? "?"
                return "\(name) (pid \(pid))"
            }
        }
        return "process \(pid)"
    }
}

enum LockFileName {
    static func isPortable(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", "-", ".": return true
        default: return false
        }
    }
}
