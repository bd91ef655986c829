// The C-style emitter base shared by the C++ (CPU), GLSL (Vulkan) and HIP dialects.
// Every stage becomes one kernel whose body is straight-line SSA, one line per node; each value
// is evaluated at a linear index (index ops and loops introduce new index variables). The op
// formats below are the same text in every dialect: they call cc_* helpers whose shared bodies
// are in `shared_prelude`, on top of six primitives each dialect defines (cc_bits, cc_float,
// cc_sqrt, cc_exp, cc_log, cc_tanh). Semantics: include/concord/semantics.hpp.
#pragma once
#include <concord/codegen/plan.hpp>

#include <cstdio>
#include <map>
#include <sstream>
#include <vector>

namespace concord::codegen {

// Format per op and type class: float (f32; f16 swaps cc_ftz for cc_rh), i32, u32, bool.
// $0 $1 $2 are operands. nullptr: not emitted through the table (leaf/index/stage/cast).
struct op_format {
  const char* f;
  const char* i;
  const char* u;
  const char* b;
};

inline constexpr std::array<op_format, op_count> c_formats = {{
    /* input */ {}, /* constant */ {}, /* iota */ {}, /* cast */ {},
    /* neg */ {"cc_float(cc_bits($0) ^ 0x80000000u)", "int(0u - uint($0))", "(0u - $0)", nullptr},
    /* abs */ {"cc_float(cc_bits($0) & 0x7fffffffu)", "($0 < 0 ? int(0u - uint($0)) : $0)", "$0", nullptr},
    /* sqrt */ {"cc_ftz(cc_sqrt($0))", nullptr, nullptr, nullptr},
    /* exp */ {"cc_ftz(cc_exp($0))", nullptr, nullptr, nullptr},
    /* log */ {"cc_ftz(cc_log($0))", nullptr, nullptr, nullptr},
    /* tanh */ {"cc_ftz(cc_tanh($0))", nullptr, nullptr, nullptr},
    /* is_nan */ {"cc_isnan($0)", nullptr, nullptr, nullptr},
    /* logical_not */ {nullptr, nullptr, nullptr, "(!$0)"},
    /* add */ {"cc_ftz($0 + $1)", "int(uint($0) + uint($1))", "($0 + $1)", nullptr},
    /* sub */ {"cc_ftz($0 - $1)", "int(uint($0) - uint($1))", "($0 - $1)", nullptr},
    /* mul */ {"cc_ftz($0 * $1)", "int(uint($0) * uint($1))", "($0 * $1)", nullptr},
    /* div */ {"cc_ftz(cc_div($0, $1))", "cc_idiv($0, $1)", "cc_udiv($0, $1)", nullptr},
    /* min */ {"cc_fmin($0, $1)", "($1 < $0 ? $1 : $0)", "($1 < $0 ? $1 : $0)", nullptr},
    /* max */ {"cc_fmax($0, $1)", "($1 > $0 ? $1 : $0)", "($1 > $0 ? $1 : $0)", nullptr},
    /* lt */ {"($0 < $1)", "($0 < $1)", "($0 < $1)", nullptr},
    /* le */ {"($0 <= $1)", "($0 <= $1)", "($0 <= $1)", nullptr},
    /* gt */ {"($0 > $1)", "($0 > $1)", "($0 > $1)", nullptr},
    /* ge */ {"($0 >= $1)", "($0 >= $1)", "($0 >= $1)", nullptr},
    /* eq */ {"($0 == $1)", "($0 == $1)", "($0 == $1)", "($0 == $1)"},
    /* ne */ {"(!($0 == $1))", "($0 != $1)", "($0 != $1)", "($0 != $1)"},
    /* logical_and */ {nullptr, nullptr, nullptr, "($0 && $1)"},
    /* logical_or */ {nullptr, nullptr, nullptr, "($0 || $1)"},
    /* logical_xor */ {nullptr, nullptr, nullptr, "($0 != $1)"},
    /* select */ {"($0 ? $1 : $2)", "($0 ? $1 : $2)", "($0 ? $1 : $2)", "($0 ? $1 : $2)"},
    /* reshape */ {}, /* expand */ {},
    /* reduce_sum */ {"cc_ftz($0 + $1)", "int(uint($0) + uint($1))", "($0 + $1)", nullptr},
    /* reduce_max */ {"cc_fmax($0, $1)", "($1 > $0 ? $1 : $0)", "($1 > $0 ? $1 : $0)", nullptr},
    /* reduce_min */ {"cc_fmin($0, $1)", "($1 < $0 ? $1 : $0)", "($1 < $0 ? $1 : $0)", nullptr},
    /* reduce_mean */ {"cc_ftz($0 + $1)", nullptr, nullptr, nullptr},
    /* reduce_any */ {nullptr, nullptr, nullptr, "($0 || $1)"},
    /* reduce_all */ {nullptr, nullptr, nullptr, "($0 && $1)"},
    /* pool_mean */ {"cc_ftz($0 + $1)", nullptr, nullptr, nullptr},
    /* pool_max */ {"cc_fmax($0, $1)", "($1 > $0 ? $1 : $0)", "($1 > $0 ? $1 : $0)", nullptr},
    /* pool_min */ {"cc_fmin($0, $1)", "($1 < $0 ? $1 : $0)", "($1 < $0 ? $1 : $0)", nullptr},
    /* matmul */ {"cc_ftz($0 + $1)", nullptr, nullptr, nullptr},  // $1: the product, formed by mul's format
}};
static_assert(c_formats.size() == op_count, "c_formats must have one entry per op in CONCORD_OPS");

// Helpers every dialect shares, written in the C subset that C++, GLSL and HIP all accept
// (functional casts, `uint`, CC_FN for the function qualifier).
inline constexpr const char* shared_prelude = R"(CC_FN float cc_ftz(float x) { uint u = cc_bits(x); return (u & 0x7f800000u) == 0u ? cc_float(u & 0x80000000u) : x; }
CC_FN bool cc_isnan(float x) { return (cc_bits(x) & 0x7fffffffu) > 0x7f800000u; }
CC_FN float cc_fmin(float a, float b) { bool n = (uint(cc_isnan(a)) | uint(cc_isnan(b))) != 0u; bool pa = (uint(a < b) | (uint(a == b) & (cc_bits(a) >> 31))) != 0u; float r = pa ? a : b; return n ? cc_float(0x7fc00000u) : r; }
CC_FN float cc_fmax(float a, float b) { bool n = (uint(cc_isnan(a)) | uint(cc_isnan(b))) != 0u; bool pa = (uint(a > b) | (uint(a == b) & (1u - (cc_bits(a) >> 31)))) != 0u; float r = pa ? a : b; return n ? cc_float(0x7fc00000u) : r; }
CC_FN int cc_idiv(int a, int b) { return b == 0 ? 0 : ((a == int(0x80000000u) && b == -1) ? a : a / b); }
CC_FN uint cc_udiv(uint a, uint b) { return b == 0u ? 0u : a / b; }
CC_FN int cc_f2i(float x) { int t = int(x < -2147483648.0f || x >= 2147483648.0f || cc_isnan(x) ? 0.0f : x); t = x >= 2147483648.0f ? 2147483647 : t; return x < -2147483648.0f ? int(0x80000000u) : t; }
CC_FN uint cc_f2u(float x) { uint t = uint(x >= 4294967296.0f || !(x > -1.0f) ? 0.0f : x); return x >= 4294967296.0f ? 0xffffffffu : t; }
CC_FN uint cc_f2h(float f) {
  uint x = cc_bits(f); uint sign = (x >> 16) & 0x8000u; uint ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u;
  if (ax >= 0x477ff000u) return sign | 0x7c00u;
  if (ax >= 0x38800000u) return sign | ((ax + 0xc8000fffu + ((ax >> 13) & 1u)) >> 13);
  if (ax <= 0x33000000u) return sign;
  uint e = ax >> 23; uint m = (ax & 0x7fffffu) | 0x800000u; uint sh = 126u - e;
  uint r = m >> sh; uint rem = m & ((1u << sh) - 1u); uint hf = 1u << (sh - 1u);
  if (rem > hf || (rem == hf && (r & 1u) != 0u)) r += 1u;
  return sign | r;
}
CC_FN float cc_h2f(uint h) {
  uint sign = (h & 0x8000u) << 16; uint e = (h >> 10) & 0x1fu; uint m = h & 0x3ffu;
  uint sub = sign | cc_bits(float(m) * 5.9604644775390625e-8f);
  uint big = sign | (e == 31u ? 0x7f800000u : ((e + 112u) << 23)) | (m << 13);
  return cc_float(e == 0u ? sub : big);
}
CC_FN float cc_rh(float x) { return cc_h2f(cc_f2h(x)); }
)";

inline std::string float_literal(double v) {
  const float f = static_cast<float>(v);
  if (f != f) return "cc_float(0x7fc00000u)";
  if (f == std::numeric_limits<float>::infinity()) return "cc_float(0x7f800000u)";
  if (f == -std::numeric_limits<float>::infinity()) return "cc_float(0xff800000u)";
  if (f == 0) return std::signbit(f) ? "(-0.0f)" : "0.0f";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(f));
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return "(" + s + "f)";
}

inline std::string literal(dtype t, double v) {
  switch (t) {
    case dtype::f32: case dtype::f16: return float_literal(v);
    case dtype::i32: return v == -2147483648.0 ? "int(0x80000000u)" : "int(" + std::to_string(static_cast<int64_t>(v)) + ")";
    case dtype::u32: return std::to_string(static_cast<uint64_t>(v)) + "u";
    case dtype::boolean: return v != 0 ? "true" : "false";
  }
  return "?";
}

inline std::string substitute(std::string f, const std::string* a, int n) {
  for (int k = 0; k < n; ++k) {
    const std::string key = "$" + std::to_string(k);
    for (size_t pos; (pos = f.find(key)) != std::string::npos;) f.replace(pos, key.size(), a[k]);
  }
  return f;
}

inline const char* format_for(op code, dtype t) {
  const op_format& f = c_formats[static_cast<size_t>(code)];
  switch (t) {
    case dtype::f32: case dtype::f16: return f.f;
    case dtype::i32: return f.i;
    case dtype::u32: return f.u;
    case dtype::boolean: return f.b;
  }
  return nullptr;
}

inline std::string value_type(dtype t) {
  switch (t) {
    case dtype::f32: case dtype::f16: return "float";
    case dtype::i32: return "int";
    case dtype::u32: return "uint";
    case dtype::boolean: return "bool";
  }
  return "?";
}

inline std::string cast_expr(dtype from, dtype to, const std::string& a) {
  if (from == to) return a;
  if (to == dtype::boolean) return is_float(from) ? "(!(" + a + " == 0.0f))" : from == dtype::u32 ? "(" + a + " != 0u)" : "(" + a + " != 0)";
  if (from == dtype::boolean) return "(" + a + (is_float(to) ? " ? 1.0f : 0.0f)" : to == dtype::u32 ? " ? 1u : 0u)" : " ? 1 : 0)");
  if (is_float(from) && is_float(to)) return to == dtype::f16 ? "cc_rh(" + a + ")" : a;
  if (is_float(from)) return to == dtype::i32 ? "cc_f2i(" + a + ")" : "cc_f2u(" + a + ")";
  if (is_float(to)) return to == dtype::f16 ? "cc_rh(float(" + a + "))" : "float(" + a + ")";
  return value_type(to) + "(" + a + ")";
}

// How an index line varies over `lane_block` consecutive output elements i0 + l, i0 a multiple of
// lane_block (the CPU reduction's lanes): `affine` lines are the first lane's value plus
// l * stride (stride 0: the same for all), and `aligned` ones start at a multiple of lane_block;
// anything else is not affine. Derived from the arithmetic that builds each line; uint arithmetic
// wraps alike on both sides, and division and remainder keep a line affine only where the lanes
// cannot cross a multiple of the divisor.
inline constexpr int64_t lane_block = 32;
struct lane_class {
  bool affine = false;
  int64_t stride = 0;
  bool aligned = false;
  static const lane_class other, uniform, unit;
  bool is_uniform() const { return affine && stride == 0; }
};
constexpr lane_class lane_class::other{}, lane_class::uniform{true, 0, false}, lane_class::unit{true, 1, true};
inline lane_class lane_div(lane_class x, int64_t c) {
  if (!x.affine || c == 1) return x;
  return x.stride == 0 || (x.stride == 1 && x.aligned && c % lane_block == 0) ? lane_class::uniform : lane_class::other;
}
inline lane_class lane_mod(lane_class x, int64_t c) {
  if (x.affine && c == 1) return {true, 0, true};  // x % 1 == 0
  if (!x.affine || x.stride == 0) return x.affine ? lane_class::uniform : x;
  return x.stride == 1 && x.aligned && c % lane_block == 0 ? lane_class::unit : lane_class::other;
}
inline lane_class lane_mul(lane_class x, int64_t c) {
  if (!x.affine) return x;
  return {true, x.stride * c, x.aligned || c % lane_block == 0};
}
inline lane_class lane_add(lane_class a, lane_class b) {
  if (!a.affine || !b.affine) return lane_class::other;
  return {true, a.stride + b.stride, a.aligned && b.aligned};
}

class c_emitter {
 public:
  virtual ~c_emitter() = default;

  // All stages in one translation unit (C++, HIP).
  std::string emit(const kernel_plan& kp) {
    std::string s = file_header(kp, nullptr) + shared_prelude;
    for (const stage& st : kp.stages) s += "\n" + emit_stage(kp, st);
    return s;
  }
  // One stage as a self-contained source (GLSL: one shader per stage).
  std::string emit_stage_source(const kernel_plan& kp, const stage& st) {
    return file_header(kp, &st) + shared_prelude + "\n" + emit_stage(kp, st);
  }

  virtual std::string name() const = 0;

 protected:
  virtual std::string file_header(const kernel_plan& kp, const stage* only) = 0;
  // Opens the kernel: signature and a `uint i` in [0, count) (bounds handled inside).
  virtual std::string kernel_open(const kernel_plan& kp, const stage& st) = 0;
  virtual std::string kernel_close(const kernel_plan& kp, const stage& st) = 0;
  // Raw element access of a bound buffer (param index `p`), storage type.
  virtual std::string element(const kernel_plan& kp, const stage& st, int p, const std::string& idx) = 0;
  virtual std::string float_decl() const { return "float"; }
  virtual std::string constant(dtype t, double v) const { return literal(t, v); }
  virtual std::string store_f16(const kernel_plan& kp, const stage& st, int p, const std::string& idx, const std::string& v) {
    return element(kp, st, p, idx) + " = uint16_t(cc_f2h(" + v + "));";
  }
  virtual std::string load_f16(const kernel_plan& kp, const stage& st, int p, const std::string& idx) {
    return "cc_h2f(uint(" + element(kp, st, p, idx) + "))";
  }
  // CC_LDF_<NAME>: the attention kernels' loads. Exact by default; a dialect may use its hardware
  // f16 conversion (subnormal halves may flush) and skip the f32 flush (tolerance-checked math).
  virtual std::string load_fast(const kernel_plan& kp, const stage& st, int p, const std::string& idx) { return load_expr(kp, st, p, idx); }
  // CC_LDV8_<NAME>(x, f): elements 8x .. 8x + 7 into float f[8], converted as CC_LDF_ does; defined
  // only where a custom stage uses it. A dialect may load them in one 16-byte access; vec8_decl
  // gives the global declarations that access needs, vec8_prelude the helpers (once per stage).
  virtual std::string load_vec8(const kernel_plan& kp, const stage& st, int p, const std::string& x, const std::string& f) {
    return "for (uint cc_u = 0u; cc_u < 8u; ++cc_u) " + f + "[cc_u] = " + load_fast(kp, st, p, "8u * " + x + " + cc_u") + ";";
  }
  virtual std::string vec8_decl(const kernel_plan&, const stage&, int) { return ""; }
  // CC_LDR8_<NAME>(x) (f16 buffers): the 8 halves 8x .. 8x + 7 as one CC_RAW8 value, unconverted;
  // CC_CVT8(w, f) converts them into float f[8] later (a load issued early costs 4 registers).
  // Dialects with cooperative stages define these in vec8_prelude.
  virtual std::string load_raw8(const kernel_plan&, const stage& st, int, const std::string&) {
    throw shape_error("concord: the " + name() + " dialect has no raw 16-byte loads (stage " + st.name + ")");
  }
  virtual std::string vec8_prelude() { return ""; }
  // CC_PTR_<NAME>: the buffer's base pointer (dialects with pointers; for asynchronous copies).
  virtual std::string pointer(const kernel_plan&, const stage& st, int) {
    throw shape_error("concord: the " + name() + " dialect has no buffer pointers (stage " + st.name + ")");
  }
  // CC_ATOMIC_ADD_<NAME>(x, v) (u32 buffers): adds v to element x at device scope and gives the old
  // value. CC_FENCE(): orders this thread's earlier buffer writes before its later accesses for
  // every workgroup (writes, fence, counter; counter, fence, reads). Defined where a stage uses them.
  virtual std::string atomic_add(const kernel_plan& kp, const stage& st, int p, const std::string& idx, const std::string& v) {
    return "__atomic_fetch_add(&" + element(kp, st, p, idx) + ", " + v + ", __ATOMIC_ACQ_REL)";
  }
  virtual std::string fence() const { return "__atomic_thread_fence(__ATOMIC_SEQ_CST)"; }
  // CC_SHARED_MAX(a, v): atomic max of the u32 workgroup-memory element a and v (cooperative stages).
  virtual std::string shared_max() const { throw shape_error("concord: the " + name() + " dialect has no workgroup memory (CC_SHARED_MAX)"); }
  // CC_SHFL_XOR(v, m): the float v of lane `lane ^ m` in the same subgroup, m the same for every
  // lane; CC_SHFL_FROM(v, m): the same with m varying per lane (cooperative stages).
  virtual std::string shuffle_defs() const { throw shape_error("concord: the " + name() + " dialect has no subgroup shuffles (CC_SHFL_XOR)"); }
  // CC_SUBGROUP_LANE: this thread's index in [0, group) ordered by subgroup, then by lane within it
  // (consecutive values share a subgroup; `lane` itself where the dialect guarantees that order).
  virtual std::string subgroup_lane() const { return "lane"; }
  // CC_FMA(a, b, c): a * b + c, fused where the dialect has an exact fused multiply-add (attention
  // kernels only: tolerance-checked; DSL stages never contract).
  virtual std::string fma_def() const { return "#define CC_FMA(cc_a, cc_b, cc_c) ((cc_a) * (cc_b) + (cc_c))\n"; }
  // Before a DSL reduction loop of constant trip count: the dialect's partial-unroll hint, so one
  // invocation has several iterations' loads in flight (the sums still run in index order).
  virtual std::string reduction_unroll(int64_t /*trip*/) const { return ""; }
  // Batched reductions (dialects where `batches_reductions`): a loop of constant trip count computes
  // a batch of elements (every load of them) into registers before it combines them into the
  // accumulator, in index order, so a GPU invocation waits on one batch of loads instead of one load
  // per step. Where few elements leave the device mostly idle (registers are free), the largest
  // power of two from `small_count_batch(count)` down to 64 that divides the trip; else 32 (or the
  // largest of 16 and 8 that divides it); 0: a plain loop. `full_unroll` is the dialect's line
  // before a loop to unroll whole.
  virtual bool batches_reductions() const { return false; }
  virtual int64_t small_count_batch(int64_t /*count*/) const { return 32; }
  int64_t reduction_batch(int64_t trip, int64_t count) const {
    if (!batches_reductions() || trip <= 0) return 0;
    if (count <= small_reduction_count)
      for (int64_t b = small_count_batch(count); b >= 64; b /= 2)
        if (trip % b == 0) return b;
    for (int64_t b : {32, 16, 8})
      if (trip % b == 0) return b;
    return 0;
  }
  static constexpr int64_t small_reduction_count = 1 << 15;
  virtual std::string full_unroll() const { return ""; }
  // CC_UNROLL before a loop of constant trip count: the dialect's hint to unroll it fully.
  virtual std::string unroll_def() const { return "#define CC_UNROLL\n"; }
  // Whether the stage writes parameter p: a DSL stage writes its last; a hand-written one the buffers
  // its body stores to (CC_ST_<NAME>, CC_ATOMIC_ADD_<NAME>). The others are read-only and restrict.
  static bool written(const kernel_plan& kp, const stage& st, int p) {
    if (!st.custom()) return static_cast<size_t>(p) + 1 == st.params.size();
    const std::string nm = upper_name(kp, st, p);
    return st.body.find("CC_ST_" + nm + "(") != std::string::npos || st.body.find("CC_ATOMIC_ADD_" + nm + "(") != std::string::npos;
  }
  // A buffer that a stage using CC_FENCE writes: other workgroups may read it in the same dispatch.
  static bool shared_across_groups(const kernel_plan& kp, const stage& st, int p) {
    return st.body.find("CC_FENCE()") != std::string::npos && st.body.find("CC_ST_" + upper_name(kp, st, p) + "(") != std::string::npos;
  }
  static std::string upper_name(const kernel_plan& kp, const stage& st, int p) {
    std::string nm = identifier(kp.buffers[st.params[p]].name);
    for (char& ch : nm) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return nm;
  }
  // A reduction stage's per-element code in parts: the accumulator, the index lines computed from
  // `i` (each `uint jN = ...;`), the loop over r in [r0, r1) and what follows it (epilogue, store).
  // The loop is `body` (the step's element into variable `elem`) then `acc = combine(acc, elem)`.
  struct reduction_parts {
    std::string acc_type, acc_init, r0, r1;
    std::vector<std::pair<std::string, std::string>> index;  // (jN, expression)
    std::string loop, tail, body, elem, combine;
    // Each index line's lane class, the prologue's (`index`) and the loop body's (name, expression).
    std::map<std::string, lane_class> lanes;
    std::vector<std::pair<std::string, std::string>> loop_index;
  };
  // The default runs one element per invocation; a dialect may schedule several at once.
  virtual std::string reduction_stage(const kernel_plan& kp, const stage& st, const reduction_parts& r) {
    std::string s = kernel_open(kp, st) + indent + r.acc_type + " acc = " + r.acc_init + ";\n";
    for (const auto& [nm, e] : r.index) s += indent + "uint " + nm + " = " + e + ";\n";
    const int64_t trip = constant_trip(kp, st), batch = reduction_batch(trip, st.count);
    if (batch > 0) {
      const std::string in = indent + "  ", u = std::to_string(batch) + "u", v = "cc_v[cc_u]";
      std::string body;
      for (size_t a = 0, b; a < r.body.size(); a = b + 1) b = r.body.find('\n', a), body += "  " + r.body.substr(a, b - a + 1);
      s += indent + "for (uint cc_r = " + r.r0 + "; cc_r < " + r.r1 + "; cc_r += " + u + ") {\n" + in + r.acc_type + " cc_v[" + u + "];\n" + in + full_unroll() +
           "for (uint cc_u = 0u; cc_u < " + u + "; ++cc_u) {\n" + in + "  uint r = cc_r + cc_u;\n" + body + in + "  " + v + " = " + r.elem + ";\n" + in + "}\n" + in + full_unroll() +
           "for (uint cc_u = 0u; cc_u < " + u + "; ++cc_u) acc = " + substitute(r.combine, std::array<std::string, 2>{"acc", v}.data(), 2) + ";\n" + indent + "}\n" + r.tail;
      return s + kernel_close(kp, st);
    }
    s += (trip > 0 ? reduction_unroll(trip) : std::string()) + indent + "for (uint r = " + r.r0 + "; r < " + r.r1 + "; ++r) {\n" + r.loop + indent + "}\n" + r.tail;
    return s + kernel_close(kp, st);
  }
  std::string indent = "  ";

 private:
  struct ctx {
    const kernel_plan* kp;
    const stage* st;
    std::ostringstream out;
    std::vector<std::map<std::pair<int32_t, std::string>, std::string>> memo;
    int tmp = 0;
    std::string pad = "  ";
    reduction_parts red;
    bool in_prologue = false;
  };

  std::string decl(dtype t) const { return is_float(t) ? float_decl() : value_type(t); }

  std::string fresh(ctx& c, dtype t, const std::string& e, const char* prefix = "t") {
    std::string v = prefix + std::to_string(c.tmp++);
    c.out << c.pad << decl(t) << " " << v << " = " << e << ";\n";
    return v;
  }
  std::string fresh_index(ctx& c, const std::string& e, lane_class lc = lane_class::other) {
    std::string v = "j" + std::to_string(c.tmp++);
    c.red.lanes[v] = lc;
    if (c.in_prologue) c.red.index.push_back({v, e});
    else c.out << c.pad << "uint " << v << " = " << e << ";\n", c.red.loop_index.push_back({v, e});
    return v;
  }
  static lane_class lanes_of(const ctx& c, const std::string& idx) {
    if (idx == "i") return lane_class::unit;
    if (idx == "r") return lane_class::uniform;
    auto it = c.red.lanes.find(idx);
    return it == c.red.lanes.end() ? lane_class::other : it->second;
  }

  std::string load(ctx& c, int32_t buf, const std::string& idx) {
    const buffer_ref& b = c.kp->buffers[buf];
    const int p = c.kp->param_of(*c.st, buf);
    std::string el = element(*c.kp, *c.st, p, idx);
    switch (b.type) {
      case dtype::f32: return "cc_ftz(" + el + ")";
      case dtype::f16: return load_f16(*c.kp, *c.st, p, idx);
      case dtype::boolean: return "(" + el + " != 0u)";
      default: return el;
    }
  }

  static int64_t inner_of(const shape_t& s, int64_t axis) {
    int64_t r = 1;
    for (size_t k = axis + 1; k < s.size(); ++k) r *= s[k];
    return r;
  }

  std::string value(ctx& c, int32_t id, const std::string& idx) {
    for (auto it = c.memo.rbegin(); it != c.memo.rend(); ++it)
      if (auto f = it->find({id, idx}); f != it->end()) return f->second;
    const node& n = c.kp->prog.nodes[id];
    std::string r;
    if (c.kp->node_buffer[id] >= 0 && !(id == c.st->root && c.kp->node_buffer[id] == c.st->out)) {
      r = fresh(c, n.type, load(c, c.kp->node_buffer[id], idx));
    } else if (n.code == op::constant) {
      return constant(n.type, n.value);
    } else if (n.code == op::iota) {
      const int64_t inner = inner_of(n.shape, n.axis);
      const std::string q = inner == 1 ? idx : "(" + idx + " / " + std::to_string(inner) + "u)";
      std::string e = n.axis == 0 ? q : "(" + q + " % " + std::to_string(n.shape[n.axis]) + "u)";
      r = fresh(c, n.type, n.type == dtype::u32 ? e : cast_expr(dtype::u32, n.type, e));
    } else if (n.code == op::reshape) {
      return value(c, n.args[0], idx);
    } else if (n.code == op::expand) {
      const int64_t inner = inner_of(n.shape, n.axis);
      const lane_class x = lanes_of(c, idx);
      std::string j = fresh_index(c, inner == 1 ? idx + " / " + std::to_string(n.block) + "u"
                                                : "(" + idx + " / " + std::to_string(n.block * inner) + "u) * " + std::to_string(inner) + "u + " + idx + " % " + std::to_string(inner) + "u",
                                  inner == 1 ? lane_div(x, n.block) : lane_add(lane_mul(lane_div(x, n.block * inner), inner), lane_mod(x, inner)));
      return value(c, n.args[0], j);
    } else if (n.code == op::cast) {
      const node& a = c.kp->prog.nodes[n.args[0]];
      r = fresh(c, n.type, cast_expr(a.type, n.type, value(c, n.args[0], idx)));
    } else if (is_stage_root(n.code) || n.code == op::input) {
      throw error("concord codegen: node %" + std::to_string(id) + " is not materialized");
    } else {
      const node& a0 = c.kp->prog.nodes[n.args[0]];
      const dtype tc = (info(n.code).kind == op_kind::compare || n.code == op::is_nan) ? a0.type : n.type;
      const char* f = format_for(n.code, tc);
      if (n.code == op::select) f = format_for(n.code, n.type);
      if (!f) throw error("concord codegen: no format for " + std::string(op_name(n.code)) + " on " + dtype_name(tc));
      std::string a[3];
      for (int k = 0; k < info(n.code).arity; ++k) a[k] = value(c, n.args[k], idx);
      std::string e = substitute(f, a, info(n.code).arity);
      // Arithmetic gets its own temporary before the flush/round, so `precise` (GLSL) covers the
      // operation itself and no driver folds x*0 or contracts across the helper call.
      if (is_float(n.type) && e.rfind("cc_ftz(", 0) == 0 && e.back() == ')') {
        const std::string inner = fresh(c, dtype::f32, e.substr(7, e.size() - 8));
        e = (n.type == dtype::f16 ? "cc_rh(" : "cc_ftz(") + inner + ")";
      } else if (n.type == dtype::f16) {
        for (size_t pos; (pos = e.find("cc_ftz(")) != std::string::npos;) e.replace(pos, 7, "cc_rh(");
      }
      r = fresh(c, n.type, e);
    }
    c.memo.back()[{id, idx}] = r;
    return r;
  }

  // Loop-carried reduction for stage roots; returns the variable holding the result.
  std::string reduction(ctx& c, const node& n) {
    const program& pr = c.kp->prog;
    const dtype at = n.type == dtype::f16 ? dtype::f32 : n.type;
    std::string acc = "acc";
    c.red.acc_type = decl(at), c.red.acc_init = literal(at, reduce_init(n.code, at));
    c.in_prologue = true;
    const char* comb = format_for(n.code, at);
    std::string r0, r1, base, scale;
    const op_kind kind = info(n.code).kind;
    std::string a_base, b_base;
    int64_t len = 0, inner = 1;
    if (kind == op_kind::contract) {
      const node& an = pr.nodes[n.args[0]];
      const int64_t M = an.shape[an.shape.size() - 2], K = an.shape.back(), N = n.shape.back();
      const lane_class lbm = lane_div(lane_class::unit, N), lnn = lane_mod(lane_class::unit, N);
      std::string bm = fresh_index(c, "i / " + std::to_string(N) + "u", lbm);
      std::string nn = fresh_index(c, "i % " + std::to_string(N) + "u", lnn);
      a_base = fresh_index(c, bm + " * " + std::to_string(K) + "u", lane_mul(lbm, K));
      b_base = fresh_index(c, "((" + bm + " / " + std::to_string(M) + "u) * " + std::to_string(N) + "u + " + nn + ") * " + std::to_string(K) + "u",
                           lane_mul(lane_add(lane_mul(lane_div(lbm, M), N), lnn), K));
      r0 = "0u", r1 = std::to_string(K) + "u";
    } else {
      const node& src = pr.nodes[n.args[0]];
      len = src.shape[n.axis], inner = inner_of(src.shape, n.axis);
      if (kind == op_kind::pool) {
        const int64_t nb = n.shape[n.axis];
        const lane_class lblk = lane_mod(lane_div(lane_class::unit, inner), nb), lr0 = lane_mul(lblk, n.block);
        std::string blk = fresh_index(c, "(i / " + std::to_string(inner) + "u) % " + std::to_string(nb) + "u", lblk);
        base = fresh_index(c, "(i / " + std::to_string(nb * inner) + "u) * " + std::to_string(len * inner) + "u + i % " + std::to_string(inner) + "u",
                           lane_add(lane_mul(lane_div(lane_class::unit, nb * inner), len * inner), lane_mod(lane_class::unit, inner)));
        r0 = fresh_index(c, blk + " * " + std::to_string(n.block) + "u", lr0);
        r1 = fresh_index(c, "(" + r0 + " + " + std::to_string(n.block) + "u < " + std::to_string(len) + "u) ? " + r0 + " + " + std::to_string(n.block) + "u : " + std::to_string(len) + "u",
                         lr0.is_uniform() ? lane_class::uniform : lane_class::other);  // the clamp at len is not affine
        if (n.code == op::pool_mean) {
          const int64_t last = len - (nb - 1) * n.block;
          scale = "((" + r1 + " - " + r0 + " == " + std::to_string(n.block) + "u) ? " + float_literal(mean_scale(n.block)) + " : " + float_literal(mean_scale(last)) + ")";
        }
      } else {
        base = fresh_index(c, "(i / " + std::to_string(inner) + "u) * " + std::to_string(len * inner) + "u + i % " + std::to_string(inner) + "u",
                           lane_add(lane_mul(lane_div(lane_class::unit, inner), len * inner), lane_mod(lane_class::unit, inner)));
        r0 = "0u", r1 = std::to_string(len) + "u";
        if (n.code == op::reduce_mean) scale = float_literal(mean_scale(len));
      }
    }
    c.in_prologue = false;
    c.red.r0 = r0, c.red.r1 = r1;
    const std::string outer_pad = c.pad;
    c.pad += "  ";
    c.memo.emplace_back();
    std::string x;
    if (kind == op_kind::contract) {
      std::string ja = fresh_index(c, a_base + " + r", lane_add(lanes_of(c, a_base), lane_class::uniform));
      std::string jb = fresh_index(c, b_base + " + r", lane_add(lanes_of(c, b_base), lane_class::uniform));
      const std::string ab[2] = {value(c, n.args[0], ja), value(c, n.args[1], jb)};
      x = fresh(c, dtype::f32, "cc_ftz(" + fresh(c, dtype::f32, ab[0] + " * " + ab[1]) + ")");
    } else {
      std::string j = fresh_index(c, base + " + r * " + std::to_string(inner) + "u", lane_add(lanes_of(c, base), lane_mul(lane_class::uniform, inner)));
      x = value(c, n.args[0], j);
    }
    c.red.body = c.out.str(), c.red.elem = x, c.red.combine = comb;
    const std::string a[2] = {acc, x};
    c.out << c.pad << "acc = " << substitute(comb, a, 2) << ";\n";
    c.memo.pop_back();
    c.pad = outer_pad;
    c.red.loop = c.out.str();
    c.out.str("");
    if (!scale.empty()) c.out << c.pad << "acc = cc_ftz(acc * " << scale << ");\n";
    if (n.type == dtype::f16) return fresh(c, dtype::f16, "cc_rh(acc)");
    return acc;
  }

  std::string load_expr(const kernel_plan& kp, const stage& st, int p, const std::string& idx) {
    switch (kp.buffers[st.params[p]].type) {
      case dtype::f32: return "cc_ftz(" + element(kp, st, p, idx) + ")";
      case dtype::f16: return load_f16(kp, st, p, idx);
      case dtype::boolean: return "(" + element(kp, st, p, idx) + " != 0u)";
      default: return element(kp, st, p, idx);
    }
  }

  std::string emit_custom(const kernel_plan& kp, const stage& st) {
    std::string defs, undefs;
    bool vec8 = false;
    if (st.body.find("CC_FENCE()") != std::string::npos) defs += "#define CC_FENCE() " + fence() + "\n", undefs += "#undef CC_FENCE\n";
    if (st.body.find("CC_SHFL_XOR(") != std::string::npos || st.body.find("CC_SHFL_FROM(") != std::string::npos)
      defs += shuffle_defs(), undefs += "#undef CC_SHFL_XOR\n#undef CC_SHFL_FROM\n";
    if (st.body.find("CC_FMA(") != std::string::npos) defs += fma_def(), undefs += "#undef CC_FMA\n";
    if (st.body.find("CC_UNROLL") != std::string::npos) defs += unroll_def(), undefs += "#undef CC_UNROLL\n";
    if (st.body.find("CC_SUBGROUP_LANE") != std::string::npos) defs += "#define CC_SUBGROUP_LANE " + subgroup_lane() + "\n", undefs += "#undef CC_SUBGROUP_LANE\n";
    if (st.body.find("CC_SHARED_MAX(") != std::string::npos) defs += "#define CC_SHARED_MAX(cc_a, cc_v) " + shared_max() + "\n", undefs += "#undef CC_SHARED_MAX\n";
    for (size_t k = 0; k < st.params.size(); ++k) {
      const std::string nm = upper_name(kp, st, static_cast<int>(k));
      if (kp.buffers[st.params[k]].type == dtype::u32 && st.body.find("CC_ATOMIC_ADD_" + nm + "(") != std::string::npos)
        defs += "#define CC_ATOMIC_ADD_" + nm + "(cc_x, cc_v) " + atomic_add(kp, st, static_cast<int>(k), "(cc_x)", "(cc_v)") + "\n", undefs += "#undef CC_ATOMIC_ADD_" + nm + "\n";
      defs += "#define CC_LD_" + nm + "(x) " + load_expr(kp, st, static_cast<int>(k), "(x)") + "\n";
      defs += "#define CC_ST_" + nm + "(x) " + element(kp, st, static_cast<int>(k), "(x)") + "\n";
      undefs += "#undef CC_LD_" + nm + "\n#undef CC_ST_" + nm + "\n";
      if (st.body.find("CC_PTR_" + nm) != std::string::npos) defs += "#define CC_PTR_" + nm + " " + pointer(kp, st, static_cast<int>(k)) + "\n", undefs += "#undef CC_PTR_" + nm + "\n";
      if (is_float(kp.buffers[st.params[k]].type)) {
        defs += "#define CC_LDF_" + nm + "(x) " + load_fast(kp, st, static_cast<int>(k), "(x)") + "\n";
        undefs += "#undef CC_LDF_" + nm + "\n";
        const bool v8 = st.body.find("CC_LDV8_" + nm + "(") != std::string::npos, r8 = st.body.find("CC_LDR8_" + nm + "(") != std::string::npos;
        if (r8 && kp.buffers[st.params[k]].type != dtype::f16) throw shape_error("concord: CC_LDR8_" + nm + " needs an f16 buffer");
        if ((v8 || r8) && !vec8) defs = vec8_prelude() + defs, vec8 = true;
        if (v8 || r8) defs += vec8_decl(kp, st, static_cast<int>(k));
        if (v8) defs += "#define CC_LDV8_" + nm + "(cc_vx, cc_vf) " + load_vec8(kp, st, static_cast<int>(k), "(cc_vx)", "(cc_vf)") + "\n", undefs += "#undef CC_LDV8_" + nm + "\n";
        if (r8) defs += "#define CC_LDR8_" + nm + "(cc_vx) " + load_raw8(kp, st, static_cast<int>(k), "(cc_vx)") + "\n", undefs += "#undef CC_LDR8_" + nm + "\n";
      }
    }
    std::string fns;
    for (const auto& [fname, prog] : st.functions) fns += emit_function(prog, fname);
    return st.helpers + fns + defs + kernel_open(kp, st) + st.body + kernel_close(kp, st) + undefs;
  }

 public:
  // A DSL program with shape-{1} inputs and one output as an inline function (used to fuse user
  // score/mask modifiers into attention kernels). Inputs become the parameters, in order.
  std::string emit_function(const program& p, const std::string& fname) {
    if (p.outputs.size() != 1) throw shape_error("concord: modifier graph '" + p.name + "' must have exactly one output");
    kernel_plan kp;
    kp.prog = p;
    kp.node_buffer.assign(p.nodes.size(), -1);
    for (const node& n : p.nodes)
      if (is_stage_root(n.code)) throw shape_error("concord: modifier graph '" + p.name + "' may only use elementwise ops");
    stage st;
    st.root = p.outputs[0].node;
    ctx c;
    c.kp = &kp, c.st = &st;
    c.memo.emplace_back();
    std::string sig = "CC_FN " + value_type(p.outputs[0].type) + " " + fname + "(";
    for (size_t k = 0; k < p.inputs.size(); ++k) {
      sig += (k ? ", " : "") + value_type(p.inputs[k].type) + " in" + std::to_string(k);
      c.memo.back()[{p.inputs[k].node, "i"}] = "in" + std::to_string(k);
    }
    std::string v = value(c, st.root, "i");
    return sig + ") {\n" + c.out.str() + "  return " + v + ";\n}\n";
  }

 private:
  std::string emit_stage(const kernel_plan& kp, const stage& st) {
    if (st.custom()) return emit_custom(kp, st);
    ctx c;
    c.kp = &kp, c.st = &st;
    c.memo.emplace_back();
    c.pad = indent;
    const int32_t red = looped_reduction(kp, st);
    const bool reduces = red >= 0;
    std::string v;
    if (st.fused >= 0) {
      c.memo.back()[{st.fused, "i"}] = reduction(c, kp.prog.nodes[st.fused]);
      const size_t in_loop = c.red.loop_index.size();
      v = value(c, st.root, "i");
      c.red.loop_index.resize(in_loop);  // the epilogue's index lines are the tail's, not the loop's
    } else {
      v = reduces ? reduction(c, kp.prog.nodes[red]) : value(c, st.root, "i");
    }
    const buffer_ref& ob = kp.buffers[st.out];
    std::string el = element(kp, st, static_cast<int>(st.params.size()) - 1, "i");
    switch (ob.type) {
      case dtype::f16: c.out << c.pad << store_f16(kp, st, static_cast<int>(st.params.size()) - 1, "i", v) << "\n"; break;
      case dtype::boolean: c.out << c.pad << el << " = " << v << " ? 1u : 0u;\n"; break;
      default: c.out << c.pad << el << " = " << v << ";\n";
    }
    if (reduces) {
      c.red.tail = c.out.str();
      return reduction_stage(kp, st, c.red);
    }
    return kernel_open(kp, st) + c.out.str() + kernel_close(kp, st);
  }
};

}  // namespace concord::codegen
