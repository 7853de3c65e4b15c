import Crypto
import CompressNIO
import FoundationEssentials
import NIOCore

/// The MQTT topic layout for one gateway (docs/mqtt.md): `<prefix>/<gateway>/<kind>`.
public struct MQTTTopics: Sendable, Hashable {
    public let prefix: String
    public let gatewayID: String

    /// Throws when a level is empty, holds a `/` (gateway id only), a wildcard (`+`, `#`) or NUL.
    public init(prefix: String, gatewayID: String) throws(MQTTConfigurationError) {
        func check(_ value: String, _ name: String, allowSlash: Bool) throws(MQTTConfigurationError) {
            if value.isEmpty { throw MQTTConfigurationError("\(name) is empty") }
            for c in value.unicodeScalars where c == "+" || c == "#" || c == "\0" || (!allowSlash && c == "/") {
                throw MQTTConfigurationError("\(name) \"\(value)\" contains \"\(c == "\0" ? "NUL" : String(c))\", which MQTT topics reserve")
            }
            if value.hasPrefix("/") || value.hasSuffix("/") { throw MQTTConfigurationError("\(name) \"\(value)\" starts or ends with /") }
        }
        try check(prefix, "topic prefix", allowSlash: true)
        try check(gatewayID, "gateway id", allowSlash: false)
        self.prefix = prefix
        self.gatewayID = gatewayID
    }

    public var base: String { "\(prefix)/\(gatewayID)" }
    public var readings: String { base + "/readings" }
    public var alarms: String { base + "/alarms" }
    public var health: String { base + "/health" }
    public var commissioning: String { base + "/commissioning" }
    /// Retained "online"/"offline"; the Last Will publishes "offline" here.
    public var status: String { base + "/status" }
    /// Retained device registry, published by the portal, subscribed to by the gateway.
    public var registry: String { base + "/registry" }

    func topic(for message: PortalMessage) -> String {
        switch message {
        case .readings: readings
        case .alarms: alarms
        case .health: health
        case .commissioningReport: commissioning
        }
    }
}

/// A payload a consumer cannot unframe.
public struct MQTTPayloadError: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A configuration the transport cannot work with; says which setting and why.
public struct MQTTConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Payload framing on the wire (docs/mqtt.md, "Payloads"): one self-describing JSON envelope per
/// message, optionally gzip-compressed as a whole. A consumer tells the two apart by the first byte
/// (gzip starts with 0x1F, JSON never does), so a bridge that drops MQTT 5 properties loses nothing.
public enum MQTTPayload {
    public static let envelopeVersion = 1

    /// Whether and when to gzip envelopes.
    public enum Compression: Sendable, Hashable {
        case none
        /// Gzip envelopes of at least `minimumBytes` (small ones grow when compressed).
        case gzip(minimumBytes: Int)
    }

    /// The framed message: bytes for the wire plus what the MQTT 5 properties announce.
    struct Frame: Sendable {
        var topic: String
        var payload: [UInt8]
        var gzipped: Bool
    }

    /// The envelope for a message, before compression.
    public static func envelope(_ message: PortalMessage, gatewayID: String) -> [UInt8] {
        var out: [UInt8] = []
        func append(_ s: String) { out.append(contentsOf: s.utf8) }
        func appendString(_ s: String) { appendJSONString(s, to: &out) }
        let type: String
        let id: String?
        var readingIDs: [String]? = nil
        let body: [UInt8]
        switch message {
        case .readings(let batch):
            (type, id, readingIDs, body) = ("readings", batch.id, batch.readingIDs, batch.body)
        case .alarms(let alarmID, let b):
            (type, id, body) = ("alarms", alarmID, b)
        case .health(let b):
            (type, id, body) = ("health", nil, b)
        case .commissioningReport(let reportID, let b):
            (type, id, body) = ("commissioning", reportID, b)
        }
        out.reserveCapacity(body.count + 128 + (readingIDs?.count ?? 0) * 24)
        append("{\"v\":\(envelopeVersion),\"type\":\"\(type)\",\"gateway_id\":")
        appendString(gatewayID)
        if let id {
            append(",\"id\":")
            appendString(id)
        }
        if let readingIDs {
            append(",\"reading_ids\":[")
            for (i, r) in readingIDs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendString(r)
            }
            out.append(UInt8(ascii: "]"))
        }
        if looksLikeJSONDocument(body) {
            append(",\"body\":")
            out.append(contentsOf: body)
        } else {
            // Never splice bytes that are not a JSON object or array into the envelope.
            append(",\"body_base64\":\"")
            append(Data(body).base64EncodedString())
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func frame(_ message: PortalMessage, topics: MQTTTopics, compression: Compression) throws -> Frame {
        let plain = envelope(message, gatewayID: topics.gatewayID)
        let topic = topics.topic(for: message)
        guard case .gzip(let minimum) = compression, plain.count >= minimum else {
            return Frame(topic: topic, payload: plain, gzipped: false)
        }
        return Frame(topic: topic, payload: try gzip(plain), gzipped: true)
    }

    /// RFC 1952 gzip through CompressNIO (zlib).
    public static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        var input = ByteBuffer(bytes: bytes)
        let output = try input.compress(with: .gzip)
        return Array(output.readableBytesView)
    }

    /// The envelope from wire bytes: gunzips when the payload starts with the gzip magic, and
    /// refuses a truncated gzip stream (its trailer's length must match what inflated).
    public static func decode(_ payload: [UInt8], maximumBytes: Int = 64 << 20) throws(MQTTPayloadError) -> [UInt8] {
        guard payload.count >= 2, payload[0] == 0x1F, payload[1] == 0x8B else { return payload }
        // 10-byte header, at least 2 bytes of deflate data, 8-byte trailer (CRC-32, ISIZE).
        guard payload.count >= 20 else { throw MQTTPayloadError("gzip payload of \(payload.count) bytes is truncated") }
        var input = ByteBuffer(bytes: payload)
        let output: ByteBuffer
        do {
            output = try input.decompress(with: .gzip, maxSize: maximumBytes)
        } catch {
            throw MQTTPayloadError("gzip payload does not inflate: \(error)")
        }
        let n = payload.count
        let size = UInt32(payload[n - 4]) | UInt32(payload[n - 3]) << 8 | UInt32(payload[n - 2]) << 16 | UInt32(payload[n - 1]) << 24
        guard size == UInt32(truncatingIfNeeded: output.readableBytes) else {
            throw MQTTPayloadError("gzip payload inflates to \(output.readableBytes) bytes, its trailer says \(size): truncated or corrupt")
        }
        return Array(output.readableBytesView)
    }

    /// A cheap check that `body` is a JSON object or array (first and last non-blank bytes); the
    /// core serialises it, so a full parse here would only cost CPU on the hot path.
    static func looksLikeJSONDocument(_ body: [UInt8]) -> Bool {
        func blank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        guard let first = body.firstIndex(where: { !blank($0) }), let last = body.lastIndex(where: { !blank($0) }),
            first < last
        else { return false }
        return (body[first] == UInt8(ascii: "{") && body[last] == UInt8(ascii: "}"))
            || (body[first] == UInt8(ascii: "[") && body[last] == UInt8(ascii: "]"))
    }

    static func appendJSONString(_ s: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The retained status document on `<prefix>/<gateway>/status`.
    static func status(_ state: String, gatewayID: String) -> [UInt8] {
        var out = Array("{\"v\":\(envelopeVersion),\"type\":\"status\",\"gateway_id\":".utf8)
        appendJSONString(gatewayID, to: &out)
        out.append(contentsOf: Array(",\"status\":\"\(state)\"}".utf8))
        return out
    }

    /// The registry ETag: `sha256:` and the lowercase hex SHA-256 of the retained payload as received,
    /// so a portal can compute the same value.
    public static func etag(_ payload: [UInt8]) -> String {
        "sha256:" + RegistryDigest.hex(payload)
    }
}

/// SHA-256 for registry ETags, from swift-crypto.
enum RegistryDigest {
    static func hex(_ bytes: [UInt8]) -> String {
        Crypto.SHA256.hash(data: bytes).map { byte in
            let h = String(byte, radix: 16)
            return byte < 16 ? "0" + h : h
        }.joined()
    }
}
