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
        "sha256:" + SHA256.hex(payload)
    }
}

/// SHA-256 (FIPS 180-4) for registry ETags; Uplink does not depend on swift-crypto, and this runs
/// once per registry message.
enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func digest(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var data = message
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        let bits = UInt64(message.count) &* 8
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        var w = [UInt32](repeating: 0, count: 64)
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + i * 4
                w[i] = UInt32(data[j]) << 24 | UInt32(data[j + 1]) << 16 | UInt32(data[j + 2]) << 8 | UInt32(data[j + 3])
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for i in 0..<64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d
            h[4] = h[4] &+ e; h[5] = h[5] &+ f; h[6] = h[6] &+ g; h[7] = h[7] &+ hh
        }
        return h.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) } }
    }

    static func hex(_ message: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in digest(message) {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
