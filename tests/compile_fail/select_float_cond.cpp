#include <concord/concord.hpp>
int main() {
  concord::graph g("g");
  auto x = g.input<concord::f32>("x", {4});
#if CONCORD_BAD
  g.output("y", concord::select(x, x, x));  // select needs a bool condition
#else
  g.output("y", concord::select(x > 0.0f, x, x));
#endif
}
