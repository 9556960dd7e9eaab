import Foundation
import NormCore
import NormPython

/// One job for the framework side: a model, a norm and a batch size.
struct FrameworkJob: Codable, Equatable {
    var model: String
    var norm: String
    var batch: Int
}

/// `python/normlab_train_bench.py`: the same networks in PyTorch / JAX, timed in a child
/// interpreter pinned to the thread count — only when the framework is importable.
final class FrameworkSide {
    private let module: PyObjectRef
    /// Frameworks importable in the embedded interpreter (`torch`, `jax`).
    let available: [String]

    init() throws {
        _ = try PythonSupport.host()   // puts python/ on sys.path
        module = try Python.import("normlab_train_bench")
        available = try module.callMethod("available").decode([String].self)
    }

    /// Milliseconds per step for every job (nil with the reason when a job failed).
    func measure(_ framework: String, threads: Int, jobs: [FrameworkJob], minSeconds: Double, minSteps: Int,
                 maxSteps: Int) throws -> [Result<[Double], BenchError>] {
        let request = String(decoding: try JSONEncoder().encode(jobs), as: UTF8.self)
        let text = try module.callMethod("measure", framework, threads, request, minSeconds, minSteps, maxSteps)
            .decode(String.self)
        struct Reply: Decodable { var ms: [Double]?; var error: String? }
        let replies = try JSONDecoder().decode([Reply].self, from: Data(text.utf8))
        return replies.map { r in
            if let ms = r.ms, !ms.isEmpty { return .success(ms) }
            return .failure(BenchError(r.error ?? "no timings"))
        }
    }
}
