import Foundation

// The JSON bodies of etcd's HTTP gateway (`/v3/…`), as etcd 3.4 and 3.5 write them: proto3's JSON
// mapping, so int64 fields are strings (numbers are accepted too), bytes are base64, and fields at
// their zero value are left out (every answer field is therefore optional).

/// An int64 of the gateway: written as a JSON string, read from a string or a number.
struct EtcdInt64: Codable, Sendable, Hashable, CustomStringConvertible {
    var value: Int64

    init(_ value: Int64) {
        self.value = value
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int64.self) {
            value = number
            return
        }
        let text = try container.decode(String.self)
        guard let number = Int64(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an int64: \(text)")
        }
        value = number
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(value))
    }

    var description: String { String(value) }
}

/// `bytes` fields travel as base64.
enum EtcdBytes {
    static func encode(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    static func decode(_ base64: String) -> String? {
        guard let data = Data(base64Encoded: base64) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}

// MARK: Leases

/// `POST /v3/lease/grant`.
struct LeaseGrantRequest: Encodable {
    var TTL: EtcdInt64
}

struct LeaseGrantAnswer: Decodable {
    var ID: EtcdInt64?
    var TTL: EtcdInt64?
    /// Set by etcd when it could not grant the lease.
    var error: String?
}

/// `POST /v3/lease/keepalive` and `POST /v3/lease/revoke`.
struct LeaseIDRequest: Encodable {
    var ID: EtcdInt64
}

/// The keep-alive is a stream RPC: its one answer comes wrapped in `result`, or an `error` object.
struct LeaseKeepAliveAnswer: Decodable {
    struct Result: Decodable {
        var ID: EtcdInt64?
        /// Absent (zero) when the lease has expired or was revoked.
        var TTL: EtcdInt64?
    }

    var result: Result?
    var error: EtcdStreamError?
}

/// The error of a stream RPC, sent with HTTP 200: `{"error":{"grpc_code":5,"message":"…",…}}` (a plain
/// string is accepted too).
struct EtcdStreamError: Decodable {
    var message: String

    private enum CodingKeys: String, CodingKey {
        case message
    }

    init(from decoder: any Decoder) throws {
        if let text = try? decoder.singleValueContainer().decode(String.self) {
            message = text
        } else {
            message =
                try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .message) ?? ""
        }
    }
}

struct EmptyAnswer: Decodable {}

// MARK: Election

/// The leader key etcd hands out on a campaign and takes back on a resignation.
struct EtcdLeaderKey: Codable {
    /// The election's name, base64.
    var name: String?
    /// The leader's key, base64.
    var key: String?
    /// The key's create revision: the fencing token.
    var rev: EtcdInt64?
    var lease: EtcdInt64?
}

/// `POST /v3/election/campaign`; `name` and `value` base64.
struct CampaignRequest: Encodable {
    var name: String
    var lease: EtcdInt64
    var value: String
}

struct CampaignAnswer: Decodable {
    var leader: EtcdLeaderKey?
}

/// `POST /v3/election/leader`.
struct LeaderRequest: Encodable {
    var name: String
}

struct LeaderAnswer: Decodable {
    struct KeyValue: Decodable {
        var key: String?
        var create_revision: EtcdInt64?
        var value: String?
        var lease: EtcdInt64?
    }

    var kv: KeyValue?
}

/// `POST /v3/election/resign`.
struct ResignRequest: Encodable {
    var leader: EtcdLeaderKey
}

// MARK: Errors

/// The body of a failed call: `{"error":"…","message":"…","code":2}`.
struct EtcdErrorAnswer: Decodable {
    var error: String?
    var message: String?
    var code: Int?
}
