import Testing

@testable import FlotillaBench

@Suite("Requests owed and not made count as failures")
struct BenchAccountingTests {
    @Test("open loop: the requests due by a time, from the connection's first")
    func dueRequests() {
        #expect(BenchAccounting.due(first: 1_000, interval: 100, at: 999) == 0)
        #expect(BenchAccounting.due(first: 1_000, interval: 100, at: 1_000) == 1)
        #expect(BenchAccounting.due(first: 1_000, interval: 100, at: 1_099) == 1)
        #expect(BenchAccounting.due(first: 1_000, interval: 100, at: 2_000) == 11)
        // Closed loop has no schedule: nothing is due.
        #expect(BenchAccounting.due(first: 0, interval: 0, at: 5_000) == 0)
    }

    @Test("closed loop: time without a connection counts at the rate the connection had")
    func unavailableRequests() {
        // 1,000 requests in 1 s connected, then 2 s without: 2,000 requests it did not make.
        let second: UInt64 = 1_000_000_000
        #expect(
            BenchAccounting.unavailable(
                downNanoseconds: 2 * second,
                upNanoseconds: second,
                completed: 1_000,
                fallbackPerNanosecond: 0
            ) == 2_000
        )
        // Never connected while recording: the other connections' rate.
        #expect(
            BenchAccounting.unavailable(
                downNanoseconds: 3 * second,
                upNanoseconds: 0,
                completed: 0,
                fallbackPerNanosecond: 500 / Double(second)
            ) == 1_500
        )
        // Connected throughout: nothing owed.
        #expect(
            BenchAccounting.unavailable(
                downNanoseconds: 0,
                upNanoseconds: second,
                completed: 9,
                fallbackPerNanosecond: 1
            )
                == 0
        )
    }
}
