/// The requests a run owed and did not complete, beyond the failures it saw: counted as failures so
/// that a dead target cannot pass an SLO by not being asked.
///
/// - Open loop (`--rate`): every scheduled request counts. One that was due and never sent (its
///   connection was gone, or the window was full until the end) failed, as wrk2 and k6 count
///   dropped iterations (`not_sent`); one due within an interval (and 10 ms) of the end may still
///   be on its way and is not counted.
/// - Closed loop: a connection without a connection to the target sends nothing, so it would never
///   fail a request. Its time without one counts as failed requests at the rate it completed them
///   while connected (`unavailable`).
enum BenchAccounting {
    /// Open loop: how many requests of a connection are due by `now`, its first due at `first` and
    /// one every `interval` nanoseconds after.
    static func due(first: UInt64, interval: UInt64, at now: UInt64) -> UInt64 {
        guard interval > 0, now >= first else { return 0 }
        return (now - first) / interval + 1
    }

    /// Closed loop: the requests a connection would have completed in `downNanoseconds` without a
    /// connection, at the rate it completed `completed` requests in `upNanoseconds` with one; at
    /// `fallbackPerNanosecond` (the other connections' rate) when it never completed one.
    static func unavailable(
        downNanoseconds: UInt64,
        upNanoseconds: UInt64,
        completed: UInt64,
        fallbackPerNanosecond: Double
    ) -> UInt64 {
        guard downNanoseconds > 0 else { return 0 }
        let rate =
            completed > 0 && upNanoseconds > 0
            ? Double(completed) / Double(upNanoseconds) : fallbackPerNanosecond
        return UInt64((Double(downNanoseconds) * rate).rounded())
    }
}
