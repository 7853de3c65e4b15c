/// Simulated wireless M-Bus dongles behind pseudo-terminals (filled in by the dongle work).
public enum DongleSimulatorNamespace {}
