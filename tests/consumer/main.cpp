// A separate project that finds the installed package and runs a graph on the CPU backend.
#include <concord/concord.hpp>
#include <concord/cpu/runtime.hpp>

#include <cstdio>

int main() {
  using namespace concord;
  graph g("consumer");
  auto x = g.input<f32>("x", {5});
  g.output("keep", x > 0.0f);
  tensor t(dtype::f32, {5});
  const float v[5] = {-1.0f, 0.0f, -0.0f, 1e-45f, 2.0f};
  std::memcpy(t.bytes.data(), v, sizeof v);
  auto out = cpu::run(lower(g), {t});
  const uint32_t want[5] = {0, 0, 0, 0, 1};
  for (int i = 0; i < 5; ++i)
    if (out[0].as<uint32_t>()[i] != want[i]) return std::printf("consumer: element %d wrong\n", i), 1;
  std::printf("consumer: find_package(concord) works, keep mask correct\n");
  return 0;
}
