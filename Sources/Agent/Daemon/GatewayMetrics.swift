import Prometheus
import Synchronization

/// The daemon's Prometheus metrics. The parts of the daemon keep their own cumulative counters
/// (pipeline, bus lines, uplink, buffer) as plain snapshots; a sampler copies them here every few
/// seconds. Counters are advanced by the difference since the last sample, so a part that restarts
/// (its counters back at zero) never makes a Prometheus counter go down.
package final class GatewayMetrics: Sendable {
    package let registry: PrometheusCollectorRegistry
    /// Last value seen per counter key, to turn cumulative snapshots into increments.
    private let last = Mutex<[String: Int]>([:])

    package init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// The metric families gatewayd exposes, with their help texts (the names are part of the
    /// operations contract: dashboards depend on them; see docs/operations.md).
    package enum Family: String, CaseIterable {
        case telegrams = "gatewayd_telegrams_total"
        case busRequests = "gatewayd_bus_requests_total"
        case busTimeouts = "gatewayd_bus_timeouts_total"
        case busRetries = "gatewayd_bus_retries_total"
        case bufferDepth = "gatewayd_buffer_pending_readings"
        case bufferOldestAge = "gatewayd_buffer_oldest_pending_age_seconds"
        case bufferEvicted = "gatewayd_buffer_evicted_total"
        case uploadBatches = "gatewayd_upload_batches_total"
        case uploadRetries = "gatewayd_upload_retries_total"
        case uploadFailures = "gatewayd_upload_failures_total"
        case uploadReadings = "gatewayd_upload_readings_total"
        case alarmsRaised = "gatewayd_alarms_raised_total"
        case alarmsOpen = "gatewayd_alarms_open"
        case valuesRefused = "gatewayd_values_refused_total"
        case securityDowngrades = "gatewayd_security_downgrades_total"
        case strangers = "gatewayd_unknown_devices"
        case strangersEvicted = "gatewayd_unknown_devices_evicted_total"
        case uploadHeld = "gatewayd_upload_batches_held_total"
        case bufferWaitingForClock = "gatewayd_buffer_waiting_for_clock_readings"
        case metersNotHeard = "gatewayd_devices_silent"
        case keyFindings = "gatewayd_key_findings_total"
        case rssiMedian = "gatewayd_rssi_median_dbm"
        case modbusDeviceReads = "gatewayd_modbus_device_reads_total"
        case modbusDeviceNoAnswer = "gatewayd_modbus_device_no_answer_total"
        case modbusDeviceProbes = "gatewayd_modbus_device_probes_total"
        case modbusDeviceSkipped = "gatewayd_modbus_device_skipped_slots_total"
        case modbusDeviceHealthy = "gatewayd_modbus_device_answering"

        package var help: String {
            switch self {
            case .telegrams: "Telegrams by outcome: heard, decoded, failed, unknown, deduplicated, rejected, buffered."
            case .busRequests: "Requests sent on a bus line (M-Bus REQ_UD2/SND_NKE, Modbus PDUs)."
            case .busTimeouts: "Requests on a bus line that got no answer in time."
            case .busRetries: "Requests repeated after a timeout or a garbled answer."
            case .bufferDepth: "Readings waiting in the buffer for the portal."
            case .bufferOldestAge: "Age of the oldest reading waiting for the portal."
            case .bufferEvicted: "Unsent readings deleted to stay under the buffer cap or because the disk is full."
            case .uploadBatches: "Reading batches the portal acknowledged."
            case .uploadRetries: "Upload attempts repeated after a transient failure."
            case .uploadFailures: "Upload attempts that failed (transient or not)."
            case .uploadReadings: "Readings the portal acknowledged."
            case .alarmsRaised: "Alarms raised (each onset once)."
            case .alarmsOpen: "Alarms currently open."
            case .valuesRefused: "Values refused alone (not a finite number, not convertible); the rest of their telegram is stored."
            case .securityDowngrades: "Telegrams refused because a meter with a known key sent them unencrypted (alarm security_downgrade)."
            case .strangers: "Devices heard that are not in the registry, held as identity and signal only."
            case .strangersEvicted: "Unknown-device sightings dropped to stay within the table's bound (least recently heard first)."
            case .uploadHeld: "HTTP 400 answers that named no reading of the batch: the batch was held, not deleted (alarm uplink_batch_held)."
            case .bufferWaitingForClock: "Readings held back until the clock is synchronised (never uploaded with a wrong time)."
            case .rssiMedian: "Median RSSI of the recent telegrams of a registered radio meter at one receiver (labels device, receiver)."
            case .keyFindings: "Radio telegrams that did not open, by kind: wrong_key, key_of_another_meter (swapped rows of the key file), mac_failure, truncated, no_key, unsupported_mode."
            case .modbusDeviceReads: "Reads a heat pump answered, per device (label device = modbus:LINE/NAME)."
            case .modbusDeviceNoAnswer: "Reads a heat pump did not answer; each backs the device off (issue 18's fair line)."
            case .modbusDeviceProbes: "Tries of a backed-off or refused heat pump after its backoff."
            case .modbusDeviceSkipped: "Poll slots of a heat pump that passed while the line was busy or the device backed off (skipped, never queued)."
            case .modbusDeviceHealthy: "1 while a heat pump answers and matches its profile, 0 while it is backed off or refused."
            case .metersNotHeard: "Registered devices silent for longer than [alarms] allows (alarms not_heard for radio meters, no_answer for wired meters and heat pumps)."
            }
        }
    }

    /// Advances a counter to a cumulative value taken from a snapshot.
    package func observe(_ family: Family, labels: [(String, String)] = [], cumulative value: Int) {
        let key = family.rawValue + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let delta = last.withLock { seen -> Int in
            let before = seen[key] ?? 0
            seen[key] = value
            // A restarted part starts again from zero: count what it has done since.
            return value >= before ? value - before : value
        }
        let counter = registry.makeCounter(name: family.rawValue, labels: labels, help: family.help)
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }

    package func set(_ family: Family, labels: [(String, String)] = [], to value: Double) {
        registry.makeGauge(name: family.rawValue, labels: labels, help: family.help).set(to: value)
    }

    package func exposition() -> String { registry.emitToString() }
}
