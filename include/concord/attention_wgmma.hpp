// concord attention: prefill_mma's products on warpgroup MMA (NVIDIA sm_90a, device_caps::wgmma).
// The kernel is attention_mma_prefill.hpp's: the workgroup of 4 warps is one warpgroup and its 64
// query rows are wgmma's M, warp w's 16 rows those of its mma.sync fragments, so Q's A fragments,
// the score and O accumulators and the softmax between them keep their registers and layouts:
//   S (64 x KT) = Q . K^T: one wgmma m64nKTk16 per 16 dims (and Q piece), A = Q from registers (or
//     from shared memory: wgmma_q_slot), B = the K sub-tile in shared memory (K-major: a key's dims contiguous).
//   O (64 x D) += P . V: one wgmma m64nDk16 per 16 keys (and p piece), A = P from registers,
//     B = the V sub-tile (MN-major: a key's dims contiguous, read transposed).
// The cp.async copies write the sub-tiles straight into one of wgmma's canonical layouts
// (wgmma_layout below: unswizzled core matrices, or 128-byte swizzle), whose descriptors step along
// the MMA's K and M/N, and a proxy fence makes them visible to wgmma's reads. Each batch is fenced,
// committed and waited for before its accumulators are read; the row sums stay one mma.sync per warp
// (P against ones). Empty asm statements on the operand registers (cc_wg_hold) keep the compiler
// from moving their reads and writes across the fence and the wait. Numerics are the mma.sync
// kernel's: the same f16 pieces, products exact in the f32 accumulators. Sub-tiles of 64 keys where
// the buffers fit (64 KiB at D = 128: dynamic shared memory, opted in by the launcher), else 32.
// Measured (H100, 16K causal dense, H=16 D=128, 64-key sub-tiles): with the 128-byte swizzle 4.07
// ms against mma.sync's 6.19 by default (run 76, same call; 32K 15.73 against 24.85), 2.61 against
// 4.44 with f16 products (run 75, same call), so it is HIP's default on sm_90 where D % 64 == 0. Unswizzled it was
// slower than mma.sync (run 73: 7.54 / 7.32 against 6.18 / 4.38): its placement puts the 16-byte
// chunks that consecutive threads copy 128 bytes apart, on the same four banks, where the swizzle
// spreads a row's eight chunks over all 32. 128 rows per workgroup (two warpgroups sharing each
// sub-tile, device_caps::prefill_rows) halve the K/V reads but leave one workgroup per SM: 3.65
// against 2.62 ms (run 74, f16 products).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace concord::attention::detail {

// ptxas with 64-key sub-tiles: D = 128, 157 registers with one piece (3 resident), 198 with two (2);
// D = 64, 107 (4) and 140 (3: bounded for 4 it spills). With the overlap's second score accumulator:
// D = 128 254 / 255 (2; the default spills 32 bytes), D = 64 168 / 224. Past D = 128 (O slices, 32-key
// sub-tiles): D = 256 215 / 255 (2). With Q in workgroup memory: D = 128 127 / 134, D = 64 91 / 102, and
// D = 256 in one pass (f16 products) 246; workgroup memory may hold fewer (D = 128, 64-key sub-tiles: 2).
inline int64_t wgmma_prefill_resident(int64_t D, bool one_piece, bool overlap, bool q_shared) {
  if (q_shared) return D > 128 ? 2 : D > 64 ? (one_piece ? 4 : 3) : 4;
  if (D > 128) return 2;
  if (overlap) return D > 64 ? 2 : (one_piece ? 3 : 2);
  return D > 64 ? (one_piece ? 3 : 2) : (one_piece ? 4 : 3);
}
// Two buffers of K and V sub-tiles of kt keys, unpadded.
inline int64_t wgmma_prefill_shared_bytes(int64_t kt, int64_t D) { return 2 * 2 * 2 * kt * D; }
// Keys per sub-tile: 64 where its buffers fit the static or the opt-in limit and D <= 128 (at D = 256
// they would take 128 KiB, one workgroup per multiprocessor), unless `want` is 32
// (any other `want` is ignored: the loops over keys take 16 at a time).
inline int64_t wgmma_prefill_keys(int64_t want, int64_t D, int64_t shared_bytes, int64_t shared_optin) {
  return want != 32 && D <= 128 && wgmma_prefill_shared_bytes(64, D) <= std::max(shared_bytes, shared_optin) ? 64 : 32;
}

// D (64 x n f32, per warp n / 8 mma.sync C fragments) += A . B (16 x n f16 by descriptor); A is each
// warp's 16 rows x 16 as an mma.sync A fragment, or (a_shared) 64 x 16 by descriptor, K-major;
// trans: B is MN-major. acc = 0 overwrites D.
inline std::string wgmma_function(const std::string& name, int64_t n, bool trans, bool a_shared = false) {
  const int64_t nd = n / 2, na = a_shared ? 1 : 4;
  auto arg = [](int64_t i) { return "%" + std::to_string(i); };
  std::string s = "CC_FN void " + name + (a_shared ? "(float (*d)[4], uint64_t a, uint64_t b, int acc)" : "(float (*d)[4], const uint* a, uint64_t b, int acc)") +
                  " {\n  asm volatile(\"{\\n.reg .pred p;\\nsetp.ne.b32 p, " + arg(nd + na + 1) + ", 0;\\nwgmma.mma_async.sync.aligned.m64n" + std::to_string(n) + "k16.f32.f16.f16 {";
  for (int64_t i = 0; i < nd; ++i) s += (i ? ", " : "") + arg(i);
  s += a_shared ? "}, " + arg(nd) + ", " : "}, {" + arg(nd) + ", " + arg(nd + 1) + ", " + arg(nd + 2) + ", " + arg(nd + 3) + "}, ";
  s += arg(nd + na) + ", p, 1, 1, " + (a_shared ? "0, " : "") + (trans ? "1" : "0") + ";\\n}\\n\"\n      : ";
  for (int64_t i = 0; i < nd; ++i) s += std::string(i ? ", " : "") + "\"+f\"(d[" + std::to_string(i / 4) + "][" + std::to_string(i % 4) + "])";
  return s + (a_shared ? "\n      : \"l\"(a)" : "\n      : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3])") + ", \"l\"(b), \"r\"(acc));\n}\n";
}

inline constexpr const char* wgmma_helpers = R"cc(#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "concord prefill_mma on wgmma needs sm_90a (plan with device_caps::wgmma = false for other targets)"
#endif
CC_FN uint64_t cc_wg_desc(const __half* p, uint lbo, uint sbo, uint swizzle) {
  return uint64_t((uint(__cvta_generic_to_shared(p)) & 0x3FFFFu) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(sbo >> 4) << 32) | (uint64_t(swizzle) << 62);
}
CC_FN void cc_wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
CC_FN void cc_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
CC_FN void cc_wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
CC_FN void cc_proxy_fence() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
CC_FN void cc_wg_hold(float& r) { asm volatile("" : "+f"(r)::"memory"); }
CC_FN void cc_wg_hold(uint& r) { asm volatile("" : "+r"(r)::"memory"); }
template <class T, int N, int M>
CC_FN void cc_wg_hold(T (&d)[N][M]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < M; ++j) cc_wg_hold(d[i][j]);
}
template <class T, int N, int M, int K>
CC_FN void cc_wg_hold(T (&d)[N][M][K]) {
#pragma unroll
  for (int i = 0; i < N; ++i) cc_wg_hold(d[i]);
}
)cc";

// Q in workgroup memory (device_caps::wgmma_q_shared): each warpgroup's 64 rows and @NPC@ pieces, after
// the K/V buffers, in the swizzled layout of a 64-key K sub-tile (a row's dims contiguous, 64-dim
// blocks of 64 rows x 128 bytes), so S's A operand steps through it as B steps through K. Each lane
// stores the pieces its A fragments would hold; the step's proxy fence and barrier precede the
// first read. S's A operand (@QA@ in wgmma_sprod) is then a descriptor instead of qf's registers.
inline int64_t wgmma_q_shared_bytes(int64_t rows, int64_t D, bool one_piece) { return rows * D * 2 * (one_piece ? 1 : 2); }
inline const std::vector<std::pair<std::string, std::string>> wgmma_q_slot = {
    {"QDECL", R"(  __half* qs = kvs + 4u * @KT@u * @LDK@u + (w / 4u) * (@NPC@u * 64u * @D@u);
  auto qslot = [&](uint pc, uint kk, uint x) -> uint& {
    uint wr = (w % 4u) * 16u + g + 8u * (x % 2u); uint c8 = kk * 2u + x / 2u;
    return *reinterpret_cast<uint*>(qs + pc * 64u * @D@u + (c8 / 8u) * 4096u + wr * 64u + ((c8 % 8u) ^ (wr % 8u)) * 8u + 2u * tq);
  };
)"},
    {"QPUT", "qslot(pc, kk, x)"}, {"QHOLD", ""}, {"QA", "cc_wg_desc(qs + pc * 64u * @D@u + (kk / 4u) * 4096u + (kk % 4u) * 16u, 16u, 1024u, 1u)"}};

// A layout's descriptors (wgmma_layout): where 16 dims of K and 16 keys of V start, the byte offsets
// between core matrices (K: along the dims, LBO, and the keys, SBO; V: @VLBO@ and @VSBO@), the swizzle.
inline constexpr const char* wgmma_sprod = R"(      float sc[@NKT@][4];
      @QHOLD@cc_wg_hold(sc); cc_wg_fence();
      for (uint kk = 0u; kk < @DK@u; ++kk)
        for (uint pc = 0u; pc < @NPC@u; ++pc) cc_wg_s(sc, @QA@, cc_wg_desc(ks + @KOFF@, @KLBO@u, @KSBO@u, @SWZ@u), kk + pc > 0u ? 1 : 0);
      cc_wg_commit(); cc_wg_wait0(); cc_wg_hold(sc);
)";
inline constexpr const char* wgmma_oprod = R"(      uint pa[@NKT@ / 2][2][4];
      for (uint kp = 0u; kp < @NKT@u / 2u; ++kp) {
        for (uint x = 0u; x < 4u; ++x) cc_ppieces(sc[2u * kp + x / 2u][2u * (x % 2u)], sc[2u * kp + x / 2u][2u * (x % 2u) + 1u], pa[kp][0][x], pa[kp][1][x]);
        for (uint pc = 0u; pc < @NPC@u; ++pc) cc_mma16816(os, pa[kp][pc][0], pa[kp][pc][1], pa[kp][pc][2], pa[kp][pc][3], 0x3c003c00u, 0x3c003c00u);
      }
      cc_wg_hold(pa); cc_wg_hold(o); cc_wg_fence();
      for (uint kp = 0u; kp < @NKT@u / 2u; ++kp)
        for (uint pc = 0u; pc < @NPC@u; ++pc) cc_wg_o(o, pa[kp][pc], cc_wg_desc(vs + @VOFF@, @VLBO@u, @VSBO@u, @SWZ@u), 1);
      cc_wg_commit();)";
// The close of wgmma_oprod: waiting for O (" ...") or not ("\n", the overlap).
inline constexpr const char* wgmma_owait = " cc_wg_wait0(); cc_wg_hold(o);\n";

// The overlap (device_caps::wgmma_overlap, off: H100 run 79, 16K dense 4.56 / 3.38 ms against 4.10 /
// 2.60, default / f16 products, at 254 registers and 2 workgroups per SM instead of 3): sub-tile t's
// S is issued before the softmax of t - 1, so the tensor cores compute it while the warps run the
// softmax. Step t = 0 .. nsub:
//   wait for every wgmma (S(t - 1), and P.V of t - 2) and copy S(t - 1) out of its accumulators; wait
//   for the copies of K(t) and V(t - 1); one barrier, after which K's buffer (t + 1) % 2 and V's buffer
//   t % 2 are free in every warp; issue S(t); start the copies of K(t + 1) and V(t) into them (the
//   block index of t + 1 was loaded a step earlier); run the softmax of t - 1 and issue its
//   O += P.V, not waiting for it.
// The walk's opening copies K(0), then K(1) and V(0); step 0 only issues S(0). One barrier per step
// instead of two, and one more score accumulator (sn). S has one issuing site, inside the loop: with
// a second one before it, ptxas serialized every wgmma (C7515); and sc is held after its copy: else
// ptxas gave it sn's registers, which S(t) rewrites during the softmax, and serialized (C7514).
inline constexpr const char* wgmma_overlap_walk = R"(  auto copy1 = [&](uint k0, uint n, __half* d, bool isv) {
@COPY1@  };
  auto kbuf = [&](uint t) { return kvs + (t & 1u) * 2u * @KT@u * @LDK@u; };
  auto blk = [&](uint s) { return s < nsub ? CC_LD_KV_INDEX(lrow * @KB@u + e0 + s / @NSUB@u) : 0u; };
  uint ak0 = 0u; uint an = 0u; uint bk0 = 0u; uint bn = 0u; uint ck0 = 0u; uint cn = 0u;
  if (nsub > 0u) { sub(0u, bk0, bn); copy1(bk0, bn, kbuf(0u), false); }
  __pipeline_commit();
  if (nsub > 1u) { sub(1u, ck0, cn); copy1(ck0, cn, kbuf(1u), false); }
  if (nsub > 0u) copy1(bk0, bn, kbuf(0u) + @KT@u * @LDK@u, true);
  __pipeline_commit();
  uint kbn = blk(2u);
)";
inline constexpr const char* wgmma_overlap_step = R"(  float sn[@NKT@][4];
  for (uint t = 0u; t <= nsub; ++t) {
    uint k0 = ak0; uint n = t > 0u ? an : 0u;
    float sc[@NKT@][4];
    cc_wg_wait0(); cc_wg_hold(sn); cc_wg_hold(o);
    for (uint u = 0u; u < @NKT@u; ++u)
      for (uint x = 0u; x < 4u; ++x) sc[u][x] = sn[u][x];
    cc_wg_hold(sc);
    if (t == 0u) __pipeline_wait_prior(1); else __pipeline_wait_prior(0);
    cc_proxy_fence();
    CC_BARRIER();
    if (t < nsub && bn > 0u) {
      const __half* ks = kbuf(t);
      @QHOLD@cc_wg_hold(sn); cc_wg_fence();
      for (uint kk = 0u; kk < @DK@u; ++kk)
        for (uint pc = 0u; pc < @NPC@u; ++pc) cc_wg_s(sn, @QA@, cc_wg_desc(ks + @KOFF@, @KLBO@u, @KSBO@u, @SWZ@u), kk + pc > 0u ? 1 : 0);
      cc_wg_commit();
    }
    if (t > 0u) {
      if (t + 1u < nsub) { place(t + 1u, kbn, ck0, cn); copy1(ck0, cn, kbuf(t + 1u), false); }
      if (t < nsub) copy1(bk0, bn, kbuf(t) + @KT@u * @LDK@u, true);
      kbn = blk(t + 2u);
    }
    __pipeline_commit();
    if (n > 0u) {
      const __half* vs = kbuf(t - 1u) + @KT@u * @LDK@u;
)";
inline constexpr const char* wgmma_overlap_endstep = R"(    ak0 = bk0; an = bn; bk0 = ck0; bn = cn;
  }
  cc_wg_wait0(); cc_wg_hold(o);
)";

// The two layouts of a sub-tile (kt keys x D dims), their copies' chunk placement (attention_mma.hpp's
// @CJ@ / @CO@ / @CX@) and descriptors:
//   interleave: 8 x 8 core matrices of 128 contiguous bytes, key group-major: chunk c of key j at
//     halves ((j / 8) * D / 8 + c) * 64 + (j % 8) * 8. K: LBO 128 (dims), SBO 16 D (keys); V: LBO 16 D
//     (keys), SBO 128 (dims).
//   swizzle128 (D % 64 == 0): blocks of 64 dims, each kt rows of 128 bytes, chunk c % 8 of row j at
//     16-byte slot (c % 8) ^ (j % 8) (the hardware's XOR of address bits 4-6 with 7-9, so buffers sit
//     on 1024-byte boundaries). K: 16 dims start 32 bytes on within the row, SBO 1024 (8 keys); V:
//     16 keys start 2048 bytes on, LBO kt * 128 (the next 64 dims), SBO 1024.
// Past D = 128 each O slice (D / 2 dims) must start on a 64-dim block: D % 128 == 0.
inline bool wgmma_swizzle_serves(int64_t D) { return D % 64 == 0 && (D <= 128 || D % 128 == 0); }
inline std::vector<std::pair<std::string, std::string>> wgmma_layout(bool swizzle, int64_t kt, int64_t D) {
  const std::string KT = std::to_string(kt), DS = std::to_string(D);
  if (!swizzle)
    return {{"CJ", "(x / (8u * @D8N@u)) * 8u + x % 8u"}, {"CO", "x * 8u"}, {"CX", "(j * @D8N@u + (x / 8u) % @D8N@u)"},
            {"KOFF", "kk * 128u"}, {"KLBO", "128"}, {"KSBO", std::to_string(16 * D)}, {"VOFF", "kp * 16u * " + DS + "u"},
            {"VLBO", std::to_string(16 * D)}, {"VSBO", "128"}, {"SWZ", "0"}};
  return {{"CJ", "x / @D8N@u"}, {"CO", "((x % @D8N@u) / 8u) * " + KT + "u * 64u + j * 64u + ((x % 8u) ^ (j % 8u)) * 8u"}, {"CX", "x"},
          {"KOFF", "(kk / 4u) * " + KT + "u * 64u + (kk % 4u) * 16u"}, {"KLBO", "16"}, {"KSBO", "1024"}, {"VOFF", "kp * 1024u"},
          {"VLBO", std::to_string(kt * 128)}, {"VSBO", "1024"}, {"SWZ", "1"}};
}

}  // namespace concord::attention::detail
