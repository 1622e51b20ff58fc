import FlotillaCore
import Testing

@Suite("Shard specs: HOST:PORT[:WEIGHT] lists")
struct ShardSpecTests {
    @Test func parsesHostPortAndWeight() throws {
        #expect(try ShardSpec(parsing: "10.0.0.7:11211") == ShardSpec(host: "10.0.0.7", port: 11211, weight: 1))
        #expect(try ShardSpec(parsing: "cache-2:11212:3") == ShardSpec(host: "cache-2", port: 11212, weight: 3))
        #expect(try ShardSpec(parsing: " [::1]:11213:2 ") == ShardSpec(host: "::1", port: 11213, weight: 2))
        #expect(try ShardSpec(parsing: "[fe80::1]:1") == ShardSpec(host: "fe80::1", port: 1))
    }

    @Test func addressAndDescriptionRoundTrip() throws {
        let spec = try ShardSpec(parsing: "[::1]:11213:2")
        #expect(spec.address == "[::1]:11213")
        #expect(spec.description == "[::1]:11213:2")
        #expect(try ShardSpec(parsing: spec.description) == spec)
        #expect(ShardSpec(host: "a", port: 1).description == "a:1")
    }

    @Test func ketamaNameDropsTheDefaultPort() {
        #expect(ShardSpec(host: "10.0.0.1", port: 11211).ketamaName == "10.0.0.1")
        #expect(ShardSpec(host: "10.0.0.1", port: 11212, weight: 5).ketamaName == "10.0.0.1:11212")
    }

    @Test func parsesLists() throws {
        let shards = try ShardSpec.parseList("a:1, b:2:3 ,c:65535")
        #expect(shards.map(\.description) == ["a:1", "b:2:3", "c:65535"])
    }

    @Test(arguments: [
        ("cache-1", ShardSpecErrorCode.missingPort, "no port"),
        ("cache-1:", .missingPort, "empty port"),
        ("[::1]", .missingPort, "no port"),
        (":11211", .invalidHost, "empty host"),
        ("::1:11211", .invalidHost, "brackets"),
        ("[::1:11211", .invalidHost, "']'"),
        ("[::1]x:1", .invalidHost, "':' after ']'"),
        ("a b:1", .invalidHost, "space"),
        ("a:0", .invalidPort, "port \"0\""),
        ("a:65536", .invalidPort, "port \"65536\" is not a number from 1 to 65535"),
        ("a:http", .invalidPort, "port \"http\""),
        ("a:-1", .invalidPort, "port \"-1\""),
        ("a:1:0", .invalidWeight, "weight \"0\" is not a whole number from 1 to 10000"),
        ("a:1:heavy", .invalidWeight, "weight \"heavy\""),
        ("a:1:1.5", .invalidWeight, "weight \"1.5\""),
        ("a:1:10001", .invalidWeight, "weight \"10001\""),
        ("a:1:", .invalidWeight, "weight \"\""),
        ("[::1]:1:2:3", .invalidWeight, "after the weight"),
        ("", .emptyEntry, "empty shard"),
    ])
    func rejectsBadSpecs(text: String, code: ShardSpecErrorCode, fragment: String) {
        #expect {
            try ShardSpec(parsing: text)
        } throws: { error in
            guard let error = error as? ShardSpecError else { return false }
            return error.code == code && error.message.contains(fragment) && error.description.contains(error.text)
        }
    }

    @Test func errorsNameTheBadEntry() {
        do {
            _ = try ShardSpec.parseList("a:1,b:99999,c:3")
            Issue.record("parsed a list with port 99999")
        } catch {
            #expect(error.code == .invalidPort)
            #expect(error.text == "b:99999")
            #expect(error.description == "invalid shard \"b:99999\": port \"99999\" is not a number from 1 to 65535")
            #expect(error.shortDescription == "invalid-port")
        }
    }

    @Test(arguments: [
        ("", ShardSpecErrorCode.emptyList, "no shards"),
        ("  ", .emptyList, "no shards"),
        ("a:1,,b:2", .emptyEntry, "empty entry"),
        ("a:1,", .emptyEntry, "empty entry"),
        ("a:1,b:2,A:1:4", .duplicateShard, "A:1 is listed twice (also as \"a:1\")"),
        ("[::1]:5,[::1]:5:2", .duplicateShard, "[::1]:5 is listed twice"),
    ])
    func rejectsBadLists(text: String, code: ShardSpecErrorCode, fragment: String) {
        #expect {
            try ShardSpec.parseList(text)
        } throws: { error in
            guard let error = error as? ShardSpecError else { return false }
            return error.code == code && error.message.contains(fragment)
        }
    }
}
