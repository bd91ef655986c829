// The conformance, random-graph and attention suites on the Vulkan backend. Without a device the
// executable reports a skip with the reason (exit 77), unless CONCORD_REQUIRE_VULKAN=1 (CI, where
// lavapipe is installed), where a missing device is a failure.
#define CATCH_CONFIG_RUNNER
#include <concord/vulkan/backend.hpp>

#include "backend_suite.hpp"

concord::testing::plan_runner backend_plan_runner() {
  return [](const concord::codegen::kernel_plan& p, const std::vector<concord::tensor>& in) {
    return concord::vk::run(concord::vk::compile(p), in);
  };
}
concord::attention::device_caps backend_caps() { return concord::vk::caps(); }
const char* backend_name() { return "vulkan"; }

int main(int argc, char** argv) {
  try {
    std::printf("vulkan device: %s\n", concord::vk::context::get().info().describe().c_str());
  } catch (const concord::backend_unavailable& e) {
    const char* req = std::getenv("CONCORD_REQUIRE_VULKAN");
    if (req && *req == '1') {
      std::printf("FAIL: Vulkan is required here (CONCORD_REQUIRE_VULKAN=1) but unavailable: %s\n", e.what());
      return 1;
    }
    std::printf("SKIP: %s\n", e.what());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
