import FlotillaMemcache
import Testing

@Suite("Merging several servers' stats groups")
struct StatsMergeTests {
    @Test func countsAddUpLevelsKeepTheLargestTextTheFirst() {
        var merge = StatsMerge(.sumCounts)
        merge.add([("items:1:number", "2"), ("items:1:age", "30"), ("items:1:evicted", "1")])
        merge.add([("items:1:number", "5"), ("items:1:age", "10"), ("items:7:number", "1"), ("items:1:evicted", "x")])
        #expect(merge.lines.map(\.name) == ["items:1:number", "items:1:age", "items:1:evicted", "items:7:number"])
        #expect(merge.lines.map(\.value) == ["7", "30", "1", "1"])
    }

    @Test func settingsAreTheFirstServersButForWhatIsSummed() {
        var merge = StatsMerge(.firstExcept(summed: ["maxbytes"]))
        merge.add([("maxbytes", "100"), ("tcpport", "11211"), ("evictions", "on")])
        merge.add([("maxbytes", "50"), ("tcpport", "11212"), ("evictions", "off")])
        #expect(merge.lines.map(\.value) == ["150", "11211", "on"])
    }

    @Test func prefixCountsAddUpByPrefix() {
        var merge = StatsMerge(.prefixes)
        merge.add([("PREFIX", "user get 2 hit 1 set 1 del 1")])
        merge.add([("PREFIX", "photo get 1 hit 0 set 0 del 0"), ("PREFIX", "user get 3 hit 3 set 0 del 2")])
        #expect(merge.lines.map(\.value) == ["user get 5 hit 4 set 1 del 3", "photo get 1 hit 0 set 0 del 0"])
        #expect(merge.lines.allSatisfy { $0.name == "PREFIX" })
    }
}
