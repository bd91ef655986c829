#include <concord/cpu/runtime.hpp>

#include "backend_suite.hpp"

concord::testing::plan_runner backend_plan_runner() {
  return [](const concord::codegen::kernel_plan& p, const std::vector<concord::tensor>& in) { return concord::cpu::run(concord::cpu::compile(p), in); };
}
concord::attention::device_caps backend_caps() { return concord::cpu::caps(); }
const char* backend_name() { return "cpu"; }
