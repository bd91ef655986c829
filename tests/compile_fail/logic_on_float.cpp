#include <concord/concord.hpp>
int main() {
  concord::graph g("g");
  auto x = g.input<concord::f32>("x", {4});
  auto m = x > 0.0f;
#if CONCORD_BAD
  g.output("y", x && m);  // float operand to && : must not compile
#else
  g.output("y", m && m);
#endif
}
