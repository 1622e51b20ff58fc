import Testing

@testable import FlotillaCore

/// Known answers for twemproxy compatibility. Every expected value below was computed by compiling twemproxy's own
/// algorithms (nc_fnv.c, nc_murmur.c, hash_md5 and ketama_update / ketama_dispatch from nc_ketama.c) with gcc on
/// x86-64; the C code is not part of this repository.
@Suite("Ketama: twemproxy's key hashes and continuum, bit for bit")
struct KetamaTests {
    /// Keys and their hashes: "foo", "bar", "hello", "key:1", "été", "abc", "user/42/photo" and the single byte 0xFF.
    static let keys: [[UInt8]] =
        ["foo", "bar", "hello", "key:1", "été", "abc", "user/42/photo"].map { Array($0.utf8) }
        + [[0xFF]]

    static let expectedHashes: [(KeyHash, [UInt32])] = [
        (
            .fnv1a64,
            [
                4_275_688_823, 322_520_602, 2_158_673_163, 2_519_685_833, 3_933_641_815, 88_168_267, 2_451_834_642,
                2_046_707_310,
            ]
        ),
        (
            .fnv164,
            [
                1_805_727_027, 1_806_514_304, 3_183_334_599, 4_257_821_445, 3_995_086_359, 1_806_675_403, 640_579_068,
                2_046_707_744,
            ]
        ),
        (
            .fnv1a32,
            [
                2_851_307_223, 1_991_736_602, 1_335_831_723, 1_477_709_737, 200_187_927, 440_920_331, 1_408_860_722,
                4_193_493_326,
            ]
        ),
        (
            .fnv132,
            [
                1_083_137_555, 513_390_112, 3_069_866_343, 2_305_095_589, 3_199_958_167, 1_134_309_195, 2_713_948_412,
                4_210_270_944,
            ]
        ),
        (
            .md5,
            [
                3_675_831_724, 421_377_335, 708_854_109, 1_018_217_594, 510_308_318, 2_555_380_112, 1_667_804_829,
                3_561_969_920,
            ]
        ),
        (
            .murmur,
            [
                3_303_027_599, 516_654_467, 1_377_504_255, 3_691_594_071, 3_664_841_419, 2_064_434_216, 3_050_349_787,
                3_679_652_508,
            ]
        ),
    ]

    @Test(arguments: expectedHashes)
    func keyHashesMatchTwemproxy(hash: KeyHash, expected: [UInt32]) {
        #expect(Self.keys.map { hash.hash($0) } == expected)
        #expect(hash.hash("foo") == expected[0])
        #expect(KeyHash(twemproxyName: hash.description) == hash)
    }

    @Test func emptyKeyHashesToZeroLikeTwemproxy() throws {
        let router = try ShardRouter(shards: Self.pool, distribution: .ketama(hash: .fnv1a64), replicas: 1)
        #expect(router.hash("") == 0)
        #expect(router.primary(for: "") == router.primary(forHash: 0))
    }

    /// 10.0.0.1:11211 (hashed as "10.0.0.1"), weight 1; 10.0.0.2:11212, weight 3; cache-3.example:22122, weight 2.
    static let pool = [
        ShardSpec(host: "10.0.0.1", port: 11211, weight: 1),
        ShardSpec(host: "10.0.0.2", port: 11212, weight: 3),
        ShardSpec(host: "cache-3.example", port: 22122, weight: 2),
    ]

    /// Points, a checksum over (position, owner) in order, and the first and last points of twemproxy's continuum.
    struct Expected: Sendable, CustomTestStringConvertible {
        var shards: [ShardSpec]
        var count: Int
        var checksum: UInt64
        var first: (UInt64, UInt16)
        var last: (UInt64, UInt16)
        var testDescription: String { shards.map(\.description).joined(separator: ",") }
    }

    static func specs(_ text: String) -> [ShardSpec] {
        try! ShardSpec.parseList(text)
    }

    static let continua: [Expected] = [
        Expected(
            shards: specs("127.0.0.1:11211,127.0.0.1:11212"),
            count: 320,
            checksum: 253_882_337_028_115,
            first: (15_946_801, 1),
            last: (4_292_932_786, 0)
        ),
        Expected(
            shards: pool,
            count: 480,
            checksum: 901_249_215_198_476,
            first: (16_911_867, 2),
            last: (4_290_707_342, 1)
        ),
        // float rounding: 1/25 × 160 / 4 × 5 is 7.9999995 in float, so each weight-1 server gets 28 points, not 32.
        Expected(
            shards: specs("a:1,b:1,c:1,d:1,e:1:21"),
            count: 784,
            checksum: 5_662_931_641_327_921,
            first: (9_152_797, 4),
            last: (4_291_852_806, 1)
        ),
        Expected(
            shards: specs("a:1,b:1:2,c:1:3,d:1:7,e:1:11,f:1:13,g:1:100"),
            count: 1_112,
            checksum: 15_995_556_544_156_744,
            first: (1_533_096, 6),
            last: (4_291_852_806, 1)
        ),
    ]

    @Test(arguments: continua)
    func continuumMatchesTwemproxy(expected: Expected) throws {
        let router = try ShardRouter(shards: expected.shards, distribution: .ketama(hash: .md5), replicas: 1)
        #expect(router.points.count == expected.count)
        var checksum: UInt64 = 0
        for index in router.points.indices {
            let entry = router.points[index] ^ (UInt64(router.owners[index]) << 32)
            checksum &+= entry &* UInt64(index + 1)
        }
        #expect(checksum == expected.checksum)
        #expect(router.points.first == expected.first.0 && router.owners.first == expected.first.1)
        #expect(router.points.last == expected.last.0 && router.owners.last == expected.last.1)
    }

    @Test(arguments: [3, 5, 6, 7, 9, 11, 13])
    func equalServersGetOneHundredSixtyPointsEach(count: Int) throws {
        let shards = (1...count).map { ShardSpec(host: "s\($0)", port: 11211) }
        let router = try ShardRouter(shards: shards, distribution: .ketama(hash: .md5), replicas: 1)
        #expect(router.points.count == 160 * count)
    }

    /// The keys above plus key:2…key:5, session:9f8e and x, and the server twemproxy sends each to.
    static let dispatchKeys: [[UInt8]] =
        keys + ["key:2", "key:3", "key:4", "key:5", "session:9f8e", "x"].map { Array($0.utf8) }

    @Test(arguments: [
        (KeyHash.fnv1a64, pool, [1, 2, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1]),
        (.md5, pool, [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 1, 0, 1, 1]),
        (.murmur, pool, [1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 0]),
        (.fnv1a64, specs("a:1,b:1,c:1,d:1,e:1:21"), [4, 4, 4, 4, 4, 4, 0, 4, 4, 4, 4, 4, 4, 4]),
    ])
    func primariesMatchTwemproxy(hash: KeyHash, shards: [ShardSpec], expected: [Int]) throws {
        let router = try ShardRouter(shards: shards, distribution: .ketama(hash: hash), replicas: 1)
        #expect(Self.dispatchKeys.map { router.primary(for: $0) } == expected)
    }

    @Test func replicasContinueClockwiseOverDistinctServers() throws {
        let router = try ShardRouter(shards: Self.pool, distribution: .ketama(hash: .md5), replicas: 3)
        for key in Self.dispatchKeys {
            let replicas = router.replicaSet(for: key)
            #expect(Set(replicas) == [0, 1, 2])
            #expect(replicas.primary == router.primary(for: key))
            let degraded = router.replicaSet(for: key, isLive: { $0 != replicas[0] })
            #expect(Array(degraded) == Array(replicas.dropFirst()))
        }
    }

    @Test func ownershipFollowsWeights() throws {
        let router = try ShardRouter(shards: Self.pool, distribution: .ketama(hash: .md5), replicas: 1)
        let ownership = router.ownership()
        #expect(abs(ownership.reduce(0, +) - 1) < 1e-9)
        for (shard, share) in ownership.enumerated() {
            let expected = Double(Self.pool[shard].weight) / 6
            #expect(abs(share - expected) < 0.05, "shard \(shard) owns \(share)")
        }
    }

    @Test func rejectsShardsTwemproxyCannotPlace() {
        #expect {
            try ShardRouter(shards: Self.specs("a:1,b:1:10000"), distribution: .ketama(hash: .md5), replicas: 1)
        } throws: { error in
            (error as? ShardRouterError)?.code == .ketamaIncompatible
        }
        let longHost = String(repeating: "h", count: 84)
        #expect {
            try ShardRouter(
                shards: [ShardSpec(host: longHost, port: 11211), ShardSpec(host: "b", port: 1)],
                distribution: .ketama(hash: .md5),
                replicas: 1
            )
        } throws: { error in
            (error as? ShardRouterError)?.code == .ketamaIncompatible
        }
    }
}
