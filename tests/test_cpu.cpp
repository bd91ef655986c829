#include <concord/cpu/runtime.hpp>

#include "backend_suite.hpp"

concord::testing::runner backend_runner() {
  return [](const concord::program& p, const std::vector<concord::tensor>& in) { return concord::cpu::run(p, in); };
}
const char* backend_name() { return "cpu"; }
