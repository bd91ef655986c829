#include <concord/concord.hpp>
int main() {
  concord::graph g("g");
  auto x = g.input<concord::f32>("x", {4});
  auto m = x > 0.0f;
#if CONCORD_BAD
  g.output("y", m + m);  // bool arithmetic (the step() mistake): must not compile
#else
  g.output("y", concord::cast<concord::f32>(m) + x);
#endif
}
