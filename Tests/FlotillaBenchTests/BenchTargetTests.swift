import FlotillaBench
import Testing

@Suite("Bench targets")
struct BenchTargetTests {
    struct Good: Sendable, CustomTestStringConvertible {
        var input: String
        var kind: BenchTarget.Kind
        var host: String
        var port: Int
        var pathParts: [String]
        var hostHeader: String
        var description: String
        var testDescription: String { input }
    }

    static let good: [Good] = [
        Good(
            input: "memcache://127.0.0.1:11211",
            kind: .memcache,
            host: "127.0.0.1",
            port: 11211,
            pathParts: [],
            hostHeader: "127.0.0.1:11211",
            description: "memcache://127.0.0.1:11211"
        ),
        Good(
            input: "memcached://cache.local",
            kind: .memcache,
            host: "cache.local",
            port: 11211,
            pathParts: [],
            hostHeader: "cache.local:11211",
            description: "memcache://cache.local:11211"
        ),
        Good(
            input: "memcache://[::1]:11212/",
            kind: .memcache,
            host: "::1",
            port: 11212,
            pathParts: [],
            hostHeader: "[::1]:11212",
            description: "memcache://[::1]:11212"
        ),
        Good(
            input: "http://127.0.0.1:8080/item/{key}",
            kind: .http,
            host: "127.0.0.1",
            port: 8080,
            pathParts: ["/item/", ""],
            hostHeader: "127.0.0.1:8080",
            description: "http://127.0.0.1:8080/item/{key}"
        ),
        Good(
            input: "http://example.com",
            kind: .http,
            host: "example.com",
            port: 80,
            pathParts: ["/"],
            hostHeader: "example.com",
            description: "http://example.com:80/"
        ),
        Good(
            input: "http://[::1]:8080/a/{key}?q={key}",
            kind: .http,
            host: "::1",
            port: 8080,
            pathParts: ["/a/", "?q=", ""],
            hostHeader: "[::1]:8080",
            description: "http://[::1]:8080/a/{key}?q={key}"
        ),
        Good(
            input: "http://[fe80::1]/x",
            kind: .http,
            host: "fe80::1",
            port: 80,
            pathParts: ["/x"],
            hostHeader: "[fe80::1]",
            description: "http://[fe80::1]:80/x"
        ),
        Good(
            input: "http://h:8080?x=1",
            kind: .http,
            host: "h",
            port: 8080,
            pathParts: ["/?x=1"],
            hostHeader: "h:8080",
            description: "http://h:8080/?x=1"
        ),
        Good(
            input: " HTTP://web-1.local:65535/{key}{key} ",
            kind: .http,
            host: "web-1.local",
            port: 65535,
            pathParts: ["/", "", ""],
            hostHeader: "web-1.local:65535",
            description: "http://web-1.local:65535/{key}{key}"
        ),
    ]

    @Test(arguments: good)
    func parses(_ expected: Good) throws {
        let target = try BenchTarget(parsing: expected.input)
        #expect(target.kind == expected.kind)
        #expect(target.host == expected.host)
        #expect(target.port == expected.port)
        #expect(target.pathParts == expected.pathParts)
        #expect(target.hostHeader == expected.hostHeader)
        #expect(target.description == expected.description)
        #expect(try BenchTarget(parsing: target.description) == target)
    }

    @Test func requestTargetForKey() throws {
        let target = try BenchTarget(parsing: "http://[::1]:8080/a/{key}?q={key}")
        #expect(target.requestTarget(forKey: "k42") == "/a/k42?q=k42")
        #expect(target.pathParts.joined(separator: "k7") == "/a/k7?q=k7")
    }

    @Test(arguments: [
        ("https://127.0.0.1:8443/", "TLS is not supported"),
        ("https://127.0.0.1:8443/", "plain-HTTP"),
        ("127.0.0.1:11211", "memcache://HOST:PORT or http://HOST:PORT/PATH"),
        ("ftp://host/", "unknown scheme 'ftp'"),
        ("memcache://127.0.0.1:0", "port '0'"),
        ("memcache://127.0.0.1:65536", "port '65536'"),
        ("memcache://127.0.0.1:abc", "port 'abc'"),
        ("memcache://127.0.0.1:+80", "port '+80'"),
        ("memcache://127.0.0.1:", "port ''"),
        ("http://127.0.0.1:99999999999999999999/", "1 to 65535"),
        ("memcache://127.0.0.1:11211/foo", "no path, found '/foo'"),
        ("memcache://127.0.0.1:11211?x", "no path"),
        ("http://user:pw@host/", "user information 'user:pw@'"),
        ("http://host/a#frag", "fragment '#frag'"),
        ("http://:8080/", "host is empty"),
        ("memcache://", "host is empty"),
        ("http://[]:80/", "not an IPv6 address"),
        ("http://::1:8080/", "IPv6 address in brackets"),
        ("http://[::1/", "no closing ']'"),
        ("http://[::1]x/", "unexpected 'x'"),
        ("http://ho st/", "not a host name"),
        ("http://host/a b", "a space"),
    ])
    func rejects(input: String, reason: String) {
        let error = #expect(throws: BenchInputError.self) { try BenchTarget(parsing: input) }
        let message = error?.description ?? ""
        #expect(message.contains("'\(input)'"), "\(message)")
        #expect(message.contains(reason), "\(message)")
    }
}
