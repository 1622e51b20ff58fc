import FlotillaMemcache
import NIOCore
import Testing

@testable import FlotillaProxy

@Suite("Restarted shards: finding the restart, listing keys, keeping the rate")
struct ShardRebuildTests {
    let t0 = ContinuousClock.now

    private func identity(pid: Int?, uptime: Int64, at offset: Duration) -> ShardIdentity {
        ShardIdentity(pid: pid, uptime: uptime, observedAt: t0 + offset)
    }

    @Test("a new pid, or an uptime shorter than the time that passed, is a restart; pid 1 every time too")
    func restartIsANewProcess() {
        let first = identity(pid: 4242, uptime: 100, at: .zero)
        // The same process a minute later, give or take uptime's whole seconds.
        #expect(!identity(pid: 4242, uptime: 160, at: .seconds(60)).isRestart(since: first))
        #expect(!identity(pid: 4242, uptime: 159, at: .milliseconds(60_900)).isRestart(since: first))
        #expect(identity(pid: 4243, uptime: 160, at: .seconds(60)).isRestart(since: first))
        // In a container memcached is pid 1 each time: the uptime tells.
        let container = identity(pid: 1, uptime: 3_600, at: .zero)
        #expect(identity(pid: 1, uptime: 2, at: .seconds(5)).isRestart(since: container))
        #expect(!identity(pid: 1, uptime: 3_605, at: .seconds(5)).isRestart(since: container))
        // A server that reports no pid.
        let anonymous = identity(pid: nil, uptime: 50, at: .zero)
        #expect(identity(pid: nil, uptime: 1, at: .seconds(1)).isRestart(since: anonymous))
        #expect(!identity(pid: nil, uptime: 51, at: .seconds(1)).isRestart(since: anonymous))
    }

    @Test func identityIsReadFromStats() {
        let reply = ShardReply.stats([("pid", "77"), ("uptime", "12"), ("version", "1.6.18")])
        #expect(ShardIdentity(reply, observedAt: t0) == identity(pid: 77, uptime: 12, at: .zero))
        #expect(ShardIdentity(.stats([("pid", "77")]), observedAt: t0) == nil)
    }

    @Test("the records count restarts once each, and a finished rebuild clears the need")
    func recordsFollowTheRebuild() {
        let rebuilds = ShardRebuilds(shardNames: ["a", "b"])
        #expect(!rebuilds.observe(1, identity(pid: 10, uptime: 100, at: .zero)))  // first sight
        #expect(!rebuilds.observe(1, identity(pid: 10, uptime: 101, at: .seconds(1))))
        #expect(rebuilds.observe(1, identity(pid: 11, uptime: 0, at: .seconds(2))))
        #expect(!rebuilds.observe(1, identity(pid: 11, uptime: 1, at: .seconds(3))))
        #expect(rebuilds.isNeeded(1) && !rebuilds.isNeeded(0))
        rebuilds.begin(1)
        rebuilds.progress(1, scanned: 500, copied: 0)
        rebuilds.progress(1, scanned: 0, copied: 256)
        rebuilds.peerFailed(1, reason: "peer: timeout")
        #expect(rebuilds.snapshot()[1].running)
        rebuilds.stopped(1, reason: "the shard went down", abandoned: false)
        #expect(rebuilds.isNeeded(1) && !rebuilds.snapshot()[1].running)
        rebuilds.begin(1)
        rebuilds.progress(1, scanned: 300, copied: 200)
        rebuilds.finish(1, after: .seconds(2))
        let record = rebuilds.snapshot()[1]
        #expect(!record.needed && !record.running)
        #expect(record.restarts == 1 && record.completed == 1 && record.failures == 1)
        #expect(record.scanned == 300 && record.copied == 200)
        #expect(record.lastDuration == .seconds(2) && record.lastError == "the shard went down")
        // Abandoned: not needed any more until the next restart.
        #expect(rebuilds.observe(0, identity(pid: 1, uptime: 9, at: .zero)) == false)
        #expect(rebuilds.observe(0, identity(pid: 2, uptime: 0, at: .seconds(1))))
        rebuilds.begin(0)
        rebuilds.stopped(0, reason: "a peer cannot list its keys", abandoned: true)
        #expect(!rebuilds.isNeeded(0))
    }

    @Test("metadump lines give the raw key back: percent-escapes decoded, other lines none")
    func metadumpKeys() {
        func key(_ line: String) -> [UInt8]? {
            let buffer = ByteBuffer(string: line)
            return MetadumpReader.key(ofLine: buffer.readableBytesView[...]).map { Array($0.readableBytesView) }
        }
        #expect(key("key=a%25b exp=-1 la=1 cas=1 fetch=no cls=1 size=67") == Array("a%b".utf8))
        #expect(key("key=h%C3%A9 exp=-1 la=1 cas=4 fetch=no cls=1 size=63") == Array("hé".utf8))
        #expect(key("key=%00%0D%0A%20x exp=-1") == [0, 13, 10, 32, UInt8(ascii: "x")])
        #expect(key("key=plain") == Array("plain".utf8))
        #expect(key("END\r") == nil)
        #expect(key("key= exp=-1") == nil)
        #expect(key("BUSY currently processing crawler request\r") == nil)
    }

    @Test("the pace holds the keys after the first batch to the rate")
    func paceKeepsTheRate() async throws {
        let start = ContinuousClock.now
        var pace = RebuildPace(keysPerSecond: 10_000, start: start)
        try await pace.wait(forKeys: 500)  // at once
        try await pace.wait(forKeys: 500)  // due 50 ms after the start
        #expect(ContinuousClock.now - start >= .milliseconds(50))
    }
}
