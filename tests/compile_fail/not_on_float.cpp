#include <concord/concord.hpp>
int main() {
  concord::graph g("g");
  auto x = g.input<concord::f32>("x", {4});
#if CONCORD_BAD
  g.output("y", !x);  // ! on a float
#else
  g.output("y", !(x == 0.0f));
#endif
}
