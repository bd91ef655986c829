// concord HIP compatibility header for __half; see hip_runtime.h in this directory for why.
// Under nvcc: CUDA's <cuda_fp16.h> (__half, __float2half, __half2float, __hadd, ... share HIP's
// names). Under hipcc / AMD clang: the real <hip/hip_fp16.h> via #include_next.
#pragma once

#if defined(__NVCC__) || defined(__CUDACC__) || \
    ((defined(__HIP_PLATFORM_NVIDIA__) || defined(__HIP_PLATFORM_NVCC__)) && !defined(__HIP_PLATFORM_AMD__))
#include <hip/hip_runtime.h>
#include <cuda_fp16.h>
#else
#include_next <hip/hip_fp16.h>
#endif
