/// A loopback portal for tests (filled in by the uplink work).
public enum PortalFakeNamespace {}
