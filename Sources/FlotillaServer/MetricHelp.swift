import CoreMetrics
import Prometheus
import Synchronization

/// The HELP text of each metric family, by name: every family on `/metrics` carries one, as
/// `promtool check metrics` asks. A module describes its families before it creates them.
public enum MetricHelp {
    private static let texts = Mutex<[String: String]>([:])

    /// Records the HELP text of each family named.
    public static func describe(_ families: [String: String]) {
        texts.withLock { $0.merge(families) { _, new in new } }
    }

    static func text(_ family: String) -> String {
        texts.withLock { $0[family] } ?? ""
    }
}

/// Prometheus through swift-metrics, with each family's HELP text (`MetricHelp`): swift-prometheus'
/// own `PrometheusMetricsFactory` registers every family without one. Counters and gauges are
/// made here; histograms and timers by the wrapped factory.
public final class PrometheusHelpFactory: MetricsFactory, Sendable {
    public let prometheus: PrometheusMetricsFactory
    public var registry: PrometheusCollectorRegistry { prometheus.registry }

    public init(_ prometheus: PrometheusMetricsFactory) {
        self.prometheus = prometheus
    }

    /// The family named `label` (its whole name: no unit is added) with its HELP text.
    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: MetricHelp.text(label))
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Prometheus.Counter {
        dimensions.isEmpty
            ? registry.makeCounter(descriptor: descriptor(label))
            : registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> Prometheus.Gauge {
        dimensions.isEmpty
            ? registry.makeGauge(descriptor: descriptor(label))
            : registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        counter(label, dimensions)
    }

    public func makeFloatingPointCounter(
        label: String,
        dimensions: [(String, String)]
    ) -> any FloatingPointCounterHandler {
        counter(label, dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        aggregate
            ? prometheus.makeRecorder(label: label, dimensions: dimensions, aggregate: true)
            : gauge(label, dimensions)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        gauge(label, dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        prometheus.makeTimer(label: label, dimensions: dimensions)
    }

    public func destroyCounter(_ handler: any CounterHandler) { prometheus.destroyCounter(handler) }
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        prometheus.destroyFloatingPointCounter(handler)
    }
    public func destroyRecorder(_ handler: any RecorderHandler) { prometheus.destroyRecorder(handler) }
    public func destroyMeter(_ handler: any MeterHandler) { prometheus.destroyMeter(handler) }
    public func destroyTimer(_ handler: any TimerHandler) { prometheus.destroyTimer(handler) }
}
