// concord scalar semantics: the single definition the interpreter, constant folding and every
// emitter follow (docs/semantics.md is the long form). Semantics version: CONCORD_SEMANTICS_VERSION.
//
// Floats (f32; f16 computes in f32, see types.hpp)
//   - Denormals: flush everywhere. Every f32 value loaded from memory and every f32 arithmetic
//     result whose exponent field is 0 becomes a zero of the same sign. Comparisons therefore see
//     +-smallest denormal as +-0 on every backend (NVIDIA Vulkan flushes and cannot be told not to).
//   - add, sub, mul: IEEE round-to-nearest-even, then flush; never contracted into FMA.
//   - div, sqrt: correctly rounded on CPU and HIP; Vulkan allows 2.5 ulp (div) / 3 ulp (sqrt).
//   - exp, log, tanh: within 2^-15 relative of the exact value (tests use this bound; Vulkan's exp
//     is (3 + 2|x|) ulp, under 2^-15 relative for |x| <= 88).
//   - Comparisons < <= > >= == are IEEE ordered: false if either side is NaN; != is true then.
//     -0 == +0. -inf < every finite < +inf.
//   - min/max: NaN if either operand is NaN; min(-0,+0) = -0, max(-0,+0) = +0.
//   - abs, neg: sign-bit operations (abs(-0) = +0, neg(NaN) is NaN).
//   - NaN payloads are unspecified; tests compare NaN by class.
//   - step(x) is defined as x > 0 (a bool); nothing is built from step-like arithmetic.
// Integers
//   - i32/u32 add, sub, mul, neg wrap modulo 2^32. abs(INT_MIN) = INT_MIN.
//   - div truncates toward zero; x / 0 = 0; INT_MIN / -1 = INT_MIN.
// Casts (explicit only)
//   - float -> int truncates toward zero, saturates at the type's range, NaN -> 0.
//   - int -> float rounds to nearest even. i32 <-> u32 reinterpret the bits.
//   - number -> bool is (x != 0): NaN -> true, -0 and denormals -> false. bool -> number is 0/1.
//   - f32 -> f16 rounds to nearest even, overflow -> inf, NaN -> NaN; f16 -> f32 is exact.
// Reductions run in index order with an f32 accumulator: sum starts at -0, max at -inf, min at
//   +inf; mean = sum * fl32(1/count) (a multiply, identical on every backend).
// select(c, a, b) yields a where c is true, else b; the other operand's value is not observed.
// Softmax of an all-masked attention row is defined as output 0 (sum 0, never NaN).
#pragma once
#include <concord/types.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#define CONCORD_SEMANTICS_VERSION 1

namespace concord::sem {

inline uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
inline float from_bits(uint32_t u) { return std::bit_cast<float>(u); }

inline float ftz(float f) {
  uint32_t u = bits(f);
  return (u & 0x7f800000u) == 0u ? from_bits(u & 0x80000000u) : f;
}
inline bool is_nan(double x) { return x != x; }

// Rounds a double to f32 (nearest even, gradual underflow), then flushes.
inline double round_f32(double x) { return ftz(static_cast<float>(x)); }

inline uint16_t f32_to_f16_bits(float f) {
  uint32_t x = bits(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (ax >= 0x38800000u) return static_cast<uint16_t>(sign | ((ax + 0xc8000fffu + ((ax >> 13) & 1u)) >> 13));
  if (ax <= 0x33000000u) return static_cast<uint16_t>(sign);
  uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - e;
  uint32_t r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (r & 1u) != 0u)) r += 1u;
  return static_cast<uint16_t>(sign | r);
}
inline float f16_bits_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t{h} & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 31u) return from_bits(sign | 0x7f800000u | (m << 13));
  if (e == 0u) return from_bits(sign | bits(static_cast<float>(m) * 5.9604644775390625e-8f));
  return from_bits(sign | ((e + 112u) << 23) | (m << 13));
}
// Rounds to f16 precision through f32 (the f32 step is exact-or-innocuous for + - * / sqrt).
inline double round_f16(double x) { return f16_bits_to_f32(f32_to_f16_bits(ftz(static_cast<float>(x)))); }

inline double round_to(dtype t, double x) {
  switch (t) {
    case dtype::f32: return round_f32(x);
    case dtype::f16: return round_f16(x);
    case dtype::i32: return static_cast<double>(static_cast<int32_t>(static_cast<uint32_t>(static_cast<int64_t>(x))));
    case dtype::u32: return static_cast<double>(static_cast<uint32_t>(static_cast<int64_t>(x)));
    case dtype::boolean: return x != 0 ? 1.0 : 0.0;
  }
  return x;
}

inline double fmin_sem(double a, double b) {
  if (is_nan(a) || is_nan(b)) return std::numeric_limits<double>::quiet_NaN();
  if (a < b || (a == b && std::signbit(a))) return a;
  return b;
}
inline double fmax_sem(double a, double b) {
  if (is_nan(a) || is_nan(b)) return std::numeric_limits<double>::quiet_NaN();
  if (a > b || (a == b && !std::signbit(a))) return a;
  return b;
}

inline double cast_value(dtype from, dtype to, double x) {
  if (to == dtype::boolean) return (x != 0 || is_nan(x)) ? 1.0 : 0.0;
  if (is_float(to)) return round_to(to, x);
  if (is_float(from)) {
    if (is_nan(x)) return 0;
    double t = std::trunc(x) + 0.0;  // integers have no -0
    if (to == dtype::i32) return std::clamp(t, -2147483648.0, 2147483647.0);
    return std::clamp(t, 0.0, 4294967295.0);
  }
  return round_to(to, x);  // int/bool -> int: reinterpret modulo 2^32
}

inline int64_t idiv(dtype t, int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (t == dtype::i32 && a == -2147483648LL && b == -1) return a;
  return a / b;
}

}  // namespace concord::sem
