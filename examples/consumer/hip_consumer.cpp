// A HIP consumer with no concord: plain HIP runtime API. It loads a shared library built from an
// exported <name>.hip (hipcc, or nvcc with backends/hip_compat), reads the manifest, allocates the
// buffers, calls each stage's launcher in order and checks the outputs against concord's files.
//   hip_consumer LIB.so KERNEL_DIR FIXTURE_DIR NAME        (exit 77: no GPU)
#include <dlfcn.h>
#include <hip/hip_runtime.h>

#include <cmath>

#include "manifest.h"

int main(int argc, char** argv) {
  if (argc != 5) return std::fprintf(stderr, "usage: hip_consumer LIB.so KERNEL_DIR FIXTURE_DIR NAME\n"), 2;
  int ndev = 0;
  if (hipGetDeviceCount(&ndev) != hipSuccess || ndev == 0) return std::printf("SKIP: no HIP device\n"), 77;
  char path[1024];
  std::snprintf(path, sizeof path, "%s/%s.json", argv[2], argv[4]);
  char* js = slurp(path, nullptr);
  buf_t bufs[MAXB];
  stage_t st[MAXS];
  int nb = 0, ns = 0;
  if (!js || parse_manifest(js, bufs, &nb, st, &ns)) return std::fprintf(stderr, "bad manifest %s\n", path), 1;
  void* lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) return std::fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror()), 1;
  void* dev[MAXB];
  int in_k = 0;
  for (int b = 0; b < nb; ++b) {
    if (hipMalloc(&dev[b], bufs[b].bytes + 4) != hipSuccess) return std::fprintf(stderr, "hipMalloc %zu failed\n", bufs[b].bytes), 1;
    (void)hipMemset(dev[b], 0x7B, bufs[b].bytes + 4);  // concord's poison_byte
    if (!std::strcmp(bufs[b].role, "input") || !std::strcmp(bufs[b].role, "inout")) {
      size_t len = 0;
      std::snprintf(path, sizeof path, "%s/%s.in%d.bin", argv[3], argv[4], in_k++);
      char* data = slurp(path, &len);
      if (!data || len != bufs[b].bytes) return std::fprintf(stderr, "input %s missing or wrong size\n", path), 1;
      (void)hipMemcpy(dev[b], data, len, hipMemcpyHostToDevice);
      std::free(data);
    }
  }
  for (int s = 0; s < ns; ++s) {
    using launch_fn = int (*)(void* const*, unsigned, void*);
    auto fn = reinterpret_cast<launch_fn>(dlsym(lib, st[s].launcher));
    if (!fn) return std::fprintf(stderr, "no launcher %s\n", st[s].launcher), 1;
    void* params[MAXB];
    for (int k = 0; k < st[s].nbind; ++k) params[k] = dev[st[s].bind[k]];
    if (int e = fn(params, st[s].invocations, nullptr)) return std::fprintf(stderr, "%s failed: %d\n", st[s].launcher, e), 1;
  }
  (void)hipDeviceSynchronize();
  int out_k = 0, bad = 0;
  for (int b = 0; b < nb; ++b) {
    if (std::strcmp(bufs[b].role, "output") && std::strcmp(bufs[b].role, "inout")) continue;
    size_t len = 0;
    std::snprintf(path, sizeof path, "%s/%s.out%d.bin", argv[3], argv[4], out_k++);
    char* want = slurp(path, &len);
    if (!want || len != bufs[b].bytes) return std::fprintf(stderr, "expected %s missing or wrong size\n", path), 1;
    char* got = static_cast<char*>(std::malloc(len));
    (void)hipMemcpy(got, dev[b], len, hipMemcpyDeviceToHost);
    int mism = 0;
    if (!std::strcmp(bufs[b].dtype, "f32")) {
      for (size_t i = 0; i < len / 4; ++i) {
        float g = reinterpret_cast<float*>(got)[i], e = reinterpret_cast<float*>(want)[i];
        if (!(std::fabs(g - e) <= 1e-4f) && !(std::isnan(g) && std::isnan(e))) ++mism;
      }
    } else {
      mism = std::memcmp(got, want, len) != 0;
    }
    std::printf("%s output %d (%s, %zu bytes): %s\n", argv[4], out_k - 1, bufs[b].dtype, len, mism ? "MISMATCH" : "matches concord");
    bad += mism;
    std::free(want), std::free(got);
  }
  return bad ? 1 : 0;
}
