// concord HIP runtime: device selection, device memory, event timing.
//
// Host code that calls the HIP API, so it is compiled by nvcc (NVIDIA, through the compat
// headers in backends/hip_compat, which must come first on the include path) or by hipcc (AMD).
//
// Contract:
//  - context::get() selects the device once per process: index $CONCORD_HIP_DEVICE (default 0).
//    No runtime / no device / index out of range -> backend_unavailable
//    ("concord hip: no GPU device: <hip error string>"). The first failure is not cached.
//  - context::make_current() sets the device for the calling thread; buffer does it itself.
//  - buffer: move-only device allocation. Allocation failure -> backend_error naming the byte
//    count. upload/download are synchronous; more bytes than size() -> shape_error.
//  - timer: a pair of events on a stream; elapsed_ms() waits for the stop event.
//  - CONCORD_HIP_CHECK(expr): any status other than hipSuccess -> backend_error naming the call,
//    file:line and hipGetErrorString; the runtime's last-error slot is cleared first.
#pragma once
#include <concord/error.hpp>
#include <hip/hip_runtime.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

namespace concord::hip {

namespace detail {

[[noreturn]] inline void fail(hipError_t e, const char* call, const char* file, int line) {
  (void)hipGetLastError();
  throw backend_error(std::string("concord hip: ") + call + " failed at " + file + ":" + std::to_string(line) +
                      ": " + hipGetErrorString(e));
}

inline void check(hipError_t e, const char* call, const char* file, int line) {
  if (e != hipSuccess) fail(e, call, file, line);
}

}  // namespace detail

#define CONCORD_HIP_CHECK(expr) ::concord::hip::detail::check((expr), #expr, __FILE__, __LINE__)

struct device_info {
  int index = 0;
  std::string name;
  std::string arch;
  int sm_count = 0;
  int warp_size = 0;
  size_t global_mem = 0;
  int runtime_version = 0, driver_version = 0;

  std::string describe() const {
    char mem[32];
    std::snprintf(mem, sizeof mem, "%.1f GiB", static_cast<double>(global_mem) / (1024.0 * 1024.0 * 1024.0));
#if defined(CONCORD_HIP_COMPAT_CUDA)
    const char *platform = "nvidia", *units = " SMs, ";
#else
    const char *platform = "amd", *units = " CUs, ";
#endif
    return "hip device " + std::to_string(index) + ": " + name + " (" + platform + " " + arch + ", " +
           std::to_string(sm_count) + units + mem + ", runtime " + std::to_string(runtime_version) +
           ", driver " + std::to_string(driver_version) + ")";
  }
};

class context {
 public:
  static context& get() {
    static context ctx;
    return ctx;
  }
  context(const context&) = delete;
  context& operator=(const context&) = delete;

  const device_info& info() const { return info_; }
  void make_current() const { CONCORD_HIP_CHECK(hipSetDevice(info_.index)); }

 private:
  context() {
    int count = 0;
    hipError_t e = hipGetDeviceCount(&count);
    if (e != hipSuccess || count <= 0) {
      (void)hipGetLastError();
      throw backend_unavailable(std::string("concord hip: no GPU device: ") +
                                hipGetErrorString(e != hipSuccess ? e : hipErrorNoDevice));
    }
    int index = 0;
    if (const char* env = std::getenv("CONCORD_HIP_DEVICE"); env && *env) {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      if (*end != '\0' || v < 0 || v >= count)
        throw backend_unavailable(std::string("concord hip: no GPU device: CONCORD_HIP_DEVICE=") + env +
                                  " but " + std::to_string(count) + " device(s) present");
      index = static_cast<int>(v);
    }
    CONCORD_HIP_CHECK(hipSetDevice(index));
    hipDeviceProp_t prop;
    CONCORD_HIP_CHECK(hipGetDeviceProperties(&prop, index));
    info_.index = index;
    info_.name = prop.name;
    info_.arch = prop.gcnArchName;
    if (auto colon = info_.arch.find(':'); colon != std::string::npos) info_.arch.resize(colon);
    if (info_.arch.empty()) info_.arch = "sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
    info_.sm_count = prop.multiProcessorCount;
    info_.warp_size = prop.warpSize;
    info_.global_mem = prop.totalGlobalMem;
    CONCORD_HIP_CHECK(hipRuntimeGetVersion(&info_.runtime_version));
    CONCORD_HIP_CHECK(hipDriverGetVersion(&info_.driver_version));
  }

  device_info info_;
};

class buffer {
 public:
  buffer() = default;
  explicit buffer(size_t bytes) : size_(bytes) {
    const context& ctx = context::get();
    ctx.make_current();
    if (bytes == 0) return;
    if (hipError_t e = hipMalloc(&ptr_, bytes); e != hipSuccess) {
      (void)hipGetLastError();
      ptr_ = nullptr;
      throw backend_error("concord hip: cannot allocate " + std::to_string(bytes) + " bytes on " +
                          ctx.info().describe() + ": " + hipGetErrorString(e));
    }
  }
  buffer(buffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  buffer& operator=(buffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  ~buffer() { release(); }

  void* data() { return ptr_; }
  const void* data() const { return ptr_; }
  size_t size() const { return size_; }

  void upload(const void* src, size_t bytes) {
    fits(bytes, "upload");
    if (bytes) CONCORD_HIP_CHECK(hipMemcpy(ptr_, src, bytes, hipMemcpyHostToDevice));
  }
  void download(void* dst, size_t bytes) const {
    fits(bytes, "download");
    if (bytes) CONCORD_HIP_CHECK(hipMemcpy(dst, ptr_, bytes, hipMemcpyDeviceToHost));
  }
  void fill_bytes(unsigned char value) {
    if (size_) {
      CONCORD_HIP_CHECK(hipMemset(ptr_, value, size_));
      CONCORD_HIP_CHECK(hipDeviceSynchronize());
    }
  }

 private:
  void fits(size_t bytes, const char* what) const {
    if (bytes > size_)
      throw shape_error(std::string("concord hip: ") + what + " of " + std::to_string(bytes) +
                        " bytes into a device buffer of " + std::to_string(size_) + " bytes");
  }
  void release() noexcept {
    if (ptr_) (void)hipFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }

  void* ptr_ = nullptr;
  size_t size_ = 0;
};

class timer {
 public:
  explicit timer(hipStream_t stream = nullptr) : stream_(stream) {
    context::get().make_current();
    CONCORD_HIP_CHECK(hipEventCreate(&start_));
    if (hipError_t e = hipEventCreate(&stop_); e != hipSuccess) {
      (void)hipEventDestroy(start_);
      detail::fail(e, "hipEventCreate(&stop_)", __FILE__, __LINE__);
    }
  }
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;
  ~timer() {
    (void)hipEventDestroy(start_);
    (void)hipEventDestroy(stop_);
  }

  void start() { CONCORD_HIP_CHECK(hipEventRecord(start_, stream_)); }
  void stop() { CONCORD_HIP_CHECK(hipEventRecord(stop_, stream_)); }
  float elapsed_ms() const {
    CONCORD_HIP_CHECK(hipEventSynchronize(stop_));
    float ms = 0.0f;
    CONCORD_HIP_CHECK(hipEventElapsedTime(&ms, start_, stop_));
    return ms;
  }

 private:
  hipStream_t stream_;
  hipEvent_t start_ = nullptr, stop_ = nullptr;
};

}  // namespace concord::hip
