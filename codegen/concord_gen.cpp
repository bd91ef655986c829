// concord-gen: writes the generated kernels of a set of graphs as plain files (see export.hpp).
//   concord-gen --out DIR [--list] [NAME...]
// The graphs come from concord_export_graphs(), defined by the header named with
// -DCONCORD_GEN_GRAPHS="file.hpp" at build time (default: the built-in set below).
#include <concord/attention.hpp>
#include <concord/codegen/export.hpp>
#if CONCORD_WITH_VULKAN
#include <concord/vulkan/glsl.hpp>
#endif

#include <algorithm>
#include <cstdio>
#include <cstring>

#ifdef CONCORD_GEN_GRAPHS
#include CONCORD_GEN_GRAPHS
#else
namespace {
#include "concord_gen_graphs.inc"
}  // namespace
#endif

int main(int argc, char** argv) {
  std::string out;
  bool list = false;
  std::vector<std::string> only;
  const char* usage = "usage: concord-gen --out DIR [NAME...] | --list\n";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!std::strcmp(argv[i], "--list")) list = true;
    else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) return std::printf("%s", usage), 0;
    else if (argv[i][0] == '-') return std::fprintf(stderr, "concord-gen: unknown option '%s'\n%s", argv[i], usage), 2;
    else only.push_back(argv[i]);
  }
  try {
    auto graphs = concord_export_graphs();
    if (list) {
      for (auto& [name, plan] : graphs) std::printf("%s (%zu stages)\n", name.c_str(), plan.stages.size());
      return 0;
    }
    if (out.empty()) return std::fprintf(stderr, "%s", usage), 2;
    for (const std::string& name : only)
      if (std::none_of(graphs.begin(), graphs.end(), [&](const auto& g) { return g.first == name; })) {
        std::string known;
        for (auto& g : graphs) known += " " + g.first;
        return std::fprintf(stderr, "concord-gen: no graph named '%s' (graphs:%s)\n", name.c_str(), known.c_str()), 2;
      }
    std::function<std::vector<uint32_t>(const std::string&, const std::string&)> spirv;
#if CONCORD_WITH_VULKAN
    spirv = [](const std::string& src, const std::string& name) {
      auto words = concord::vk::compile_glsl(src, name);
      concord::vk::validate_spirv(words);
      return words;
    };
#endif
    int n = 0;
    for (auto& [name, plan] : graphs) {
      if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
      auto files = concord::codegen::export_plan(plan, name, spirv);
      concord::codegen::write_files(out, files);
      n += static_cast<int>(files.size());
    }
    std::printf("concord-gen: wrote %d files to %s%s\n", n, out.c_str(), spirv ? "" : " (no SPIR-V: built without glslang)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concord-gen: %s\n", e.what());
    return 1;
  }
  return 0;
}
