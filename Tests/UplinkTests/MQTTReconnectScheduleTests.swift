import Testing
@testable import Uplink

/// The MQTT session's reconnect policy in virtual time: the network thread only sleeps what it says.
@Suite("MQTT reconnect schedule")
struct MQTTReconnectScheduleTests {
    /// The largest draw, so the bound itself is what the test sees.
    static let top: @Sendable (ClosedRange<Int64>) -> Int64 = { $0.upperBound }

    @Test("failed attempts double the pause from 0.5 s to the 60 s ceiling")
    func doublesToTheCeiling() {
        var s = MQTTReconnectSchedule(initial: .milliseconds(500), maximum: .seconds(60))
        var t: Duration = .zero
        var pauses: [Duration] = []
        for _ in 0..<10 {
            let p = s.ended(at: t, random: Self.top)
            pauses.append(p)
            t += p
        }
        #expect(pauses == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(32),
                           .seconds(60), .seconds(60), .seconds(60)])
        #expect(s.attempt == 10)
    }

    @Test("every pause is drawn from the upper half of its bound, whatever the random source gives")
    func jitterStaysInTheUpperHalf() {
        var s = MQTTReconnectSchedule(initial: .seconds(1), maximum: .seconds(60))
        var t: Duration = .zero
        for n in 1...12 {
            let bound = s.upperBound(attempt: n)
            // A source that answers outside the range it was given is clamped, not trusted.
            let p = s.ended(at: t, random: { _ in n.isMultiple(of: 2) ? Int64.max : -5 })
            #expect(p >= bound / 2 && p <= bound, "attempt \(n): \(p) outside \(bound / 2)...\(bound)")
            t += p
        }
        var r = MQTTReconnectSchedule(initial: .seconds(1), maximum: .seconds(60))
        var g = SystemRandomNumberGenerator()
        for n in 1...200 {
            let bound = r.upperBound(attempt: min(n, 7))
            let p = r.ended(at: .seconds(n), random: { Int64.random(in: $0, using: &g) })
            #expect(p >= bound / 2 && p <= bound)
        }
    }

    @Test("a connection that held 10 s starts the pauses again from the first; a flapping one does not")
    func heldConnectionResets() {
        var s = MQTTReconnectSchedule(initial: .milliseconds(500), maximum: .seconds(60))
        var t: Duration = .zero
        for _ in 0..<4 { t += s.ended(at: t, random: Self.top) }  // broker down: 0.5, 1, 2, 4 s
        // Two gateways with one client id: each connection is taken over after 3 s; the pause keeps growing.
        s.connected(at: t)
        t += .seconds(3)
        #expect(s.ended(at: t, random: Self.top) == .seconds(8))
        // A connection that held 10 s was a good one: the next failure starts from 0.5 s.
        t += .seconds(8)
        s.connected(at: t)
        s.connected(at: t + .seconds(5))  // later turns of the loop do not move the start
        t += .seconds(10)
        #expect(s.ended(at: t, random: Self.top) == .milliseconds(500))
        #expect(s.attempt == 1)
    }

    @Test("odd settings are made safe: no zero pause, no ceiling under the first pause")
    func oddSettings() {
        var s = MQTTReconnectSchedule(initial: .zero, maximum: .zero)
        #expect(s.ended(at: .zero, random: Self.top) > .zero)
        let t = MQTTReconnectSchedule(initial: .seconds(5), maximum: .seconds(1))
        #expect(t.upperBound(attempt: 3) == .seconds(5))
    }
}
