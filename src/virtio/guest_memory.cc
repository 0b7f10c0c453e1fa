// SPDX-License-Identifier: Apache-2.0
// guest_memory.cc: GuestMemory region bookkeeping and MemfdRegion (memfd_create + shared mmap), the
// guest memory two processes can share.
#include "ioasid/guest_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <new>
#include <utility>

namespace ioasid::virtio {

Result<void> GuestMemory::add_region(const GuestRegion& r) {
  if (r.size == 0 || r.host == nullptr || r.gpa > ~std::uint64_t{0} - (r.size - 1)) {
    return fail(Errc::invalid_argument);
  }
  const std::uint64_t last = r.gpa + (r.size - 1);
  for (const GuestRegion& o : regions_) {
    const std::uint64_t olast = o.gpa + (o.size - 1);
    if (r.gpa <= olast && o.gpa <= last) return fail(Errc::invalid_argument);
  }
  if (regions_.size() >= kMaxRegions) return fail(Errc::exhausted);
  try {
    regions_.push_back(r);
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
  return {};
}

Result<MemfdRegion> MemfdRegion::create(std::uint64_t size, const char* name) {
  if (size == 0) return fail(Errc::invalid_argument);
  const auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  size = (size + page - 1) / page * page;
  const int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return fail(Errc::io_error);
  // Sealed against shrinking: a process the fd is shared with cannot truncate the memory under a
  // mapping (the next access would be SIGBUS in every process that maps it).
  if (ftruncate(fd, static_cast<off_t>(size)) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    close(fd);
    return fail(Errc::io_error);
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return fail(Errc::io_error);
  }
  return MemfdRegion(fd, static_cast<std::byte*>(p), size);
}

Result<MemfdRegion> MemfdRegion::map(int fd, std::uint64_t size) {
  if (size == 0) return fail(Errc::invalid_argument);
  const int own = dup(fd);
  if (own < 0) return fail(Errc::io_error);
  // A file shorter than the mapping would turn accesses past its end into SIGBUS.
  struct stat st;
  if (fstat(own, &st) != 0) {
    close(own);
    return fail(Errc::io_error);
  }
  if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) < size) {
    close(own);
    return fail(Errc::invalid_argument);
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, own, 0);
  if (p == MAP_FAILED) {
    close(own);
    return fail(Errc::io_error);
  }
  return MemfdRegion(own, static_cast<std::byte*>(p), size);
}

MemfdRegion::MemfdRegion(MemfdRegion&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

MemfdRegion& MemfdRegion::operator=(MemfdRegion&& o) noexcept {
  if (this != &o) {
    release();
    fd_ = std::exchange(o.fd_, -1);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

MemfdRegion::~MemfdRegion() { release(); }

void MemfdRegion::release() noexcept {
  if (data_ != nullptr) munmap(data_, size_);
  if (fd_ >= 0) close(fd_);
  data_ = nullptr;
  fd_ = -1;
  size_ = 0;
}

}  // namespace ioasid::virtio
