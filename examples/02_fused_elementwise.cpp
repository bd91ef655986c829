// 02: a fused elementwise graph: softcap the scores, then turn a bool mask into an additive
// 0/-inf mask with select (never with arithmetic on the mask). One kernel, one pass over memory.
#include <concord/concord.hpp>

#include <cstdio>

#include "common.hpp"

int main() {
  using namespace concord;
  const int64_t n = 1 << 20;
  graph g("fused_softcap_mask");
  auto x = g.input<f32>("x", {n});
  auto keep = g.input<boolean>("keep", {n});
  auto capped = tanh(x * (1.0 / 30.0)) * 30.0;                       // softcap(x) = 30 tanh(x / 30)
  g.output("y", select(keep, capped, -std::numeric_limits<double>::infinity()));
  program p = lower(g);
  std::printf("%s\n", print(p).c_str());
  tensor xs(dtype::f32, {n}), ks(dtype::boolean, {n});
  for (int64_t i = 0; i < n; ++i) {
    xs.as<float>()[i] = static_cast<float>((i * 7919) % 2001 - 1000) * 0.125f;
    ks.as<uint32_t>()[i] = (i % 3) != 0;
  }
  return examples::run_everywhere(p, {xs, ks}) ? 0 : 1;
}
