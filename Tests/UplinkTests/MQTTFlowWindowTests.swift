import PortalFake
import Testing
@testable import Uplink

/// The MQTT transport's flow control without a broker or a clock (issue 16 item 4): every call takes the
/// time, so an hour passes in a line.
@Suite("MQTT flow-control window")
struct MQTTFlowWindowTests {
    func window(count: Int = 3, bytes: Int = 1_000) -> MQTTFlowWindow {
        MQTTFlowWindow(maximumCount: count, maximumBytes: bytes, orphanLifetime: .seconds(300))
    }

    @Test("full by count and by bytes; a lone message above the byte limit still goes")
    func limits() {
        var w = window()
        var tokens: [UInt64] = []
        for mid in Int32(1)...3 {
            let t = try! #require(w.reserve(bytes: 100, now: .zero).token)
            #expect(w.register(mid: mid, bytes: 100, topic: "r", token: t) == .waiting)
            tokens.append(t)
        }
        #expect(w.reserve(bytes: 1, now: .zero).token == nil, "a fourth publish overshoots the count")
        #expect(w.acknowledge(mid: 2, reason: 0, now: .seconds(1)) == .resolves(token: tokens[1], topic: "r"))
        #expect(w.reserve(bytes: 801, now: .seconds(1)).token == nil, "200 + 801 bytes overshoot the byte limit")
        #expect(w.reserve(bytes: 800, now: .seconds(1)).token != nil)

        var empty = window()
        #expect(empty.reserve(bytes: 5_000, now: .zero).token != nil, "alone, a large message is not blocked for ever")
        #expect(empty.reserve(bytes: 1, now: .zero).token == nil, "but nothing joins it while it is unacknowledged")
    }

    @Test("a PUBACK that overtakes its registration answers the delivery at registration")
    func earlyAcknowledgement() {
        var w = window()
        let t = try! #require(w.reserve(bytes: 10, now: .zero).token)
        #expect(w.acknowledge(mid: 7, reason: 0x10, now: .zero) == .early)
        #expect(w.register(mid: 7, bytes: 10, topic: "r", token: t) == .acknowledged(reason: 0x10))
        #expect(w.unacknowledgedBytes == 0 && w.inFlight.isEmpty && w.reservations == 0)
    }

    @Test("an unclaimed early PUBACK is forgotten after 5 s, so a reused mid cannot take an old answer")
    func staleEarlyAcknowledgement() {
        var w = window()
        #expect(w.acknowledge(mid: 9, reason: 0x87, now: .seconds(10)) == .early)
        let t = try! #require(w.reserve(bytes: 10, now: .seconds(16)).token)
        #expect(w.register(mid: 9, bytes: 10, topic: "r", token: t) == .waiting)
    }

    @Test("a delivery that gave up keeps its place until the PUBACK comes (late), or until the orphan lifetime")
    func orphans() {
        var w = window(count: 1)
        let t = try! #require(w.reserve(bytes: 10, now: .zero).token)
        _ = w.register(mid: 1, bytes: 10, topic: "r", token: t)
        let expired = w.expire(mid: 1, token: t, now: .seconds(30))
        #expect(expired)
        let again = w.expire(mid: 1, token: t, now: .seconds(31))
        #expect(!again, "expires once")
        let blocked = w.reserve(bytes: 10, now: .seconds(60)).token
        #expect(blocked == nil, "the orphan still counts")
        #expect(w.acknowledge(mid: 1, reason: 0, now: .seconds(90)) == .late)
        #expect(w.reserve(bytes: 10, now: .seconds(90)).token != nil)

        var lost = window(count: 1)
        let u = try! #require(lost.reserve(bytes: 10, now: .zero).token)
        _ = lost.register(mid: 2, bytes: 10, topic: "r", token: u)
        #expect(lost.orphanAll(now: .seconds(1)) == [u])
        #expect(lost.reserve(bytes: 10, now: .seconds(300)).token == nil)
        let later = lost.reserve(bytes: 10, now: .seconds(302))
        #expect(later.token != nil && later.forgotten == 1, "after the lifetime the window frees itself")
        #expect(lost.unacknowledgedBytes == 10)
    }

    @Test("the transport's own publishes never answer a delivery")
    func internalPublishes() {
        var w = window()
        w.registerInternal(mid: 4)
        #expect(w.acknowledge(mid: 4, reason: 0, now: .zero) == .internalPublish)
        #expect(w.acknowledge(mid: 5, reason: 0, now: .zero) == .early)
        w.registerInternal(mid: 5)
        #expect(!w.internalMids.contains(5) && w.early.isEmpty)
    }

    @Test("any order of reserve, register, acknowledge, expire and cancel keeps the books balanced")
    func balanced() {
        var rng = SplitMix64(seed: 11)
        var w = window(count: 5, bytes: 2_000)
        var open: [(mid: Int32, token: UInt64, bytes: Int)] = []
        var mid: Int32 = 0
        var now = Duration.zero
        for _ in 0..<5_000 {
            now += .milliseconds(Int64(rng.next() % 5_000))
            switch rng.next() % 4 {
            case 0, 1:
                let size = 1 + Int(rng.next() % 700)
                if let t = w.reserve(bytes: size, now: now).token {
                    if rng.next() % 10 == 0 { w.cancel(bytes: size); continue }
                    mid += 1
                    if w.register(mid: mid, bytes: size, topic: "r", token: t) == .waiting { open.append((mid, t, size)) }
                }
            case 2:
                guard !open.isEmpty else { continue }
                let i = Int(rng.next() % UInt64(open.count))
                _ = w.acknowledge(mid: open[i].mid, reason: 0, now: now)
                open.remove(at: i)
            default:
                guard !open.isEmpty else { continue }
                let i = Int(rng.next() % UInt64(open.count))
                _ = w.expire(mid: open[i].mid, token: open[i].token, now: now)
            }
            #expect(w.reservations == 0)
            #expect(w.unacknowledgedBytes == w.inFlight.values.reduce(0) { $0 + $1.bytes })
            #expect(w.inFlight.count <= 5)
        }
    }
}

