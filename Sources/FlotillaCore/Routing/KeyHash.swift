import Crypto

/// The key hashes twemproxy (nutcracker) offers as `hash:`, reproduced bit for bit for its `ketama` distribution.
///
/// Each returns the 32-bit value twemproxy's `hash_*` function returns for the key's bytes. Two details of
/// twemproxy's C code are kept on purpose:
/// - the `*_64` FNV variants are computed in 32 bits (twemproxy truncates the 64-bit offset basis and prime, or the
///   result, to `uint32_t`); their low 32 bits are the same either way;
/// - the FNV variants read each byte through a plain `char`, which is signed on x86-64, so a byte ≥ 0x80 enters the
///   hash sign-extended (`0xFFFFFF80` for `0x80`). This matches nutcracker built for x86-64 (Debian's amd64 package);
///   a build for a platform whose `char` is unsigned (arm64) places keys containing such bytes differently.
///   MD5 and murmur read unsigned bytes and agree everywhere.
public enum KeyHash: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// twemproxy's default: FNV-1a with the 64-bit constants, in 32-bit arithmetic.
    case fnv1a64 = "fnv1a_64"
    /// FNV-1 (multiply, then xor) with the 64-bit constants, truncated to 32 bits.
    case fnv164 = "fnv1_64"
    /// FNV-1a, 32-bit.
    case fnv1a32 = "fnv1a_32"
    /// FNV-1, 32-bit.
    case fnv132 = "fnv1_32"
    /// The first four bytes of the key's MD5 digest, little-endian.
    case md5
    /// MurmurHash2 with twemproxy's seed (`0xdeadbeef × length`), reading little-endian words.
    case murmur

    /// The name twemproxy's configuration uses (`fnv1a_64`, `md5`, …).
    public var description: String { rawValue }

    /// Parses a twemproxy `hash:` name; nil for names this type does not implement.
    public init?(twemproxyName name: String) {
        self.init(rawValue: name)
    }

    /// The 32-bit hash of `key`, as twemproxy's `hash_<name>(key, length)` computes it.
    public func hash(_ key: UnsafeRawBufferPointer) -> UInt32 {
        switch self {
        case .fnv1a64: Self.fnv1a(key, basis: 0x8422_2325, prime: 0x0000_01B3)
        case .fnv164: Self.fnv1(key, basis: 0x8422_2325, prime: 0x0000_01B3)
        case .fnv1a32: Self.fnv1a(key, basis: 0x811C_9DC5, prime: 0x0100_0193)
        case .fnv132: Self.fnv1(key, basis: 0x811C_9DC5, prime: 0x0100_0193)
        case .md5: Self.md5Prefix(key)
        case .murmur: Self.murmur2(key)
        }
    }

    /// The 32-bit hash of a byte array (see `hash(_:)` on a raw buffer).
    public func hash(_ key: [UInt8]) -> UInt32 {
        key.withUnsafeBytes { hash($0) }
    }

    /// The 32-bit hash of a string's UTF-8 bytes (see `hash(_:)` on a raw buffer).
    public func hash(_ key: some StringProtocol) -> UInt32 {
        if let value = key.utf8.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) {
            return value
        }
        return hash(Array(key.utf8))
    }

    // MARK: The functions

    /// A byte as C's signed `char` widens it to `uint32_t` on x86-64.
    @inline(__always)
    private static func signExtended(_ byte: UInt8) -> UInt32 {
        UInt32(bitPattern: Int32(Int8(bitPattern: byte)))
    }

    private static func fnv1a(_ key: UnsafeRawBufferPointer, basis: UInt32, prime: UInt32) -> UInt32 {
        var hash = basis
        for byte in key {
            hash ^= signExtended(byte)
            hash &*= prime
        }
        return hash
    }

    private static func fnv1(_ key: UnsafeRawBufferPointer, basis: UInt32, prime: UInt32) -> UInt32 {
        var hash = basis
        for byte in key {
            hash &*= prime
            hash ^= signExtended(byte)
        }
        return hash
    }

    private static func md5Prefix(_ key: UnsafeRawBufferPointer) -> UInt32 {
        var md5 = Insecure.MD5()
        md5.update(bufferPointer: key)
        return md5.finalize().withUnsafeBytes { $0.loadUnaligned(as: UInt32.self).littleEndian }
    }

    private static func murmur2(_ key: UnsafeRawBufferPointer) -> UInt32 {
        let m: UInt32 = 0x5BD1_E995
        let length = UInt32(truncatingIfNeeded: key.count)
        var h = (0xDEAD_BEEF &* length) ^ length
        var offset = 0
        while key.count - offset >= 4 {
            var k = key.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian
            k &*= m
            k ^= k >> 24
            k &*= m
            h &*= m
            h ^= k
            offset += 4
        }
        let tail = key.count - offset
        if tail >= 3 { h ^= UInt32(key[offset + 2]) << 16 }
        if tail >= 2 { h ^= UInt32(key[offset + 1]) << 8 }
        if tail >= 1 {
            h ^= UInt32(key[offset])
            h &*= m
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return h
    }
}
