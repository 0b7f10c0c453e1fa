// SPDX-License-Identifier: Apache-2.0
// capi_util.hpp: what every translation unit of the C ABI (capi/ioasid_c.cc, capi/virtio_c.cc)
// shares: errors to negative errno values, the catch-everything boundary, and the size rules of
// argument structs (input: unknown nonzero bytes are -E2BIG) and of output structs (fields past
// the caller's size are not written, bytes past the library's fields are zeroed).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "ioasid/errc.hpp"

namespace ioasid::capi {

inline int neg(Errc e) noexcept { return -to_errno(guest_visible(e)); }

template <class T>
int status(const Result<T>& r) noexcept {
  return r ? 0 : neg(r.error());
}

// Runs f at the ABI boundary: no exception gets out.
template <class F>
int guarded(F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

// Checks the size of an input argument struct whose first version is first_size bytes and of
// which this library knows known_size: bytes beyond known_size must be zero.
inline int check_in_size(const void* arg, std::uint32_t size, std::size_t first_size,
                         std::size_t known_size) noexcept {
  if (size < first_size) return -EINVAL;
  const auto* bytes = static_cast<const unsigned char*>(arg);
  for (std::size_t i = known_size; i < size; ++i) {
    if (bytes[i] != 0) return -E2BIG;
  }
  return 0;
}

// Copies v (whose first member is `uint32_t size`, already set to the caller's size) to out, a
// caller struct of out_size bytes: fields past out_size are not written (a caller built against a
// shorter version), bytes past sizeof(T) are zeroed (a caller built against a longer one).
template <class T>
int write_sized_out(T* out, std::uint32_t out_size, const T& v, std::size_t first_size) noexcept {
  if (out_size < first_size) return -EINVAL;
  std::memcpy(out, &v, out_size < sizeof(T) ? out_size : sizeof(T));
  if (out_size > sizeof(T)) {
    std::memset(reinterpret_cast<char*>(out) + sizeof(T), 0, out_size - sizeof(T));
  }
  return 0;
}

}  // namespace ioasid::capi
