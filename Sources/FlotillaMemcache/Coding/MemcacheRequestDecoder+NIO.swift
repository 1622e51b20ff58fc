import NIOCore

/// The decoder plugs into NIO's `ByteToMessageHandler` and `NIOSingleStepByteToMessageProcessor`.
extension MemcacheRequestDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = MemcacheRequest

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MemcacheRequest? {
        decode(buffer: &buffer)
    }
}

extension MemcacheImmediateReply: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.operation == rhs.operation && lhs.suppressed == rhs.suppressed && lhs.isError == rhs.isError
            && lhs.message.description == rhs.message.description
    }
}
