// buffer-crash-probe: ingests numbered readings into a SQLiteReadingBuffer and prints an ACK line
// after each committed batch, until it is killed. The crash test (GatewayTests) kills it with SIGKILL
// at random moments and checks that every acknowledged reading is stored exactly once.
//
//   buffer-crash-probe DB_PATH [BATCH_SIZE]
//
// On start it resumes after the newest stored reading, as a replay source would.
import Dispatch
import Gateway
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print("usage: buffer-crash-probe DB_PATH [BATCH_SIZE]")
    exit(64)
}
let path = arguments[1]
let batchSize = arguments.count > 2 ? Int(arguments[2]) ?? 50 : 50
let device = "crash-probe"

func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + done, $0.count - done) }
        if n <= 0 { return }
        done += n
    }
}

let semaphore = DispatchSemaphore(value: 0)
Task.detached {
    do {
        let buffer = try SQLiteReadingBuffer(path: path, capacity: 10_000_000)
        var next = Int64((try await buffer.newest(device: device)?.value ?? -1) + 1)
        say("START \(next)")
        while true {
            let readings = (0..<Int64(batchSize)).map { k in
                Reading(device: device, quantity: "Volume", value: Double(next + k), unit: "m^3", raw: "seq \(next + k)",
                        receivedAt: 1_790_000_000_000 + next + k)
            }
            _ = try await buffer.append(readings)
            say("ACK \(next) \(next + Int64(batchSize) - 1)")
            next += Int64(batchSize)
        }
    } catch {
        say("ERROR \(error)")
        semaphore.signal()
    }
}
semaphore.wait()
exit(1)
