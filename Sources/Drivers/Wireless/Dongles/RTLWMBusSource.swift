#if canImport(Glibc)
import Glibc
#endif

/// rtl_wmbus output read from a file descriptor (stdin, a pipe from `rtl_sdr … | rtl_wmbus`, a file),
/// as the same events a dongle session gives: telegrams whose CRCs rtl_wmbus checked, problems for
/// invalid lines and CRC failures, `.state(.stopped)` at the end of the input.
///
/// Reads block in poll(2) on the actor's own thread; cancelling the consumer ends the reading within
/// a tenth of a second. The descriptor is not closed.
public actor RTLWMBusSource {
    public let fileDescriptor: Int32
    public let receiver: String
    private let executor: ThreadExecutor

    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    public init(fileDescriptor: Int32 = 0, receiver: String = "rtl_wmbus") {
        self.fileDescriptor = fileDescriptor
        self.receiver = receiver
        executor = ThreadExecutor(name: "rtl_wmbus fd \(fileDescriptor)")
    }

    deinit { executor.shutdown() }

    public nonisolated func events(bufferLimit: Int = 4096) -> AsyncStream<DongleEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: DongleEvent.self, bufferingPolicy: .bufferingOldest(bufferLimit))
        let task = Task { await self.run(continuation) }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func run(_ continuation: AsyncStream<DongleEvent>.Continuation) {
        var reader = RTLWMBusLineReader()
        var buffer = [UInt8](repeating: 0, count: 4096)
        func deliver(_ e: RTLWMBusLineReader.Event) {
            switch e {
            case .line(let line):
                if let t = line.receivedTelegram(receiver: receiver) {
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
            var p = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 100)
            if ready < 0 {
                if errno == EINTR { continue }
                continuation.yield(.problem(DongleError(.transport, "poll on rtl_wmbus input failed: \(Errno(errno))")))
                break
            }
            if ready == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, $0.count) }
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
        continuation.yield(.state(.stopped))
        continuation.finish()
    }
}
