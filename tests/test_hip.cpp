// The conformance, random-graph and attention suites on the HIP backend (GPU required; without
// one the executable reports a skip with the reason and exits 77).
#define CATCH_CONFIG_RUNNER
#include <concord/hip/backend.hpp>

#include "backend_suite.hpp"

concord::testing::plan_runner backend_plan_runner() {
  return [](const concord::codegen::kernel_plan& p, const std::vector<concord::tensor>& in) {
    return concord::hip::run(concord::hip::compile(p), in);
  };
}
concord::attention::device_caps backend_caps() { return concord::hip::caps(); }
const char* backend_name() { return "hip"; }

int main(int argc, char** argv) {
  try {
    std::printf("%s\n", concord::hip::context::get().info().describe().c_str());
  } catch (const concord::backend_unavailable& e) {
    std::printf("SKIP: %s\n", e.what());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
