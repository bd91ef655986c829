#include <concord/cpu/runtime.hpp>

#include "backend_suite.hpp"

namespace {
bool portable_kernels = false;  // route as for an unknown dialect: the portable kernels, run as C++
}

concord::testing::plan_runner backend_plan_runner() {
  return [](const concord::codegen::kernel_plan& p, const std::vector<concord::tensor>& in) { return concord::cpu::run(concord::cpu::compile(p), in); };
}
concord::attention::device_caps backend_caps() {
  auto d = concord::cpu::caps();
  if (portable_kernels) d.dialect = "any";
  return d;
}
const char* backend_name() { return portable_kernels ? "cpu (portable kernels)" : "cpu"; }
[[maybe_unused]] const bool div_sqrt_exact = (concord::testing::div_sqrt_rounded() = true);  // correctly rounded here

TEST_CASE("attention: the portable kernels (row, row_group, decode_split*) also run as C++", "[attention][portable]") {
  portable_kernels = true;
  auto c = base_config();
  run_attention_case("prefill f32 D=64 (row)", c, 2);
  c.kv_type = concord::dtype::f16, c.head_dim = 80, c.per_group = true;
  run_attention_case("prefill f16 D=80 per group (row_group)", c, 1);
  c.q_len = 1, c.kv_len = 300;
  run_attention_case("decode per group (decode_split_group)", c);
  c.per_group = false, c.q_len = 3;
  run_attention_case("decode per head, 3 rows (decode_split)", c);
  portable_kernels = false;
}
