import CMosquitto
import Uplink
import Foundation
import TestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the MQTT tests need on the machine: the mosquitto broker (Debian package `mosquitto`,
/// installed by scripts/install-deps.sh) and, for TLS, the openssl command.
enum MQTTTestEnvironment {
    static let broker = "/usr/sbin/mosquitto"
    static let openssl = ["/usr/bin/openssl", "/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let passwd = ["/usr/bin/mosquitto_passwd", "/bin/mosquitto_passwd"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var brokerAvailable: Bool { FileManager.default.isExecutableFile(atPath: broker) }
    static let missingBroker = "needs the mosquitto broker at /usr/sbin/mosquitto: run scripts/install-deps.sh (apt package mosquitto)"

    /// A fresh directory for one test's broker configuration, database and certificates.
    static func temporaryDirectory(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "gatewayd-mqtt-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// posix_spawn + waitpid, output to `log` (Foundation's waitUntilExit starves on 2 cores).
    @discardableResult
    static func run(_ path: String, _ args: [String], log: String = "/dev/null") -> Int32 {
        guard let pid = try? spawn(path, args, log: log) else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }

    static func spawn(_ path: String, _ args: [String], log: String) throws -> pid_t {
        do {
            return try ChildProcess.spawn(path, args, output: .file(log, append: true))
        } catch {
            throw MQTTTestError("cannot spawn \(path): \(error)")
        }
    }
}

struct MQTTTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A TCP port nobody listens on now on 127.0.0.1 (bind to port 0, read it back, close).
func mqttFreePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A mosquitto broker on 127.0.0.1 with its own configuration and persistence directory; it can be
/// stopped and started again on the same port, keeping its database (sessions, queued messages).
final class MosquittoBroker: @unchecked Sendable {
    let directory: String
    let port: Int
    let configPath: String
    private(set) var pid: pid_t?

    /// A second, plain-TCP listener for the test's own clients when `port` speaks TLS.
    let plainPort: Int

    /// `listener` lines are written for `port`; `extra` goes into the listener's section (TLS files).
    init(name: String, extra: [String] = [], global: [String] = []) throws {
        directory = MQTTTestEnvironment.temporaryDirectory(name)
        port = mqttFreePort()
        plainPort = extra.isEmpty ? port : mqttFreePort()
        configPath = directory + "/mosquitto.conf"
        let user = String(cString: getpwuid(getuid()).pointee.pw_name)
        let lines = [
            "per_listener_settings false",
            // Running as root, mosquitto would switch to the "mosquitto" user and lose the temp dir.
            "user \(user)",
            "persistence true",
            "persistence_location \(directory)/",
            "persistence_file broker.db",
            "autosave_interval 1",
            // The default of 1,000 queued messages per client drops QoS 1 for a slow subscriber.
            "max_queued_messages 0",
            "log_dest file \(directory)/mosquitto.log",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ] + (global.isEmpty ? ["allow_anonymous true"] : global) + ["listener \(port) 127.0.0.1"] + extra
            + (plainPort == port ? [] : ["listener \(plainPort) 127.0.0.1"])
        try (lines.joined(separator: "\n") + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        try start()
    }

    func start() throws {
        precondition(pid == nil)
        pid = try MQTTTestEnvironment.spawn(MQTTTestEnvironment.broker, ["-c", configPath], log: directory + "/mosquitto.out")
        let deadline = ContinuousClock.now + .seconds(10)
        while !accepts() {
            var status: Int32 = 0
            if let pid, waitpid(pid, &status, WNOHANG) == pid {
                self.pid = nil
                throw MQTTTestError("mosquitto exited at start: \(log())")
            }
            if ContinuousClock.now > deadline { throw MQTTTestError("mosquitto does not listen on \(port): \(log())") }
            usleep(20_000)
        }
    }

    /// SIGTERM: mosquitto writes its database and exits; waits for it.
    func stop(signal: Int32 = SIGTERM) {
        guard let pid else { return }
        kill(pid, SIGCONT)
        kill(pid, signal)
        var status: Int32 = 0
        let deadline = ContinuousClock.now + .seconds(10)
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now > deadline { kill(pid, SIGKILL) }
            usleep(10_000)
        }
        self.pid = nil
    }

    /// SIGSTOP: the TCP connections stay up but nothing answers, like a broker stuck under load.
    func pause() { if let pid { kill(pid, SIGSTOP) } }
    func resume() { if let pid { kill(pid, SIGCONT) } }

    func restart() throws {
        stop()
        try start()
    }

    func log() -> String {
        let out = (try? String(contentsOfFile: directory + "/mosquitto.out", encoding: .utf8)) ?? ""
        let log = (try? String(contentsOfFile: directory + "/mosquitto.log", encoding: .utf8)) ?? ""
        return String((out + log).suffix(2000))
    }

    private func accepts() -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// The far side in the tests: an MQTT 3.1.1 client written directly on libmosquitto with the
/// library's own thread (`mosquitto_loop_start`), independent of MQTTTransport's code. Persistent
/// session, so it receives what was queued for it while the broker restarted.
final class TestMQTTClient: Sendable {
    struct Message: Sendable {
        var topic: String
        var payload: [UInt8]
        var retained: Bool
    }

    private struct Handle: @unchecked Sendable { let pointer: OpaquePointer }
    private let handle: Handle
    private let subscriptions: [String]
    let messages = Mutex<[Message]>([])
    let connected = Mutex(false)

    init(id: String, port: Int, subscriptions: [String], cleanSession: Bool = false, username: String? = nil, password: String? = nil) throws {
        _ = mosquitto_lib_init()
        self.subscriptions = subscriptions
        guard let mosq = mosquitto_new(id, cleanSession, nil) else { throw MQTTTestError("mosquitto_new") }
        handle = Handle(pointer: mosq)
        mosquitto_user_data_set(mosq, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_connect_callback_set(mosq) { mosq, context, rc in
            let client = Unmanaged<TestMQTTClient>.fromOpaque(context!).takeUnretainedValue()
            guard rc == 0 else { return }
            for topic in client.subscriptions { _ = mosquitto_subscribe(mosq, nil, topic, 1) }
            client.connected.withLock { $0 = true }
        }
        mosquitto_disconnect_callback_set(mosq) { _, context, _ in
            Unmanaged<TestMQTTClient>.fromOpaque(context!).takeUnretainedValue().connected.withLock { $0 = false }
        }
        mosquitto_message_callback_set(mosq) { _, context, message in
            guard let m = message?.pointee else { return }
            let client = Unmanaged<TestMQTTClient>.fromOpaque(context!).takeUnretainedValue()
            let payload = m.payloadlen > 0 ? Array(UnsafeRawBufferPointer(start: m.payload, count: Int(m.payloadlen))) : []
            client.messages.withLock { $0.append(Message(topic: String(cString: m.topic), payload: payload, retained: m.retain)) }
        }
        _ = mosquitto_reconnect_delay_set(mosq, 1, 2, false)
        if let username { _ = mosquitto_username_pw_set(mosq, username, password) }
        // A broker just started may not listen yet on a loaded machine: refused connects are retried for 10 s.
        var rc = mosquitto_connect(mosq, "127.0.0.1", Int32(port), 30)
        for _ in 0..<100 where rc == MOSQ_ERR_ERRNO.rawValue && errno == ECONNREFUSED {
            usleep(100_000)
            rc = mosquitto_connect(mosq, "127.0.0.1", Int32(port), 30)
        }
        guard rc == MOSQ_ERR_SUCCESS.rawValue else { throw MQTTTestError("test client cannot connect: \(String(cString: mosquitto_strerror(rc)))") }
        _ = mosquitto_loop_start(mosq)
        // Subscribed once the SUBACK is back; a short settle is simpler than tracking it here.
        try mqttWaitUntil("test client \(id) connected", timeout: .seconds(5)) { self.connected.withLock { $0 } }
        usleep(200_000)
    }

    /// Publishes QoS 1 (retained if asked) and gives the loop thread time to send it.
    func publish(_ topic: String, _ payload: [UInt8], retain: Bool) {
        _ = payload.withUnsafeBytes { mosquitto_publish(handle.pointer, nil, topic, Int32($0.count), $0.baseAddress, 1, retain) }
    }

    func received(on topic: String) -> [Message] { messages.withLock { $0.filter { $0.topic == topic } } }

    func close() {
        _ = mosquitto_disconnect(handle.pointer)
        _ = mosquitto_loop_stop(handle.pointer, false)
    }

    deinit {
        _ = mosquitto_disconnect(handle.pointer)
        _ = mosquitto_loop_stop(handle.pointer, true)
        mosquitto_destroy(handle.pointer)
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
func mqttWaitUntil(_ what: String, timeout: Duration, _ condition: () -> Bool) throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now > deadline { throw MQTTTestError("timed out waiting for \(what)") }
        usleep(20_000)
    }
}

/// The envelope of a received payload as a dictionary (gunzipped when it is gzip).
func mqttEnvelope(_ payload: [UInt8]) throws -> [String: Any] {
    let json = try MQTTPayload.decode(payload)
    guard let object = try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] else {
        throw MQTTTestError("payload is not a JSON object: \(String(decoding: json, as: UTF8.self))")
    }
    return object
}
