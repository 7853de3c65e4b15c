#if canImport(Glibc)
import Glibc
#endif

/// A transparent M-Bus/TCP converter: the TCP stream carries the M-Bus bytes unchanged.
public final class TCPTransport: ByteTransport {
    public let name: String
    private var fd: Int32
    /// Line speed behind the converter, if configured, for timeouts scaled to it.
    public let lineSettings: SerialSettings?

    public init(host: String, port: UInt16, lineSettings: SerialSettings? = nil,
                connectTimeout: Duration = .seconds(5)) throws(TransportError) {
        name = BusEndpoint.tcp(host: host, port: port).description
        self.lineSettings = lineSettings
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw TransportError(.hostNotFound, "cannot resolve \(host): \(String(cString: gai_strerror(rc))); check the converter's address")
        }
        defer { freeaddrinfo(result) }
        var lastError = "no address"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let ai = candidate {
            candidate = ai.pointee.ai_next
            let s = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            if s < 0 { lastError = Errno(errno).description; continue }
            var one: Int32 = 1
            // Requests are a few bytes; Nagle would hold them back and eat the response window.
            setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if connect(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 {
                fd = s
                return
            }
            if errno == EINPROGRESS {
                var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
                let deadline = ContinuousClock.now + connectTimeout
                let ready = poll(&p, 1, deadline.pollTimeoutMilliseconds)
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len)
                if ready > 0 && err == 0 {
                    fd = s
                    return
                }
                lastError = ready == 0 ? "timed out after \(connectTimeout)" : Errno(err).description
            } else {
                lastError = Errno(errno).description
            }
            Glibc.close(s)
        }
        throw TransportError(.connectionFailed, "cannot connect to \(name): \(lastError); is the converter powered and reachable?")
    }

    deinit { close() }

    public var byteTime: Duration? { lineSettings.map { $0.bitTime * $0.bitsPerByte } }

    public func write(_ bytes: [UInt8]) throws(TransportError) {
        guard fd >= 0 else { throw TransportError(.disconnected, "\(name) is closed") }
        if let e = writeAll(fd, bytes, write: { send($0, $1, $2, Int32(MSG_NOSIGNAL)) }) {
            throw TransportError(.disconnected, "\(name): connection lost while sending (\(e.errno))")
        }
    }

    public func read(maximum: Int, deadline: Deadline) throws(TransportError) -> [UInt8] {
        guard fd >= 0 else { throw TransportError(.disconnected, "\(name) is closed") }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        var ready: Int32 = -1
        while ready < 0 {
            ready = poll(&p, 1, deadline.pollTimeoutMilliseconds)
            if ready < 0 && errno != EINTR {
                throw TransportError(.io, "\(name): poll failed (\(Errno(errno)))")
            }
        }
        if ready == 0 { return [] }
        var buffer = [UInt8](repeating: 0, count: maximum)
        var n = -1
        while n < 0 {
            n = buffer.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress!, raw.count, 0) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN { return [] }
                throw TransportError(.disconnected, "\(name): connection lost (\(Errno(e)))")
            }
        }
        if n == 0 { throw TransportError(.disconnected, "\(name) closed the connection") }
        buffer.removeSubrange(n...)
        return buffer
    }

    public func discardInput() throws(TransportError) {
        // Drain whatever is queued without waiting.
        while true {
            let bytes = try read(maximum: 4096, deadline: .now)
            if bytes.isEmpty { return }
        }
    }

    public func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }
}
