/// The SIMD kernels, thread pool and scratch memory live in their own target, ``NormKernels``
/// (raw buffers, no `Tensor`); NormCore re-exports them so `import NormCore` keeps giving
/// `Parallel`, `Reductions`, `PlaneKernels` and the rest to every layer and tool.
@_exported import NormKernels
