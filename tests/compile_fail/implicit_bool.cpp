#include <concord/concord.hpp>
int main() {
  concord::graph g("g");
  auto x = g.input<concord::f32>("x", {4});
  auto m = x > 0.0f;
#if CONCORD_BAD
  concord::expr<concord::f32> y = m;  // no implicit bool -> number
#else
  concord::expr<concord::f32> y = concord::cast<concord::f32>(m);
#endif
  g.output("y", y);
}
