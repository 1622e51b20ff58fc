import CoreMetrics

/// A metric made from its family name: declared with `init(_:help:dimensions:factory:)`, it
/// carries its HELP text on `/metrics`, and its name is written once.
public protocol DescribedMetric {
    init(label: String, dimensions: [(String, String)], factory: any MetricsFactory)
}

extension DescribedMetric {
    /// The metric `label`, whose family carries `help` on `/metrics`.
    public init(_ label: String, help: String, dimensions: [(String, String)] = [], factory: any MetricsFactory) {
        MetricHelp.describe([label: help])
        self.init(label: label, dimensions: dimensions, factory: factory)
    }
}

extension Gauge: DescribedMetric {}
extension Counter: DescribedMetric {}
extension FloatingPointCounter: DescribedMetric {}
