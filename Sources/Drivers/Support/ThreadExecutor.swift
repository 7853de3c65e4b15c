import CThread
#if canImport(Glibc)
import Glibc
#endif

/// A serial executor that runs its jobs on one dedicated thread.
///
/// Bus lines do blocking I/O (poll, read, write with deadlines). Giving each line its own thread keeps
/// that blocking off Swift's shared cooperative pool, which on a 2-core board has only two threads.
public final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    // Guarded by `mutex`; the job queue is the only shared state.
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var jobs: [UnownedJob] = []
    private var stopping = false
    private var thread = pthread_t()
    public let name: String

    public init(name: String) {
        self.name = name
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let executor = Unmanaged<ThreadExecutor>.fromOpaque(raw!).takeRetainedValue()
            executor.nameThread()
            executor.run()
            return nil
        }, context)
        precondition(rc == 0, "pthread_create failed for \(name): \(rc)")
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        pthread_mutex_lock(&mutex)
        jobs.append(unowned)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread finish the queued jobs and exit. Jobs enqueued later still run (then it exits).
    public func shutdown() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Names the thread after the line (`top -H`, `ps -L`, /proc/PID/task/*/comm): without it, it carries
    /// the name of whichever pool thread created it. Linux allows 15 bytes; the end of the name (the
    /// device) says more than its start, so a long name keeps its last 15 bytes.
    private func nameThread() {
        var bytes = Array(name.utf8.filter { $0 >= 0x20 && $0 < 0x7F })
        if bytes.count > 15 { bytes = Array(bytes.suffix(15)) }
        bytes.append(0)
        _ = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { cthread_set_name($0.baseAddress!) }
        }
    }

    private func run() {
        while true {
            pthread_mutex_lock(&mutex)
            while jobs.isEmpty && !stopping {
                pthread_cond_wait(&condition, &mutex)
            }
            if jobs.isEmpty && stopping {
                pthread_mutex_unlock(&mutex)
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            pthread_mutex_unlock(&mutex)
            for job in batch {
                job.runSynchronously(on: asUnownedSerialExecutor())
            }
        }
    }
}
