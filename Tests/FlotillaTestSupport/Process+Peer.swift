import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Process {
    /// Runs the process so that SIGTERM and SIGINT reach it. Test runners call us from threads that block most
    /// signals, and a blocked mask survives exec: a child started from such a thread would never see our SIGTERM.
    /// The shutdown signals are unblocked just for the spawn.
    func runStoppable() throws {
        var shutdownSignals = sigset_t()
        sigemptyset(&shutdownSignals)
        sigaddset(&shutdownSignals, SIGTERM)
        sigaddset(&shutdownSignals, SIGINT)
        var previousMask = sigset_t()
        pthread_sigmask(SIG_UNBLOCK, &shutdownSignals, &previousMask)
        defer { pthread_sigmask(SIG_SETMASK, &previousMask, nil) }
        try run()
    }

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
