// CUDA device allocator (only when built with CUDA): plain cudaMalloc/cudaFree, never managed
// memory.
#pragma once

#include "vortex/core/allocator.h"

namespace vortex {

/// The allocator for CUDA device `ordinal`; returns an error when CUDA is unavailable.
Expected<Allocator*> cuda_allocator(int ordinal = 0);
/// Number of visible CUDA devices (0 when built without CUDA or without a GPU).
int cuda_device_count();

}  // namespace vortex
