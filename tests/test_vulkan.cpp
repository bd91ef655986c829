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

TEST_CASE("the streaming decode stage asks for full subgroups where the device has them", "[attention][stream]") {
  using namespace concord;
  const auto caps = vk::caps();
  if (caps.subgroup <= 0) {
    WARN("skipped: no subgroup shuffles on this device, so no decode_stream to check");
    return;
  }
  attention::config c;
  c.heads = 4, c.kv_heads = 4, c.q_len = 1, c.kv_len = 1000, c.head_dim = 64, c.block = 64, c.kv_type = dtype::f16;
  const auto p = attention::build(c, caps);
  REQUIRE(p.chosen.variant == "decode_stream");
  const auto compiled = vk::compile(p.plan);
  const auto& info = vk::context::get().info();
  for (size_t s = 0; s < p.plan.stages.size(); ++s) {
    INFO("stage " << p.plan.stages[s].name << ", device full_subgroups " << info.full_subgroups << ", max subgroup " << info.subgroup_max);
    const bool want = p.plan.stages[s].name == "sparse_attend" && info.full_subgroups && p.plan.stages[s].group % std::max<int64_t>(1, info.subgroup_max) == 0;
    CHECK(compiled.pipes[s]->full_subgroups() == want);
  }
}
