/// The version of edm-monitor, reported by `GET /api/monitoring/health` and `edm-monitor --version`.
public enum EDMMonitorVersion {
    /// Semantic version of this build.
    public static let current = "0.1.0"
}
