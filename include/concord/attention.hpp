// Block-sparse FlashAttention, defined once and emitted for every backend.
//
// Layout: q f32 [H, Nq, D]; k, v f32 or f16 [Hkv, Nk, D]; out f32 [H, Nq, D]; G = H / Hkv.
// Query row i sits at key position i + (Nk - Nq): decode and chunked prefill align to the end.
// Blocks of B keys: key block kb covers keys [kb*B, kb*B+B) (the last may be partial). Query block
// qb covers rows [qb*B, qb*B+B); its key-block coordinate kq is the block of its last row's position.
// Selection is a DSL graph (it runs on the attention's device, no host round trip):
//   krep = pool over each key block (mean | max | minmax as Quest), qrep = mean of the block's rows
//   score[h,qb,kb] = qrep . krep   (minmax: sum_d max(q_d kmin_d, q_d kmax_d)); per_group: the max
//                    over the group's heads, so a group shares one list and K/V is read once per group
//   causal    = kb <= kq                in_window = kq - kb < window (|kq - kb| if not causal)
//   is_sink   = kb < sinks              salient   = score > threshold (strict; NaN never salient), or
//   with top_k > 0: rank < top_k, rank = causal blocks with a higher score, ties to the lower kb
//   keep = causal && (salient || in_window || is_sink)    (a user rule may replace it)
// keep lowers to (a) a compact list per (head or group, qb): count + kept kb in increasing order,
// and optionally (b) an additive 0/-inf mask [LH, QB, KB]. Never built from step-like arithmetic.
// Attention reads only listed blocks: for each key, causal per element (k_pos <= q_pos), then
// mask_mod(q_pos, k, h), s = score_mod(scale * q.k, q_pos, k, h); s = -inf or NaN is masked; online
// softmax. A row with no unmasked key outputs 0 (never NaN). Every invocation counts the tiles it
// read into `tiles`, so tests prove the skip fires.
// Products: by default every route is f32-accurate (tensor cores take q and p as two f16 pieces
// each). config::f16_products lets prefill on tensor cores round q (after its per-row power-of-two
// scaling) and p (times 2^12) once to f16, one product each instead of two; the softmax's exp is
// within 2^-16 (every route's is). With u = 2^-11 and a = scale * max over the row's keys of
// sum_d (|q_d| + 2^-27 max|q|) |k_d|, each output then lies within max|v| * (u + e^(2 u a + 2^-15)
// - 1) of the f32 result (score modifiers with slope <= 1: softcap, biases). Routes without such a
// form ignore it and stay f32-accurate, inside the same bound.
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

#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <optional>

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
// split_blocks (0: every split shares the row's list), CONCORD_SPLIT_MAJOR=1 numbers the workgroups split-major, CONCORD_FENCE_ONCE (1/2) fences the fused combines' counter once, CONCORD_STREAM_STEPS=1 splits decode_stream's lists by steps,
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

namespace detail {

template <class KT>
expr<f32> key_values(graph& g, const config& c) {
  auto k = g.input<KT>("k", {c.kv_heads, c.kv_len, c.head_dim});
  if constexpr (std::is_same_v<KT, f32>) return k;
  else return cast<f32>(k);
}

}  // namespace detail

// The block representatives a cached_reps pipeline takes, in input order.
inline std::vector<std::string> rep_names(const config& c) {
  if (c.pooling == pool_kind::minmax) return {"k_min", "k_max"};
  return {c.pooling == pool_kind::max ? "k_max" : "k_mean"};
}

namespace detail {

inline program selection_program(const config& c) {
  const int64_t H = c.heads, Hk = c.kv_heads, G = c.groups(), D = c.head_dim, B = c.block;
  const int64_t QB = c.q_blocks(), KB = c.kv_blocks(), LH = c.list_heads();
  graph g("sparse_select");
  auto q = g.input<f32>("q", {H, c.q_len, D});
  std::optional<expr<f32>> k, cached[2];
  if (!c.cached_reps) k = c.kv_type == dtype::f16 ? key_values<f16>(g, c) : key_values<f32>(g, c);
  else
    for (size_t r = 0; r < rep_names(c).size(); ++r) cached[r] = g.input<f32>(rep_names(c)[r], {Hk, D, KB});
  auto rep = [&](int which) -> expr<f32> {  // 0 mean, 1 min, 2 max
    if (c.cached_reps) return *cached[which == 1 || c.pooling != pool_kind::minmax ? 0 : 1];
    return which == 0 ? pool_mean(*k, 1, B) : which == 1 ? pool_min(*k, 1, B) : pool_max(*k, 1, B);
  };
  const shape_t s3 = {LH, QB, KB};
  auto qb = g.iota<i32>(s3, 1), kb = g.iota<i32>(s3, 2);
  const int64_t window = std::min(c.window, c.kv_len + 1), sinks = std::min(c.sinks, c.kv_len);  // past the keys: the same rule, in i32
  auto kq = (min((qb + 1) * B, c.q_len) - 1 + (c.kv_len - c.q_len)) / B;
  auto causal = kb <= kq;
  auto in_window = c.causal ? (kq - kb) < window : abs(kq - kb) < window;
  auto is_sink = kb < sinks;
  expr<f32> score = g.constant<f32>(0.0, s3);
  expr<boolean> salient = g.constant<boolean>(0.0, s3);
  if (!c.dense) {
    auto qrep = reshape(pool_mean(q, 1, B), {Hk, G * QB, D});
    expr<f32> sc;
    if (c.cached_reps) {  // [Hk, D, KB]: the same sums over D (from -0, in order) as the pooled path's
      auto qe = expand(qrep, 3, KB);
      auto at = [&](int which) { return expand(rep(which), 1, G * QB); };
      sc = c.pooling == pool_kind::minmax ? sum(max(qe * at(1), qe * at(2)), 2) : sum(qe * at(c.pooling == pool_kind::max ? 2 : 0), 2);
    } else if (c.pooling == pool_kind::minmax) {
      auto qe = expand(qrep, 2, KB);
      auto lo = expand(rep(1), 1, G * QB), hi = expand(rep(2), 1, G * QB);
      sc = sum(max(qe * lo, qe * hi), 3);
    } else {
      sc = matmul(qrep, rep(c.pooling == pool_kind::max ? 2 : 0));
    }
    score = c.per_group ? max_over(reshape(sc, {Hk, G, QB, KB}), 1) : reshape(sc, {H, QB, KB});
    if (c.top_k > 0) {
      const shape_t s4 = {LH, QB, KB, KB};
      auto mine = expand(score, 3, KB), other = expand(score, 2, KB);
      auto j = g.iota<i32>(s4, 3), me = g.iota<i32>(s4, 2);
      auto other_ok = c.causal ? expand(causal, 2, KB) : g.constant<boolean>(1.0, s4);
      auto higher = other_ok && (other > mine || (other == mine && j < me));
      auto rank = sum(cast<i32>(higher), 3);
      salient = !is_nan(score) && rank < std::min<int64_t>(c.top_k, KB + 1);
    } else {
      salient = above(score, c.threshold);
    }
  }
  keep_terms t{score, kq, kb, causal, in_window, is_sink, salient};
  expr<boolean> keep = c.dense ? (c.causal ? causal : kb >= 0)
                       : c.keep_rule ? c.keep_rule(t)
                                     : (c.causal ? causal && (salient || in_window || is_sink) : (salient || in_window || is_sink));
  g.output("keep", keep);
  if (c.additive_mask) g.output("mask_add", select(keep, 0.0f, g.constant<f32>(-std::numeric_limits<double>::infinity(), s3)));
  return lower(g);
}

inline std::string fill(std::string t, const std::vector<std::pair<std::string, std::string>>& vals) {
  for (auto& [k, v] : vals) replace_all(t, "@" + k + "@", v);
  return t;
}

inline constexpr const char* compact_body = R"(  uint c = 0u;
  for (uint j = 0u; j < @KB@u; ++j) {
    if (CC_LD_KEEP(i * @KB@u + j)) { CC_ST_KV_INDEX(i * @KB@u + c) = j; c += 1u; }
  }
  CC_ST_KV_COUNT(i) = c;
)";

// GPU dialects: one workgroup of WG threads per list row; thread `lane` takes a contiguous run of
// blocks, counts its kept ones, a shared prefix sum (Hillis-Steele) gives its first slot, and it
// writes its run in order: the same list as compact_body, without a 256-1024 step serial loop.
inline constexpr const char* compact_coop_body = R"(  uint per = (@KB@u + @WG@u - 1u) / @WG@u; uint j0 = lane * per; uint j1 = j0 + per < @KB@u ? j0 + per : @KB@u;
  uint c = 0u;
  for (uint j = j0; j < j1; ++j) if (CC_LD_KEEP(i * @KB@u + j)) c += 1u;
  cs[lane] = c;
  CC_BARRIER();
  for (uint off = 1u; off < @WG@u; off = off * 2u) {
    uint v = lane >= off ? cs[lane - off] : 0u;
    CC_BARRIER();
    cs[lane] = cs[lane] + v;
    CC_BARRIER();
  }
  uint at = cs[lane] - c;
  for (uint j = j0; j < j1; ++j) if (CC_LD_KEEP(i * @KB@u + j)) { CC_ST_KV_INDEX(i * @KB@u + at) = j; at += 1u; }
  if (lane == @WG@u - 1u) CC_ST_KV_COUNT(i) = cs[lane];
)";
inline constexpr int64_t compact_threads = 128;

// Fused combine: invocation i = (list head, query block) zeroes the done counters of its block's rows.
inline constexpr const char* compact_zero_done = R"(  for (uint q = (i % @QB@u) * @B@u; q < @NQ@u && q < (i % @QB@u + 1u) * @B@u; ++q) CC_ST_DONE((i / @QB@u) * @NQ@u + q) = 0u;
)";

inline constexpr const char* attend_body = R"(@PREAMBLE@  float qv[@GQD@]; float acc[@GQD@]; float mx[@GQ@]; float sm[@GQ@];
  for (uint g = 0u; g < @GQ@u; ++g) {
    mx[g] = cc_float(0xff800000u); sm[g] = 0.0f;
    for (uint d = 0u; d < @D@u; ++d) { qv[g * @D@u + d] = CC_LD_Q(((h0 + g) * @NQ@u + qi) * @D@u + d); acc[g * @D@u + d] = 0.0f; }
  }
  uint tiles = 0u;
  float st[@B@];
  for (uint e = e0; e < e1; ++e) {
    uint kb = CC_LD_KV_INDEX(lrow * @KB@u + e);
    tiles += 1u;
    uint k0 = kb * @B@u; uint k1 = k0 + @B@u < @NK@u ? k0 + @B@u : @NK@u;
    if (@CAUSAL@ && k1 > qpos + 1u) k1 = qpos + 1u;
    if (k1 <= k0) continue;
    uint n = k1 - k0;
#if CC_CPU && @BD@ <= 16384
    float kt[@BD@]; float vt[@BD@];
    for (uint x = 0u; x < n * @D@u; ++x) { kt[x] = CC_LD_K((kvh * @NK@u + k0) * @D@u + x); vt[x] = CC_LD_V((kvh * @NK@u + k0) * @D@u + x); }
#define CC_KD(j, d) kt[(j) * @D@u + (d)]
#define CC_VD(j, d) vt[(j) * @D@u + (d)]
#else
#define CC_KD(j, d) CC_LD_K((kvh * @NK@u + k0 + (j)) * @D@u + (d))
#define CC_VD(j, d) CC_LD_V((kvh * @NK@u + k0 + (j)) * @D@u + (d))
#endif
    for (uint g = 0u; g < @GQ@u; ++g) {
      float tmax = cc_float(0xff800000u);
      for (uint j = 0u; j < n; ++j) {
        float part[8];
        for (uint l = 0u; l < 8u; ++l) part[l] = 0.0f;
        for (uint d = 0u; d < @D8@u; d += 8u)
          for (uint l = 0u; l < 8u; ++l) part[l] = part[l] + qv[g * @D@u + d + l] * CC_KD(j, d + l);
        for (uint d = @D8@u; d < @D@u; ++d) part[d - @D8@u] = part[d - @D8@u] + qv[g * @D@u + d] * CC_KD(j, d);
        float dot = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
        float sc = cc_score_mod(dot * @SCALE@, int(qpos), int(k0 + j), int(h0 + g));
        bool live = cc_mask_mod(int(qpos), int(k0 + j), int(h0 + g)) && sc > cc_float(0xff800000u);
        st[j] = live ? sc : cc_float(0xff800000u);
        tmax = st[j] > tmax ? st[j] : tmax;
      }
      if (!(tmax > cc_float(0xff800000u))) continue;
      float mn = tmax > mx[g] ? tmax : mx[g];
      float corr = cc_exp(mx[g] - mn);
      float psum = 0.0f;
      for (uint j = 0u; j < n; ++j) { st[j] = cc_exp(st[j] - mn); psum = psum + st[j]; }
      sm[g] = sm[g] * corr + psum;
      for (uint d = 0u; d < @D@u; ++d) acc[g * @D@u + d] = acc[g * @D@u + d] * corr;
      for (uint j = 0u; j < n; ++j) {
        float pj = st[j];
        for (uint d = 0u; d < @D@u; ++d) acc[g * @D@u + d] = acc[g * @D@u + d] + pj * CC_VD(j, d);
      }
      mx[g] = mn;
    }
#undef CC_KD
#undef CC_VD
  }
  if (qi % @B@u == 0u) CC_ST_TILES((hg * @QB@u + qb) * @S@u + sp) = tiles;
  for (uint g = 0u; g < @GQ@u; ++g) {
    uint r = (h0 + g) * @NQ@u + qi;
@WRITE@  }
)";

inline constexpr const char* write_direct = R"(    float inv = sm[g] > 0.0f ? 1.0f / sm[g] : 0.0f;
    for (uint d = 0u; d < @D@u; ++d) CC_ST_OUT(r * @D@u + d) = acc[g * @D@u + d] * inv;
)";
inline constexpr const char* write_partial = R"(    uint pr = r * @S@u + sp;
    CC_ST_PART_MAX(pr) = mx[g]; CC_ST_PART_SUM(pr) = sm[g];
    for (uint d = 0u; d < @D@u; ++d) CC_ST_PART_ACC(pr * @D@u + d) = acc[g * @D@u + d];
)";

// One invocation per output element (row, d): every thread rescans the S split maxima and sums
// (cache-resident), so the combine is as parallel as the output.
inline constexpr const char* combine_body = R"(  uint row = i / @D@u; uint d = i % @D@u;
  float m = cc_float(0xff800000u);
  for (uint s = 0u; s < @S@u; ++s) { float ms = CC_LD_PART_MAX(row * @S@u + s); m = ms > m ? ms : m; }
  float total = 0.0f; float o = 0.0f;
  for (uint s = 0u; s < @S@u; ++s) {
    float ls = CC_LD_PART_SUM(row * @S@u + s);
    float w = ls > 0.0f ? cc_exp(CC_LD_PART_MAX(row * @S@u + s) - m) : 0.0f;
    total = total + ls * w;
    o = o + CC_LD_PART_ACC((row * @S@u + s) * @D@u + d) * w;
  }
  float inv = total > 0.0f ? 1.0f / total : 0.0f;
  CC_ST_OUT(row * @D@u + d) = o * inv;
)";

// The fused split combine appended to a decode kernel of W threads and GQ heads per workgroup.
// `once`: fence_once(dev), the counter's fences (0: every thread's).
inline std::string fused_combine_text(int64_t S, int64_t D, int64_t W, int64_t GQ, int64_t NQ, int64_t subgroup = 0, int once = 0) {
  const std::string last = once > 0 ? fill(coop_combine_last_once, {{"ONCE", once > 1 ? "cc_fence_ar()" : "CC_FENCE()"}}) : coop_combine_last;
  const std::vector<std::pair<std::string, std::string>> common = {{"SLAST", std::to_string(S - 1) + ".0f"}, {"D8N", std::to_string(D / 8)}, {"WG", std::to_string(W)},
                                                                   {"GQ", std::to_string(GQ)}, {"NQ", std::to_string(NQ)}, {"S", std::to_string(S)}, {"D", std::to_string(D)}};
  if (combine_by_subgroups(S, D, W, GQ, subgroup)) {
    const int64_t SG = std::min<int64_t>(32, subgroup);
    return fill(fill(last + coop_combine_subgroups, {{"SG", std::to_string(SG)}, {"NSG", std::to_string(W / SG)}, {"SL", std::to_string(SG / (D / 8))},
                                                                       {"SPG", std::to_string((S + SG - 1) / SG)}, {"SPS", std::to_string((S + SG / (D / 8) - 1) / (SG / (D / 8)))}}), common);
  }
  const int64_t SL = W / (D / 8);
  return fill(fill(last + coop_combine_fused, {{"SL", std::to_string(SL)}, {"CW", std::to_string(SL * D)}, {"CR", std::to_string(SL * D + S)}}), common);
}

}  // namespace detail

struct pipeline {
  config cfg;
  route chosen;
  codegen::kernel_plan plan;  // inputs q, k, v (cached_reps: q, reps, k, v); outputs keep, [mask_add], out, tiles
};

namespace detail {
// A buffer larger than the device can bind is a clear error at build time, not a failed dispatch.
inline void check_buffer_sizes(const config& c, const route& r, const device_caps& dev, const codegen::kernel_plan& kp) {
  if (dev.max_buffer_bytes <= 0) return;
  for (const auto& b : kp.buffers)
    if (const int64_t bytes = numel(b.shape) * static_cast<int64_t>(dtype_bytes(b.type)); bytes > dev.max_buffer_bytes)
      throw backend_error("concord attention: buffer " + b.name + " needs " + std::to_string(bytes) + " bytes > the device's largest buffer " +
                          std::to_string(dev.max_buffer_bytes) + " (heads " + std::to_string(c.heads) + ", q_len " + std::to_string(c.q_len) + ", kv_len " +
                          std::to_string(c.kv_len) + ", head_dim " + std::to_string(c.head_dim) + ", route " + r.variant + " with " +
                          std::to_string(r.splits) + " splits)");
}
}  // namespace detail

// Builds the whole pipeline (selection graph stages, compaction, attention, split combine) as one
// kernel plan that any backend runs end to end on its device.
inline pipeline build(const config& c, const device_caps& dev = {}) {
  pipeline p;
  p.cfg = c;
  p.chosen = fit_loop_limit(c, dev, plan_route(c, dev));
  codegen::kernel_plan& kp = p.plan;
  kp = codegen::make_plan(detail::selection_program(c));
  const int64_t H = c.heads, D = c.head_dim, QB = c.q_blocks(), KB = c.kv_blocks(), LH = c.list_heads();
  const int64_t S = p.chosen.splits, GQ = p.chosen.group;
  using codegen::buffer_role;
  if (c.cached_reps) kp.add_buffer("k", c.kv_type, {c.kv_heads, c.kv_len, D}, buffer_role::input);
  const int32_t v = kp.add_buffer("v", c.kv_type, {c.kv_heads, c.kv_len, D}, buffer_role::input);
  const int32_t out = kp.add_buffer("out", dtype::f32, {H, c.q_len, D}, buffer_role::output);
  const int32_t tiles = kp.add_buffer("tiles", dtype::u32, {H / GQ, QB, S}, buffer_role::output);
  const int32_t count = kp.add_buffer("kv_count", dtype::u32, {LH * QB}, buffer_role::temp);
  const int32_t index = kp.add_buffer("kv_index", dtype::u32, {LH * QB * KB}, buffer_role::temp);
  const int32_t keep = kp.buffer_named("keep"), q = kp.buffer_named("q"), k = kp.buffer_named("k");
  std::string helpers;
  helpers += c.score_mod ? std::string() : "CC_FN float cc_score_mod(float s, int, int, int) { return s; }\n";
  helpers += c.mask_mod ? std::string() : "CC_FN bool cc_mask_mod(int, int, int) { return true; }\n";
  char scale[48];
  std::snprintf(scale, sizeof scale, "%.9ef", static_cast<double>(static_cast<float>(c.sm_scale())));
  const std::vector<std::pair<std::string, std::string>> vals = {
      {"SPLITMAP", detail::split_major(c, dev) ? detail::split_map_splits : detail::split_map_rows}, {"ROWS", std::to_string(H / GQ * c.q_len)},
      {"LIVE", detail::splits_live(p.chosen.variant, dev) ? detail::split_live_min : detail::split_live_all}, {"SMB", std::to_string(detail::split_blocks_for(p.chosen.variant, dev))},
      {"KB", std::to_string(KB)}, {"QB", std::to_string(QB)}, {"S", std::to_string(S)}, {"NQ", std::to_string(c.q_len)},
      {"NK", std::to_string(c.kv_len)}, {"GQ", std::to_string(GQ)}, {"G", std::to_string(c.groups())}, {"GQD", std::to_string(GQ * D)},
      {"D", std::to_string(D)}, {"D8", std::to_string(D / 8 * 8)}, {"BD", std::to_string(c.block * D)}, {"B", std::to_string(c.block)}, {"OFF", std::to_string(c.kv_len - c.q_len)},
      {"LHEAD", c.per_group ? "kvh" : "h0"}, {"CAUSAL", c.causal ? "true" : "false"}, {"SCALE", scale}};
  codegen::stage compact;
  compact.name = "sparse_compact", compact.count = LH * QB, compact.params = {keep, count, index};
  compact.body = detail::fill(detail::compact_body, vals);
  if ((dev.dialect == "glsl" || dev.dialect == "hip") && dev.coop_compact && dev.shared_bytes >= 4 * detail::compact_threads) {
    compact.group = detail::compact_threads, compact.shared_u32 = {{"cs", detail::compact_threads}};
    compact.body = detail::fill(detail::fill(detail::compact_coop_body, {{"WG", std::to_string(detail::compact_threads)}}), vals);
  }
  compact.root = compact.out = -1;
  kp.stages.push_back(compact);
  codegen::stage attend;
  attend.name = "sparse_attend", attend.count = (H / GQ) * c.q_len * S;
  attend.helpers = helpers;
  if (c.score_mod) attend.functions.push_back({"cc_score_mod", *c.score_mod});
  if (c.mask_mod) attend.functions.push_back({"cc_mask_mod", *c.mask_mod});
  attend.root = attend.out = -1;
  std::string write = S > 1 ? detail::write_partial : detail::write_direct;
  attend.body = detail::fill(detail::fill(detail::attend_body, {{"PREAMBLE", detail::split_preamble}, {"WRITE", write}}), vals);
  if (p.chosen.variant == "decode_coop") {
    const int64_t W = detail::coop_threads, KT = detail::coop_key_tile(GQ, D, dev.shared_bytes), P = detail::coop_qk_parts(KT), DPT = (D + W - 1) / W;
    attend.group = W;
    attend.resident = detail::coop_decode_resident;
    attend.count = (H / GQ) * c.q_len * S;
    const bool wide = dev.wide_loads && detail::coop_decode_wide(GQ, D, KT, W);
    const int64_t KG = wide ? W / (D / 8) : 1, ACCN = wide ? 8 : DPT;
    const bool early = wide && c.kv_type == dtype::f16 && detail::coop_v_early_fits(GQ, (KT + KG - 1) / KG);
    p.chosen.fused_combine = wide && S > 1 && GQ == 1 && dev.fused_combine && detail::coop_fused_combine_floats(S, D, W) <= KT * (D + 1);
    attend.shared = {{"cq", GQ * D}, {"ks", KT * (D + 1)}, {"part", GQ * KT * P}, {"ss", GQ * KT}, {"pr", GQ * KT}};
    attend.shared_u32 = {{"tm", GQ}};
    attend.helpers += detail::coop_order_helpers;
    auto tv = vals;
    tv.insert(tv.end(), {{"WG", std::to_string(W)}, {"KT", std::to_string(KT)}, {"P", std::to_string(P)}, {"DP", std::to_string((D + P - 1) / P)},
                         {"DPT", std::to_string(DPT)}, {"GQDPT", std::to_string(GQ * DPT)}, {"D1", std::to_string(D + 1)},
                         {"GQKT", std::to_string(GQ * KT)}, {"KTP", std::to_string(KT * P)}, {"NSL", std::to_string((GQ * KT + W - 1) / W)}, {"ACCN", std::to_string(ACCN)},
                         {"GQACC", std::to_string(GQ * ACCN)}, {"D8N", std::to_string(D / 8)}, {"KV8", std::to_string((KT * (D / 8) + W - 1) / W)},
                         {"KG", std::to_string(KG)}, {"KPG", std::to_string((KT + KG - 1) / KG)}});
    attend.body = detail::fill(detail::fill(detail::coop_decode_body, {{"PREAMBLE", detail::split_preamble}, {"WALK", detail::coop_tile_walk},
                                                                       {"KSTAGE", wide ? detail::coop_stage_wide : detail::coop_stage_scalar},
                                                                       {"PVINIT", wide ? "  uint dc = lane % @D8N@u; uint kg = lane / @D8N@u;\n" : ""},
                                                                       {"VEARLY", early ? detail::coop_v_early : ""},
                                                                       {"PV", wide ? detail::coop_pv_wide : detail::coop_pv_scalar},
                                                                       {"VLOAD", early ? "CC_CVT8(vw[jj], f);" : "CC_LDV8_V(kbase / 8u + j * @D8N@u + dc, f);"},
                                                                       {"FINISH", wide ? detail::coop_finish_wide : ""},
                                                                       {"WRITE", S > 1 ? detail::coop_write_partial : detail::coop_write_direct},
                                                                       {"BUF", "K"}, {"LAST", "qpos"}, {"TILE", "ks"}, {"ACC", wide ? "fin" : "acc"},
                                                                       {"M", "mx[g]"}, {"L", "sm[g]"}, {"DIM0", "lane"}, {"DSTEP", "@WG@"}, {"NPT", "@DPT@"}, {"AI", "g * @DPT@u"}}), tv);
    if (p.chosen.fused_combine) attend.body += detail::fused_combine_text(S, D, W, GQ, c.q_len, 0, detail::fence_once(dev));
  }
  if (p.chosen.variant == "decode_stream") {
    const auto sh = detail::stream_shape_for(GQ, D, dev);
    const int64_t W = detail::coop_threads, L = sh.lanes, C = sh.chunks, U = sh.unroll, NG = sh.groups();
    const bool spread = L > 1 && GQ == 1 && dev.decode_spread_exps;
    p.chosen.shape = std::to_string(L) + " lanes x " + std::to_string(C) + " chunks, " + std::to_string(U) + " keys per step" + (sh.prefetch ? ", loads a step ahead" : "") +
                     (sh.transpose ? ", transposed reduce" : spread ? ", exps shared out" : "");
    attend.group = W;
    attend.resident = sh.prefetch ? detail::stream_prefetch_resident : 0;
    attend.count = (H / GQ) * c.q_len * S;
    p.chosen.fused_combine = S > 1 && LH == H / GQ && dev.fused_combine && 4 * detail::stream_shared_floats(sh, D, S, W) <= dev.shared_bytes;
    attend.shared = {{"ks", detail::stream_shared_floats(sh, D, p.chosen.fused_combine ? S : 0, W) - 2 * NG}, {"ss", 2 * NG}};
    const bool steps = dev.stream_steps > 0;
    if (steps) p.chosen.shape += ", splits by steps";
    auto tv = vals;
    tv.insert(tv.end(), {{"NST", std::to_string((c.block + NG * U - 1) / (NG * U))}, {"WG", std::to_string(W)}, {"LN", std::to_string(L)}, {"C", std::to_string(C)}, {"U", std::to_string(U)}, {"NG", std::to_string(NG)},
                         {"NGU", std::to_string(NG * U)}, {"UC", std::to_string(U * C)}, {"GQU", std::to_string(GQ * U)}, {"C8", std::to_string(8 * C)},
                         {"QN", std::to_string(GQ * 8 * C)}, {"D8N", std::to_string(D / 8)}, {"DPT", std::to_string((D + W - 1) / W)},
                         {"NE", std::to_string(spread ? (GQ * U + GQ + L - 1) / L : GQ * U + GQ)}, {"LE", spread ? std::to_string(L) : "1"}});
    if (!dev.decode_fma) attend.helpers += "#define CC_MAD(cc_a, cc_b, cc_c) ((cc_a) * (cc_b) + (cc_c))\n";
    std::string pre = detail::split_preamble;
    if (steps && detail::splits_live(p.chosen.variant, dev)) detail::replace_all(pre, "@LIVE@", detail::stream_live_steps);
    attend.body = detail::fill(detail::fill(detail::stream_body(sh, GQ, spread, dev.unroll_hints, steps), {{"PREAMBLE", pre}, {"FMA", dev.decode_fma ? "CC_FMA" : "CC_MAD"},
                                                                          {"WRITE", S > 1 ? detail::coop_write_partial : detail::coop_write_direct},
                                                                          {"ACC", "fo"}, {"M", "gmx"}, {"L", "gsum"}, {"DIM0", "lane"}, {"DSTEP", "@WG@"},
                                                                          {"NPT", "@DPT@"}, {"AI", "0u"}}), tv);
    if (p.chosen.fused_combine) attend.body += detail::fused_combine_text(S, D, W, GQ, c.q_len, dev.subgroup, detail::fence_once(dev));
  }
  if (p.chosen.variant == "decode_mma") {
    const bool regs = detail::mma_sync_serves(dev.mma_sync, D);
    const int64_t NW = regs ? detail::mma_sync_warps : detail::mma_decode_warps, W = 32 * NW, KT = detail::mma_decode_keys, LPR = detail::mma_decode_lanes(GQ);
    attend.group = W;
    attend.resident = regs ? detail::mma_sync_resident(GQ) : detail::mma_decode_resident;
    attend.count = (H / GQ) * c.q_len * S;
    attend.helpers += detail::mma_helpers;
    p.chosen.fused_combine = S > 1 && LH == H / GQ && dev.fused_combine && (regs || detail::mma_decode_combine_fits(S, D));
    p.chosen.shape = std::to_string(NW) + " warps x " + std::to_string(KT) + "-key sub-tiles, " + std::to_string(LPR) + " lanes per head";
    auto tv = vals;
    tv.insert(tv.end(), {{"WG", std::to_string(W)}, {"NW", std::to_string(NW)}, {"KT", std::to_string(KT)}, {"LDK", std::to_string(D + 8)}, {"LDS", "20"},
                         {"LDP", "24"}, {"DK", std::to_string(D / 16)}, {"D8N", std::to_string(D / 8)}, {"LPR", std::to_string(LPR)},
                         {"KPL", std::to_string(KT / LPR)}, {"QPL", std::to_string(D / LPR)}, {"NSUB", std::to_string((c.block + KT - 1) / KT)}});
    if (regs) {
      const int64_t RP = detail::mma_decode_rows_pow2(GQ), NT = RP > 4 ? 2 : 1;
      p.chosen.shape = std::to_string(NW) + " warps x 16-key sub-tiles, register fragments (mma.sync m16n8k16), " + std::to_string(NT) + " column tile" + (NT > 1 ? "s" : "");
      attend.helpers += detail::mma_sync_helpers;
      tv.insert(tv.end(), {{"RP", std::to_string(RP)}, {"NT", std::to_string(NT)}, {"NT1", std::to_string(NT - 1)}, {"PX", std::to_string(std::max<int64_t>(1, RP / 2))},
                           {"KL", std::to_string(D / 32)}, {"VL", std::to_string(D / 64)}, {"DM", std::to_string(D / 16)}, {"QLN", std::to_string(D / 4)},
                           {"MOF", std::to_string(std::max(NW * GQ * D, detail::coop_fused_combine_floats(S, D, W)))}});
    }
    attend.body = detail::fill(detail::fill(std::string(regs ? detail::mma_sync_decode_body : detail::mma_decode_body) + detail::mma_decode_tail,
                                            {{"PREAMBLE", detail::split_preamble}, {"WALK", detail::mma_decode_walk},
                                             {"RANGE", dev.decode_balance ? detail::mma_decode_range_equal : detail::mma_decode_range_blocks}, {"COPY", detail::fill(detail::fill(detail::fill(detail::mma_tile_copy, {{"WHOLE", ""}, {"CL", "wl"}, {"CN", "32"}}), detail::mma_copy_kv), detail::mma_copy_rows)},
                                             {"STORE", S > 1 ? detail::mma_decode_store_partial : detail::mma_decode_store_direct}}), tv);
    if (!dev.decode_balance) p.chosen.shape += ", whole blocks per split";
    if (p.chosen.fused_combine) attend.body += detail::mma_decode_combine_names + detail::fused_combine_text(S, D, W, GQ, c.q_len, dev.subgroup, detail::fence_once(dev));
  }
  if (p.chosen.fused_combine && detail::fence_once(dev) > 1) attend.helpers += detail::fence_ar_helper;
  if (p.chosen.variant == "prefill_coop") {
    const auto t = detail::choose_prefill_tiling(D, dev.shared_bytes);
    const int64_t W = detail::prefill_threads, NDG = detail::prefill_dim_groups, OR = t.bq * NDG / W, OD = (D + NDG - 1) / NDG;
    const int64_t CH = (std::min(c.block, c.q_len) + t.bq - 1) / t.bq;
    attend.group = W;
    attend.count = H * QB * CH * S;
    attend.shared = {{"cq", t.bq * (D + 1)}, {"kv", t.kt * (D + 1)}, {"ss", t.bq * t.kt}, {"rm", t.bq}, {"rl", t.bq}, {"rc", t.bq}};
    auto tv = vals;
    tv.insert(tv.end(), {{"WG", std::to_string(W)}, {"BQ", std::to_string(t.bq)}, {"KT", std::to_string(t.kt)}, {"MR", std::to_string(t.mr)},
                         {"MC", std::to_string(t.mc)}, {"MRC", std::to_string(t.mr * t.mc)}, {"NKC", std::to_string(t.kt / t.mc)},
                         {"NMT", std::to_string(t.bq / t.mr * (t.kt / t.mc))}, {"OR", std::to_string(OR)}, {"OD", std::to_string(OD)},
                         {"ORD", std::to_string(OR * OD)}, {"NDG", std::to_string(NDG)}, {"D1", std::to_string(D + 1)}, {"CH", std::to_string(CH)},
                         {"D8N", std::to_string(D / 8)}, {"KV8", std::to_string((t.kt * (D / 8) + W - 1) / W)}});
    const char* stage_text = dev.wide_loads && D % 8 == 0 ? detail::coop_stage_wide : detail::coop_stage_scalar;
    const std::string kstage = detail::fill(stage_text, {{"BUF", "K"}}), vstage = detail::fill(stage_text, {{"BUF", "V"}});
    attend.body = detail::fill(detail::fill(detail::coop_prefill_body, {{"WALK", detail::coop_tile_walk}, {"VEARLY", ""}, {"KSTAGE", kstage}, {"VSTAGE", vstage},
                                                                        {"WRITE", S > 1 ? detail::coop_write_partial : detail::coop_write_direct},
                                                                        {"LAST", "qlast"}, {"TILE", "kv"}, {"ACC", "acc"},
                                                                        {"M", "rm[lr]"}, {"L", "rl[lr]"}, {"DIM0", "odim"}, {"DSTEP", "@NDG@"}, {"NPT", "@OD@"}, {"AI", "a * @OD@u"}}), tv);
  }
  if (p.chosen.variant == "prefill_mma") {
    const int64_t R = detail::prefill_mma_rows(dev, D, c.block), W = 2 * R, CH = (std::min(c.block, c.q_len) + R - 1) / R;
    const bool regs = detail::mma_sync_prefill_serves(dev.mma_sync, D), wg = detail::prefill_on_wgmma(dev, D);
    attend.group = W;
    const bool one_piece = regs && c.f16_products, mods = c.score_mod || c.mask_mod;
    const bool qsh = detail::prefill_q_shared(dev, c), ovl = wg && dev.wgmma_overlap && !qsh;
    const int64_t resident4 = wg ? detail::wgmma_prefill_resident(D, one_piece, ovl, qsh) : regs ? detail::mma_sync_prefill_resident(D, one_piece) : detail::mma_resident(D);
    attend.resident = dev.prefill_resident > 0 ? dev.prefill_resident : resident4 > 0 ? std::max<int64_t>(1, resident4 * detail::mma_threads / W) : 0;
    const bool heavy = c.causal && dev.prefill_heavy_first != 0;
    const int64_t NSL = detail::prefill_slices(dev, c), DS = D / NSL;
    attend.count = H * QB * CH * S * NSL;
    attend.helpers += detail::mma_helpers;
    if (regs) attend.helpers += std::string(detail::mma_sync_helpers) + detail::mma_sync_prefill_helpers;
    const int64_t KT = detail::prefill_mma_keys(dev, D), shared_bytes = detail::prefill_mma_shared(dev, c).first;
    attend.dynamic_shared = shared_bytes > dev.shared_bytes || qsh ? shared_bytes : 0;
    const bool swz = wg && dev.wgmma_swizzle;  // prefill_on_wgmma: the swizzle serves D
    if (wg) attend.helpers += detail::wgmma_helpers + detail::wgmma_function("cc_wg_s", KT, false, qsh) + detail::wgmma_function("cc_wg_o", DS, true);
    p.chosen.shape = std::to_string(R) + " rows x " + std::to_string(KT) + "-key sub-tiles, " +
                     (wg     ? "warpgroup MMA (wgmma m64n" + std::to_string(KT) + "k16 and m64n" + std::to_string(DS) + "k16, " + (qsh ? "Q from workgroup memory, P" : "A") + " from registers, " + (swz ? "128-byte swizzle" : "unswizzled core matrices") + (ovl ? ", next S during the softmax)" : ")")
                      : regs ? "register fragments (mma.sync m16n8k16, ldmatrix)"
                             : "wmma 16x16x16") +
                     (one_piece ? ", f16 products" : "") + (heavy ? ", last query blocks first" : "") +
                     (NSL > 1 ? ", O in " + std::to_string(NSL) + " slices of " + std::to_string(DS) + " dims" : "");
    auto tv = wg ? detail::wgmma_layout(swz, KT, D) : detail::mma_copy_rows;  // first: their texts hold @D8N@ and @LDK@
    tv.insert(tv.end(), {{"SLICE", NSL > 1 ? "  uint dsl = t1 % " + std::to_string(NSL) + "u; t1 = t1 / " + std::to_string(NSL) + "u;\n" : ""},
                         {"SL0", NSL > 1 ? " && dsl == 0u" : ""}, {"DOFS", NSL > 1 ? "dsl * " + std::to_string(DS) + "u + " : ""}});
    for (auto& [k, v] : tv)  // an O slice's V starts DS dims on: DS / 64 blocks of KT rows (swizzle), DS / 8 core matrices (unswizzled)
      if (k == "VOFF" && NSL > 1) v = "dsl * " + std::to_string(swz ? DS * KT : DS * 8) + "u + " + v;
    tv.insert(tv.end(), vals.begin(), vals.end());
    tv.insert(tv.end(), {{"WG", std::to_string(W)}, {"WGROWS", std::to_string(R)}, {"KT", std::to_string(KT)}, {"LDK", std::to_string(wg ? D : D + 8)},
                         {"LDS", std::to_string(detail::mma_keys + 4)}, {"LDP", std::to_string(detail::mma_keys + 8)}, {"DK", std::to_string(D / 16)},
                         {"D8N", std::to_string(D / 8)}, {"CH", std::to_string(CH)}, {"DN", std::to_string(DS / 8)}, {"QH", std::to_string(D / 4)},
                         {"NKT", std::to_string(KT / 8)}, {"NPC", one_piece ? "1" : "2"}, {"NSUB", std::to_string((c.block + KT - 1) / KT)},
                         {"QBMAP", heavy ? std::to_string(QB - 1) + "u - t1 % " + std::to_string(QB) + "u" : "t1 % " + std::to_string(QB) + "u"}});
    const std::string copy = detail::fill(detail::mma_tile_copy, {{"WHOLE", detail::mma_tile_copy_whole}, {"CL", "lane"}, {"CN", "@WG@"}});
    attend.body = detail::fill(detail::fill(detail::fill(regs ? detail::mma_sync_prefill_body : detail::mma_prefill_body,
                                            {{"OPEN", detail::mma_prefill_open}, {"PWALK", std::string(detail::mma_prefill_walk_head) + (ovl ? detail::wgmma_overlap_walk : detail::mma_prefill_walk_issue)},
                                             {"STEP", ovl ? detail::wgmma_overlap_step : detail::mma_prefill_step},
                                             {"ENDSTEP", ovl ? detail::wgmma_overlap_endstep : detail::mma_prefill_endstep},
                                             {"KVDECL", attend.dynamic_shared > 0 ? detail::mma_kv_dynamic : detail::mma_kv_static},
                                             {"PFENCE", wg ? "    cc_proxy_fence();\n" : ""}, {"FRAGS", wg ? "" : detail::mma_sync_frags},
                                             {"QFRAGS", detail::mma_q_pieces},
                                             {"SPROD", ovl ? "" : wg ? detail::wgmma_sprod : detail::mma_sync_sprod},
                                             {"OPROD", wg ? std::string(detail::wgmma_oprod) + (ovl ? "\n" : detail::wgmma_owait) : detail::mma_sync_oprod},
                                             {"FAST", mods ? detail::mma_sync_fast_mods : detail::mma_sync_fast_plain}, {"RMAX", c.sm_scale() > 0 ? "cc_maxnan" : "cc_minnan"}, {"RINIT", c.sm_scale() > 0 ? "ninf" : "pinf"},
                                             {"SCORE", mods ? detail::mma_sync_score : detail::mma_sync_score_plain}, {"KEEP", mods ? detail::mma_sync_keep : detail::mma_sync_keep_plain},
                                             {"COPY", detail::fill(copy, detail::mma_copy_kv)}, {"COPY1", detail::fill(copy, detail::mma_copy_one)},
                                             {"HEAD", S > 1 ? (regs ? detail::mma_sync_head_partial : detail::mma_head_partial) : (regs ? detail::mma_sync_head_direct : detail::mma_head_direct)},
                                             {"STORE", S > 1 ? (regs ? detail::mma_sync_store_partial : detail::mma_store_partial) : (regs ? detail::mma_sync_store_direct : detail::mma_store_direct)}}),
                               qsh ? detail::wgmma_q_slot : detail::mma_q_registers), tv);
  }
  if (p.chosen.variant == "cpu_tile") {
    const int64_t RQ = p.chosen.rows, CH = (std::min(c.block, c.q_len) + RQ - 1) / RQ;
    attend.count = (H / GQ) * QB * CH * S;
    attend.helpers += detail::cpu_tile_helpers;
    auto tv = vals;
    tv.insert(tv.end(), {{"CH", std::to_string(CH)}, {"RQ", std::to_string(RQ)}, {"PERGROUP", c.per_group ? "true" : "false"},
                         {"OUTS", S > 1 ? "nullptr, &CC_ST_PART_MAX(0), &CC_ST_PART_SUM(0), &CC_ST_PART_ACC(0)" : "&CC_ST_OUT(0), nullptr, nullptr, nullptr"}});
    attend.body = detail::fill(detail::cpu_tile_body, tv);
  }
  if (S > 1 && p.chosen.fused_combine) {
    const int32_t pm = kp.add_buffer("part_max", dtype::f32, {H * c.q_len * S}, buffer_role::temp);
    const int32_t ps = kp.add_buffer("part_sum", dtype::f32, {H * c.q_len * S}, buffer_role::temp);
    const int32_t pa = kp.add_buffer("part_acc", dtype::f32, {H * c.q_len * S * D}, buffer_role::temp);
    if (LH != H / GQ) throw error("concord attention: fused combine needs one key list per head group (" + std::to_string(LH) + " lists, " + std::to_string(H / GQ) + " groups)");
    const int32_t done = kp.add_buffer("done", dtype::u32, {H / GQ * c.q_len}, buffer_role::temp);
    codegen::stage& cs = kp.stages[kp.stages.size() - 1];
    cs.params.push_back(done);
    cs.body += std::string(cs.group > 0 ? "  if (lane == 0u)\n" : "") + detail::fill(detail::compact_zero_done, vals);  // one thread of a cooperative compaction
    attend.params = {q, k, v, count, index, tiles, pm, ps, pa, out, done};
    kp.stages.push_back(attend);
  } else if (S > 1) {
    const int32_t pm = kp.add_buffer("part_max", dtype::f32, {H * c.q_len * S}, buffer_role::temp);
    const int32_t ps = kp.add_buffer("part_sum", dtype::f32, {H * c.q_len * S}, buffer_role::temp);
    const int32_t pa = kp.add_buffer("part_acc", dtype::f32, {H * c.q_len * S * D}, buffer_role::temp);
    attend.params = {q, k, v, count, index, tiles, pm, ps, pa};
    kp.stages.push_back(attend);
    codegen::stage comb;
    comb.name = "sparse_combine", comb.count = H * c.q_len * D, comb.params = {pm, ps, pa, out};
    comb.root = comb.out = -1;
    comb.body = detail::fill(detail::combine_body, vals);
    if ((dev.dialect == "glsl" || dev.dialect == "hip") && 4 * detail::coop_combine_shared_floats(S) <= dev.shared_bytes) {
      const int64_t DC = (D + detail::combine_dims - 1) / detail::combine_dims;
      comb.group = detail::combine_threads, comb.count = H * c.q_len * DC;
      comb.shared = {{"cm", detail::combine_threads}, {"cl", detail::combine_threads}, {"co", detail::combine_threads}, {"cw", S}};
      comb.body = detail::fill(detail::coop_combine_body, {{"DC", std::to_string(DC)}, {"S", std::to_string(S)}, {"D", std::to_string(D)}});
    }
    kp.stages.push_back(comb);
  } else {
    attend.params = {q, k, v, count, index, tiles, out};
    kp.stages.push_back(attend);
  }
  if (S > 1 && detail::splits_live(p.chosen.variant, dev))
    p.chosen.shape += (p.chosen.shape.empty() ? "" : ", ") + std::string("a split per ") + std::to_string(detail::split_blocks_for(p.chosen.variant, dev)) +
                      (p.chosen.variant == "decode_stream" && dev.stream_steps > 0 ? " steps" : " listed blocks") + " at most";
  detail::check_buffer_sizes(c, p.chosen, dev, kp);
  if (const char* e = std::getenv("CONCORD_LOG_ROUTE"); e && *e == '1') std::cerr << describe(c, p.chosen, dev) << "\n";
  return p;
}

namespace detail {
inline void check_rep_lengths(const char* plan, int64_t kv_heads, int64_t old_len, int64_t new_len, int64_t D, int64_t B) {
  if (old_len < 0 || new_len <= old_len || B <= 0 || D <= 0 || kv_heads <= 0)
    throw shape_error(std::string("concord attention: ") + plan + " needs 0 <= old_len < new_len and positive sizes, got old_len " + std::to_string(old_len) +
                      ", new_len " + std::to_string(new_len) + ", D " + std::to_string(D) + ", B " + std::to_string(B) + ", kv_heads " + std::to_string(kv_heads));
}
}  // namespace detail

// Incremental block representatives for decode. Appending keys [old_len, new_len) updates only the
// blocks those keys touch; every other block is copied. The sums run in token order with the same
// flush as pool_mean, so the result is bit-identical to re-pooling the whole cache.
//   inputs:  k [Hkv, new_len, D] (f32|f16), sum_in, min_in, max_in f32 [Hkv, D, KB] (blocks of the
//            old cache; entries of blocks past old_len are ignored), recip f32 [B] = fl32(1/c)
//   outputs: sum, min, max, mean f32 [Hkv, D, KB] with KB = ceil(new_len / B) (dims-major, as
//            config::cached_reps takes them)
inline codegen::kernel_plan rep_append_plan(int64_t kv_heads, int64_t old_len, int64_t new_len, int64_t D, int64_t B, dtype kv_type) {
  detail::check_rep_lengths("rep_append", kv_heads, old_len, new_len, D, B);
  using codegen::buffer_role;
  codegen::kernel_plan kp;
  kp.prog.name = "rep_append";
  const int64_t KB = (new_len + B - 1) / B;
  const shape_t reps = {kv_heads, D, KB};
  const int32_t k = kp.add_buffer("k", kv_type, {kv_heads, new_len, D}, buffer_role::input);
  const int32_t si = kp.add_buffer("sum_in", dtype::f32, reps, buffer_role::input);
  const int32_t mi = kp.add_buffer("min_in", dtype::f32, reps, buffer_role::input);
  const int32_t xi = kp.add_buffer("max_in", dtype::f32, reps, buffer_role::input);
  const int32_t rc = kp.add_buffer("recip", dtype::f32, {B}, buffer_role::input);
  const int32_t so = kp.add_buffer("sum", dtype::f32, reps, buffer_role::output);
  const int32_t mo = kp.add_buffer("min", dtype::f32, reps, buffer_role::output);
  const int32_t xo = kp.add_buffer("max", dtype::f32, reps, buffer_role::output);
  const int32_t me = kp.add_buffer("mean", dtype::f32, reps, buffer_role::output);
  codegen::stage st;
  st.name = "rep_append", st.count = kv_heads * KB * D, st.params = {k, si, mi, xi, rc, so, mo, xo, me};
  st.root = st.out = -1;
  st.body = detail::fill(R"(  uint d = i % @D@u; uint b = (i / @D@u) % @KB@u; uint h = i / (@D@u * @KB@u);
  uint x = (h * @D@u + d) * @KB@u + b;
  uint t0 = b * @B@u; uint t1 = t0 + @B@u < @NEW@u ? t0 + @B@u : @NEW@u;
  float sm = CC_LD_SUM_IN(x); float lo = CC_LD_MIN_IN(x); float hi = CC_LD_MAX_IN(x);
  uint from = t0;
  if (t1 <= @OLD@u) { from = t1; } else if (t0 < @OLD@u) { from = @OLD@u; } else { sm = cc_float(0x80000000u); lo = cc_float(0x7f800000u); hi = cc_float(0xff800000u); }
  for (uint t = from; t < t1; ++t) {
    float x = CC_LD_K((h * @NEW@u + t) * @D@u + d);
    sm = cc_ftz(sm + x); lo = cc_fmin(lo, x); hi = cc_fmax(hi, x);
  }
  CC_ST_SUM(x) = sm; CC_ST_MIN(x) = lo; CC_ST_MAX(x) = hi;
  CC_ST_MEAN(x) = cc_ftz(sm * CC_LD_RECIP(t1 - t0 - 1u));
)", {{"D", std::to_string(D)}, {"KB", std::to_string(KB)}, {"B", std::to_string(B)}, {"NEW", std::to_string(new_len)}, {"OLD", std::to_string(old_len)}});
  kp.stages.push_back(st);
  return kp;
}

// The same update in place: sum, min, max, mean are inout [Hkv, D, KB] (KB = ceil(new_len / B); the
// entries of blocks starting at or past old_len are ignored), and only the blocks that keys
// [old_len, new_len) touch are read and written, one invocation per (head, touched block, dim).
//   inputs: k [Hkv, new_len, D], sum, min, max, mean (inout), recip f32 [B]; outputs: sum, min, max, mean
inline codegen::kernel_plan rep_update_plan(int64_t kv_heads, int64_t old_len, int64_t new_len, int64_t D, int64_t B, dtype kv_type) {
  detail::check_rep_lengths("rep_update", kv_heads, old_len, new_len, D, B);
  if (kv_type != dtype::f32 && kv_type != dtype::f16)
    throw shape_error(std::string("concord attention: rep_update K dtype ") + dtype_name(kv_type) + " (f32 or f16 only)");
  using codegen::buffer_role;
  codegen::kernel_plan kp;
  kp.prog.name = "rep_update";
  const int64_t KB = (new_len + B - 1) / B, first = old_len / B, touched = KB - first;
  const shape_t reps = {kv_heads, D, KB};
  const int32_t k = kp.add_buffer("k", kv_type, {kv_heads, new_len, D}, buffer_role::input);
  const int32_t sm = kp.add_buffer("sum", dtype::f32, reps, buffer_role::inout);
  const int32_t mn = kp.add_buffer("min", dtype::f32, reps, buffer_role::inout);
  const int32_t mx = kp.add_buffer("max", dtype::f32, reps, buffer_role::inout);
  const int32_t me = kp.add_buffer("mean", dtype::f32, reps, buffer_role::inout);
  const int32_t rc = kp.add_buffer("recip", dtype::f32, {B}, buffer_role::input);
  codegen::stage st;
  st.name = "rep_update", st.count = kv_heads * touched * D, st.params = {k, sm, mn, mx, me, rc};
  st.root = st.out = -1;
  st.body = detail::fill(R"(  uint d = i % @D@u; uint b = @FIRST@u + (i / @D@u) % @T@u; uint h = i / (@D@u * @T@u);
  uint x = (h * @D@u + d) * @KB@u + b;
  uint t0 = b * @B@u; uint t1 = t0 + @B@u < @NEW@u ? t0 + @B@u : @NEW@u;
  float sm = cc_float(0x80000000u); float lo = cc_float(0x7f800000u); float hi = cc_float(0xff800000u);
  uint from = t0;
  if (t0 < @OLD@u) { sm = CC_LD_SUM(x); lo = CC_LD_MIN(x); hi = CC_LD_MAX(x); from = @OLD@u; }
  for (uint t = from; t < t1; ++t) {
    float v = CC_LD_K((h * @NEW@u + t) * @D@u + d);
    sm = cc_ftz(sm + v); lo = cc_fmin(lo, v); hi = cc_fmax(hi, v);
  }
  CC_ST_SUM(x) = sm; CC_ST_MIN(x) = lo; CC_ST_MAX(x) = hi;
  CC_ST_MEAN(x) = cc_ftz(sm * CC_LD_RECIP(t1 - t0 - 1u));
)", {{"D", std::to_string(D)}, {"KB", std::to_string(KB)}, {"B", std::to_string(B)}, {"NEW", std::to_string(new_len)}, {"OLD", std::to_string(old_len)},
      {"FIRST", std::to_string(first)}, {"T", std::to_string(touched)}});
  kp.stages.push_back(st);
  return kp;
}

// fl32(1/c) for c = 1..B: the mean's scale factors (the same constants pool_mean uses).
inline tensor recip_table(int64_t B) {
  tensor r(dtype::f32, {B});
  for (int64_t c = 1; c <= B; ++c) r.as<float>()[c - 1] = static_cast<float>(mean_scale(c));
  return r;
}

}  // namespace concord::attention

