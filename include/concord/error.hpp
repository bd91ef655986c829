// concord errors. Every rejected input or unavailable backend surfaces as one of these,
// with a message that names the offending shape, value, dtype or device. Nothing aborts.
#pragma once
#include <stdexcept>
#include <string>

namespace concord {

struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Bad graph or bad input: shape mismatch, wrong dtype, empty tensor, size overflow.
struct shape_error : error {
  using error::error;
};

// A backend cannot run here: no loader, no device, missing feature, no compiler.
// Tests turn this into a reported skip, never a pass.
struct backend_unavailable : error {
  using error::error;
};

// A backend was present but failed: compile error, launch failure, out of memory, device lost.
struct backend_error : error {
  using error::error;
};

}  // namespace concord
