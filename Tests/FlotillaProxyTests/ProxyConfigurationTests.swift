import FlotillaCore
import FlotillaProxy
import FlotillaServer
import Foundation
import Testing

@Suite("ProxyConfiguration: one settings type for flags, topology documents and /v1/status")
struct ProxyConfigurationTests {
    private func decode(_ json: String) throws -> ProxyConfiguration {
        try JSONDecoder().decode(ProxyConfiguration.self, from: Data(json.utf8))
    }

    @Test("shards as a list or as the flag's comma-separated string; the rest defaults as the flags do")
    func shardsEitherWay() throws {
        let list = try decode(#"{"shards": ["127.0.0.1:11211", "127.0.0.1:11212:2"]}"#)
        let text = try decode(#"{"shards": "127.0.0.1:11211,127.0.0.1:11212:2"}"#)
        #expect(list.shards == text.shards)
        #expect(list.shards.map(\.description) == ["127.0.0.1:11211", "127.0.0.1:11212:2"])
        #expect(list.listen == HostPort(host: "127.0.0.1", port: 22122))
        #expect(list.replicas == 2)
        #expect(list.consistency == .quorum)
        #expect(list.placement == .ring)
        #expect(list.shardTimeout == .milliseconds(500))
        #expect(list.failureLimit == 3)
        #expect(list.maxConnections == 1024)
        try list.validate()
    }

    @Test("every flag is read under its own name")
    func everyFlag() throws {
        let configuration = try decode(
            """
            {"listen": "127.0.0.1:0", "shards": "a:1,b:2,c:3", "replicas": 3, "consistency": "all",
             "distribution": "ketama", "read-repair": true, "shard-timeout": "200ms", "failure-limit": 5,
             "max-connections": 10}
            """
        )
        #expect(configuration.listen == HostPort(host: "127.0.0.1", port: 0))
        #expect(configuration.replicas == 3)
        #expect(configuration.consistency == .all)
        #expect(configuration.placement == .ketama)
        #expect(configuration.readRepair)
        #expect(configuration.shardTimeout == .milliseconds(200))
        #expect(configuration.failureLimit == 5)
        #expect(configuration.maxConnections == 10)
    }

    @Test(
        "a value that cannot be used names its field",
        arguments: [
            (#"{}"#, "shards"),
            (#"{"shards": "nowhere"}"#, "shards"),
            (#"{"shards": "a:1", "consistency": "most"}"#, "consistency"),
            (#"{"shards": "a:1", "distribution": "modulo"}"#, "distribution"),
            (#"{"shards": "a:1", "shard-timeout": "fast"}"#, "shard-timeout"),
            (#"{"shards": "a:1", "replicas": "two"}"#, "replicas"),
        ]
    )
    func decodingErrorsNameTheField(json: String, field: String) {
        #expect {
            try decode(json)
        } throws: { error in
            (error as? SettingsError)?.field == field
        }
    }

    @Test(
        "validate() names the field out of range",
        arguments: [
            (#"{"shards": "a:1,b:2", "replicas": 3}"#, "replicas"),
            (#"{"shards": "a:1,b:2", "failure-limit": 0}"#, "failure-limit"),
            (#"{"shards": "a:1,b:2", "shard-timeout": "0ms"}"#, "shard-timeout"),
            (#"{"shards": "a:1,b:2", "max-connections": 0}"#, "max-connections"),
            (#"{"shards": "a:1,b:2", "request-memory": "512KiB"}"#, "request-memory"),
            (#"{"shards": "a:1,b:2", "rebuild-rate": -1}"#, "rebuild-rate"),
        ]
    )
    func validationNamesTheField(json: String, field: String) throws {
        let configuration = try decode(json)
        #expect {
            try configuration.validate()
        } throws: { error in
            (error as? SettingsError)?.field == field
        }
    }

    @Test("one shard and no replicas given: one replica, not an error about a flag not passed")
    func singleShardDefaultsToOneReplica() throws {
        let configuration = try decode(#"{"shards": "127.0.0.1:11211"}"#)
        #expect(configuration.replicas == 1)
        try configuration.validate()
    }

    @Test("what /v1/status shows decodes back to the same settings")
    func roundTrip() throws {
        var configuration = ProxyConfiguration(shards: try ShardSpec.parseList("127.0.0.1:1,127.0.0.1:2"))
        configuration.consistency = .one
        configuration.placement = .ketama
        configuration.shardTimeout = .milliseconds(1500)
        configuration.rebuildRate = 0
        let decoded = try JSONDecoder().decode(ProxyConfiguration.self, from: JSONEncoder().encode(configuration))
        #expect(decoded.shards == configuration.shards)
        #expect(decoded.consistency == .one)
        #expect(decoded.placement == .ketama)
        #expect(decoded.shardTimeout == .milliseconds(1500))
        #expect(decoded.rebuildRate == 0)
    }
}
