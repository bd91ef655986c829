#include <concord/concord.hpp>
int main() {
  concord::graph g("g");
  auto x = g.input<concord::i32>("x", {4});
#if CONCORD_BAD
  g.output("y", x < 2.5);  // would truncate to x < 2: must not compile
#else
  g.output("y", concord::cast<concord::f32>(x) < 2.5f);
#endif
}
