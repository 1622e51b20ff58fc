import FlotillaCore
import Foundation
import Logging
import Testing

@testable import FlotillaServer

@Suite("Role settings: the common settings as flags and documents give them, and as /v1/status shows them")
struct RoleSettingsTests {
    private func decode(_ json: String) throws -> CommonSettings {
        try JSONDecoder().decode(CommonSettings.self, from: Data(json.utf8))
    }

    @Test("an empty document gives the flags' defaults")
    func defaults() throws {
        let settings = try decode("{}")
        #expect(settings.admin == nil, "each role's own default port")
        #expect(settings.threads == nil)
        #expect(settings.logLevel == .info)
        #expect(settings.logFormat == .text)
        #expect(settings.slo == nil)
        #expect(settings.drainTimeout == .seconds(10))
        #expect(settings.readyFile == nil)
    }

    @Test("every field is read in the flags' own text forms")
    func textForms() throws {
        let settings = try decode(
            """
            {"admin": "[::1]:0", "threads": 2, "log-level": "DEBUG", "log-format": "json",
             "slo": "p99<2ms,success>=99.9%", "drain-timeout": "250ms", "ready-file": "/tmp/r.json"}
            """
        )
        #expect(settings.admin == HostPort(host: "::1", port: 0))
        #expect(settings.threadCount == 2)
        #expect(settings.logLevel == .debug)
        #expect(settings.logFormat == .json)
        #expect(settings.slo?.description == "p99<2ms,success>=99.9%")
        #expect(settings.drainTimeout == .milliseconds(250))
        #expect(settings.readyFile == "/tmp/r.json")
    }

    @Test(
        "a bad value names its field",
        arguments: [
            (#"{"admin": "nowhere"}"#, "admin"),
            (#"{"threads": "many"}"#, "threads"),
            (#"{"log-level": "loud"}"#, "log-level"),
            (#"{"log-format": "xml"}"#, "log-format"),
            (#"{"slo": "p99<"}"#, "slo"),
            (#"{"drain-timeout": "soon"}"#, "drain-timeout"),
        ]
    )
    func badValueNamesItsField(json: String, field: String) {
        #expect {
            try decode(json)
        } throws: { error in
            (error as? SettingsError)?.field == field
        }
    }

    @Test("validate() names the field out of range")
    func validateNamesTheField() throws {
        var settings = CommonSettings()
        settings.threads = 0
        #expect(throws: SettingsError(field: "threads", "must be from 1 to 256, got 0")) { try settings.validate() }
        settings.threads = 4
        settings.readyFile = ""
        #expect(throws: SettingsError(field: "ready-file", "must be a path")) { try settings.validate() }
    }

    @Test("the status summary is the encoded settings, the role's over the common ones, lists comma-separated")
    func summary() throws {
        struct Sample: Encodable {
            var listen = "127.0.0.1:0"
            var shards = ["a:1", "b:2"]
            var replicas = 2
            var readRepair = false
            var admin = "role wins"
        }
        var common = CommonSettings()
        common.threads = 3
        common.drainTimeout = .milliseconds(1500)
        let summary = try SettingsSummary.merge(Sample(), common)
        #expect(summary["listen"] == "127.0.0.1:0")
        #expect(summary["shards"] == "a:1,b:2")
        #expect(summary["replicas"] == "2")
        #expect(summary["readRepair"] == "false")
        #expect(summary["admin"] == "role wins")
        #expect(summary["threads"] == "3")
        #expect(summary["drain-timeout"] == "1.5s")
        #expect(summary["log-format"] == "text")
        #expect(summary["slo"] == nil)
    }

    @Test("settings encoded for the status decode back to the same settings")
    func roundTrip() throws {
        var settings = CommonSettings()
        settings.admin = HostPort(host: "127.0.0.1", port: 0)
        settings.threads = 2
        settings.slo = try SLOSpec(parsing: "p99<1ms")
        settings.drainTimeout = .seconds(3)
        let decoded = try JSONDecoder().decode(CommonSettings.self, from: JSONEncoder().encode(settings))
        #expect(decoded.admin == settings.admin)
        #expect(decoded.threads == 2)
        #expect(decoded.slo == settings.slo)
        #expect(decoded.drainTimeout == .seconds(3))
    }
}
