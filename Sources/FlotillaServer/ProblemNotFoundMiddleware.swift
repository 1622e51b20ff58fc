import Foundation
import Hummingbird

/// Answers a path the admin listener does not serve with a JSON problem that names the role, as
/// every other admin error is answered, instead of an empty 404.
struct ProblemNotFoundMiddleware<Context: RequestContext>: RouterMiddleware {
    let role: String

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let problem = ["error": "the \(role) role serves no \(request.uri.path)"]
            let body = try JSONEncoder().encode(problem)
            return Response(
                status: .notFound,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: body))
            )
        }
    }
}
