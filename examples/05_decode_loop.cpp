// 05: a sparse decode loop. Each step appends one token to the K/V cache, updates only the touched
// block's representatives on the device, in place (rep_update_plan), and runs the pipeline on those cached
// representatives (config::cached_reps), instead of pooling the whole cache again. Every step is
// checked against the float64 reference (keep mask exact, output within the tests' tolerance).
#include <concord/cpu/runtime.hpp>
#if CONCORD_WITH_VULKAN
#include <concord/vulkan/backend.hpp>
#endif

#include <cstdio>
#include <cstring>

#include "../tests/attention_support.hpp"

namespace {

using namespace concord;

using plan_run = std::function<std::vector<tensor>(const codegen::kernel_plan&, const std::vector<tensor>&)>;

// The first `len` tokens of a [Hk, N, D] cache.
tensor prefix(const tensor& t, int64_t len) {
  const int64_t Hk = t.shape[0], N = t.shape[1], D = t.shape[2];
  tensor r(t.type, {Hk, len, D});
  const size_t e = dtype_bytes(t.type);
  for (int64_t h = 0; h < Hk; ++h)
    std::memcpy(r.bytes.data() + h * len * D * e, t.bytes.data() + h * N * D * e, static_cast<size_t>(len * D) * e);
  return r;
}
// Representatives [Hk, D, KB'] of the previous step (or none) padded with poison to kb blocks.
tensor grow(const tensor* prev, int64_t Hk, int64_t kb, int64_t D) {
  tensor r(dtype::f32, {Hk, D, kb});
  r.poison();
  if (prev)
    for (int64_t hd = 0; hd < Hk * D; ++hd)
      std::memcpy(r.as<float>() + hd * kb, prev->as<float>() + hd * prev->shape[2], static_cast<size_t>(std::min(kb, prev->shape[2])) * 4);
  return r;
}

bool decode_loop(const char* name, const attention::device_caps& dev, const plan_run& run) {
  attention::config c;
  c.heads = 8, c.kv_heads = 2, c.q_len = 1, c.head_dim = 64, c.block = 32, c.kv_type = dtype::f16;
  c.per_group = true, c.top_k = 2, c.window = 0, c.sinks = 1,
  c.cached_reps = true;  // no window: the block being appended to is kept only on its score
  const int64_t Hk = c.kv_heads, D = c.head_dim, B = c.block, len0 = 252, steps = 6;
  attention::config all = c;
  all.kv_len = len0 + steps;
  const auto qkv = testing::attention_inputs(all, 5, 1);
  std::vector<tensor> reps;  // sum, min, max, mean
  bool ok = true;
  for (int64_t s = 0, len = 0; s <= steps; ++s) {
    const int64_t next = s == 0 ? len0 : len + 1, kb = (next + B - 1) / B;
    const tensor k = prefix(qkv[1], next), v = prefix(qkv[2], next);
    const auto up = attention::rep_update_plan(Hk, len, next, D, B, c.kv_type);  // in place: only the touched block
    std::vector<tensor> in = {k};
    for (int r = 0; r < 4; ++r) in.push_back(grow(reps.empty() ? nullptr : &reps[r], Hk, kb, D));
    in.push_back(attention::recip_table(B));
    reps = run(up, in);
    len = next;
    if (s == 0) continue;  // the prompt: representatives only
    c.kv_len = len;
    const tensor q = testing::random_tensor(dtype::f32, {c.heads, 1, D}, 100 + s);
    const auto pipe = attention::build(c, dev);
    auto out = run(pipe.plan, {q, reps[3], k, v});
    const int64_t readers = c.groups() / pipe.chosen.group;  // workgroups per key list, each reading its kept blocks
    attention::config pooled = c;
    pooled.cached_reps = false;
    const tensor keep = interpret(attention::detail::selection_program(pooled), {q, k})[0];
    std::vector<double> lmax;
    const tensor ref = testing::reference_attention(c, keep, {q, k, v}, &lmax);
    double vmax = 0, err = 0;
    for (int64_t i = 0; i < v.size(); ++i) vmax = std::max(vmax, std::fabs(interp_detail::load(v, i)));
    bool out_ok = true;
    for (int64_t i = 0; i < ref.size(); ++i) {
      const double e = std::fabs(double(out[1].as<float>()[i]) - double(ref.as<float>()[i]));
      err = std::max(err, e);
      out_ok = out_ok && e <= 2e-5 * vmax * std::max(1.0, lmax[i / D] / 10.0);
    }
    int64_t kept = 0, tiles = 0;
    for (int64_t i = 0; i < keep.size(); ++i) kept += keep.as<uint32_t>()[i];
    for (int64_t i = 0; i < out[2].size(); ++i) tiles += out[2].as<uint32_t>()[i];
    const bool keep_ok = out[0].bytes == keep.bytes, step_ok = keep_ok && out_ok && tiles == kept * readers;
    ok = ok && step_ok;
    std::printf("  %-7s token %lld: kept %lld of %lld blocks (2 key lists), tiles read %lld (%lld per kept block), keep %s, max error %.2g -> %s\n", name,
                static_cast<long long>(len), static_cast<long long>(kept), static_cast<long long>(kb * c.list_heads()),
                static_cast<long long>(tiles), static_cast<long long>(readers), keep_ok ? "exact" : "DIFFERS", err, step_ok ? "agrees" : "DISAGREES");
  }
  return ok;
}

}  // namespace

int main() {
  std::printf(
      "sparse decode loop, 8 heads over 2 KV heads, D=64, f16 cache, blocks of 32, top-2 + sink (no window); reps updated per token:\n");
  bool ok = decode_loop("cpu", cpu::caps(),
                        [](const codegen::kernel_plan& p, const std::vector<tensor>& i) { return cpu::run(cpu::compile(p), i); });
#if CONCORD_WITH_VULKAN
  try {
    ok = decode_loop("vulkan", vk::caps(),
                     [](const codegen::kernel_plan& p, const std::vector<tensor>& i) { return vk::run(vk::compile(p), i); }) &&
         ok;
  } catch (const backend_unavailable& e) {
    std::printf("  vulkan  not present: %s\n", e.what());
  }
#else
  std::printf("  vulkan  not built (Vulkan development files missing)\n");
#endif
  return ok ? 0 : 1;
}
