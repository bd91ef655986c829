// The consumer's own graphs, exported at build time by concord_add_kernels.
#include <concord/concord.hpp>

std::vector<std::pair<std::string, concord::codegen::kernel_plan>> concord_export_graphs() {
  using namespace concord;
  graph g("consumer_mask");
  auto x = g.input<f32>("x", {64});
  g.output("keep", at_least(x, 0.5) || g.iota<i32>({64}, 0) < 4);
  return {{"consumer_mask", codegen::make_plan(lower(g))}};
}
