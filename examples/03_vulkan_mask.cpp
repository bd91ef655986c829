// 03: the keep mask as a Vulkan compute shader. Prints the GLSL concord generates for the graph,
// runs it on the Vulkan device (lavapipe in CI, the GPU elsewhere) and on the CPU, and shows that
// both agree with the reference bit for bit — including scores of exactly 0, -0 and a denormal.
#include <concord/codegen/glsl.hpp>
#include <concord/concord.hpp>

#include <cstdio>

#include "common.hpp"

int main() {
  using namespace concord;
  graph g("vulkan_keep_mask");
  const shape_t s = {8, 8};
  auto score = g.input<f32>("score", s);
  auto q = g.iota<i32>(s, 0), k = g.iota<i32>(s, 1);
  g.output("keep", (k <= q) && (above(score, 0.0) || (q - k) < 2 || k == 0));
  program p = lower(g);
  auto plan = codegen::make_plan(p);
  std::printf("---- GLSL for stage %s ----\n%s\n", plan.stages[0].name.c_str(), codegen::glsl_emitter().emit_stage_source(plan, plan.stages[0]).c_str());
  tensor t(dtype::f32, s);
  const float v[] = {0.0f, -0.0f, 1e-45f, 0.25f, -1.0f, std::numeric_limits<float>::quiet_NaN(), 3.0f, 0.0f};
  for (int i = 0; i < 64; ++i) t.as<float>()[i] = v[(i * 3) % 8];
  return examples::run_everywhere(p, {t}) ? 0 : 1;
}
