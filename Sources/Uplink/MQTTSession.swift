import CMosquitto
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libmosquitto wants `mosquitto_lib_init` once per process before any client exists; a global
/// `let` runs its initialiser exactly once, thread-safely.
private let mosquittoLibrary: Void = {
    _ = mosquitto_lib_init()
}()

/// A `struct mosquitto *` and the CONNECT properties it reuses. libmosquitto locks its own state
/// once `mosquitto_threaded_set(true)` is on, so publishing from any thread while the network
/// thread runs `mosquitto_loop` is the documented way to use it.
struct MosquittoHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    /// MQTT 5 CONNECT properties (session expiry); freed with the session.
    let connectProperties: OpaquePointer?
}

/// The state libmosquitto's callbacks share with `deliver` and `fetchRegistry`. Callbacks run on the
/// network thread; the rest runs on any task. Rule: no thread holds `state` while calling into
/// libmosquitto, and libmosquitto may call back with its own locks held, so no lock cycle can form.
final class MQTTSession: Sendable {
    enum Phase: Sendable, Equatable { case connecting, connected, disconnected }

    struct RegistryDocument {
        var body: [UInt8]
        var etag: String
    }

    struct State {
        var phase: Phase = .connecting
        var lastError: String?
        /// The broker refused our credentials (CONNACK 0x86/0x87/0x8C); cleared by a good CONNACK.
        var refusal: String?
        /// Why the broker refused the current attempt's CONNECT, whatever the reason code.
        var connackRefusal: String?
        /// The current connection got a successful CONNACK.
        var connackAccepted = false
        /// The last failure logged as a warning; a successful connection clears it.
        var lastLoggedError: String?
        var stopped = false
        var loopExited = false
        var nextToken: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Flow control (a value state machine on `now()`): what awaits a PUBACK.
        var window: MQTTFlowWindow
        /// The deliveries waiting for a PUBACK, by the window's token.
        var deliveries: [UInt64: CheckedContinuation<DeliveryOutcome, Never>] = [:]
        var registrySubscriptionMid: Int32?
        var registrySubscribedAt: ContinuousClock.Instant?
        var registryRefused: String?
        var registry: RegistryDocument?
        var statistics = MQTTStatistics()
    }

    let handle: MosquittoHandle
    let configuration: MQTTTransportConfiguration
    let topics: MQTTTopics
    let endpoint: String
    let logger: Logger
    let state: Mutex<State>
    /// The origin of `now()`: the window's times are durations since the session began.
    private let origin = ContinuousClock.now
    let stopping = Atomic<Bool>(false)
    /// Last error-level line libmosquitto logged (OpenSSL's reason for a failed handshake lives here).
    let libraryError = Mutex<String?>(nil)

    init(configuration: MQTTTransportConfiguration, topics: MQTTTopics, endpoint: String, logger: Logger) throws(MQTTConfigurationError) {
        _ = mosquittoLibrary
        self.configuration = configuration
        self.topics = topics
        self.endpoint = endpoint
        self.logger = logger
        state = Mutex(State(window: MQTTFlowWindow(
            maximumCount: configuration.maximumUnacknowledged, maximumBytes: configuration.maximumUnacknowledgedBytes,
            orphanLifetime: max(.seconds(300), configuration.acknowledgementTimeout * 10))))
        // libmosquitto is loaded on first use (CMosquitto): a gateway without it can still upload over HTTPS.
        if let why = gatewayd_mosquitto_unavailable() {
            throw MQTTConfigurationError("the MQTT uplink needs libmosquitto, which could not be loaded: \(String(cString: why))")
        }
        // clean_session false: the broker keeps our QoS 1 state and subscription across reconnects.
        guard let mosq = mosquitto_new(configuration.gatewayID, false, nil) else {
            throw MQTTConfigurationError("mosquitto_new failed for client id \"\(configuration.gatewayID)\" (errno \(errno))")
        }
        var properties: OpaquePointer? = nil
        let expiry = UInt32(clamping: configuration.sessionExpiry.components.seconds)
        _ = mosquitto_property_add_int32(&properties, MQTT5.sessionExpiryInterval, expiry)
        handle = MosquittoHandle(pointer: mosq, connectProperties: properties)
        try configure()
    }

    deinit {
        mosquitto_destroy(handle.pointer)
        var properties = handle.connectProperties
        mosquitto_property_free_all(&properties)
    }

    // MARK: setup

    private func configure() throws(MQTTConfigurationError) {
        let mosq = handle.pointer
        func check(_ rc: Int32, _ what: String) throws(MQTTConfigurationError) {
            if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTConfigurationError("\(what): \(Self.describe(rc))") }
        }
        try check(mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5), "MQTT 5")
        try check(mosquitto_threaded_set(mosq, true), "threaded mode")
        mosquitto_user_data_set(mosq, Unmanaged.passUnretained(self).toOpaque())

        if let credentials = configuration.credentials {
            try check(mosquitto_username_pw_set(mosq, credentials.username, credentials.password), "username and password")
        }
        if let tls = configuration.tls {
            if tls.caFile == nil {
                try check(mosquitto_int_option(mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1), "system CA certificates")
            }
            if (tls.clientCertificateFile == nil) != (tls.clientKeyFile == nil) {
                throw MQTTConfigurationError("TLS client certificate and key go together: give both or neither")
            }
            for file in [tls.caFile, tls.clientCertificateFile, tls.clientKeyFile].compactMap({ $0 }) where access(file, R_OK) != 0 {
                throw MQTTConfigurationError("TLS file \(file) is not readable: \(String(cString: strerror(errno)))")
            }
            try check(mosquitto_tls_set(mosq, tls.caFile, nil, tls.clientCertificateFile, tls.clientKeyFile, nil), "TLS files")
            switch tls.verification {
            case .full:
                try check(mosquitto_tls_opts_set(mosq, 1 /* SSL_VERIFY_PEER */, nil, nil), "TLS options")
                try check(mosquitto_tls_insecure_set(mosq, false), "TLS host name check")
            case .insecureNoVerification:
                try check(mosquitto_tls_opts_set(mosq, 0 /* SSL_VERIFY_NONE */, nil, nil), "TLS options")
                try check(mosquitto_tls_insecure_set(mosq, true), "TLS host name check")
                logger.critical(
                    "TLS VERIFICATION IS OFF for the MQTT broker: anyone on the path can read and alter readings and the registry. Set verification to full with the broker's CA file.")
            }
        }

        let will = MQTTPayload.status("offline", gatewayID: topics.gatewayID)
        try check(mosquitto_will_set(mosq, topics.status, Int32(will.count), will, 1, true), "Last Will")

        mosquitto_connect_v5_callback_set(mosq) { _, context, rc, flags, _ in
            MQTTSession.from(context).connected(reason: rc, sessionPresent: flags & 1 != 0)
        }
        mosquitto_disconnect_v5_callback_set(mosq) { _, context, rc, _ in
            MQTTSession.from(context).disconnected(reason: rc)
        }
        mosquitto_publish_v5_callback_set(mosq) { _, context, mid, reason, _ in
            MQTTSession.from(context).acknowledged(mid: mid, reason: reason)
        }
        mosquitto_subscribe_v5_callback_set(mosq) { _, context, mid, count, granted, _ in
            let first = count > 0 ? granted?.pointee : nil
            MQTTSession.from(context).subscribed(mid: mid, granted: first)
        }
        mosquitto_message_v5_callback_set(mosq) { _, context, message, _ in
            guard let message else { return }
            MQTTSession.from(context).received(message.pointee)
        }
        mosquitto_log_callback_set(mosq) { _, context, level, text in
            guard level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING) != 0, let text else { return }
            MQTTSession.from(context).libraryLogged(String(cString: text))
        }
    }

    private static func from(_ context: UnsafeMutableRawPointer?) -> MQTTSession {
        Unmanaged<MQTTSession>.fromOpaque(context!).takeUnretainedValue()
    }

    /// Starts the network thread; it holds a reference to the session until it exits.
    func start() throws(MQTTConfigurationError) {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let session = Unmanaged<MQTTSession>.fromOpaque(raw!).takeRetainedValue()
            session.runNetworkLoop()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<MQTTSession>.fromOpaque(context).release()
            throw MQTTConfigurationError("cannot start the MQTT network thread: \(String(cString: strerror(rc)))")
        }
        pthread_detach(thread)
    }

    // MARK: network thread

    /// Connect, run `mosquitto_loop` until the connection drops, back off, reconnect, until stopped.
    /// Every connect goes through `mosquitto_connect_bind_v5`: `mosquitto_reconnect` would drop the
    /// session-expiry property, and an MQTT 5 session without it ends at the first disconnect.
    private func runNetworkLoop() {
        let mosq = handle.pointer
        var schedule = MQTTReconnectSchedule(initial: configuration.reconnectDelay.initial, maximum: configuration.reconnectDelay.maximum)
        while !stopping.load(ordering: .acquiring) {
            setPhase(.connecting, error: nil)
            libraryError.withLock { $0 = nil }
            let keepAlive = Int32(clamping: max(5, configuration.keepAlive.components.seconds))
            let rc = mosquitto_connect_bind_v5(mosq, configuration.host, Int32(configuration.port), keepAlive, nil, handle.connectProperties)
            if rc == MOSQ_ERR_SUCCESS.rawValue {
                while !stopping.load(ordering: .acquiring) {
                    let rc = mosquitto_loop(mosq, 100, 1)
                    if rc != MOSQ_ERR_SUCCESS.rawValue {
                        connectionEnded(rc)
                        break
                    }
                    if state.withLock({ $0.phase == .connected }) { schedule.connected(at: now()) }
                }
            } else {
                connectionEnded(rc)
            }
            if stopping.load(ordering: .acquiring) { break }
            sleepUnlessStopping(schedule.ended(at: now(), unit: Double.random(in: 0..<1)))
        }
        goOffline()
        let (waiters, stranded) = state.withLock { s -> ([CheckedContinuation<Void, Never>], [CheckedContinuation<DeliveryOutcome, Never>]) in
            s.loopExited = true
            s.phase = .disconnected
            let stranded = s.window.orphanAll(now: now()).compactMap { s.deliveries.removeValue(forKey: $0) }
            defer { s.waiters.removeAll() }
            return (Array(s.waiters.values), stranded)
        }
        for c in stranded { c.resume(returning: .transient(reason: "MQTT transport shut down before the PUBACK", retryAfter: nil)) }
        for w in waiters { w.resume() }
    }

    /// Clean shutdown: retained "offline" (a clean DISCONNECT suppresses the Last Will), then DISCONNECT.
    private func goOffline() {
        let mosq = handle.pointer
        guard state.withLock({ $0.phase == .connected }) else {
            _ = mosquitto_disconnect(mosq)
            return
        }
        if let mid = publishInternal(topics.status, MQTTPayload.status("offline", gatewayID: topics.gatewayID), retain: true) {
            let deadline = ContinuousClock.now + .seconds(2)
            while ContinuousClock.now < deadline, state.withLock({ $0.window.internalMids.contains(mid) && $0.phase == .connected }) {
                if mosquitto_loop(mosq, 50, 1) != MOSQ_ERR_SUCCESS.rawValue { break }
            }
        }
        _ = mosquitto_disconnect_v5(mosq, 0, nil)
        for _ in 0..<10 where mosquitto_loop(mosq, 20, 1) == MOSQ_ERR_SUCCESS.rawValue {}
    }

    /// The attempt or connection is over. Logs a warning when a live connection drops or when the
    /// reason for failing changes (a broker down for a day logs once, not at every retry).
    private func connectionEnded(_ rc: Int32) {
        let detail = libraryError.withLock { $0 }
        let (wasConnected, reason, changed) = state.withLock { s -> (Bool, String, Bool) in
            // The disconnect callback may already have run; this attempt's CONNACK is what counts.
            let was = s.connackAccepted
            var reason = was ? "connection to \(endpoint) lost: \(Self.describe(rc))" : "cannot connect to \(endpoint): \(Self.describe(rc))"
            if let detail, !detail.isEmpty { reason += " (\(detail))" }
            // A refused CONNACK already left a better reason than "connection refused".
            reason = s.connackRefusal ?? reason
            s.connackAccepted = false
            s.connackRefusal = nil
            s.lastError = reason
            s.phase = .disconnected
            s.registrySubscribedAt = nil
            if was { s.statistics.connectionLosses += 1 }
            let changed = s.lastLoggedError != reason
            s.lastLoggedError = reason
            return (was, reason, changed)
        }
        if wasConnected || changed { logger.warning("\(reason)") } else { logger.debug("\(reason)") }
        broadcast()
    }

    private func sleepUnlessStopping(_ delay: Duration) {
        let deadline = ContinuousClock.now + delay
        while !stopping.load(ordering: .acquiring) && ContinuousClock.now < deadline { usleep(20_000) }
    }

    // MARK: callbacks (network thread)

    private func connected(reason: Int32, sessionPresent: Bool) {
        guard reason == 0 else {
            let text = String(cString: mosquitto_reason_string(reason))
            let credentials = [MQTT5.badUsernameOrPassword, MQTT5.notAuthorized, MQTT5.badAuthenticationMethod].contains(reason)
            let message = "broker \(endpoint) refused the connection: \(text)"
            let repeated = state.withLock { s -> Bool in
                s.lastError = message
                s.connackRefusal = message
                if credentials {
                    s.refusal = message + ": check the MQTT username, password or client certificate for gateway \(topics.gatewayID)"
                }
                defer { s.lastLoggedError = message }
                return s.lastLoggedError == message
            }
            if repeated {
                logger.debug("\(message)")
            } else if credentials {
                logger.error("\(message): uploading over MQTT stops until the credentials are fixed")
            } else {
                logger.warning("\(message)")
            }
            broadcast()
            return
        }
        state.withLock { s in
            s.phase = .connected
            s.connackAccepted = true
            s.lastError = nil
            s.lastLoggedError = nil
            s.refusal = nil
            s.statistics.connects += 1
        }
        logger.info("connected to \(endpoint) as \(topics.gatewayID) (session \(sessionPresent ? "resumed" : "new"))")
        // Re-subscribing on every connect makes the broker send the retained registry again.
        var mid: Int32 = 0
        let rc = mosquitto_subscribe_v5(handle.pointer, &mid, topics.registry, 1, 0, nil)
        if rc == MOSQ_ERR_SUCCESS.rawValue {
            state.withLock { $0.registrySubscriptionMid = mid }
        } else {
            logger.warning("cannot subscribe to \(topics.registry): \(Self.describe(rc))")
        }
        _ = publishInternal(topics.status, MQTTPayload.status("online", gatewayID: topics.gatewayID), retain: true)
        broadcast()
    }

    private func disconnected(reason: Int32) {
        state.withLock { s in
            s.phase = .disconnected
            s.registrySubscribedAt = nil
        }
        broadcast()
    }

    private func acknowledged(mid: Int32, reason: Int32) {
        let resolved = state.withLock { s -> (CheckedContinuation<DeliveryOutcome, Never>, String)? in
            switch s.window.acknowledge(mid: mid, reason: reason, now: now()) {
            case .internalPublish, .early:
                return nil
            case .late:
                s.statistics.lateAcknowledgements += 1
                return nil
            case .resolves(let token, let topic):
                guard let continuation = s.deliveries.removeValue(forKey: token) else { return nil }
                return (continuation, topic)
            }
        }
        guard let (continuation, topic) = resolved else { return }
        continuation.resume(returning: deliveryOutcome(forPubackReason: reason, topic: topic))
    }

    private func subscribed(mid: Int32, granted: Int32?) {
        state.withLock { s in
            guard mid == s.registrySubscriptionMid else { return }
            s.registrySubscribedAt = .now
            if let granted, granted >= 0x80 {
                s.registryRefused = "broker refused the subscription to \(topics.registry): \(String(cString: mosquitto_reason_string(granted)))"
            } else {
                s.registryRefused = nil
            }
        }
        broadcast()
    }

    private func received(_ message: mosquitto_message) {
        guard let topic = message.topic, String(cString: topic) == topics.registry else { return }
        let count = Int(message.payloadlen)
        let body: [UInt8] = count > 0 && message.payload != nil
            ? Array(UnsafeRawBufferPointer(start: message.payload, count: count)) : []
        // An empty retained message deletes the registry on the broker.
        let document = body.isEmpty ? nil : RegistryDocument(body: body, etag: MQTTPayload.etag(body))
        state.withLock { $0.registry = document }
        logger.debug("registry message on \(topics.registry): \(count) bytes\(document.map { ", \($0.etag)" } ?? " (deleted)")")
        broadcast()
    }

    private func libraryLogged(_ line: String) {
        libraryError.withLock { $0 = line }
        logger.debug("libmosquitto: \(line)")
    }

    // MARK: publishing

    func publish(_ frame: MQTTPayload.Frame, timeout: Duration) async -> DeliveryOutcome {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (phase, stopped, refusal, lastError) = state.withLock { ($0.phase, $0.stopped, $0.refusal, $0.lastError) }
            if stopped { return .transient(reason: "MQTT transport is shut down", retryAfter: nil) }
            if let refusal { return .unauthorized(reason: refusal) }
            if phase == .connected { break }
            if ContinuousClock.now >= deadline {
                return .transient(reason: "not connected to \(endpoint)\(lastError.map { ": \($0)" } ?? "")", retryAfter: nil)
            }
            await awaitChange(until: deadline)
        }

        var timer: Task<Void, Never>?
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<DeliveryOutcome, Never>) in
            let size = frame.payload.count
            // Reserve a place in the window before publishing, so concurrent deliveries cannot overshoot it.
            let token = state.withLock { s -> UInt64? in
                let (token, forgotten) = s.window.reserve(bytes: size, now: now())
                s.statistics.forgottenPublishes += forgotten
                return token
            }
            guard let token else {
                continuation.resume(returning: .transient(
                    reason: "\(configuration.maximumUnacknowledged) publishes or \(configuration.maximumUnacknowledgedBytes) bytes already await a PUBACK from \(endpoint)",
                    retryAfter: nil))
                return
            }
            var mid: Int32 = 0
            let rc = withProperties(gzipped: frame.gzipped) { properties in
                frame.payload.withUnsafeBytes { bytes in
                    mosquitto_publish_v5(handle.pointer, &mid, frame.topic, Int32(bytes.count), bytes.baseAddress, 1, false, properties)
                }
            }
            guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                state.withLock { $0.window.cancel(bytes: size) }
                continuation.resume(returning: deliveryOutcome(forPublishError: rc, size: size))
                return
            }
            let early = state.withLock { s -> Int32? in
                s.statistics.published += 1
                switch s.window.register(mid: mid, bytes: size, topic: frame.topic, token: token) {
                case .acknowledged(let reason):
                    return reason
                case .waiting:
                    s.deliveries[token] = continuation
                    return nil
                }
            }
            if let early {
                continuation.resume(returning: deliveryOutcome(forPubackReason: early, topic: frame.topic))
                return
            }
            timer = Task { [self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                expire(mid: mid, token: token, timeout: timeout)
            }
        }
        timer?.cancel()
        if case .accepted = outcome { state.withLock { $0.statistics.acknowledged += 1 } }
        return outcome
    }

    /// Time since the session began, for the flow-control window.
    private func now() -> Duration { ContinuousClock.now - origin }

    /// The delivery gives up; the publish stays in libmosquitto's queue (it is resent after a
    /// reconnect) and keeps counting against the flow-control window until its PUBACK comes.
    private func expire(mid: Int32, token: UInt64, timeout: Duration) {
        let continuation = state.withLock { s -> CheckedContinuation<DeliveryOutcome, Never>? in
            guard s.window.expire(mid: mid, token: token, now: now()) else { return nil }
            s.statistics.timedOut += 1
            return s.deliveries.removeValue(forKey: token)
        }
        continuation?.resume(returning: .transient(
            reason: "no PUBACK from \(endpoint) within \(timeout) (mid \(mid)); resending is safe, consumers deduplicate by reading id",
            retryAfter: nil))
    }

    /// QoS 1 retained publishes of the transport's own (status); their PUBACKs answer nobody.
    private func publishInternal(_ topic: String, _ payload: [UInt8], retain: Bool) -> Int32? {
        var mid: Int32 = 0
        let rc = withProperties(gzipped: false) { properties in
            payload.withUnsafeBytes { bytes in
                mosquitto_publish_v5(handle.pointer, &mid, topic, Int32(bytes.count), bytes.baseAddress, 1, retain, properties)
            }
        }
        guard rc == MOSQ_ERR_SUCCESS.rawValue else {
            logger.warning("cannot publish to \(topic): \(Self.describe(rc))")
            return nil
        }
        state.withLock { $0.window.registerInternal(mid: mid) }
        return mid
    }

    /// MQTT 5 PUBLISH properties: content type, and either "UTF-8 payload" or a content-encoding
    /// user property for gzip (docs/mqtt.md). libmosquitto copies them into its queued message.
    private func withProperties(gzipped: Bool, _ body: (OpaquePointer?) -> Int32) -> Int32 {
        var properties: OpaquePointer? = nil
        defer { mosquitto_property_free_all(&properties) }
        _ = mosquitto_property_add_string(&properties, MQTT5.contentType, "application/json")
        if gzipped {
            _ = mosquitto_property_add_string_pair(&properties, MQTT5.userProperty, "content-encoding", "gzip")
        } else {
            _ = mosquitto_property_add_byte(&properties, MQTT5.payloadFormatIndicator, 1)
        }
        return body(properties)
    }

    private func deliveryOutcome(forPubackReason reason: Int32, topic: String) -> DeliveryOutcome {
        switch reason {
        case 0x00: return .accepted
        case MQTT5.noMatchingSubscribers:
            if configuration.acceptWithoutSubscribers { return .accepted }
            return .transient(reason: "\(endpoint) has no subscriber for \(topic) (PUBACK 0x10): nobody would receive it", retryAfter: nil)
        case MQTT5.notAuthorized:
            return .unauthorized(reason: "\(endpoint) does not let gateway \(topics.gatewayID) publish to \(topic) (PUBACK 0x87): fix the broker's ACL")
        case MQTT5.packetTooLarge:
            return .tooLarge
        case MQTT5.quotaExceeded:
            return .transient(reason: "\(endpoint) quota exceeded (PUBACK 0x97)", retryAfter: .seconds(30))
        default:
            let text = String(cString: mosquitto_reason_string(reason))
            return .transient(reason: "\(endpoint) refused the publish to \(topic): \(text) (PUBACK 0x\(String(reason, radix: 16)))", retryAfter: nil)
        }
    }

    private func deliveryOutcome(forPublishError rc: Int32, size: Int) -> DeliveryOutcome {
        if rc == MOSQ_ERR_OVERSIZE_PACKET.rawValue || rc == MOSQ_ERR_PAYLOAD_SIZE.rawValue { return .tooLarge }
        return .transient(reason: "publish of \(size) bytes to \(endpoint) failed: \(Self.describe(rc))", retryAfter: nil)
    }

    // MARK: registry

    func registry(ifNoneMatch etag: String?, wait: Duration) async -> RegistryFetch {
        let deadline = ContinuousClock.now + wait
        // Retained messages follow the SUBACK; allow a moment for one to arrive after it.
        let grace = Duration.seconds(1)
        while true {
            let s = state.withLock { s in
                (s.registry, s.registrySubscribedAt, s.registryRefused, s.stopped, s.refusal, s.lastError, s.phase)
            }
            let (document, subscribedAt, refused, stopped, refusal, lastError, phase) = s
            if let document {
                return document.etag == etag ? .notModified : .document(body: document.body, etag: document.etag)
            }
            if stopped { return .failed(.transient(reason: "MQTT transport is shut down", retryAfter: nil)) }
            if let refusal { return .failed(.unauthorized(reason: refusal)) }
            if let refused { return .failed(.unauthorized(reason: refused)) }
            let now = ContinuousClock.now
            if let subscribedAt, now >= subscribedAt + grace {
                return .failed(.transient(reason: "no retained registry on \(topics.registry) at \(endpoint)", retryAfter: nil))
            }
            if now >= deadline {
                let why = phase == .connected ? "no registry on \(topics.registry) yet" : "not connected to \(endpoint)\(lastError.map { ": \($0)" } ?? "")"
                return .failed(.transient(reason: why, retryAfter: nil))
            }
            await awaitChange(until: subscribedAt.map { min(deadline, $0 + grace) } ?? deadline)
        }
    }

    // MARK: waiting

    /// Returns after the next state change (connect, loss, SUBACK, message, stop) or at `deadline`.
    private func awaitChange(until deadline: ContinuousClock.Instant) async {
        var timer: Task<Void, Never>?
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let token = state.withLock { s -> UInt64? in
                if s.loopExited { return nil }
                s.nextToken += 1
                s.waiters[s.nextToken] = continuation
                return s.nextToken
            }
            guard let token else {
                continuation.resume()
                return
            }
            timer = Task { [self] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                let waiter = state.withLock { $0.waiters.removeValue(forKey: token) }
                waiter?.resume()
            }
        }
        timer?.cancel()
    }

    private func broadcast() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    private func setPhase(_ phase: Phase, error: String?) {
        state.withLock { s in
            s.phase = phase
            if let error { s.lastError = error }
        }
        broadcast()
    }

    // MARK: stopping

    func requestStop() {
        stopping.store(true, ordering: .releasing)
        state.withLock { $0.stopped = true }
    }

    func stop() async {
        requestStop()
        broadcast()
        while !state.withLock({ $0.loopExited }) {
            await awaitChange(until: .now + .seconds(1))
        }
    }

    var statistics: MQTTStatistics { state.withLock { $0.statistics } }

    /// Tears the TCP connection down under libmosquitto without a DISCONNECT, as a dead link or a
    /// crashed gateway would: the broker publishes the Last Will. For tests.
    func dropConnectionForTesting() {
        let fd = mosquitto_socket(handle.pointer)
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    }

    static func describe(_ rc: Int32) -> String {
        if rc == MOSQ_ERR_ERRNO.rawValue { return String(cString: strerror(errno)) }
        return String(cString: mosquitto_strerror(rc))
    }
}

/// MQTT 5 property identifiers and reason codes (OASIS MQTT 5.0, 2.2.2.2 and 2.4). libmosquitto
/// defines them in mqtt_protocol.h, which the CMosquitto shim does not include.
enum MQTT5 {
    static let payloadFormatIndicator: Int32 = 1
    static let contentType: Int32 = 3
    static let sessionExpiryInterval: Int32 = 17
    static let userProperty: Int32 = 38

    static let noMatchingSubscribers: Int32 = 0x10
    static let badUsernameOrPassword: Int32 = 0x86
    static let notAuthorized: Int32 = 0x87
    static let badAuthenticationMethod: Int32 = 0x8C
    static let packetTooLarge: Int32 = 0x95
    static let quotaExceeded: Int32 = 0x97
}
