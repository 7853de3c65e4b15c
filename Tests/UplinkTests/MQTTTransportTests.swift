import Foundation
import Logging
import Synchronization
import Testing
@testable import Uplink

#if canImport(Glibc)
import Glibc
#endif

/// MQTTTransport against a real mosquitto broker that each test starts on 127.0.0.1.
@Suite("MQTT transport against mosquitto", .serialized, .enabled(if: MQTTTestEnvironment.brokerAvailable, Comment(rawValue: MQTTTestEnvironment.missingBroker)))
struct MQTTTransportTests {
    static let prefix = "test/plant"
    /// Warnings and worse on standard error; GATEWAYD_TEST_LOG=debug shows libmosquitto's errors too.
    let testLogger: Logger = {
        var logger = Logger(label: "mqtt-test") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["GATEWAYD_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }()

    static func configuration(port: Int, gateway: String, tls: MQTTTransportConfiguration.TLS? = nil) -> MQTTTransportConfiguration {
        var c = MQTTTransportConfiguration(host: "127.0.0.1", port: port, gatewayID: gateway, topicPrefix: prefix, tls: tls)
        c.acknowledgementTimeout = .seconds(5)
        c.reconnectDelay = .init(initial: .milliseconds(100), maximum: .seconds(1))
        c.registryWait = .seconds(3)
        return c
    }

    static func batch(_ number: Int, readings: Int) -> UplinkBatch {
        let ids = (0..<readings).map { "r-\(number)-\($0)" }
        let items = ids.enumerated().map { i, id in
            "{\"id\":\"\(id)\",\"device\":\"12345678\",\"quantity\":\"energy\",\"value\":\(number * 1000 + i),\"unit\":\"Wh\"}"
        }
        let body = "{\"batch_id\":\"b-\(number)\",\"readings\":[\(items.joined(separator: ","))]}"
        return UplinkBatch(id: "b-\(number)", readingIDs: ids, body: Array(body.utf8))
    }

    /// Reading ids seen on the readings topic, with how often each arrived.
    static func readingCounts(_ client: TestMQTTClient, topic: String) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for message in client.received(on: topic) {
            let e = try mqttEnvelope(message.payload)
            for id in e["reading_ids"] as? [String] ?? [] { counts[id, default: 0] += 1 }
        }
        return counts
    }

    /// Delivers until the broker acknowledges; returns the attempts it took.
    static func deliverUntilAccepted(_ transport: MQTTTransport, _ message: PortalMessage, limit: Int = 200) async -> (Int, DeliveryOutcome) {
        var last = DeliveryOutcome.transient(reason: "not tried", retryAfter: nil)
        for attempt in 1...limit {
            last = await transport.deliver(message)
            switch last {
            case .accepted: return (attempt, last)
            case .transient: try? await Task.sleep(for: .milliseconds(100))
            default: return (attempt, last)
            }
        }
        return (limit, last)
    }

    @Test("readings batches arrive exactly once; alarms, health and commissioning on their own topics")
    func readingsExactlyOnce() async throws {
        let broker = try MosquittoBroker(name: "once")
        defer { broker.stop() }
        let gateway = "gw-once"
        let subscriber = try TestMQTTClient(id: "sub-once", port: broker.port, subscriptions: ["\(Self.prefix)/+/#"])
        defer { subscriber.close() }
        var config = Self.configuration(port: broker.port, gateway: gateway)
        config.compression = .gzip(minimumBytes: 2048)
        let transport = try MQTTTransport(configuration: config, logger: testLogger)

        let batches = (0..<200).map { Self.batch($0, readings: $0 % 3 == 0 ? 60 : 10) }
        let acknowledged = MQTTCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for window in stride(from: 0, to: batches.count, by: 8) {
                for b in batches[window..<min(window + 8, batches.count)] {
                    group.addTask {
                        let outcome = await transport.deliver(.readings(b))
                        #expect(outcome == .accepted, "batch \(b.id): \(outcome)")
                        if outcome == .accepted { acknowledged.add(1) }
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(await transport.deliver(.alarms(id: "alarm-1", body: Array("{\"alarm\":\"leak\"}".utf8))) == .accepted)
        #expect(await transport.deliver(.health(body: Array("{\"queue_depth\":0}".utf8))) == .accepted)
        #expect(await transport.deliver(.commissioningReport(id: "c-1", body: Array("[1,2]".utf8))) == .accepted)

        let topic = "\(Self.prefix)/\(gateway)/readings"
        let sentIDs = Set(batches.flatMap(\.readingIDs))
        try mqttWaitUntil("all readings at the subscriber", timeout: .seconds(20)) {
            (try? Self.readingCounts(subscriber, topic: topic).count) == sentIDs.count
        }
        try mqttWaitUntil("alarm, health and commissioning", timeout: .seconds(5)) {
            !subscriber.received(on: "\(Self.prefix)/\(gateway)/commissioning").isEmpty
        }
        let counts = try Self.readingCounts(subscriber, topic: topic)
        let duplicates = counts.values.reduce(0) { $0 + $1 - 1 }
        let messages = subscriber.received(on: topic)
        let gzipped = messages.filter { $0.payload.first == 0x1F }.count
        print("MQTT exactly once: sent \(batches.count) batches / \(sentIDs.count) readings, acknowledged \(acknowledged.value) batches, received \(messages.count) messages (\(gzipped) gzip) / \(counts.count) unique readings, \(duplicates) duplicates")
        #expect(Set(counts.keys) == sentIDs)
        #expect(duplicates == 0)
        #expect(acknowledged.value == batches.count)
        #expect(gzipped > 0 && gzipped < messages.count, "the 60-reading batches are over the gzip threshold, the others not")

        // The envelope carries what a Kafka consumer needs without the topic.
        let first = try mqttEnvelope(messages[0].payload)
        #expect(first["v"] as? Int == 1)
        #expect(first["type"] as? String == "readings")
        #expect(first["gateway_id"] as? String == gateway)
        let batchID = try #require(first["id"] as? String)
        let body = try #require(first["body"] as? [String: Any])
        #expect(body["batch_id"] as? String == batchID)

        let alarm = try mqttEnvelope(try #require(subscriber.received(on: "\(Self.prefix)/\(gateway)/alarms").first).payload)
        #expect(alarm["type"] as? String == "alarms" && alarm["id"] as? String == "alarm-1")
        #expect((alarm["body"] as? [String: Any])?["alarm"] as? String == "leak")
        let health = try mqttEnvelope(try #require(subscriber.received(on: "\(Self.prefix)/\(gateway)/health").first).payload)
        #expect(health["type"] as? String == "health" && health["id"] == nil)
        let report = try mqttEnvelope(try #require(subscriber.received(on: "\(Self.prefix)/\(gateway)/commissioning").first).payload)
        #expect(report["id"] as? String == "c-1" && (report["body"] as? [Int]) == [1, 2])

        let stats = transport.statistics
        #expect(stats.published == stats.acknowledged && stats.timedOut == 0)
        await transport.shutdown()
        #expect(await transport.deliver(.health(body: Array("{}".utf8))) != .accepted)
    }

    @Test("the Last Will publishes a retained \"offline\" when the connection dies; a clean shutdown says so too")
    func lastWill() async throws {
        let broker = try MosquittoBroker(name: "will")
        defer { broker.stop() }
        let gateway = "gw-will"
        let statusTopic = "\(Self.prefix)/\(gateway)/status"
        let subscriber = try TestMQTTClient(id: "sub-will", port: broker.port, subscriptions: ["\(Self.prefix)/\(gateway)/#"])
        defer { subscriber.close() }
        let transport = try MQTTTransport(configuration: Self.configuration(port: broker.port, gateway: gateway), logger: testLogger)
        func statuses() -> [String] {
            subscriber.received(on: statusTopic).compactMap { try? mqttEnvelope($0.payload)["status"] as? String }
        }
        try mqttWaitUntil("online", timeout: .seconds(10)) { statuses() == ["online"] }

        transport.session.dropConnectionForTesting()
        try mqttWaitUntil("the Last Will", timeout: .seconds(10)) { statuses().count >= 2 }
        #expect(statuses()[1] == "offline", "\(statuses())")
        try mqttWaitUntil("online again after the reconnect", timeout: .seconds(10)) { statuses().count >= 3 }
        #expect(statuses() == ["online", "offline", "online"])
        #expect(await transport.deliver(.health(body: Array("{}".utf8))) == .accepted)
        #expect(transport.statistics.connectionLosses == 1 && transport.statistics.connects == 2)

        // The status is retained: a newcomer learns the current state at once.
        let late = try TestMQTTClient(id: "late-will", port: broker.port, subscriptions: [statusTopic], cleanSession: true)
        defer { late.close() }
        try mqttWaitUntil("retained online", timeout: .seconds(5)) { !late.received(on: statusTopic).isEmpty }
        let retained = late.received(on: statusTopic)[0]
        let retainedStatus = try mqttEnvelope(retained.payload)["status"] as? String
        #expect(retained.retained && retainedStatus == "online")

        await transport.shutdown()
        try mqttWaitUntil("offline after shutdown", timeout: .seconds(5)) { statuses().count >= 4 }
        #expect(statuses().last == "offline")
        let after = try TestMQTTClient(id: "after-will", port: broker.port, subscriptions: [statusTopic], cleanSession: true)
        defer { after.close() }
        try mqttWaitUntil("retained offline", timeout: .seconds(5)) { !after.received(on: statusTopic).isEmpty }
        let finalStatus = try mqttEnvelope(after.received(on: statusTopic)[0].payload)["status"] as? String
        #expect(finalStatus == "offline")
        print("MQTT last will: statuses seen \(statuses())")
    }

    @Test("the broker restarts twice during a run: every batch is acknowledged and received")
    func brokerRestart() async throws {
        let broker = try MosquittoBroker(name: "restart")
        defer { broker.stop() }
        let gateway = "gw-restart"
        let topic = "\(Self.prefix)/\(gateway)/readings"
        let subscriber = try TestMQTTClient(id: "sub-restart", port: broker.port, subscriptions: [topic])
        defer { subscriber.close() }
        var config = Self.configuration(port: broker.port, gateway: gateway)
        config.acknowledgementTimeout = .seconds(2)
        let transport = try MQTTTransport(configuration: config, logger: testLogger)

        let batches = (0..<600).map { Self.batch($0, readings: 20) }
        let acknowledged = MQTTCounter()
        let attempts = MQTTCounter()
        let sender = Task {
            await withTaskGroup(of: Void.self) { group in
                let next = MQTTCounter()
                for _ in 0..<4 {
                    group.addTask {
                        while true {
                            let i = next.add(1) - 1
                            guard i < batches.count else { return }
                            let (tries, outcome) = await Self.deliverUntilAccepted(transport, .readings(batches[i]))
                            attempts.add(tries)
                            #expect(outcome == .accepted, "batch \(i): \(outcome)")
                            if outcome == .accepted { acknowledged.add(1) }
                            try? await Task.sleep(for: .milliseconds(5))
                        }
                    }
                }
            }
        }
        // The first outage is shorter than the PUBACK timeout (deliveries wait it out), the second
        // longer (they answer transient and the sender resends).
        var restarts = 0
        for (fraction, downtime) in [(3, Duration.milliseconds(500)), (2, Duration.seconds(3))] {
            while acknowledged.value < batches.count / fraction {
                try await Task.sleep(for: .milliseconds(20))
            }
            broker.stop()
            try await Task.sleep(for: downtime)
            try broker.start()
            restarts += 1
        }
        await sender.value

        let sentIDs = Set(batches.flatMap(\.readingIDs))
        try mqttWaitUntil("all readings at the subscriber after the restarts", timeout: .seconds(30)) {
            (try? Self.readingCounts(subscriber, topic: topic).count) == sentIDs.count
        }
        let counts = try Self.readingCounts(subscriber, topic: topic)
        let duplicates = counts.values.reduce(0) { $0 + $1 - 1 }
        let stats = transport.statistics
        print("MQTT broker restart: \(restarts) restarts, sent \(batches.count) batches / \(sentIDs.count) readings in \(attempts.value) attempts, acknowledged \(acknowledged.value), received \(counts.count) unique readings, \(duplicates) duplicate readings; transport: \(stats.connects) connects, \(stats.timedOut) PUBACK timeouts, \(stats.lateAcknowledgements) late PUBACKs")
        #expect(acknowledged.value == batches.count)
        #expect(Set(counts.keys) == sentIDs)
        #expect(stats.connects >= 3, "the transport reconnected after each restart")
        #expect(attempts.value > batches.count, "the long outage made deliveries time out and resend")
        await transport.shutdown()
    }

    @Test("the registry is the retained message on …/registry; unchanged means notModified")
    func registry() async throws {
        let broker = try MosquittoBroker(name: "registry")
        defer { broker.stop() }
        let gateway = "gw-registry"
        let registryTopic = "\(Self.prefix)/\(gateway)/registry"
        let portal = try TestMQTTClient(id: "portal", port: broker.port, subscriptions: [], cleanSession: true)
        defer { portal.close() }
        let document = Array("{\"devices\":[{\"id\":\"12345678\",\"manufacturer\":\"KAM\"}]}".utf8)
        portal.publish(registryTopic, document, retain: true)
        usleep(200_000)

        let transport = try MQTTTransport(configuration: Self.configuration(port: broker.port, gateway: gateway), logger: testLogger)
        let first = await transport.fetchRegistry(ifNoneMatch: nil)
        guard case .document(let body, let etag) = first else {
            Issue.record("expected the retained registry, got \(first)")
            return
        }
        #expect(body == document)
        #expect(etag == MQTTPayload.etag(document))
        #expect(await transport.fetchRegistry(ifNoneMatch: etag) == .notModified)

        let updated = Array("{\"devices\":[]}".utf8)
        portal.publish(registryTopic, updated, retain: true)
        var fetched = RegistryFetch.notModified
        for _ in 0..<100 {
            fetched = await transport.fetchRegistry(ifNoneMatch: etag)
            if fetched != .notModified { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(fetched == .document(body: updated, etag: MQTTPayload.etag(updated)))

        // A gateway with nothing retained for it fails the fetch after the grace, transiently.
        let other = try MQTTTransport(configuration: Self.configuration(port: broker.port, gateway: "gw-none"), logger: testLogger)
        let started = ContinuousClock.now
        let none = await other.fetchRegistry(ifNoneMatch: nil)
        guard case .failed(.transient(let reason, _)) = none else {
            Issue.record("expected a transient failure, got \(none)")
            return
        }
        #expect(reason.contains("no retained registry"), "\(reason)")
        #expect(ContinuousClock.now - started < .seconds(4))
        print("MQTT registry: etag \(etag ?? "none"), second fetch notModified, update seen, missing registry: \(reason)")
        await other.shutdown()
        await transport.shutdown()
    }

    @Test("TLS: the right CA verifies, a wrong CA fails clearly, insecure mode is logged loudly")
    func tls() async throws {
        let openssl = try #require(MQTTTestEnvironment.openssl, "the TLS test needs the openssl command")
        let pki = try TestPKI(openssl: openssl)
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        let broker = try MosquittoBroker(name: "tls", extra: [
            "cafile \(pki.caCertificate)", "certfile \(pki.serverCertificate)", "keyfile \(pki.serverKey)",
        ])
        defer { broker.stop() }
        let gateway = "gw-tls"
        let subscriber = try TestMQTTClient(id: "sub-tls", port: broker.plainPort, subscriptions: ["\(Self.prefix)/+/readings"])
        defer { subscriber.close() }
        let good = try MQTTTransport(
            configuration: Self.configuration(port: broker.port, gateway: gateway, tls: .init(caFile: pki.caCertificate)),
            logger: testLogger)
        #expect(good.endpointDescription == "mqtts://127.0.0.1:\(broker.port)")
        #expect(await good.deliver(.readings(Self.batch(1, readings: 5))) == .accepted)
        await good.shutdown()

        var wrongConfig = Self.configuration(port: broker.port, gateway: gateway + "-wrong", tls: .init(caFile: pki.otherCACertificate))
        wrongConfig.acknowledgementTimeout = .seconds(3)
        let wrong = try MQTTTransport(configuration: wrongConfig, logger: testLogger)
        let refused = await wrong.deliver(.readings(Self.batch(2, readings: 5)))
        guard case .transient(let reason, _) = refused else {
            Issue.record("a wrong CA must not deliver: \(refused)")
            return
        }
        #expect(reason.contains("certificate verify failed"), "\(reason)")
        #expect(wrong.statistics.connects == 0)
        await wrong.shutdown()

        let lines = MQTTLogCapture()
        let insecure = try MQTTTransport(
            configuration: Self.configuration(port: broker.port, gateway: gateway + "-insecure",
                                              tls: .init(caFile: pki.otherCACertificate, verification: .insecureNoVerification)),
            logger: Logger(label: "mqtt-test") { _ in lines })
        #expect(await insecure.deliver(.readings(Self.batch(3, readings: 5))) == .accepted)
        #expect(lines.lines.contains { $0.level == .critical && $0.message.contains("TLS VERIFICATION IS OFF") })
        await insecure.shutdown()
        try mqttWaitUntil("the two batches sent over TLS", timeout: .seconds(5)) { subscriber.received(on: "\(Self.prefix)/\(gateway)/readings").count == 1 && subscriber.received(on: "\(Self.prefix)/\(gateway)-insecure/readings").count == 1 }
        #expect(subscriber.received(on: "\(Self.prefix)/\(gateway)-wrong/readings").isEmpty)
        print("MQTT TLS: right CA accepted; wrong CA: \(reason)")
    }

    @Test("wrong credentials answer unauthorized; right ones deliver")
    func credentials() async throws {
        let passwd = try #require(MQTTTestEnvironment.passwd, "needs mosquitto_passwd (package mosquitto)")
        let dir = MQTTTestEnvironment.temporaryDirectory("passwd")
        let file = dir + "/passwd"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(MQTTTestEnvironment.run(passwd, ["-c", "-b", file, "gw-auth", "s3cret"]) == 0)
        #expect(MQTTTestEnvironment.run(passwd, ["-b", file, "portal", "p0rtal"]) == 0)
        let broker = try MosquittoBroker(name: "auth", global: ["allow_anonymous false", "password_file \(file)"])
        defer { broker.stop() }
        let subscriber = try TestMQTTClient(id: "sub-auth", port: broker.port, subscriptions: ["\(Self.prefix)/#"], username: "portal", password: "p0rtal")
        defer { subscriber.close() }
        var config = Self.configuration(port: broker.port, gateway: "gw-auth")
        config.credentials = .init(username: "gw-auth", password: "wrong")
        let refused = try MQTTTransport(configuration: config, logger: testLogger)
        let outcome = await refused.deliver(.health(body: Array("{}".utf8)))
        guard case .unauthorized(let reason) = outcome else {
            Issue.record("expected unauthorized, got \(outcome)")
            return
        }
        #expect(reason.contains("refused the connection"), "\(reason)")
        await refused.shutdown()

        config.credentials = .init(username: "gw-auth", password: "s3cret")
        let accepted = try MQTTTransport(configuration: config, logger: testLogger)
        #expect(await accepted.deliver(.health(body: Array("{}".utf8))) == .accepted)
        await accepted.shutdown()
        try mqttWaitUntil("the health message", timeout: .seconds(5)) { subscriber.received(on: "\(Self.prefix)/gw-auth/health").count == 1 }
        print("MQTT credentials: wrong password -> \(reason)")
    }

    @Test("flow control: a stalled broker fills the window, deliveries answer transient at once, late PUBACKs free it")
    func flowControl() async throws {
        let broker = try MosquittoBroker(name: "window")
        defer { broker.stop() }
        let gateway = "gw-window"
        let subscriber = try TestMQTTClient(id: "sub-window", port: broker.port, subscriptions: ["\(Self.prefix)/+/readings"])
        defer { subscriber.close() }
        var config = Self.configuration(port: broker.port, gateway: gateway)
        config.maximumUnacknowledged = 3
        config.acknowledgementTimeout = .milliseconds(700)
        let transport = try MQTTTransport(configuration: config, logger: testLogger)
        #expect(await Self.deliverUntilAccepted(transport, .readings(Self.batch(0, readings: 2))).1 == .accepted)

        broker.pause()
        var outcomes: [DeliveryOutcome] = []
        for i in 1...5 { outcomes.append(await transport.deliver(.readings(Self.batch(i, readings: 2)))) }
        let timedOut = outcomes.prefix(3).allSatisfy { if case .transient(let r, _) = $0 { r.contains("no PUBACK") } else { false } }
        let refused = outcomes.suffix(2).allSatisfy { if case .transient(let r, _) = $0 { r.contains("already await a PUBACK") } else { false } }
        #expect(timedOut, "\(outcomes)")
        #expect(refused, "\(outcomes)")
        #expect(transport.statistics.published == 4, "the window kept the last two from being published")

        broker.resume()
        try await Task.sleep(for: .milliseconds(300))
        var stats = transport.statistics
        for _ in 0..<100 where stats.lateAcknowledgements < 3 {
            try await Task.sleep(for: .milliseconds(50))
            stats = transport.statistics
        }
        #expect(stats.lateAcknowledgements == 3 && stats.timedOut == 3 && stats.forgottenPublishes == 0)
        #expect(await Self.deliverUntilAccepted(transport, .readings(Self.batch(4, readings: 2))).1 == .accepted)
        try mqttWaitUntil("the late batches at the subscriber", timeout: .seconds(5)) {
            (try? Self.readingCounts(subscriber, topic: "\(Self.prefix)/\(gateway)/readings").count) == 10
        }
        print("MQTT flow control: window 3, \(stats.timedOut) timed out, 2 refused without publishing, \(stats.lateAcknowledgements) late PUBACKs, then accepted")
        await transport.shutdown()
    }

    @Test("PUBACK 0x10 (nobody subscribed) is transient unless the fleet says its broker forwards anyway")
    func noSubscribers() async throws {
        let broker = try MosquittoBroker(name: "nosub")
        defer { broker.stop() }
        var config = Self.configuration(port: broker.port, gateway: "gw-nosub")
        let strict = try MQTTTransport(configuration: config, logger: testLogger)
        let outcome = await strict.deliver(.readings(Self.batch(1, readings: 3)))
        guard case .transient(let reason, _) = outcome else {
            Issue.record("expected transient, got \(outcome)")
            return
        }
        #expect(reason.contains("0x10"), "\(reason)")
        await strict.shutdown()
        config.acceptWithoutSubscribers = true
        let lenient = try MQTTTransport(configuration: config, logger: testLogger)
        #expect(await lenient.deliver(.readings(Self.batch(1, readings: 3))) == .accepted)
        await lenient.shutdown()
    }

    @Test("an unreachable broker answers transient within the timeout, naming the cause")
    func unreachable() async throws {
        var config = Self.configuration(port: mqttFreePort(), gateway: "gw-unreachable")
        config.acknowledgementTimeout = .milliseconds(800)
        let transport = try MQTTTransport(configuration: config, logger: testLogger)
        let started = ContinuousClock.now
        let outcome = await transport.deliver(.health(body: Array("{}".utf8)))
        guard case .transient(let reason, _) = outcome else {
            Issue.record("expected transient, got \(outcome)")
            return
        }
        #expect(reason.contains("Connection refused"), "\(reason)")
        #expect(ContinuousClock.now - started < .seconds(3))
        await transport.shutdown()
    }
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated second CA, made with the
/// openssl command in a temporary directory.
struct TestPKI {
    let directory: String
    var caCertificate: String { directory + "/ca.crt" }
    var otherCACertificate: String { directory + "/other-ca.crt" }
    var serverCertificate: String { directory + "/server.crt" }
    var serverKey: String { directory + "/server.key" }

    init(openssl: String) throws {
        directory = MQTTTestEnvironment.temporaryDirectory("pki")
        let log = directory + "/openssl.log"
        func run(_ args: [String]) throws {
            let rc = MQTTTestEnvironment.run(openssl, args, log: log)
            if rc != 0 { throw MQTTTestError("openssl \(args.joined(separator: " ")) failed (\(rc)): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")") }
        }
        let d = directory
        for ca in ["ca", "other-ca"] {
            try run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=gatewayd test \(ca)",
                     "-keyout", "\(d)/\(ca).key", "-out", "\(d)/\(ca).crt"])
        }
        try run(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", serverKey, "-out", "\(d)/server.csr"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: "\(d)/san.ext", atomically: true, encoding: .utf8)
        try run(["x509", "-req", "-in", "\(d)/server.csr", "-CA", caCertificate, "-CAkey", "\(d)/ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", "\(d)/san.ext", "-out", serverCertificate])
    }
}

/// Log lines kept in memory, to check what the transport says.
final class MQTTLogCapture: LogHandler, @unchecked Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
    }
    private let storage = Mutex<[Line]>([])
    var lines: [Line] { storage.withLock { $0 } }
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        storage.withLock { $0.append(Line(level: event.level, message: event.message.description)) }
    }
}

/// A counter shared by sending tasks.
final class MQTTCounter: Sendable {
    private let storage = Atomic<Int>(0)
    /// Adds `n`; returns the new value.
    @discardableResult
    func add(_ n: Int) -> Int { storage.add(n, ordering: .relaxed).newValue }
    var value: Int { storage.load(ordering: .relaxed) }
}
