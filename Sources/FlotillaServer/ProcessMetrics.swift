import CoreMetrics
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A running total exported as a Prometheus counter: each refresh adds what the total grew by.
public final class MonotonicCounter: DescribedMetric, Sendable {
    private let counter: Counter
    private let exported = Mutex<UInt64>(0)

    public init(label: String, dimensions: [(String, String)], factory: any MetricsFactory) {
        counter = Counter(label: label, dimensions: dimensions, factory: factory)
    }

    /// The total is now `total`; a total that went down (a reset) exports nothing until it passes
    /// the last one again.
    public func advance(to total: UInt64) {
        exported.withLock { exported in
            guard total > exported else { return }
            counter.increment(by: Int64(clamping: total - exported))
            exported = total
        }
    }
}

/// What every Prometheus client library exports about its process (`process_*`), and
/// `flotilla_build_info`: read from `/proc/self` before each scrape.
final class ProcessMetrics: Sendable {
    private let residentMemory: Gauge
    private let virtualMemory: Gauge
    private let openFileDescriptors: Gauge
    private let startTime: Gauge
    private let cpuSeconds: FloatingPointCounter
    private let exportedCPU = Mutex<Double>(0)

    init(factory: any MetricsFactory, version: String) {
        residentMemory = Gauge(
            "process_resident_memory_bytes",
            help: "Resident memory size in bytes.",
            factory: factory
        )
        virtualMemory = Gauge("process_virtual_memory_bytes", help: "Virtual memory size in bytes.", factory: factory)
        openFileDescriptors = Gauge("process_open_fds", help: "Number of open file descriptors.", factory: factory)
        startTime = Gauge(
            "process_start_time_seconds",
            help: "Start time of the process since the Unix epoch, in seconds.",
            factory: factory
        )
        cpuSeconds = FloatingPointCounter(
            "process_cpu_seconds_total",
            help: "Total user and system CPU time spent, in seconds.",
            factory: factory
        )
        Gauge(
            "flotilla_build_info",
            help: "Always 1; the labels say which flotilla runs.",
            dimensions: [("version", version)],
            factory: factory
        ).record(1)
        startTime.record(Self.startTime())
    }

    func update() {
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let pages = statm.split(separator: " ").compactMap { Double($0) }
            let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
            if pages.count >= 2 {
                virtualMemory.record(pages[0] * pageSize)
                residentMemory.record(pages[1] * pageSize)
            }
        }
        if let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            openFileDescriptors.record(descriptors.count)
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        let total = seconds(usage.ru_utime) + seconds(usage.ru_stime)
        exportedCPU.withLock { exported in
            guard total > exported else { return }
            cpuSeconds.increment(by: total - exported)
            exported = total
        }
    }

    /// The process's start, from `/proc/self/stat` (field 22, in clock ticks after boot) and the
    /// boot time in `/proc/stat`; now when they cannot be read.
    private static func startTime() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let afterName = stat.lastIndex(of: ")"),
            let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let bootLine = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let boot = Double(bootLine.dropFirst(6))
        else { return Date().timeIntervalSince1970 }
        // Fields after the name start at field 3; the start time is field 22.
        let fields = stat[stat.index(after: afterName)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return Date().timeIntervalSince1970 }
        return boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
