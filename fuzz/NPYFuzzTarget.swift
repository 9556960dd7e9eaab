// libFuzzer target for the .npy reader (issue 17, item 9). Built by fuzz/run.sh together
// with every file of Sources/NormCore into one module, linked with NormKernels
// (`swiftc -sanitize=fuzzer,address`).
//
// For every input it checks, besides "no crash, no hang, no sanitizer report":
// - decoding the bytes and reading them from a file (the pread path) agree exactly:
//   the same tensor bits and header, or the same error;
// - a decoded tensor has the header's element count, and encoding it and decoding again
//   gives the same values (float32 bit patterns, NaN payloads included).
import Foundation

private let scratch: String = {
    let dir = ProcessInfo.processInfo.environment["NORMLAB_FUZZ_SCRATCH"] ?? NSTemporaryDirectory()
    return dir + "/normlab-fuzz-\(getpid()).npy"
}()

private func bits(_ tensor: Tensor) -> [UInt32] {
    tensor.withUnsafeBufferPointer { $0.map(\.bitPattern) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func normlabFuzzNPY(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 || data == nil ? Data() : Data(bytes: data!, count: size)
    let decoded = Result { () throws(NPYError) in try NPY.decodeWithInfo(bytes) }
    _ = Result { () throws(NPYError) in try NPY.decodeHeader(bytes) }

    let url = URL(fileURLWithPath: scratch)
    guard (try? bytes.write(to: url)) != nil else { fatalError("cannot write \(scratch)") }
    let read = Result { () throws(NPYError) in try NPY.readWithInfo(contentsOf: url) }

    switch (decoded, read) {
    case let (.success(a), .success(b)):
        precondition(a.header == b.header, "header differs between decode and read")
        precondition(bits(a.tensor) == bits(b.tensor), "values differ between decode and read")
        precondition(a.tensor.count == a.header.count, "tensor count differs from the header")
        let again = try? NPY.decode(NPY.encode(a.tensor))
        precondition(again.map(bits) == bits(a.tensor), "encode/decode round trip changed the values")
    case let (.failure(a), .failure(b)):
        precondition(a == b, "errors differ: decode \(a), read \(b)")
        precondition(!a.description.isEmpty && !a.description.contains("\n"), "error text is not one line")
    default:
        preconditionFailure("decode gave \(decoded), read gave \(read)")
    }
    return 0
}
