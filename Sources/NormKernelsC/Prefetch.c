// The prefetch hints are static inline functions in include/NormKernelsC.h; this file only
// gives the C target a translation unit.
#include "NormKernelsC.h"
