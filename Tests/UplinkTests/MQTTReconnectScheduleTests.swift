import Testing
@testable import Uplink

/// The MQTT session's reconnect policy in virtual time: the network thread only sleeps what it says.
@Suite("MQTT reconnect schedule")
struct MQTTReconnectScheduleTests {
    @Test("failed attempts double the pause from 0.5 s to the 60 s ceiling")
    func doublesToTheCeiling() {
        var s = MQTTReconnectSchedule(initial: .milliseconds(500), maximum: .seconds(60))
        var t: Duration = .zero
        var pauses: [Duration] = []
        for _ in 0..<10 {
            let p = s.ended(at: t, unit: 1)  // the top of the range: the bound itself
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
        // A source that answers outside [0, 1) is clamped, not trusted.
        for (n, unit) in [-5.0, 7.0, .nan, 0, 0.5, .infinity, -.infinity, 0.25].enumerated() {
            let bound = s.bounds.ceiling(failures: n + 1)
            let p = s.ended(at: t, unit: unit)
            #expect(p >= bound / 2 && p <= bound, "attempt \(n + 1), unit \(unit): \(p) outside \(bound / 2)...\(bound)")
            t += p
        }
        #expect(MQTTReconnectSchedule(initial: .seconds(4), maximum: .seconds(60)).bounds.ceiling(failures: 1) == .seconds(4))
        var r = MQTTReconnectSchedule(initial: .seconds(4), maximum: .seconds(60))
        #expect(r.ended(at: .zero, unit: 0) == .seconds(2))
    }

    @Test("a connection that held 10 s starts the pauses again from the first; a flapping one does not")
    func heldConnectionResets() {
        var s = MQTTReconnectSchedule(initial: .milliseconds(500), maximum: .seconds(60))
        var t: Duration = .zero
        for _ in 0..<4 { t += s.ended(at: t, unit: 1) }  // broker down: 0.5, 1, 2, 4 s
        // Two gateways with one client id: each connection is taken over after 3 s; the pause keeps growing.
        s.connected(at: t)
        t += .seconds(3)
        #expect(s.ended(at: t, unit: 1) == .seconds(8))
        // A connection that held 10 s was a good one: the next failure starts from 0.5 s.
        t += .seconds(8)
        s.connected(at: t)
        s.connected(at: t + .seconds(5))  // later turns of the loop do not move the start
        t += .seconds(10)
        #expect(s.ended(at: t, unit: 1) == .milliseconds(500))
        #expect(s.attempt == 1)
    }

    @Test("odd settings are made safe: no zero pause, no ceiling under the first pause")
    func oddSettings() {
        var s = MQTTReconnectSchedule(initial: .zero, maximum: .zero)
        #expect(s.ended(at: .zero, unit: 0) > .zero)
        let t = MQTTReconnectSchedule(initial: .seconds(5), maximum: .seconds(1))
        #expect(t.bounds.ceiling(failures: 3) == .seconds(5))
    }
}
