// Runs a program on every backend present and prints its agreement with the reference.
#pragma once
#include <concord/cpu/runtime.hpp>
#if CONCORD_WITH_VULKAN
#include <concord/vulkan/backend.hpp>
#endif

#include <chrono>
#include <cstdio>

#include "../tests/support.hpp"

namespace examples {

inline bool report(const char* backend, const concord::program& p, const std::vector<concord::tensor>& in,
                   const std::function<std::vector<concord::tensor>(const concord::program&, const std::vector<concord::tensor>&)>& run) {
  try {
    auto t0 = std::chrono::steady_clock::now();
    auto r = concord::testing::check(run, p, in);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  %-8s %s (%lld mismatches, %lld boolean) [%.1f ms incl. compile]\n", backend,
                r.mismatches == 0 ? "agrees with the reference" : "DISAGREES", static_cast<long long>(r.mismatches),
                static_cast<long long>(r.bool_mismatches), ms);
    if (r.mismatches) std::printf("           first: %s\n", r.first.c_str());
    return r.mismatches == 0;
  } catch (const concord::backend_unavailable& e) {
    std::printf("  %-8s not present: %s\n", backend, e.what());
    return true;
  }
}

inline bool run_everywhere(const concord::program& p, const std::vector<concord::tensor>& in) {
  std::printf("graph '%s' on every backend present:\n", p.name.c_str());
  bool ok = report("cpu", p, in, [](const auto& q, const auto& i) { return concord::cpu::run(q, i); });
#if CONCORD_WITH_VULKAN
  ok = report("vulkan", p, in, [](const auto& q, const auto& i) { return concord::vk::run(q, i); }) && ok;
#else
  std::printf("  %-8s not built (Vulkan development files missing)\n", "vulkan");
#endif
  return ok;
}

}  // namespace examples
