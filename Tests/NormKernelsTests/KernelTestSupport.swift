import NormKernels

/// Runs `body` with `Parallel.threadCount = threads`, restoring it after.
func withThreads<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
    let saved = Parallel.threadCount
    Parallel.threadCount = threads
    defer { Parallel.threadCount = saved }
    return try body()
}

/// `max |a − b|` relative to `max(1, max |b|)`.
func relError(_ a: [Float], _ b: [Double]) -> Double {
    var err = 0.0, scale = 1.0
    for i in b.indices { err = max(err, abs(Double(a[i]) - b[i])); scale = max(scale, abs(b[i])) }
    return err / scale
}

func relError(_ a: [Double], _ b: [Double]) -> Double {
    var err = 0.0, scale = 1.0
    for i in b.indices { err = max(err, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
    return err / scale
}
