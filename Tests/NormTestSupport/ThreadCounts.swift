import NormCore

/// `body`'s result with `Parallel.threadCount` set to each of `threadCounts` in turn (restored
/// after): for tests that a kernel gives the same bits for every thread count.
public func resultsPerThreadCount<T>(_ threadCounts: [Int] = [1, 2, 3], _ body: () throws -> T) rethrows -> [T] {
    let saved = Parallel.threadCount
    defer { Parallel.threadCount = saved }
    return try threadCounts.map { threads in
        Parallel.threadCount = threads
        return try body()
    }
}
