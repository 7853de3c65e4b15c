import Foundation
import Logging
import Uplink

/// The MQTT transport from the `[uplink]` section (docs/mqtt.md): mqtts:// verifies the broker with the
/// system's or the configured CA; a bearer token file becomes the MQTT password, with the gateway id
/// as user name; a client certificate authenticates with mutual TLS.
package enum MQTTWiring {
    package static func transport(config: GatewayConfig, logger: Logger) throws -> any PortalTransport {
        let u = config.uplink
        let secure = u.endpoint.hasPrefix("mqtts://")
        var tls: MQTTTransportConfiguration.TLS?
        if secure {
            var t = MQTTTransportConfiguration.TLS(caFile: u.caFile, verification: u.insecure ? .insecureNoVerification : .full)
            if case .mutualTLS(let cert, let key) = u.auth {
                t.clientCertificateFile = cert
                t.clientKeyFile = key
            }
            tls = t
        }
        var credentials: MQTTTransportConfiguration.Credentials?
        if case .bearer(let file) = u.auth {
            guard let token = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw DaemonStartError("cannot read the MQTT password (bearer token) from \(file)")
            }
            credentials = .init(username: config.gatewayID, password: token.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        // The configuration names the whole prefix ("gatewayd/gw-0007"); the transport appends the gateway
        // id itself, so it gets the part before it.
        var prefix = u.topicPrefix ?? "gatewayd"
        if prefix.hasSuffix("/" + config.gatewayID) { prefix.removeLast(config.gatewayID.count + 1) }
        let settings = MQTTTransportConfiguration(
            host: u.host, port: u.port, gatewayID: config.gatewayID, topicPrefix: prefix, tls: tls, credentials: credentials)
        if u.insecure { logger.warning("MQTT uplink with TLS verification off or plain MQTT: for a loopback test broker only") }
        do {
            return try MQTTTransport(configuration: settings, logger: logger)
        } catch {
            throw DaemonStartError("cannot set up the MQTT uplink to \(u.endpoint): \(error)")
        }
    }
}
