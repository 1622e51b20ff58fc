import FlotillaBench
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the demo tells as it goes. On a terminal the load's progress is one line rewritten in
/// place, and event lines are printed above it; piped, every progress report is a plain line.
final class DemoConsole: Sendable {
    private let descriptor: Int32
    private let terminal: Bool
    /// True while a progress line is on screen (terminal only), to be cleared before other text.
    private let progressShowing = Mutex(false)

    init(descriptor: Int32) {
        self.descriptor = descriptor
        self.terminal = isatty(descriptor) != 0
    }

    /// One line of the story.
    func say(_ text: String) {
        progressShowing.withLock { showing in
            emit((showing ? "\r\u{1B}[2K" : "") + text + "\n")
            showing = false
        }
    }

    /// The load's progress, once a second.
    func progress(_ label: String, _ progress: BenchProgress) {
        var text = "\(label) \(DemoFormat.seconds(progress.elapsed))  \(DemoFormat.grouped(progress.rate)) req/s"
        text += "  p99 \(DemoFormat.latency(microseconds: progress.p99Microseconds))"
        text += "  errors \(DemoFormat.grouped(Double(progress.errors)))"
        progressShowing.withLock { showing in
            if terminal {
                emit("\r\u{1B}[2K" + text)
                showing = true
            } else {
                emit(text + "\n")
            }
        }
    }

    /// Clears a progress line left on screen.
    func endProgress() {
        progressShowing.withLock { showing in
            if showing { emit("\r\u{1B}[2K") }
            showing = false
        }
    }

    private func emit(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
