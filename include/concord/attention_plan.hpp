// Planning for attention.hpp: the configuration, its validation, the device capabilities the
// planner reads, and the choice of kernel variant (plan_route), with a printable description.
// The semantics these serve are written at the top of attention.hpp.
#pragma once
#include <concord/attention_cpu.hpp>
#include <concord/attention_gpu.hpp>
#include <concord/attention_mma.hpp>
#include <concord/attention_mma_decode.hpp>
#include <concord/attention_mma_prefill.hpp>
#include <concord/attention_mma_sync.hpp>
#include <concord/attention_wgmma.hpp>
#include <concord/attention_stream.hpp>
#include <concord/codegen/plan.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace concord::attention {

enum class pool_kind : uint8_t { mean, max, minmax };

struct keep_terms {
  expr<f32> score;
  expr<i32> q_block, kv_block;
  expr<boolean> causal, in_window, is_sink, salient;
};

struct config {
  int64_t heads = 8, kv_heads = 8, q_len = 1, kv_len = 1024, head_dim = 128;
  dtype kv_type = dtype::f16;
  int64_t block = 64;
  bool causal = true;
  pool_kind pooling = pool_kind::mean;
  bool per_group = false;
  int64_t window = 1, sinks = 0, top_k = 0;
  double threshold = 0.0;
  bool dense = false;  // keep every causal block (the dense baseline, same kernels)
  double scale = 0.0;  // 0: 1/sqrt(D)
  bool additive_mask = false;
  std::function<expr<boolean>(const keep_terms&)> keep_rule;
  std::optional<program> score_mod;  // (f32 s, i32 q_pos, i32 k, i32 h) -> f32
  std::optional<program> mask_mod;   // (i32 q_pos, i32 k, i32 h) -> bool
  int64_t splits = 0;                // 0: the planner decides
  // Decode steps: selection reads block representatives f32 [Hkv, D, KB] given as inputs (rep_names:
  // the mean; the max; or the min and max for minmax, as rep_update_plan keeps them) instead of
  // pooling K each step. Plan inputs then: q, the representatives, k, v. Dims-major, so the block
  // scores (sums over D in index order, as pooling's) read consecutive blocks side by side.
  bool cached_reps = false;
  bool f16_products = false;  // prefill on tensor cores may round q and p once to f16 (bound above)

  int64_t groups() const { return heads / kv_heads; }
  int64_t q_blocks() const { return (q_len + block - 1) / block; }
  int64_t kv_blocks() const { return (kv_len + block - 1) / block; }
  int64_t list_heads() const { return per_group ? kv_heads : heads; }
  double sm_scale() const { return scale != 0 ? scale : 1.0 / std::sqrt(static_cast<double>(head_dim)); }
};

// Throws shape_error naming the value for anything that no variant can serve.
inline void validate(const config& c) {
  auto bad = [](const std::string& m) { throw shape_error("concord attention: " + m); };
  if (c.heads <= 0 || c.kv_heads <= 0 || c.q_len <= 0 || c.kv_len <= 0 || c.head_dim <= 0 || c.block <= 0)
    bad("sizes must be positive (heads " + std::to_string(c.heads) + ", kv_heads " + std::to_string(c.kv_heads) + ", q_len " +
        std::to_string(c.q_len) + ", kv_len " + std::to_string(c.kv_len) + ", head_dim " + std::to_string(c.head_dim) + ", block " + std::to_string(c.block) + ")");
  if (c.heads % c.kv_heads) bad("heads " + std::to_string(c.heads) + " is not a multiple of kv_heads " + std::to_string(c.kv_heads));
  if (c.q_len > c.kv_len) bad("q_len " + std::to_string(c.q_len) + " > kv_len " + std::to_string(c.kv_len) + " (queries align to the end of the keys)");
  if (c.block > 1024) bad("block " + std::to_string(c.block) + " > 1024 (per-invocation tile scores)");
  if (c.head_dim > 1024) bad("head_dim " + std::to_string(c.head_dim) + " > 1024 (the accumulator limit of every variant)");
  if (c.kv_type != dtype::f32 && c.kv_type != dtype::f16) bad(std::string("K/V dtype ") + dtype_name(c.kv_type) + " (f32 or f16 only)");
  if (c.window < 0 || c.sinks < 0 || c.top_k < 0) bad("window, sinks and top_k must be >= 0");
  if (!std::isfinite(c.scale)) bad("scale " + std::to_string(c.scale) + " is not finite (0 for 1/sqrt(head_dim))");
  auto check_mod = [&](const std::optional<program>& m, const char* what, std::vector<dtype> ins, dtype out, const char* sig) {
    if (!m) return;
    bool ok = m->inputs.size() == ins.size() && m->outputs.size() == 1 && m->outputs[0].type == out && m->outputs[0].shape == shape_t{1};
    for (size_t i = 0; ok && i < ins.size(); ++i) ok = m->inputs[i].type == ins[i] && m->inputs[i].shape == shape_t{1};
    if (ok) return;
    std::string got = "(";
    for (size_t i = 0; i < m->inputs.size(); ++i) got += (i ? ", " : "") + std::string(dtype_name(m->inputs[i].type)) + to_string(m->inputs[i].shape);
    got += ") -> ";
    for (size_t i = 0; i < m->outputs.size(); ++i) got += (i ? ", " : "") + std::string(dtype_name(m->outputs[i].type)) + to_string(m->outputs[i].shape);
    bad(std::string(what) + " graph '" + m->name + "' must be " + sig + ", each of shape [1]; it is " + got);
  };
  check_mod(c.score_mod, "score_mod", {dtype::f32, dtype::i32, dtype::i32, dtype::i32}, dtype::f32, "(f32 s, i32 q_pos, i32 k, i32 h) -> f32");
  check_mod(c.mask_mod, "mask_mod", {dtype::i32, dtype::i32, dtype::i32}, dtype::boolean, "(i32 q_pos, i32 k, i32 h) -> bool");
}

struct route {
  std::string variant;
  int64_t splits = 1, group = 1;
  int64_t rows = 1;  // query rows of one block per invocation (cpu_tile)
  bool fused_combine = false;  // set by build(): the split combine runs inside the attention stage
  std::string shape;           // set by build(): the kernel's shape where it has choices (decode_stream)
  std::vector<std::pair<std::string, std::string>> rejected;
};

struct device_caps {
  std::string backend = "cpu";
  int64_t parallelism = 2;         // threads (CPU) or resident invocations worth filling (GPU)
  int64_t max_accumulator = 4096;  // floats of per-invocation state a variant may hold
  int64_t max_loop_iterations = 0; // llvmpipe ends any invocation's loops after 65535 iterations; 0: no limit
  std::string notes;               // e.g. Vulkan float-controls, storage16
  std::string dialect = "any";     // cpp | glsl | hip: the one dialect the plan is for; any: portable kernels only
  int64_t shared_bytes = 0;        // workgroup shared memory a cooperative kernel may use (GPU dialects)
  bool wide_loads = true;          // cooperative kernels read K/V 8 elements per 16-byte load (D % 8 == 0)
  bool fused_combine = true;       // wide cooperative decode: the last split of a row combines (no separate stage)
  int64_t max_buffer_bytes = 0;    // the largest buffer one kernel may bind (Vulkan maxStorageBufferRange); 0: no limit
  int64_t subgroup = 0;            // lanes of a subgroup (warp) that exchange floats by CC_SHFL_XOR; 0: no shuffles
  int64_t decode_lanes = 0, decode_unroll = 0;  // decode_stream lanes per key and keys per step (0: chosen from G and D)
  bool decode_spread_exps = true;  // decode_stream, one head per workgroup: a key group's lanes share out the step's exps (false: every lane evaluates all)
  bool decode_fma = true;          // decode_stream: fused multiply-add in Q.K and P.V where the dialect has it
  bool decode_share_group = true;  // decode_stream: one workgroup serves a group's G heads (false: one head each; per-group selection only)
  bool unroll_hints = false;       // decode_stream: its constant loops carry the dialect's unroll hint (Vulkan: [[unroll]])
  int decode_prefetch = -1, decode_transpose = -1;  // decode_stream: next step's loads early / transposed reduce (-1: chosen, 0 off, 1 on)
  bool coop_compact = true;        // GPU dialects: the block-list compaction as a workgroup per row (false: one thread per row)
  bool mma_f16 = false;            // f16 tensor cores with f32 accumulation (HIP on NVIDIA sm_70+: nvcuda::wmma)
  int decode_mma = -1;             // with mma_f16, GQA decode of 2..8 heads per key list on tensor cores: -1 first where mma_sync serves D, else where decode_stream cannot serve the shape; 1 first; 0 off
  bool mma_sync = false;           // NVIDIA sm_80+: decode_mma at D = 64 / 128 and prefill_mma at D = 16 .. 128 as register fragments (mma.sync m16n8k16) instead of wmma
  bool wgmma = false;              // NVIDIA sm_90a (with mma_sync): prefill_mma's products as warpgroup MMA (wgmma) from shared core matrices
  int64_t shared_optin = 0;        // HIP on NVIDIA: dynamic shared memory a kernel may opt in to beyond shared_bytes (0: none)
  int64_t prefill_rows = 0;        // prefill_mma on register fragments or wgmma, blocks a multiple of 128: 128 query rows per workgroup of 8 warps sharing each K/V sub-tile (0 or 64: 64 rows, 4 warps; 128 is slower on the H100, run 74: one workgroup per SM)
  int64_t prefill_keys = 0;        // prefill_mma on wgmma: 32 keys per sub-tile (else 64 where shared_bytes or shared_optin holds the buffers)
  bool wgmma_swizzle = true;       // prefill_mma on wgmma: K/V sub-tiles in the 128-byte swizzled layout, so wgmma serves D % 64 == 0 only (mma.sync the rest); false: unswizzled core matrices at every D (A/B: run 73, slower than mma.sync)
  bool wgmma_overlap = false;      // prefill_mma on wgmma: issue the next sub-tile's S before this one's softmax (attention_wgmma.hpp), one more score accumulator
  int wgmma_q_shared = -1;         // prefill_mma on swizzled wgmma: Q's pieces in workgroup memory as S's A operand (attention_wgmma.hpp), freeing their registers, so with f16 products D > 128 runs in one pass (-1: there only; 0 off; 1 everywhere)
  bool decode_balance = true;      // decode_mma: each split takes an equal share of the row's sub-tiles (false: whole blocks, ceil(count / splits) each)
  int split_major = -1;            // decode and row kernels: 1: workgroup i takes split i / rows of row i % rows; 0: split i % S of row i / S; -1: 1 unless config::dense
  int64_t prefill_resident = 0;    // prefill_mma: workgroups per multiprocessor its registers are bounded for (0: chosen by D)
  int prefill_heavy_first = -1;    // prefill_mma, causal: the last query blocks (the most keys) dispatched first (-1 or 1: on, 0: off)
  int stream_steps = -1;           // decode_stream: splits take equal shares of the row's steps (NG x U keys) instead of whole blocks, split_blocks then counting steps (-1 or 0: blocks; 1: steps)
  bool combine_hoist = true;       // fused combines of one head on kernels with shuffles: every load issued at once, shuffled maxima and sums (false: the shared-memory trees). H100, evicted, MHA 25% kept: HIP 6-8% faster (runs 88-89), Vulkan 2-4% (run 91)
  bool split_stride = false;        // decode_stream, blocks per split: split sp takes listed blocks sp, sp + nsp, ... (its first index read beside the count; attention_stream.hpp). H100 run 90, evicted: dense MHA 1% faster, 25% kept within 1%
  int fence_once = -1;             // HIP on NVIDIA, fused combines: one device fence on each side of the done counter, by the thread that counts (1: sequentially consistent, 2: release-acquire; -1 or 0: every thread fences before it; GLSL and AMD always)
  int64_t split_blocks = -1;       // decode and row kernels: a row's first min(splits, max(1, count / this)) splits share its list, the rest hold none (0: all of them; -1: 2 for decode_mma, else 1)
};

// A/B knobs of the GPU backends' caps: CONCORD_DECODE_STREAM=0 plans decode_coop instead of
// decode_stream; CONCORD_DECODE_LANES / CONCORD_DECODE_UNROLL set decode_stream's lanes per key and
// keys per step; CONCORD_DECODE_GROUP=0 gives each head of a GQA group its own workgroup (1: one per group),
// CONCORD_DECODE_SPREAD=0 has every lane evaluate all exps, CONCORD_DECODE_FMA=0 keeps Q.K and P.V
// unfused, CONCORD_FUSED_COMBINE=0 plans the split combine as its own stage, CONCORD_DECODE_PREFETCH
// and CONCORD_DECODE_TRANSPOSE (0/1) force the early loads and the transposed reduce off or on,
// CONCORD_UNROLL_HINTS (0/1) the unroll hints, CONCORD_COOP_COMPACT=0 the one-thread-per-row compaction,
// CONCORD_DECODE_MMA (0/1) keeps GQA decode off the tensor cores or plans them before decode_stream,
// CONCORD_DECODE_BALANCE=0 gives decode_mma's splits whole blocks, CONCORD_SPLIT_BLOCKS sets
// split_blocks (0: every split shares the row's list), CONCORD_SPLIT_MAJOR=1 numbers the workgroups split-major, CONCORD_FENCE_ONCE (1/2) fences the fused combines' counter once, CONCORD_COMBINE_HOIST (0/1) the one-head fused combine with every load at once, CONCORD_STREAM_STEPS=1 splits decode_stream's lists by steps, CONCORD_SPLIT_STRIDE=1 gives its splits strided shares,
// CONCORD_PREFILL_RESIDENT and CONCORD_PREFILL_ORDER (0/1: heavy query blocks first) tune prefill_mma,
// CONCORD_PREFILL_ROWS (64/128) its rows per workgroup, and on wgmma (HIP on sm_90 unless
// CONCORD_WGMMA=0) CONCORD_PREFILL_KEYS (32/64), CONCORD_WGMMA_SWIZZLE, CONCORD_WGMMA_OVERLAP and CONCORD_WGMMA_QSHARED (0/1).
inline void tune_caps_from_env(device_caps& d) {
  auto num = [](const char* n) { const char* e = std::getenv(n); return e && *e ? std::atoll(e) : int64_t{-1}; };
  if (num("CONCORD_DECODE_STREAM") == 0) d.subgroup = 0;
  if (const int64_t l = num("CONCORD_DECODE_LANES"); l > 0) d.decode_lanes = l;
  if (const int64_t u = num("CONCORD_DECODE_UNROLL"); u > 0) d.decode_unroll = u;
  if (const int64_t g = num("CONCORD_DECODE_GROUP"); g >= 0) d.decode_share_group = g != 0;
  if (num("CONCORD_DECODE_SPREAD") == 0) d.decode_spread_exps = false;
  if (num("CONCORD_DECODE_FMA") == 0) d.decode_fma = false;
  if (num("CONCORD_FUSED_COMBINE") == 0) d.fused_combine = false;
  if (const int64_t v = num("CONCORD_DECODE_PREFETCH"); v >= 0) d.decode_prefetch = v != 0;
  if (const int64_t v = num("CONCORD_UNROLL_HINTS"); v >= 0) d.unroll_hints = v != 0;
  if (num("CONCORD_COOP_COMPACT") == 0) d.coop_compact = false;
  if (const int64_t v = num("CONCORD_DECODE_TRANSPOSE"); v >= 0) d.decode_transpose = v != 0;
  if (const int64_t v = num("CONCORD_DECODE_MMA"); v >= 0) d.decode_mma = v != 0 ? 1 : 0;
  if (num("CONCORD_DECODE_BALANCE") == 0) d.decode_balance = false;
  if (const int64_t v = num("CONCORD_SPLIT_BLOCKS"); v >= 0) d.split_blocks = v;
  if (const int64_t v = num("CONCORD_SPLIT_MAJOR"); v >= 0) d.split_major = v != 0 ? 1 : 0;
  if (const int64_t v = num("CONCORD_STREAM_STEPS"); v >= 0) d.stream_steps = v != 0 ? 1 : 0;
  if (const int64_t v = num("CONCORD_COMBINE_HOIST"); v >= 0) d.combine_hoist = v != 0;
  if (const int64_t v = num("CONCORD_SPLIT_STRIDE"); v >= 0) d.split_stride = v != 0;
  if (const int64_t v = num("CONCORD_FENCE_ONCE"); v >= 0) d.fence_once = int(std::min<int64_t>(v, 2));
  if (const int64_t v = num("CONCORD_PREFILL_RESIDENT"); v > 0) d.prefill_resident = v;
  if (const int64_t v = num("CONCORD_PREFILL_ORDER"); v >= 0) d.prefill_heavy_first = v != 0 ? 1 : 0;
  if (const int64_t v = num("CONCORD_PREFILL_KEYS"); v == 32 || v == 64) d.prefill_keys = v;
  if (const int64_t v = num("CONCORD_PREFILL_ROWS"); v == 64 || v == 128) d.prefill_rows = v;
  if (const int64_t v = num("CONCORD_WGMMA_SWIZZLE"); v >= 0) d.wgmma_swizzle = v != 0;
  if (const int64_t v = num("CONCORD_WGMMA_OVERLAP"); v >= 0) d.wgmma_overlap = v != 0;
  if (const int64_t v = num("CONCORD_WGMMA_QSHARED"); v >= 0) d.wgmma_q_shared = v != 0 ? 1 : 0;
}

namespace detail {
inline bool prefill_on_wgmma(const device_caps& dev, int64_t D) {
  return dev.wgmma && mma_sync_prefill_serves(dev.mma_sync, D) && (!dev.wgmma_swizzle || wgmma_swizzle_serves(D));
}
// Query rows per prefill_mma workgroup (16 per warp): 128 asks for register fragments or wgmma, D <= 128
// (not with O slices) and blocks of a multiple of 128 rows (none of the 8 warps idle in a block's last workgroup).
inline int64_t prefill_mma_rows(const device_caps& dev, int64_t D, int64_t block) {
  return dev.prefill_rows == 128 && D <= 128 && mma_sync_prefill_serves(dev.mma_sync, D) && block % 128 == 0 ? 128 : mma_rows;
}
inline int64_t prefill_mma_keys(const device_caps& dev, int64_t D) {
  return prefill_on_wgmma(dev, D) ? wgmma_prefill_keys(dev.prefill_keys, D, dev.shared_bytes, dev.shared_optin) : mma_keys;
}
// wgmma reading Q's pieces from workgroup memory (device_caps::wgmma_q_shared; the swizzled layout). By
// default only where it lets D > 128 run in one pass (f16 products; H100 run 81, H=16/2 D=256 4K causal:
// 0.588 ms against the slices' 0.811). Elsewhere it was slower in the same call: at D = 128 16K causal
// 3.16 ms against 2.61 with f16 products, 4.35 against 4.08 by default (the A operand read from
// workgroup memory per product), 2.69 with 128 rows in two workgroups per SM (half the K/V copies);
// D = 256 with two pieces 1.60 against 1.00 (128 KiB: one workgroup per SM).
inline bool prefill_q_shared(const device_caps& dev, const config& c) {
  if (!prefill_on_wgmma(dev, c.head_dim) || !dev.wgmma_swizzle) return false;
  return dev.wgmma_q_shared > 0 || (dev.wgmma_q_shared < 0 && c.head_dim > 128 && c.f16_products);
}
// O slices past D = 128, unless Q's one piece sits in workgroup memory (then O alone fills the registers).
inline int64_t prefill_slices(const device_caps& dev, const config& c) {
  return prefill_q_shared(dev, c) && c.f16_products ? 1 : mma_prefill_slices(c.head_dim);
}
// prefill_mma's workgroup memory and the limit it must fit (wgmma's may opt in beyond the static one).
inline std::pair<int64_t, int64_t> prefill_mma_shared(const device_caps& dev, const config& c) {
  const int64_t D = c.head_dim;
  if (prefill_on_wgmma(dev, D))
    return {wgmma_prefill_shared_bytes(prefill_mma_keys(dev, D), D) + (prefill_q_shared(dev, c) ? wgmma_q_shared_bytes(prefill_mma_rows(dev, D, c.block), D, c.f16_products) : 0),
            std::max(dev.shared_bytes, dev.shared_optin)};
  if (mma_sync_prefill_serves(dev.mma_sync, D)) return {mma_sync_prefill_shared_bytes(D), std::max(dev.shared_bytes, dev.shared_optin)};
  return {mma_shared_bytes(D), dev.shared_bytes};
}
inline stream_shape stream_shape_for(int64_t GQ, int64_t D, const device_caps& dev) {
  return choose_stream_shape(GQ, D, dev.subgroup, dev.decode_lanes, dev.decode_unroll, dev.decode_prefetch, dev.decode_transpose);
}
// The variants that walk a row's list through split_preamble (decode and row kernels) may leave
// splits idle at run time (device_caps::split_blocks); the prefill kernels and cpu_tile split alike
// always. By default a decode_mma split takes 2 listed blocks at least, the others 1 (H200 run 57,
// 25% kept, queued: GQA 4:1 16K 0.0207 ms with every split -> 0.0190 at 1 block -> 0.0184 at 2,
// 0.0216 at 4; MHA decode_stream 0.0140 -> 0.0136 at 1, 0.0168 at 2).
inline int64_t split_blocks_for(const std::string& variant, const device_caps& dev) {
  if (variant == "cpu_tile" || variant.rfind("prefill_", 0) == 0) return 0;
  return dev.split_blocks >= 0 ? dev.split_blocks : variant == "decode_mma" ? 2 : 1;
}
inline int fence_once(const device_caps& dev) { return dev.dialect == "hip" && dev.fence_once > 0 ? dev.fence_once : 0; }
inline bool splits_live(const std::string& variant, const device_caps& dev) { return split_blocks_for(variant, dev) > 0; }
// Split-major numbering puts the live splits of short lists on the first workgroups dispatched, so
// they spread over the multiprocessors instead of crowding the ones a row's block of workgroups
// lands on (H200 run 59, 25% kept, queued, same call: MHA 16K 0.0138 -> 0.0128 ms, GQA 4:1 32K
// 0.0225 -> 0.0214, the rest within 1%). Dense lists use every split; they keep row-major.
inline bool split_major(const config& c, const device_caps& dev) { return dev.split_major > 0 || (dev.split_major < 0 && !c.dense); }
}  // namespace detail

// The most key blocks one query block can keep: every block, unless the built-in rule can only keep
// the window, the sinks and the top-k (top_k > 0, or a threshold of +inf). Key splits are planned
// for this many blocks, so a sparse list does not leave most splits empty (H100 run 18: 32K decode
// at 25% kept, 64 splits 0.031 ms vs 128 splits 0.035 ms; 128K: 256 splits 0.073 vs 512 0.078).
inline int64_t max_kept_blocks(const config& c) {
  const int64_t all = c.kv_blocks();
  if (c.dense || c.keep_rule || (c.top_k == 0 && !(c.threshold == std::numeric_limits<double>::infinity()))) return all;
  const int64_t window = c.window == 0 ? 0 : (c.causal ? c.window : 2 * c.window - 1);
  return std::min(all, window + c.sinks + c.top_k);
}

// Picks a kernel variant; the generic `row` variant serves every legal shape, so it never fails.
inline route plan_route(const config& c, const device_caps& dev) {
  validate(c);
  route r;
  const int64_t G = c.groups(), D = c.head_dim, rows = c.heads * c.q_len;
  const bool decode = c.q_len <= 4;
  const bool shared = c.per_group || G == 1;
  auto reject = [&](const char* v, const std::string& why) { r.rejected.push_back({v, why}); };
  auto splits_for = [&](int64_t invocations, int64_t per_unit = 2) {
    if (c.splits > 0) return std::min(c.splits, c.kv_blocks());
    int64_t want = (dev.parallelism * per_unit + invocations - 1) / invocations;
    return std::clamp<int64_t>(want, 1, std::max<int64_t>(1, std::min(c.kv_blocks() / 2, max_kept_blocks(c))));
  };
  if (dev.dialect != "cpp") reject("cpu_tile", "C++ dialect only (this plan is for " + dev.dialect + ")");
  else if (const int64_t GQ = shared ? G : 1, RQ = std::min(c.block, decode ? c.q_len : std::max<int64_t>(1, 8 / GQ));
           GQ * RQ * (2 * D + c.block + 24) > (int64_t{1} << 20))
    reject("cpu_tile", std::to_string(GQ * RQ) + " rows x (2*D + B) floats exceed the 4 MiB stack budget");
  else {
    r.variant = "cpu_tile", r.group = GQ, r.rows = RQ;
    r.splits = splits_for(c.heads / GQ * c.q_blocks() * ((std::min(c.block, c.q_len) + RQ - 1) / RQ));
    return r;
  }
  const int64_t GS = shared && dev.decode_share_group ? G : 1;
  // decode_mma: GQA decode on tensor cores. The wmma kernel (H200 run 45, GQA 4:1 32K: 0.0610 ms
  // against decode_stream's 0.0517) serves by default only the shapes decode_stream cannot.
  auto plan_mma = [&]() {
    if (dev.dialect != "hip" || !dev.mma_f16) reject("decode_mma", dev.dialect != "hip" ? "HIP only (this plan is for " + dev.dialect + ")" : "no f16 tensor cores (NVIDIA sm_70+ only; AMD builds have none here)");
    else if (!decode) reject("decode_mma", "q_len " + std::to_string(c.q_len) + " > 4: not a decode shape");
    else if (c.kv_type != dtype::f16) reject("decode_mma", "K/V f32: tensor cores take f16");
    else if (!dev.wide_loads) reject("decode_mma", "16-byte K/V loads are off (device_caps::wide_loads)");
    else if (GS < 2 || GS > 8) reject("decode_mma", std::to_string(GS) + " heads per workgroup: the 16-row tiles hold 2 to 8 heads (hi and lo pieces)");
    else if (D % 16 != 0 || D > 128) reject("decode_mma", "head_dim " + std::to_string(D) + " is not a multiple of 16 up to 128 (Q pieces and O accumulators live in registers)");
    else if (!detail::mma_sync_serves(dev.mma_sync, D) && detail::mma_decode_shared_bytes(D) > dev.shared_bytes)
      reject("decode_mma", std::to_string(detail::mma_decode_shared_bytes(D)) + " bytes of workgroup memory > the device's " + std::to_string(dev.shared_bytes));
    else {
      // One wave, as even as it gets: splits = the resident workgroups (2048 threads per multiprocessor
      // in dev.parallelism) over the rows, rounded down (H200 run 44: 704 of 792 slots, 0.89 waves).
      const int64_t res = detail::mma_sync_serves(dev.mma_sync, D) ? detail::mma_sync_resident(GS) : detail::mma_decode_resident;
      const int64_t slots = std::max<int64_t>(1, dev.parallelism / 2048 * res), rows_ = c.heads / GS * c.q_len;
      r.variant = "decode_mma", r.group = GS;
      r.splits = c.splits > 0 ? std::min(c.splits, c.kv_blocks()) : std::clamp<int64_t>(slots / rows_, 1, std::max<int64_t>(1, std::min(c.kv_blocks() / 2, max_kept_blocks(c))));
      return true;
    }
    return false;
  };
  // By default the register-fragment kernel (mma_sync, D = 64 / 128) goes first: H200, GQA 4:1 32K
  // 0.0466 ms against decode_stream's 0.0518, 8:1 0.0518 against the wmma kernel's 0.0869.
  const bool mma_first = dev.decode_mma > 0 || (dev.decode_mma < 0 && detail::mma_sync_serves(dev.mma_sync, D));
  if (dev.decode_mma == 0) reject("decode_mma", "off (device_caps::decode_mma, CONCORD_DECODE_MMA=0)");
  else if (mma_first && plan_mma()) return r;
  auto plan_stream = [&](int64_t gs) {
    const auto ssh = detail::stream_shape_for(gs, D, dev);
    const std::string v = gs == GS ? "decode_stream" : "decode_stream with " + std::to_string(gs) + " of the group's " + std::to_string(GS) + " heads per workgroup";
    if (dev.dialect != "glsl" && dev.dialect != "hip") reject(v.c_str(), "GPU dialects only (this plan is for " + dev.dialect + ")");
    else if (!decode) reject(v.c_str(), "q_len " + std::to_string(c.q_len) + " > 4: not a decode shape");
    else if (c.kv_type != dtype::f16) reject(v.c_str(), "K/V f32: its 16-byte loads take 8 halves (decode_coop reads f32)");
    else if (dev.subgroup <= 0) reject(v.c_str(), "the device has no subgroup shuffles");
    else if (!dev.wide_loads) reject(v.c_str(), "16-byte K/V loads are off (device_caps::wide_loads)");
    else if (ssh.lanes == 0)
      reject(v.c_str(), D % 8 != 0 ? "head_dim " + std::to_string(D) + " is not a multiple of 8"
                                   : "G * D / lanes = " + std::to_string(gs * D / std::min<int64_t>(dev.subgroup, gs == 1 ? 8 : 16)) + "+ q and accumulator floats per lane > 32");
    else if (4 * detail::stream_shared_floats(ssh, D, 0, detail::coop_threads) > dev.shared_bytes)
      reject(v.c_str(), std::to_string(4 * detail::stream_shared_floats(ssh, D, 0, detail::coop_threads)) + " bytes of workgroup memory > the device's " +
                            std::to_string(dev.shared_bytes));
    else {
      r.variant = "decode_stream", r.group = gs, r.splits = splits_for(c.heads / gs * c.q_len * 512, 1);
      return true;
    }
    return false;
  };
  if (plan_stream(GS)) return r;
  // Where decode_stream could run but not this shape (too wide for its registers or workgroup
  // memory): decode_mma by default, else the group in equal parts, each reading the group's K/V once
  // (GQA 8:1 at D = 128: two workgroups of 4 heads). A device or knob without the stream
  // (CONCORD_DECODE_STREAM=0, narrow loads) keeps decode_coop.
  const bool stream_could = (dev.dialect == "glsl" || dev.dialect == "hip") && decode && c.kv_type == dtype::f16 && dev.subgroup > 0 && dev.wide_loads;
  if (dev.decode_mma < 0 && !mma_first && stream_could && plan_mma()) return r;
  if (stream_could && D % 8 == 0 && detail::stream_shape_for(GS, D, dev).lanes == 0)
    for (int64_t gs = GS / 2; gs >= 2; --gs)
      if (GS % gs == 0 && detail::stream_shape_for(gs, D, dev).lanes > 0) {
        if (plan_stream(gs)) return r;
        break;
      }
  if (dev.dialect != "glsl" && dev.dialect != "hip") reject("decode_coop", "GPU dialects only (this plan is for " + dev.dialect + ")");
  else if (!decode) reject("decode_coop", "q_len " + std::to_string(c.q_len) + " > 4: not a decode shape");
  else if (const int64_t GQ = shared ? G : 1, bytes = 4 * detail::coop_shared_floats(GQ, D, 8); detail::coop_key_tile(GQ, D, dev.shared_bytes) == 0)
    reject("decode_coop", std::to_string(bytes) + " bytes of workgroup memory (8-key sub-tiles) > the device's " + std::to_string(dev.shared_bytes));
  else if (GQ * ((D + detail::coop_threads - 1) / detail::coop_threads) > 64)
    reject("decode_coop", "G * ceil(D / " + std::to_string(detail::coop_threads) + ") = " + std::to_string(GQ * ((D + detail::coop_threads - 1) / detail::coop_threads)) + " accumulators per thread > 64");
  else {
    r.variant = "decode_coop", r.group = GQ, r.splits = splits_for(c.heads / GQ * c.q_len * detail::coop_threads);
    return r;
  }
  if (dev.dialect != "hip" || !dev.mma_f16) reject("prefill_mma", dev.dialect != "hip" ? "HIP only (this plan is for " + dev.dialect + ")" : "no f16 tensor cores (NVIDIA sm_70+ only; AMD builds have none here)");
  else if (decode) reject("prefill_mma", "q_len " + std::to_string(c.q_len) + " <= 4: a decode shape");
  else if (c.kv_type != dtype::f16) reject("prefill_mma", "K/V f32: tensor cores take f16 (prefill_coop keeps f32 K/V exact)");
  else if (!(D % 16 == 0 && D <= 128) && !detail::mma_sync_prefill_serves(dev.mma_sync, D))
    reject("prefill_mma", "head_dim " + std::to_string(D) + " is not a multiple of 16 up to 128, nor (mma.sync, sm_80+) of 32 up to 256 (Q pieces and O accumulators live in registers)");
  else if (const auto [bytes, limit] = detail::prefill_mma_shared(dev, c); bytes > limit)
    reject("prefill_mma", std::to_string(bytes) + " bytes of workgroup memory > the device's " + std::to_string(limit));
  else {
    const int64_t R = detail::prefill_mma_rows(dev, D, c.block);
    r.variant = "prefill_mma", r.group = 1, r.rows = R;
    r.splits = splits_for(c.heads * c.q_blocks() * ((std::min(c.block, c.q_len) + R - 1) / R) * 2 * R * 4, 1);
    return r;
  }
  if (dev.dialect != "glsl" && dev.dialect != "hip") reject("prefill_coop", "GPU dialects only (this plan is for " + dev.dialect + ")");
  else if (decode) reject("prefill_coop", "q_len " + std::to_string(c.q_len) + " <= 4: a decode shape");
  else if (const auto t = detail::choose_prefill_tiling(D, dev.shared_bytes); t.bq == 0)
    reject("prefill_coop", "no query tile of 8+ rows fits: " + std::to_string(4 * detail::prefill_tiling{8, 8}.shared_floats(D)) + " bytes of workgroup memory (device " +
                               std::to_string(dev.shared_bytes) + ") or " + std::to_string(detail::prefill_tiling{8, 8}.accumulators(D)) + " accumulators per thread (> 64)");
  else {
    r.variant = "prefill_coop", r.group = 1, r.rows = t.bq;
    r.splits = splits_for(c.heads * c.q_blocks() * ((std::min(c.block, c.q_len) + t.bq - 1) / t.bq) * detail::prefill_threads * 4, 1);
    return r;
  }
  if (!decode) reject("decode_split_group", "q_len " + std::to_string(c.q_len) + " > 4: not a decode shape");
  else if (!shared) reject("decode_split_group", "selection is per head: the heads of a group read different blocks");
  else if (G * D * 2 + c.block > dev.max_accumulator) reject("decode_split_group", "2*G*D + B = " + std::to_string(G * D * 2 + c.block) + " floats > accumulator limit " + std::to_string(dev.max_accumulator));
  else {
    r.variant = "decode_split_group", r.group = G, r.splits = splits_for(c.kv_heads * c.q_len);
    return r;
  }
  if (!decode) reject("decode_split", "q_len " + std::to_string(c.q_len) + " > 4: not a decode shape");
  else {
    r.variant = "decode_split", r.group = 1, r.splits = splits_for(rows);
    return r;
  }
  if (!shared) reject("row_group", "selection is per head: the heads of a group read different blocks");
  else if (G == 1) reject("row_group", "G = 1: nothing to share");
  else if (G * D * 2 + c.block > dev.max_accumulator) reject("row_group", "2*G*D + B = " + std::to_string(G * D * 2 + c.block) + " floats > accumulator limit " + std::to_string(dev.max_accumulator));
  else {
    r.variant = "row_group", r.group = G;
    return r;
  }
  r.variant = "row", r.group = 1;
  if (c.splits > 1) r.splits = std::min(c.splits, c.kv_blocks());
  return r;
}

// Splits the key list further until one invocation's loop iterations fit the device's limit.
inline route fit_loop_limit(const config& c, const device_caps& dev, route r) {
  if (dev.max_loop_iterations <= 0) return r;
  const bool live = detail::splits_live(r.variant, dev);
  auto iterations = [&](int64_t s) {
    const int64_t blocks = std::max((c.kv_blocks() + s - 1) / s, live ? 2 * detail::split_blocks_for(r.variant, dev) - 1 : 0), D = c.head_dim, GQ = r.group;
    if (r.variant == "decode_stream")
      return detail::stream_loop_iterations(detail::stream_shape_for(GQ, D, dev), GQ, D, c.block, blocks);
    if (r.variant == "decode_coop") {
      const int64_t W = detail::coop_threads, KT = detail::coop_key_tile(GQ, D, dev.shared_bytes), P = detail::coop_qk_parts(KT), DPT = (D + W - 1) / W;
      const int64_t DP = (D + P - 1) / P, NSL = (GQ * KT + W - 1) / W;  // stage K; Q.K; scores; maxima; slots; rescale; P.V
      const int64_t sub = (KT * D + W - 1) / W + 1 + (KT * P + W - 1) / W * (2 * GQ + DP * (GQ + 1)) + NSL * (P + 1) + GQ + NSL * GQ + GQ * 8 +
                          DPT * KT * (GQ + 1);
      return blocks * ((c.block + KT - 1) / KT) * sub + (GQ * D + W - 1) / W + 2 * GQ * DPT;
    }
    if (r.variant == "prefill_coop") {
      const auto t = detail::choose_prefill_tiling(D, dev.shared_bytes);
      const int64_t W = detail::prefill_threads, NDG = detail::prefill_dim_groups, OR = t.bq * NDG / W, OD = (D + NDG - 1) / NDG;
      const int64_t nmt = t.bq / t.mr * (t.kt / t.mc);
      const int64_t sub = 2 * ((t.kt * D + W - 1) / W) + (nmt + W - 1) / W * (D * (1 + t.mr + t.mc * (1 + t.mr)) + t.mr * (1 + t.mc)) +
                          (t.bq + W - 1) / W * 2 * t.kt + OR * (1 + OD) + t.kt * (1 + OR + OD * (1 + OR));
      return blocks * ((c.block + t.kt - 1) / t.kt) * sub + (t.bq * D + W - 1) / W + 2 * OR * OD;
    }
    return blocks * c.block * (D / 8 + D + 16) * GQ + 4 * D * GQ;
  };
  const int64_t before = r.splits;
  while (r.splits < c.kv_blocks() && iterations(r.splits) > dev.max_loop_iterations / 2) r.splits = std::min(c.kv_blocks(), r.splits * 2);
  if (r.splits != before)
    r.rejected.push_back({r.variant + " with " + std::to_string(before) + " splits",
                          "about " + std::to_string(iterations(before)) + " loop iterations per invocation > half the device limit " + std::to_string(dev.max_loop_iterations)});
  if (iterations(r.splits) > dev.max_loop_iterations)
    throw backend_error("concord attention: block " + std::to_string(c.block) + " x head_dim " + std::to_string(c.head_dim) +
                        " needs more loop iterations per invocation than this device allows (" + std::to_string(dev.max_loop_iterations) + ")");
  return r;
}

inline std::string describe(const config& c, const route& r, const device_caps& dev) {
  std::ostringstream os;
  const int64_t D = c.head_dim;
  os << "concord route [" << dev.backend << "]: q f32[" << c.heads << "," << c.q_len << "," << D << "] strides [" << c.q_len * D << "," << D << ",1]"
     << ", k/v " << dtype_name(c.kv_type) << "[" << c.kv_heads << "," << c.kv_len << "," << D << "] strides [" << c.kv_len * D << "," << D << ",1]"
     << ", mask bool[" << c.list_heads() << "," << c.q_blocks() << "," << c.kv_blocks() << "] (" << (c.per_group ? "per group" : "per head")
     << ", block " << c.block << (c.dense ? ", dense" : "") << (c.causal ? ", causal" : "") << ")"
     << " -> " << r.variant << " (group " << r.group << ", splits " << r.splits << (r.fused_combine ? ", combine fused" : "") << (r.shape.empty() ? "" : ", ") << r.shape << ")";
  for (auto& [v, why] : r.rejected) os << "\n  rejected " << v << ": " << why;
  if (!dev.notes.empty()) os << "\n  device: " << dev.notes;
  return os.str();
}

}  // namespace concord::attention
