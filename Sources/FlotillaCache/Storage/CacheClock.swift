#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// memcached's notion of time: seconds since an epoch a little before the process started,
/// read from the monotonic clock, plus the rules that turn a client's exptime into it.
struct CacheClock: Sendable {
    /// memcached starts its clock at `ITEM_UPDATE_INTERVAL + 2` seconds so that time 1 is
    /// always in the past: it is how "already expired" is stored.
    static let startOffset: UInt32 = 62
    /// Expiry values above 30 days are absolute Unix times.
    static let relativeLimit: Int64 = 60 * 60 * 24 * 30

    /// Unix time that corresponds to cache time 0.
    let processStarted: Int64
    private let monotonicStart: Int64

    init() {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        self.processStarted = Int64(wall.tv_sec) - Int64(Self.startOffset)
        self.monotonicStart = Self.monotonicSeconds()
    }

    /// Current cache time, in seconds.
    var now: UInt32 {
        Self.startOffset &+ UInt32(truncatingIfNeeded: Self.monotonicSeconds() - monotonicStart)
    }

    /// The current Unix time as memcached reports it in `stats`.
    var unixNow: Int64 { processStarted + Int64(now) }

    private static func monotonicSeconds() -> Int64 {
        var ts = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        #else
        clock_gettime(CLOCK_MONOTONIC, &ts)
        #endif
        return Int64(ts.tv_sec)
    }

    /// memcached's `realtime(EXPTIME_TO_POSITIVE_TIME(exptime))`: 0 never expires, a negative
    /// value is already expired, up to 30 days is relative, beyond is an absolute Unix time.
    func expiry(_ exptime: Int32, now: UInt32) -> UInt32 {
        if exptime == 0 { return 0 }
        let positive = exptime < 0 ? Self.relativeLimit + 1 : Int64(exptime)
        if positive > Self.relativeLimit {
            if positive <= processStarted { return 1 }
            return UInt32(truncatingIfNeeded: positive - processStarted)
        }
        return UInt32(truncatingIfNeeded: positive + Int64(now))
    }
}
