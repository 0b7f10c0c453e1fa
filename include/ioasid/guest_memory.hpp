// SPDX-License-Identifier: Apache-2.0
// guest_memory.hpp: ioasid::virtio::GuestMemory, a guest's physical memory as the device side of a
// transport sees it: a few regions (guest-physical base, size, host pointer), and bounds-checked,
// overflow-safe translation of guest-physical ranges to host pointers.
//
// The regions can be plain host buffers (tests, in-process guests) or a shared mapping of a memfd
// that another process (the guest, or the VMM) maps too (MemfdRegion). Nothing here trusts a
// guest-supplied address or length: every access checks that [gpa, gpa + len) lies inside one
// region, without overflow, before touching memory.
//
// Synopsis
//   GuestMemory mem;
//   mem.add_region({.gpa = 0x1000'0000, .size = buf.size(), .host = buf.data()});
//   std::byte* p = mem.translate(0x1000'0010, 16);   // nullptr when not entirely inside a region
//   bool ok = mem.read(0x1000'0010, out_span);        // false, nothing copied, when out of bounds
//
// Thread-safety: add_region is setup-time only (not concurrent with anything). translate, read and
// write are const and safe from any thread; the bytes behind them belong to the guest, which may
// change them at any time (callers copy what they validate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "ioasid/errc.hpp"
#include "ioasid/export.h"

namespace ioasid::virtio {

// One contiguous piece of guest-physical memory, [gpa, gpa + size), backed by host memory at host.
struct GuestRegion {
  std::uint64_t gpa = 0;
  std::uint64_t size = 0;
  std::byte* host = nullptr;
};

class IOASID_API GuestMemory {
 public:
  // At most this many regions (a guest's RAM layout is a handful of slots).
  static constexpr std::size_t kMaxRegions = 16;

  // Adds a region. Returns: invalid_argument (size 0, null host, gpa + size overflows 2^64, or it
  // overlaps an existing region), exhausted (kMaxRegions reached).
  Result<void> add_region(const GuestRegion& r);

  // The host pointer of [gpa, gpa + len), or nullptr unless the range is entirely inside one
  // region. len 0 is valid inside a region (the pointer of gpa). Overflow-safe for any inputs.
  [[nodiscard]] std::byte* translate(std::uint64_t gpa, std::uint64_t len) const noexcept {
    for (const GuestRegion& r : regions_) {
      if (gpa < r.gpa) continue;
      const std::uint64_t off = gpa - r.gpa;
      if (off >= r.size) continue;
      if (len > r.size - off) return nullptr;  // regions never overlap: no other can hold it
      return r.host + off;
    }
    return nullptr;
  }

  // Copies guest bytes out / in. Returns false (nothing copied) when out of bounds.
  [[nodiscard]] bool read(std::uint64_t gpa, std::span<std::byte> out) const noexcept {
    const std::byte* p = translate(gpa, out.size());
    if (p == nullptr) return false;
    if (!out.empty()) std::memcpy(out.data(), p, out.size());
    return true;
  }
  [[nodiscard]] bool write(std::uint64_t gpa, std::span<const std::byte> in) const noexcept {
    std::byte* p = translate(gpa, in.size());
    if (p == nullptr) return false;
    if (!in.empty()) std::memcpy(p, in.data(), in.size());
    return true;
  }

  [[nodiscard]] std::span<const GuestRegion> regions() const noexcept { return regions_; }

 private:
  std::vector<GuestRegion> regions_;
};

// A memfd (memfd_create) of a given size mapped shared in this process: guest memory that another
// process can map too (pass fd() over fork or SCM_RIGHTS, then MemfdRegion::map). Closing and
// unmapping happen in the destructor.
class IOASID_API MemfdRegion {
 public:
  // Creates a memfd of size bytes (rounded up to the page size), sealed against shrinking (so no
  // process it is shared with can truncate it under a mapping), and maps it.
  // Returns: invalid_argument (size 0), io_error (memfd_create, ftruncate, sealing or mmap failed).
  static Result<MemfdRegion> create(std::uint64_t size, const char* name = "ioasid-guest");
  // Maps an existing memfd (dups fd; the caller keeps its own). Returns: invalid_argument (size 0,
  // or the file is shorter than size: accesses past its end would raise SIGBUS), io_error (dup,
  // fstat or mmap failed).
  static Result<MemfdRegion> map(int fd, std::uint64_t size);

  MemfdRegion(MemfdRegion&& o) noexcept;
  MemfdRegion& operator=(MemfdRegion&& o) noexcept;
  MemfdRegion(const MemfdRegion&) = delete;
  MemfdRegion& operator=(const MemfdRegion&) = delete;
  ~MemfdRegion();

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  // The region at guest-physical gpa.
  [[nodiscard]] GuestRegion at(std::uint64_t gpa) const noexcept { return {gpa, size_, data_}; }

 private:
  MemfdRegion(int fd, std::byte* data, std::uint64_t size) noexcept
      : fd_(fd), data_(data), size_(size) {}
  void release() noexcept;
  int fd_ = -1;
  std::byte* data_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace ioasid::virtio
