// concord value types and host tensors.
//
// Storage in memory (every backend, and every exported kernel):
//   f32     IEEE binary32, 4 bytes
//   f16     IEEE binary16 bit pattern, 2 bytes; arithmetic happens in f32 and each f16 node's
//           result is rounded to f16 (round to nearest even)
//   i32/u32 two's complement / unsigned, 4 bytes
//   bool    a 32-bit word holding 0 or 1 (reads treat any non-zero word as true)
#pragma once
#include <concord/error.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace concord {

enum class dtype : uint8_t { f32, f16, i32, u32, boolean };

constexpr const char* dtype_name(dtype t) {
  switch (t) {
    case dtype::f32: return "f32";
    case dtype::f16: return "f16";
    case dtype::i32: return "i32";
    case dtype::u32: return "u32";
    case dtype::boolean: return "bool";
  }
  return "?";
}
constexpr size_t dtype_bytes(dtype t) { return t == dtype::f16 ? 2 : 4; }
constexpr bool is_float(dtype t) { return t == dtype::f32 || t == dtype::f16; }
constexpr bool is_integer(dtype t) { return t == dtype::i32 || t == dtype::u32; }
constexpr bool is_numeric(dtype t) { return t != dtype::boolean; }

// Type tags for the DSL (template parameters of expr<T>).
struct f32 { static constexpr dtype code = dtype::f32; };
struct f16 { static constexpr dtype code = dtype::f16; };
struct i32 { static constexpr dtype code = dtype::i32; };
struct u32 { static constexpr dtype code = dtype::u32; };
struct boolean { static constexpr dtype code = dtype::boolean; };

using shape_t = std::vector<int64_t>;

inline std::string to_string(const shape_t& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

// Element count; rejects empty tensors and sizes past 32-bit indexing (kernels index with u32).
inline int64_t checked_numel(const shape_t& s, const std::string& what) {
  if (s.empty()) throw shape_error("concord: " + what + " has rank 0; use shape {1} for a scalar");
  if (s.size() > 6) throw shape_error("concord: " + what + " has rank " + std::to_string(s.size()) + " > 6");
  int64_t n = 1;
  for (int64_t d : s) {
    if (d <= 0) throw shape_error("concord: " + what + " has empty or negative extent in shape " + to_string(s));
    if (n > (int64_t{1} << 31) / d)
      throw shape_error("concord: " + what + " shape " + to_string(s) + " has more than 2^31-1 elements (32-bit indexing)");
    n *= d;
  }
  if (n > (int64_t{1} << 31) - 1)
    throw shape_error("concord: " + what + " shape " + to_string(s) + " has more than 2^31-1 elements (32-bit indexing)");
  return n;
}

inline int64_t numel(const shape_t& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// The byte every backend fills unwritten buffers with: a large finite value in every type (f32
// 1.3e36, f16 61280, i32 / u32 2071690107, a bool word that is neither 0 nor 1), so an unwritten
// element fails any tolerance and is never taken for a NaN, a zero or a valid bool.
inline constexpr uint8_t poison_byte = 0x7B;

// A host tensor: dtype, shape and raw storage bytes in the layout above (row-major, contiguous).
struct tensor {
  dtype type = dtype::f32;
  shape_t shape;
  std::vector<uint8_t> bytes;

  tensor() = default;
  tensor(dtype t, shape_t s) : type(t), shape(std::move(s)) {
    bytes.resize(static_cast<size_t>(checked_numel(shape, "tensor")) * dtype_bytes(type));
  }
  int64_t size() const { return numel(shape); }
  template <class T>
  T* as() { return reinterpret_cast<T*>(bytes.data()); }
  template <class T>
  const T* as() const { return reinterpret_cast<const T*>(bytes.data()); }
  // Fills every byte with poison_byte so unwritten outputs are caught.
  void poison() { std::memset(bytes.data(), poison_byte, bytes.size()); }
};

}  // namespace concord
