// concord HIP compatibility header; see hip_runtime.h in this directory for why.
// Under nvcc the runtime API is the subset declared in our hip_runtime.h; otherwise the real header.
#pragma once

#if defined(__NVCC__) || defined(__CUDACC__) || \
    ((defined(__HIP_PLATFORM_NVIDIA__) || defined(__HIP_PLATFORM_NVCC__)) && !defined(__HIP_PLATFORM_AMD__))
#include <hip/hip_runtime.h>
#else
#include_next <hip/hip_runtime_api.h>
#endif
