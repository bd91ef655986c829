// Writes inputs and expected outputs (computed by concord's CPU backend) for the kernels that
// concord-gen exports, so a consumer without concord can check its own run:
//   export_fixtures DIR NAME   ->  DIR/NAME.in<k>.bin, DIR/NAME.out<k>.bin
#include <concord/cpu/runtime.hpp>

#include <cstdio>
#include <fstream>

#include "../../tests/attention_support.hpp"

namespace {
#include "../../codegen/concord_gen_graphs.inc"
}

int main(int argc, char** argv) {
  if (argc != 3) return std::fprintf(stderr, "usage: export_fixtures DIR NAME\n"), 2;
  using namespace concord;
  for (auto& [name, plan] : concord_export_graphs()) {
    if (name != argv[2]) continue;
    std::vector<tensor> in;
    uint64_t seed = 5;
    for (const auto& b : plan.buffers) {
      if (!codegen::is_given(b.role)) continue;
      in.push_back(b.type == dtype::boolean ? testing::make_input(b.type, b.shape, seed++) : testing::random_tensor(b.type, b.shape, seed++));
    }
    auto out = cpu::run(cpu::compile(plan), in);
    auto save = [&](const std::string& what, size_t k, const tensor& t) {
      const std::string path = std::string(argv[1]) + "/" + name + "." + what + std::to_string(k) + ".bin";
      std::ofstream os(path, std::ios::binary);
      if (!os.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size())).flush())
        throw error("export_fixtures: cannot write " + path);
    };
    try {
      for (size_t k = 0; k < in.size(); ++k) save("in", k, in[k]);
      for (size_t k = 0; k < out.size(); ++k) save("out", k, out[k]);
    } catch (const error& e) {
      return std::fprintf(stderr, "%s\n", e.what()), 1;
    }
    std::printf("export_fixtures: %s: %zu inputs, %zu outputs\n", name.c_str(), in.size(), out.size());
    return 0;
  }
  return std::fprintf(stderr, "export_fixtures: no graph named %s\n", argv[2]), 1;
}
