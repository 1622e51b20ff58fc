import FlotillaCore
import Testing

@Suite("Coordinator URLs: file:PATH and etcd://HOST:PORT,…")
struct CoordinatorURLTests {
    @Test func parsesFiles() throws {
        #expect(try CoordinatorURL(parsing: "file:/run/flotilla/web.lock") == .file(path: "/run/flotilla/web.lock"))
        #expect(try CoordinatorURL(parsing: "file:web.lock") == .file(path: "web.lock"))
        #expect(try CoordinatorURL(parsing: " FILE:./a b.lock ") == .file(path: "./a b.lock"))
    }

    @Test func parsesEtcdEndpoints() throws {
        #expect(
            try CoordinatorURL(parsing: "etcd://127.0.0.1:2379")
                == .etcd(endpoints: [HostPort(host: "127.0.0.1", port: 2379)])
        )
        #expect(
            try CoordinatorURL(parsing: "etcd://etcd-1:2379, etcd-2:2379,[::1]:22379")
                == .etcd(endpoints: [
                    HostPort(host: "etcd-1", port: 2379),
                    HostPort(host: "etcd-2", port: 2379),
                    HostPort(host: "::1", port: 22379),
                ])
        )
        #expect(try CoordinatorURL(parsing: "ETCD://a:1") == .etcd(endpoints: [HostPort(host: "a", port: 1)]))
    }

    @Test(arguments: [
        "file:/run/x.lock", "file:x.lock", "etcd://a:1", "etcd://10.0.0.1:2379,10.0.0.2:2379", "etcd://[::1]:2379",
    ])
    func descriptionIsCanonicalAndParsesBack(text: String) throws {
        let url = try CoordinatorURL(parsing: text)
        #expect(url.description == text)
        #expect(try CoordinatorURL(parsing: url.description) == url)
    }

    @Test func descriptionNormalisesSchemeAndSpaces() throws {
        #expect(try CoordinatorURL(parsing: " Etcd://a:1 , b:2").description == "etcd://a:1,b:2")
    }

    @Test(arguments: [
        ("", CoordinatorURLErrorCode.empty, "the coordinator is empty"),
        ("   ", .empty, "the coordinator is empty"),
        ("/run/x.lock", .unknownScheme, "no scheme: write file:PATH or etcd://HOST:PORT"),
        ("http://a:2379", .unknownScheme, "unknown scheme \"http\""),
        ("zk://a:2181", .unknownScheme, "unknown scheme \"zk\""),
        ("file:", .emptyPath, "file: needs a path after the colon"),
        ("etcd:a:2379", .emptyEndpointList, "etcd needs \"//\" before its endpoints"),
        ("etcd://", .emptyEndpointList, "etcd:// lists no endpoint"),
        ("etcd://a:1,,b:2", .emptyEndpoint, "empty endpoint between commas"),
        ("etcd://a:1,", .emptyEndpoint, "empty endpoint between commas"),
        ("etcd://a", .missingPort, "no port: write HOST:PORT"),
        ("etcd://[::1]", .missingPort, "no port: write HOST:PORT"),
        ("etcd://a:", .missingPort, "no port after the colon"),
        ("etcd://a:0", .invalidPort, "port \"0\" is not a number from 1 to 65535"),
        ("etcd://a:65536", .invalidPort, "port \"65536\" is not a number from 1 to 65535"),
        ("etcd://a:http", .invalidPort, "port \"http\""),
        ("etcd://a:+1", .invalidPort, "port \"+1\""),
        ("etcd://a:2379/", .invalidPort, "port \"2379/\""),
        ("etcd://:2379", .invalidHost, "empty host"),
        ("etcd://::1:2379", .invalidHost, "an IPv6 host goes in brackets: [::1]:2379"),
        ("etcd://[::1:2379", .invalidHost, "\"[\" without its \"]\""),
        ("etcd://user@a:2379", .invalidHost, "host \"user@a\" is not a host name"),
        ("etcd://a:1,a:1", .duplicateEndpoint, "endpoint a:1 is listed twice"),
    ])
    func rejects(text: String, code: CoordinatorURLErrorCode, fragment: String) {
        #expect {
            try CoordinatorURL(parsing: text)
        } throws: { error in
            guard let error = error as? CoordinatorURLError else { return false }
            return error.code == code && error.message.contains(fragment)
                && error.description.contains("e.g. file:/run/flotilla/web.lock or etcd://127.0.0.1:2379")
        }
    }

    @Test func errorDescriptionNamesTheInputAndShowsExamples() {
        #expect {
            try CoordinatorURL(parsing: "etcd://db-1:99999")
        } throws: { error in
            (error as? CoordinatorURLError)?.description
                == "invalid coordinator \"db-1:99999\": port \"99999\" is not a number from 1 to 65535"
                + " (e.g. file:/run/flotilla/web.lock or etcd://127.0.0.1:2379,127.0.0.2:2379)"
                && (error as? CoordinatorURLError)?.shortDescription == "invalid-port"
        }
    }
}
