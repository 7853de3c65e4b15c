import Foundation
import Testing
@testable import Uplink

@Suite("MQTT payload framing and topics")
struct MQTTPayloadTests {
    @Test("registry ETags are SHA-256 (FIPS 180-4 test vectors)")
    func sha256() {
        #expect(RegistryDigest.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(RegistryDigest.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(RegistryDigest.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // 64 and 1,000,000 bytes cross the padding and block boundaries.
        #expect(RegistryDigest.hex([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(MQTTPayload.etag(Array("abc".utf8)).hasPrefix("sha256:ba7816bf"))
    }

    @Test("the envelope is JSON with type, gateway, ids and the body embedded")
    func envelopeShape() throws {
        let batch = UplinkBatch(id: "b\"1", readingIDs: ["r1", "r\\2", "r\n3"], body: Array(" {\"readings\":[]}\n".utf8))
        let bytes = MQTTPayload.envelope(.readings(batch), gatewayID: "gw-1")
        let e = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(e["v"] as? Int == 1)
        #expect(e["type"] as? String == "readings")
        #expect(e["gateway_id"] as? String == "gw-1")
        #expect(e["id"] as? String == "b\"1")
        #expect(e["reading_ids"] as? [String] == ["r1", "r\\2", "r\n3"])
        #expect((e["body"] as? [String: Any])?["readings"] as? [Any] != nil)
    }

    @Test("a body that is not a JSON object or array travels as base64")
    func nonJSONBody() throws {
        for body in [[UInt8](), Array("plain text".utf8), [0x00, 0xFF, 0x7B], Array("{".utf8)] {
            let bytes = MQTTPayload.envelope(.alarms(id: "a", body: body), gatewayID: "gw")
            let e = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
            #expect(e["body"] == nil)
            #expect(Data(base64Encoded: try #require(e["body_base64"] as? String)) == Data(body))
        }
    }

    @Test("gzip above the threshold round-trips; consumers tell it apart by the first byte")
    func gzipFraming() throws {
        let topics = try MQTTTopics(prefix: "fleet/eu", gatewayID: "gw-9")
        let big = UplinkBatch(id: "b", readingIDs: (0..<100).map { "r\($0)" },
                              body: Array(("[" + (0..<100).map { "{\"id\":\"r\($0)\",\"v\":\($0)}" }.joined(separator: ",") + "]").utf8))
        let small = UplinkBatch(id: "s", readingIDs: ["r"], body: Array("[]".utf8))
        let compressed = try MQTTPayload.frame(.readings(big), topics: topics, compression: .gzip(minimumBytes: 256))
        #expect(compressed.gzipped && compressed.payload.starts(with: [0x1F, 0x8B]))
        #expect(compressed.topic == "fleet/eu/gw-9/readings")
        #expect(try MQTTPayload.decode(compressed.payload) == MQTTPayload.envelope(.readings(big), gatewayID: "gw-9"))
        #expect(compressed.payload.count < MQTTPayload.envelope(.readings(big), gatewayID: "gw-9").count / 2)
        let plain = try MQTTPayload.frame(.readings(small), topics: topics, compression: .gzip(minimumBytes: 256))
        #expect(!plain.gzipped && plain.payload.first == UInt8(ascii: "{"))
        #expect(try MQTTPayload.decode(plain.payload) == plain.payload)
        #expect(throws: MQTTPayloadError.self) { try MQTTPayload.decode([0x1F, 0x8B, 0x08, 0x00, 0x01]) }
        // Cut anywhere: never a silent short envelope.
        for cut in [1, 4, 9, compressed.payload.count / 2] {
            #expect(throws: MQTTPayloadError.self, "cut \(cut)") { try MQTTPayload.decode(Array(compressed.payload.dropLast(cut))) }
        }
    }

    @Test("topic layout, and levels MQTT reserves are refused")
    func topics() throws {
        let t = try MQTTTopics(prefix: "gatewayd", gatewayID: "gw-0042")
        #expect([t.readings, t.alarms, t.health, t.commissioning, t.status, t.registry] == [
            "gatewayd/gw-0042/readings", "gatewayd/gw-0042/alarms", "gatewayd/gw-0042/health",
            "gatewayd/gw-0042/commissioning", "gatewayd/gw-0042/status", "gatewayd/gw-0042/registry",
        ])
        for (prefix, gateway) in [("a/+", "gw"), ("a", "g#"), ("a", "g/w"), ("", "gw"), ("a", ""), ("/a", "gw"), ("a/", "gw")] {
            #expect(throws: MQTTConfigurationError.self, "\(prefix) \(gateway)") { try MQTTTopics(prefix: prefix, gatewayID: gateway) }
        }
        #expect(try MQTTTopics(prefix: "fleet/eu/dk", gatewayID: "gw").readings == "fleet/eu/dk/gw/readings")
    }

    @Test("status documents")
    func status() throws {
        let e = try #require(try JSONSerialization.jsonObject(with: Data(MQTTPayload.status("offline", gatewayID: "gw"))) as? [String: Any])
        #expect(e["status"] as? String == "offline" && e["gateway_id"] as? String == "gw" && e["type"] as? String == "status")
    }

    @Test("configuration errors say what is wrong")
    func configurationErrors() {
        var c = MQTTTransportConfiguration(host: "127.0.0.1", port: 1883, gatewayID: "gw", tls: .init(caFile: "/nonexistent/ca.pem"))
        #expect(throws: MQTTConfigurationError.self) { try MQTTTransport(configuration: c, logger: .init(label: "t")) }
        c.tls = .init(caFile: nil, clientCertificateFile: "/etc/hostname", clientKeyFile: nil)
        #expect(throws: MQTTConfigurationError.self) { try MQTTTransport(configuration: c, logger: .init(label: "t")) }
        #expect(MQTTTransportConfiguration(host: "h", gatewayID: "g").port == 8883)
        #expect(MQTTTransportConfiguration(host: "h", gatewayID: "g", tls: nil).port == 1883)
    }
}
