// concord HIP kernel compilation. Emitted HIP source (kernels plus extern "C" host launchers)
// becomes a shared object loaded with concord::jit, or is compiled to an object file only (CI).
//
// Plain host C++: does not include the HIP headers, so any compiler can build it.
//
// Contract:
//  - nvcc_flags / hipcc_flags are the one place that holds the numerics policy: denormals flushed
//    to zero, IEEE division and square root, no fast math, no FMA contraction. Every HIP compile
//    in concord (kernels, compile_only, docs, tests) uses them. Added per use: nvcc "-x cu
//    -arch=<sm_NN> -I<compat>" plus "-shared -Xcompiler -fPIC -cudart shared -Xlinker -rpath ..."
//    (kernels) or "-c"; hipcc "--offload-arch=<gfx> -I<compat>" plus "-fPIC -shared" or "-c".
//    C++17 for kernels: clang 15 in HIP mode crashes on libstdc++ 12 headers under C++20.
//  - Platform: $CONCORD_HIP_PLATFORM ("nvidia" / "amd") if set; else the platform of the
//    translation unit that includes this header when it is built by nvcc or hipcc; else nvidia when
//    nvcc is found and no AMD GPU runtime (/dev/kfd) is present; else amd.
//  - Compilers: $CONCORD_NVCC / $CONCORD_HIPCC, then the build's CONCORD_HIP_NVCC_PATH /
//    CONCORD_HIP_HIPCC_PATH macros, then PATH, then /usr/local/cuda/bin/nvcc, /opt/rocm/bin/hipcc.
//    Missing compiler -> backend_unavailable; failed compile -> backend_error with its output.
//  - Compat include dir (backends/hip_compat, always first on the include path): $CONCORD_HIP_COMPAT_DIR,
//    else the macro CONCORD_HIP_COMPAT_DIR set by the build, else found relative to this header.
//  - On NVIDIA the shared object uses the shared CUDA runtime (-cudart shared) so it shares the
//    runtime state (current device, allocations) of a host program built the same way.
#pragma once
#include <concord/error.hpp>
#include <concord/jit.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

namespace concord::hip {

inline constexpr std::string_view nvcc_flags = "-std=c++17 -O3 -ftz=true -prec-div=true -prec-sqrt=true -fmad=false";
inline constexpr std::string_view hipcc_flags =
    "-std=c++17 -O3 -fgpu-flush-denormals-to-zero -ffp-contract=off -fno-fast-math";
inline constexpr std::string_view default_nvidia_arch = "sm_90";

enum class platform { nvidia, amd };

inline const char* platform_name(platform p) { return p == platform::nvidia ? "nvidia" : "amd"; }

namespace detail {

inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

inline bool executable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

inline std::string find_tool(const char* env_name, const char* built, const char* tool, const char* fallback) {
  if (std::string e = env(env_name); !e.empty()) return executable(e) ? e : std::string();
  if (executable(built)) return built;
  int status = 0;
  std::string out = jit::run_command(std::string("command -v ") + tool, status);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (status == 0 && executable(out)) return out;
  return executable(fallback) ? std::string(fallback) : std::string();
}

inline std::string dirname(const std::string& p) {
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : p.substr(0, slash);
}

inline std::string absolute(const std::string& p) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (!r) return p;
  std::string out(r);
  std::free(r);
  return out;
}

inline bool safe_token(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '+' || c == ':')) return false;
  return true;
}

inline std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline std::string nvcc_rpath(const std::string& nvcc) {
  const std::string lib = absolute(dirname(nvcc) + "/../lib64");
  return ::access(lib.c_str(), F_OK) == 0 ? " -Xlinker -rpath -Xlinker " + quote(lib) : std::string();
}

}  // namespace detail

#if !defined(CONCORD_HIP_NVCC_PATH)
#define CONCORD_HIP_NVCC_PATH ""
#endif
#if !defined(CONCORD_HIP_HIPCC_PATH)
#define CONCORD_HIP_HIPCC_PATH ""
#endif

// sm_NN: -arch (SASS and PTX); sm_NNa (arch-specific features such as wgmma): SASS only, since
// -arch=sm_90a also emits compute_90 PTX, where wgmma does not assemble.
inline std::string nvcc_arch(const std::string& arch) {
  if (!arch.empty() && arch.back() == 'a') return " -gencode arch=compute_" + arch.substr(3) + ",code=" + arch;
  return " -arch=" + arch;
}

inline std::string find_nvcc() {
  return detail::find_tool("CONCORD_NVCC", CONCORD_HIP_NVCC_PATH, "nvcc", "/usr/local/cuda/bin/nvcc");
}
inline std::string find_hipcc() {
  return detail::find_tool("CONCORD_HIPCC", CONCORD_HIP_HIPCC_PATH, "hipcc", "/opt/rocm/bin/hipcc");
}

inline std::string compat_dir() {
  if (std::string e = detail::env("CONCORD_HIP_COMPAT_DIR"); !e.empty()) return e;
#if defined(CONCORD_HIP_COMPAT_DIR)
  return CONCORD_HIP_COMPAT_DIR;
#else
  return detail::absolute(detail::dirname(__FILE__) + "/../../hip_compat");
#endif
}

inline platform select_platform() {
  if (std::string e = detail::env("CONCORD_HIP_PLATFORM"); !e.empty()) {
    if (e == "nvidia") return platform::nvidia;
    if (e == "amd") return platform::amd;
    throw backend_unavailable("concord hip: CONCORD_HIP_PLATFORM must be 'nvidia' or 'amd', got '" + e + "'");
  }
#if defined(CONCORD_HIP_COMPAT_CUDA) || defined(__NVCC__)
  return platform::nvidia;
#elif defined(__HIPCC__) || defined(__HIP_PLATFORM_AMD__)
  return platform::amd;
#else
  const bool amd_runtime = ::access("/dev/kfd", F_OK) == 0;
  return !amd_runtime && !find_nvcc().empty() ? platform::nvidia : platform::amd;
#endif
}

// Compiles emitted HIP source to a shared object and loads it. `arch` is sm_NN (nvidia) or
// gfxNNN (amd); empty means $CONCORD_HIP_ARCH, else sm_90 on nvidia and hipcc's own detection on amd.
inline std::shared_ptr<jit::library> compile_kernels(const std::string& hip_source, std::string arch = "") {
  const platform p = select_platform();
  if (arch.empty()) arch = detail::env("CONCORD_HIP_ARCH");
  if (arch.empty() && p == platform::nvidia) arch = std::string(default_nvidia_arch);
  if (!arch.empty() && !detail::safe_token(arch)) throw backend_error("concord hip: bad GPU arch '" + arch + "'");
  const std::string include = " -I" + detail::quote(compat_dir());
  if (p == platform::nvidia) {
    const std::string nvcc = find_nvcc();
    if (nvcc.empty()) throw backend_unavailable("concord hip: nvcc not found (set CONCORD_NVCC or PATH)");
    const std::string flags = "-x cu " + std::string(nvcc_flags) + nvcc_arch(arch) +
                              " -shared -Xcompiler -fPIC -cudart shared" + include + detail::nvcc_rpath(nvcc);
    return jit::compile(hip_source, nvcc, flags, ".hip");
  }
  const std::string hipcc = find_hipcc();
  if (hipcc.empty()) throw backend_unavailable("concord hip: hipcc not found (set CONCORD_HIPCC or PATH)");
  std::string flags = std::string(hipcc_flags) + " -fPIC -shared";
  if (!arch.empty()) flags += " --offload-arch=" + arch;
  return jit::compile(hip_source, hipcc, flags + include, ".hip");
}

// Compiles `source` to an object file and discards it. target "sm_NN..." uses nvcc, "gfx..." hipcc.
// Returns "" on success (the compiler's messages, warnings and ptxas notes among them, go to
// *messages when given); backend_error with the compiler output on failure; backend_unavailable
// when the compiler is missing.
inline std::string compile_only(const std::string& source, const std::string& target, std::string* messages = nullptr) {
  const bool nvidia = target.rfind("sm_", 0) == 0, amd = target.rfind("gfx", 0) == 0;
  if (!detail::safe_token(target) || (!nvidia && !amd))
    throw backend_error("concord hip: unknown compile target '" + target + "' (want sm_NN or gfxNNN)");
  const std::string include = " -I" + detail::quote(compat_dir());
  std::string cmd;
  if (nvidia) {
    const std::string nvcc = find_nvcc();
    if (nvcc.empty()) throw backend_unavailable("concord hip: nvcc not found (set CONCORD_NVCC or PATH)");
    cmd = detail::quote(nvcc) + " -x cu " + std::string(nvcc_flags) + nvcc_arch(target) + include + " -c";
  } else {
    const std::string hipcc = find_hipcc();
    if (hipcc.empty()) throw backend_unavailable("concord hip: hipcc not found (set CONCORD_HIPCC or PATH)");
    cmd = "HIP_PLATFORM=amd " + detail::quote(hipcc) + " " + std::string(hipcc_flags) + " --offload-arch=" + target +
          include + " -c";
  }
  static std::atomic<unsigned> counter{0};
  const std::string dir = jit::cache_dir(), key = jit::hex(jit::fnv1a(cmd + "\n" + source));
  const std::string stem = dir + "/compile-only-" + key + "-" + std::to_string(::getpid()) + "-" +
                           std::to_string(counter++);
  const std::string src = stem + ".hip", obj = stem + ".o";
  {
    std::ofstream f(src);
    f << source;
    if (!f) throw backend_error("concord hip: cannot write " + src);
  }
  int status = 0;
  const std::string out = jit::run_command(cmd + " -o " + detail::quote(obj) + " " + detail::quote(src), status);
  std::remove(obj.c_str());
  if (status != 0) {
    const std::string kept = dir + "/compile-only-" + key + ".hip";
    std::rename(src.c_str(), kept.c_str());
    throw backend_error("concord hip: '" + cmd + "' failed (" + target + "), source kept in " + kept + ":\n" + out);
  }
  std::remove(src.c_str());
  if (messages) *messages = out;
  return "";
}

}  // namespace concord::hip
