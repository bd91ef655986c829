// The one op list. CONCORD_OPS(X) expands X(name, arity, kind, exact) per op; it generates the
// op enum, the names, the interpreter dispatch and every emitter's table (each with a
// static_assert on its size). `exact` = the result is bit-identical on every backend (else the
// tolerance in semantics.hpp applies).
//   kind: leaf | unary | binary | compare | logic | select | index | reduce | pool | contract
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

#define CONCORD_OPS(X)                  \
  X(input, 0, leaf, true)               \
  X(constant, 0, leaf, true)            \
  X(iota, 0, leaf, true)                \
  X(cast, 1, unary, true)               \
  X(neg, 1, unary, true)                \
  X(abs, 1, unary, true)                \
  X(sqrt, 1, unary, false)              \
  X(exp, 1, unary, false)               \
  X(log, 1, unary, false)               \
  X(tanh, 1, unary, false)              \
  X(is_nan, 1, unary, true)             \
  X(logical_not, 1, logic, true)        \
  X(add, 2, binary, true)               \
  X(sub, 2, binary, true)               \
  X(mul, 2, binary, true)               \
  X(div, 2, binary, false)              \
  X(min, 2, binary, true)               \
  X(max, 2, binary, true)               \
  X(lt, 2, compare, true)               \
  X(le, 2, compare, true)               \
  X(gt, 2, compare, true)               \
  X(ge, 2, compare, true)               \
  X(eq, 2, compare, true)               \
  X(ne, 2, compare, true)               \
  X(logical_and, 2, logic, true)        \
  X(logical_or, 2, logic, true)         \
  X(logical_xor, 2, logic, true)        \
  X(select, 3, select, true)            \
  X(reshape, 1, index, true)            \
  X(expand, 1, index, true)             \
  X(reduce_sum, 1, reduce, true)        \
  X(reduce_max, 1, reduce, true)        \
  X(reduce_min, 1, reduce, true)        \
  X(reduce_mean, 1, reduce, true)       \
  X(reduce_any, 1, reduce, true)        \
  X(reduce_all, 1, reduce, true)        \
  X(pool_mean, 1, pool, true)           \
  X(pool_max, 1, pool, true)            \
  X(pool_min, 1, pool, true)            \
  X(matmul, 2, contract, true)

namespace concord {

enum class op_kind : uint8_t { leaf, unary, binary, compare, logic, select, index, reduce, pool, contract };

enum class op : uint8_t {
#define CONCORD_X(name, arity, kind, exact) name,
  CONCORD_OPS(CONCORD_X)
#undef CONCORD_X
};

struct op_info {
  std::string_view name;
  int arity;
  op_kind kind;
  bool exact;
};

inline constexpr std::array op_table = {
#define CONCORD_X(name, arity, kind, exact) op_info{#name, arity, op_kind::kind, exact},
    CONCORD_OPS(CONCORD_X)
#undef CONCORD_X
};
inline constexpr size_t op_count = op_table.size();

constexpr const op_info& info(op o) { return op_table[static_cast<size_t>(o)]; }
constexpr std::string_view op_name(op o) { return info(o).name; }

// Ops whose output is computed by a loop over other elements: they become their own kernel stage.
constexpr bool is_stage_root(op o) {
  op_kind k = info(o).kind;
  return k == op_kind::reduce || k == op_kind::pool || k == op_kind::contract;
}

}  // namespace concord
