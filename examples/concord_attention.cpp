// concord-attention: run the block-sparse attention pipeline on .npy inputs, so users can check
// concord against their own engine.
//   concord-attention --q q.npy --k k.npy --v v.npy [--backend cpu|vulkan] [--block 64] [--window 1]
//                     [--sinks 0] [--top-k 0] [--threshold 0] [--per-group] [--dense] [--non-causal]
//                     [--out DIR]
// q: f32 [heads, q_tokens, dim]; k, v: f32 or f16 [kv_heads, kv_tokens, dim]. Writes DIR/out.npy
// (f32 [heads, q_tokens, dim]) and DIR/keep.npy (bool [heads or groups, q_blocks, kv_blocks]).
#include <concord/cpu/runtime.hpp>
#include <concord/npy.hpp>
#if CONCORD_WITH_VULKAN
#include <concord/vulkan/backend.hpp>
#endif

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  using namespace concord;
  std::string qf, kf, vf, backend = "cpu", out = ".";
  attention::config c;
  c.window = 1, c.threshold = 0.0;
  const std::string usage =
      "usage: concord-attention --q q.npy --k k.npy --v v.npy [--backend cpu|vulkan] [--block 64] [--window 1]\n"
      "                         [--sinks 0] [--top-k 0] [--threshold 0] [--per-group] [--dense] [--non-causal] [--out DIR]\n";
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw error("concord-attention: " + a + " needs a value");
        return argv[++i];
      };
      auto count = [&]() -> int64_t {
        const std::string v = next();
        size_t used = 0;
        int64_t n = -1;
        try {
          n = std::stoll(v, &used);
        } catch (const std::exception&) {
        }
        if (used != v.size() || n < 0) throw error("concord-attention: " + a + " expects a whole number >= 0, got '" + v + "'");
        return n;
      };
      if (a == "--help" || a == "-h") return std::printf("%s", usage.c_str()), 0;
      if (a == "--q") qf = next();
      else if (a == "--k") kf = next();
      else if (a == "--v") vf = next();
      else if (a == "--backend") backend = next();
      else if (a == "--out") out = next();
      else if (a == "--block") c.block = count();
      else if (a == "--window") c.window = count();
      else if (a == "--sinks") c.sinks = count();
      else if (a == "--top-k") c.top_k = count();
      else if (a == "--threshold") {
        const std::string v = next();
        size_t used = 0;
        try {
          c.threshold = std::stod(v, &used);
        } catch (const std::exception&) {
        }
        if (used != v.size() || used == 0) throw error("concord-attention: --threshold expects a number, got '" + v + "'");
      }
      else if (a == "--per-group") c.per_group = true;
      else if (a == "--dense") c.dense = true;
      else if (a == "--non-causal") c.causal = false;
      else throw error("concord-attention: unknown argument " + a + "\n" + usage);
    }
    if (qf.empty() || kf.empty() || vf.empty()) throw error("concord-attention: --q, --k and --v are required");
    tensor q = npy::read(qf), k = npy::read(kf), v = npy::read(vf);
    if (q.shape.size() != 3 || k.shape.size() != 3 || v.shape != k.shape || q.shape[2] != k.shape[2])
      throw shape_error("concord-attention: expected q [H,Tq,D], k and v [Hkv,Tk,D]; got q " + to_string(q.shape) + ", k " + to_string(k.shape) + ", v " + to_string(v.shape));
    if (q.type != dtype::f32) throw shape_error(std::string("concord-attention: q must be f32, got ") + dtype_name(q.type));
    if (k.type != v.type) throw shape_error("concord-attention: k and v must have one dtype");
    c.heads = q.shape[0], c.q_len = q.shape[1], c.head_dim = q.shape[2], c.kv_heads = k.shape[0], c.kv_len = k.shape[1], c.kv_type = k.type;
    std::vector<tensor> outs;
    attention::pipeline p;
    if (backend == "cpu") {
      p = attention::build(c, cpu::caps());
      outs = cpu::run(cpu::compile(p.plan), {q, k, v});
#if CONCORD_WITH_VULKAN
    } else if (backend == "vulkan") {
      p = attention::build(c, vk::caps());
      outs = vk::run(vk::compile(p.plan), {q, k, v});
#endif
    } else {
      throw error("concord-attention: backend '" + backend + "' is not built into this tool");
    }
    npy::write(out + "/out.npy", outs[c.additive_mask ? 2 : 1]);
    npy::write(out + "/keep.npy", outs[0]);
    int64_t kept = 0, tiles = 0;
    for (int64_t i = 0; i < outs[0].size(); ++i) kept += outs[0].as<uint32_t>()[i];
    for (int64_t i = 0; i < outs.back().size(); ++i) tiles += outs.back().as<uint32_t>()[i];
    std::printf("concord-attention: %s via %s (splits %lld): %lld of %lld blocks kept, %lld tiles read; wrote %s/out.npy, %s/keep.npy\n",
                backend.c_str(), p.chosen.variant.c_str(), static_cast<long long>(p.chosen.splits), static_cast<long long>(kept),
                static_cast<long long>(outs[0].size()), static_cast<long long>(tiles), out.c_str(), out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
