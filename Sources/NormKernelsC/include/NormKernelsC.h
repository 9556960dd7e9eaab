#ifndef NORMKERNELSC_H
#define NORMKERNELSC_H

/// Software prefetch hints for the kernels (Swift has no prefetch instruction of its own).
/// A hint never faults, changes no value and may be ignored by the CPU.

/// Asks for the cache line holding `p` to be loaded into every cache level, for reading.
static inline __attribute__((always_inline)) void nk_prefetch_read(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/// Asks for the cache line holding `p` to be loaded for writing.
static inline __attribute__((always_inline)) void nk_prefetch_write(const void *p) {
    __builtin_prefetch(p, 1, 3);
}

#endif
