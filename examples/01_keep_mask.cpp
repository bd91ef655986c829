// 01: a boolean keep mask, the graph that started concord.
//
// In ggml, step(0) was 1 on Vulkan and 0 on the CPU, so a keep mask written as
// step(score + in_window) kept every block on one backend. Here the mask is boolean logic:
// comparisons give bool, || takes bool, and score exactly 0 (or -0, or a denormal) is not > 0
// on any backend.
#include <concord/concord.hpp>
#include <concord/cpu/runtime.hpp>

#include <cstdio>

#include "common.hpp"

int main() {
  using namespace concord;
  const int64_t q_blocks = 6, k_blocks = 6;
  graph g("keep_mask");
  auto score = g.input<f32>("score", {q_blocks, k_blocks});  // block relevance scores
  auto q = g.iota<i32>({q_blocks, k_blocks}, 0);
  auto k = g.iota<i32>({q_blocks, k_blocks}, 1);
  auto keep = (k <= q) && (above(score, 0.0) || (q - k) < 2);  // causal && (salient || in window)
  g.output("keep", keep);
  program p = lower(g);
  std::printf("%s\n", print(p).c_str());

  tensor s(dtype::f32, {q_blocks, k_blocks});
  const float v[] = {0.0f, -0.0f, 1e-45f, 0.5f, -2.0f, 0.0f};  // exact zeros and a denormal
  for (int i = 0; i < 36; ++i) s.as<float>()[i] = v[i % 6];
  return examples::run_everywhere(p, {s}) ? 0 : 1;
}
