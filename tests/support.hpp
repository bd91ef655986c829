// Test support: boundary-value inputs, comparison against the interpreter, the conformance graphs
// and the seeded random-graph generator. Shared by every backend's test executable.
#pragma once
#include <concord/concord.hpp>

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <sstream>

namespace concord::testing {

using runner = std::function<std::vector<tensor>(const program&, const std::vector<tensor>&)>;

// The values random tests never produce: zeros of both signs, ties with the thresholds used in
// the conformance graphs (0, 1.5), denormals on both sides of 0, values whose products/differences
// underflow into the denormal range, the extremes, infinities and NaNs.
inline std::vector<float> boundary_f32() {
  const float dmin = std::numeric_limits<float>::denorm_min(), nmin = std::numeric_limits<float>::min();
  const float fmax = std::numeric_limits<float>::max(), inf = std::numeric_limits<float>::infinity();
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  return {0.0f, -0.0f, 1.5f, -1.5f, dmin, -dmin, nmin - dmin, -(nmin - dmin), nmin, -nmin, 1.5f * nmin, -1.5f * nmin,
          1e-20f, -1e-20f, 1.0f, -1.0f, fmax, -fmax, inf, -inf, qnan, -qnan, 3.0f, 0.1f, 65504.0f, 65520.0f, 6e-8f, 2.5f};
}

inline std::vector<double> boundary_int(dtype t) {
  if (t == dtype::u32) return {0, 1, 2, 3, 7, 2147483647.0, 2147483648.0, 4294967295.0, 65536, 100};
  return {0, 1, -1, 2, -2, 7, -7, 2147483647.0, -2147483648.0, 65536, -65536, 100};
}

// Fills a tensor: the first part pairs boundary values (position i gets boundary[(i / stride) % n]
// so two inputs with strides 1 and n meet in every combination), the rest is seeded random.
inline tensor make_input(dtype t, const shape_t& shape, uint64_t seed, int64_t stride = 1) {
  tensor x(t, shape);
  std::mt19937_64 rng(seed);
  const int64_t n = x.size();
  std::vector<float> bf = boundary_f32();
  std::vector<double> bi = boundary_int(t);
  const int64_t nb = is_float(t) ? static_cast<int64_t>(bf.size()) : static_cast<int64_t>(bi.size());
  const int64_t boundary_span = std::min<int64_t>(n, nb * nb);
  std::uniform_real_distribution<float> uf(-4.0f, 4.0f);
  std::uniform_int_distribution<int> small(-9, 9);
  // Fewer than nb x nb elements: a strided input still takes every boundary value, changing every
  // n / nb elements and half a cycle out of phase with the unstrided one.
  const int64_t run = n < nb * nb && stride > 1 ? std::max<int64_t>(1, n / nb) : stride, phase = run != stride ? nb / 2 + 1 : 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool edge = i < boundary_span;
    const int64_t k = (i / run + phase) % nb;
    switch (t) {
      case dtype::f32: x.as<float>()[i] = edge ? bf[k] : (rng() % 8 == 0 ? static_cast<float>(small(rng)) * 0.5f : uf(rng)); break;
      case dtype::f16: x.as<uint16_t>()[i] = sem::f32_to_f16_bits(edge ? bf[k] : uf(rng)); break;
      case dtype::i32: x.as<int32_t>()[i] = edge ? static_cast<int32_t>(static_cast<int64_t>(bi[k])) : static_cast<int32_t>(rng() % 2 ? small(rng) : static_cast<int32_t>(rng())); break;
      case dtype::u32: x.as<uint32_t>()[i] = edge ? static_cast<uint32_t>(bi[k]) : static_cast<uint32_t>(rng() % 2 ? static_cast<uint32_t>(small(rng) + 9) : static_cast<uint32_t>(rng())); break;
      case dtype::boolean: x.as<uint32_t>()[i] = static_cast<uint32_t>((i / stride + (edge ? 0 : rng())) % 2); break;
    }
  }
  return x;
}

// Whether the backend under test rounds div and sqrt correctly (CPU and HIP, semantics.hpp): then
// they are exact ops here, as the interpreter's f32 results are, and compared bit for bit.
inline bool& div_sqrt_rounded() {
  static bool on = false;
  return on;
}

// Tolerance of an output: 0 when every op upstream is exact (bitwise equality, NaN by class);
// else a relative bound from semantics.hpp (Vulkan's exp allows (3 + 2|x|) ulp for |x| <= 88,
// under 2^-15 relative); f16 outputs 2^-8 relative, as each f16 rounding on the path may move by one ulp).
inline double tolerance(const program& p, int32_t id) {
  std::vector<bool> seen(p.nodes.size(), false);
  std::vector<int32_t> stack = {id};
  bool exact = true;
  while (!stack.empty()) {
    int32_t n = stack.back();
    stack.pop_back();
    if (seen[n]) continue;
    seen[n] = true;
    const op code = p.nodes[n].code;
    exact = exact && (info(code).exact || (div_sqrt_rounded() && (code == op::div || code == op::sqrt)));
    for (int k = 0; k < info(p.nodes[n].code).arity; ++k) stack.push_back(p.nodes[n].args[k]);
  }
  if (exact) return 0;
  return p.nodes[id].type == dtype::f16 ? 1.0 / 256 : 1.0 / 32768;
}

inline double element(const tensor& t, int64_t i) {
  switch (t.type) {
    case dtype::f32: return t.as<float>()[i];
    case dtype::f16: return sem::f16_bits_to_f32(t.as<uint16_t>()[i]);
    case dtype::i32: return t.as<int32_t>()[i];
    case dtype::u32: return t.as<uint32_t>()[i];
    case dtype::boolean: return t.as<uint32_t>()[i];
  }
  return 0;
}

struct mismatch_report {
  int64_t mismatches = 0;
  int64_t bool_mismatches = 0;
  std::string first;
};

// Compares a backend's output with the reference. Bool/int outputs must match exactly (and bools
// must be stored as 0 or 1); floats bitwise (NaN by class) or within `tol`.
inline void compare(const tensor& want, const tensor& got, double tol, const std::string& what, mismatch_report& r) {
  if (want.type != got.type || want.shape != got.shape) {
    ++r.mismatches;
    if (r.first.empty()) r.first = what + ": dtype/shape differ";
    return;
  }
  for (int64_t i = 0; i < want.size(); ++i) {
    bool ok;
    if (want.type == dtype::boolean) ok = got.as<uint32_t>()[i] == want.as<uint32_t>()[i];
    else if (!is_float(want.type)) ok = element(got, i) == element(want, i);
    else {
      double w = element(want, i), g = element(got, i);
      if (std::isnan(w) || std::isnan(g)) ok = std::isnan(w) && std::isnan(g);
      else if (tol == 0) ok = want.type == dtype::f32 ? got.as<uint32_t>()[i] == want.as<uint32_t>()[i] : got.as<uint16_t>()[i] == want.as<uint16_t>()[i];
      else if (std::isinf(w) || std::isinf(g)) ok = w == g || (std::fabs(w) > 1e38 && std::fabs(g) > 1e38 && (w > 0) == (g > 0));
      else ok = std::fabs(w - g) <= tol * std::fabs(w) + 1e-37 + (want.type == dtype::f16 ? 6e-8 : 0);
    }
    if (!ok) {
      ++r.mismatches;
      if (want.type == dtype::boolean) ++r.bool_mismatches;
      if (r.first.empty()) {
        std::ostringstream os;
        os.precision(9);
        os << what << "[" << i << "]: reference " << element(want, i) << ", backend " << element(got, i);
        r.first = os.str();
      }
    }
  }
}

// Runs `p` on the backend and the interpreter and compares every output.
inline mismatch_report check(const runner& run, const program& p, const std::vector<tensor>& inputs) {
  auto want = interpret(p, inputs);
  auto got = run(p, inputs);
  mismatch_report r;
  if (got.size() != want.size()) {
    r.mismatches = 1;
    r.first = "output count differs";
    return r;
  }
  for (size_t o = 0; o < want.size(); ++o)
    compare(want[o], got[o], tolerance(p, p.outputs[o].node), p.name + "." + p.outputs[o].name, r);
  return r;
}

}  // namespace concord::testing
