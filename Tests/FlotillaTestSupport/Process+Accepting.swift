import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Process {
    /// True once a TCP connection to `127.0.0.1:port` succeeds; false if the process exits or the timeout
    /// passes. For peers that cannot report their port (memcached, nutcracker).
    func waitUntilAccepting(port: UInt16, timeout: Duration) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if !isRunning { return false }
            if let client = try? WireClient(port: port, connectTimeout: .milliseconds(1)) {
                client.close()
                return true
            }
            usleep(20_000)
        }
        return false
    }
}
