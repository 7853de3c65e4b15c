import Glibc
import Synchronization

/// Identity of a file's contents as stat(2) sees them: a rewrite (new inode, as editors and
/// `install` do) or an in-place write (new mtime or size) changes it.
public struct FileStamp: Sendable, Hashable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var mtimeSeconds: Int64
    var mtimeNanoseconds: Int64

    /// stat(2) of `path`; nil when it does not exist or cannot be read.
    public static func of(_ path: String) -> FileStamp? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileStamp(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                         mtimeSeconds: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: Int64(st.st_mtim.tv_nsec))
    }
}

enum FileRead {
    case contents([UInt8])
    case failed(String)
}

/// A small file (a bearer token) whose contents are read again only when its stamp changes.
final class WatchedFile: Sendable {
    let path: String
    private let cache = Mutex<(stamp: FileStamp?, contents: [UInt8]?)>((nil, nil))

    init(path: String) { self.path = path }

    func contents() -> FileRead {
        guard let stamp = FileStamp.of(path) else {
            return .failed(String(cString: strerror(errno)))
        }
        if let hit = cache.withLock({ $0.stamp == stamp ? $0.contents : nil }) { return .contents(hit) }
        switch Self.read(path, limit: 64 << 10) {
        case .contents(let bytes):
            cache.withLock { $0 = (stamp, bytes) }
            return .contents(bytes)
        case .failed(let why):
            return .failed(why)
        }
    }

    /// open(2)/read(2) of at most `limit` bytes.
    static func read(_ path: String, limit: Int) -> FileRead {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failed(String(cString: strerror(errno))) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failed(String(cString: strerror(errno)))
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return .contents(out)
    }
}
