/// The shards that hold one key, primary first: a fixed-capacity value that lives on the stack, so routing a request
/// allocates nothing.
///
/// Elements are indices into the router's `shards`, all distinct.
public struct ReplicaSet: RandomAccessCollection, Sendable, Hashable, CustomStringConvertible {
    /// The most replicas a set can hold, and so the largest replication factor a router accepts.
    public static let capacity = 8

    /// Room for `capacity` shard indices (a router has at most `UInt16.max + 1` shards).
    private var storage: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) = (0, 0, 0, 0, 0, 0, 0, 0)
    public private(set) var count = 0

    /// An empty set.
    public init() {}

    /// A set holding `shards` in order; they must be distinct, in 0…65535, and at most `capacity` of them.
    public init(_ shards: some Sequence<Int>) {
        for shard in shards { append(shard) }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> Int {
        precondition(position >= 0 && position < count, "replica index \(position) out of range 0..<\(count)")
        return withUnsafeBytes(of: storage) { Int($0.load(fromByteOffset: position * 2, as: UInt16.self)) }
    }

    /// The primary replica: the first shard clockwise from the key, or nil when no shard is live.
    public var primary: Int? { isEmpty ? nil : self[0] }

    /// Whether the set is full.
    public var isFull: Bool { count == Self.capacity }

    /// Adds a shard at the end.
    public mutating func append(_ shard: Int) {
        precondition(count < Self.capacity, "a replica set holds at most \(Self.capacity) shards")
        precondition(shard >= 0 && shard <= Int(UInt16.max), "shard index \(shard) out of range")
        let offset = count * 2
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: UInt16(shard), toByteOffset: offset, as: UInt16.self) }
        count += 1
    }

    /// Removes every shard.
    public mutating func removeAll() {
        count = 0
    }

    public static func == (lhs: ReplicaSet, rhs: ReplicaSet) -> Bool {
        lhs.elementsEqual(rhs)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for shard in self { hasher.combine(shard) }
    }

    public var description: String {
        "[" + map(String.init).joined(separator: ", ") + "]"
    }
}
