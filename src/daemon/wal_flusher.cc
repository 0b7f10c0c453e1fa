// SPDX-License-Identifier: Apache-2.0
// wal_flusher.cc: the flusher thread of ioasidd's WAL (wal_flusher.hpp).
#include "daemon/wal_flusher.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ioasid::daemon {
namespace {

std::int64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

WalFlusher::WalFlusher(std::string wal_path, std::string dir)
    : wal_path_(std::move(wal_path)), dir_(std::move(dir)) {}

WalFlusher::~WalFlusher() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  if (wal_fd_ >= 0) ::close(wal_fd_);
  if (event_fd_ >= 0) ::close(event_fd_);
}

bool WalFlusher::start() {
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) return false;
  thread_ = std::thread([this] { loop(); });
  return true;
}

void WalFlusher::request(std::uint64_t epoch) {
  {
    std::lock_guard lock(mu_);
    if (epoch <= requested_) return;
    if (requested_ == flushed_) oldest_request_ns_ = now_ns();
    requested_ = epoch;
  }
  wake_.notify_one();
}

bool WalFlusher::sync_file(std::string* error) {
  if (wal_fd_ < 0) {
    wal_fd_ = ::open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (wal_fd_ < 0) {
      *error = errno_text("open " + wal_path_);
      return false;
    }
    // The file's name: flushed once per file, after which only its contents change.
    const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 || fsync(dir_fd) != 0) {
      *error = errno_text("fsync " + dir_);
      if (dir_fd >= 0) ::close(dir_fd);
      return false;
    }
    ::close(dir_fd);
  }
  while (fdatasync(wal_fd_) != 0) {
    if (errno == EINTR) continue;
    *error = errno_text("fdatasync " + wal_path_);
    return false;
  }
  return true;
}

void WalFlusher::loop() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stop_ || (requested_ > flushed_ && !failed_); });
    if (stop_) return;
    // Read under the lock, after the commit that made the request returned: the flush that
    // starts below covers it.
    const std::uint64_t target = requested_;
    lock.unlock();
    std::string error;
    bool ok;
    {
      std::lock_guard io(io_mu_);
      ok = sync_file(&error);
    }
    lock.lock();
    if (ok) {
      if (target > flushed_) flushed_ = target;
      ++flushes_;
      if (requested_ > flushed_) oldest_request_ns_ = now_ns();
    } else {
      failed_ = true;
      error_ = std::move(error);
    }
    const std::uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
  }
}

bool WalFlusher::flush_now(std::uint64_t epoch) {
  {
    std::lock_guard lock(mu_);
    if (failed_) return false;
  }
  std::string error;
  bool ok;
  {
    std::lock_guard io(io_mu_);
    ok = sync_file(&error);
  }
  std::lock_guard lock(mu_);
  if (!ok) {
    failed_ = true;
    error_ = std::move(error);
    return false;
  }
  ++flushes_;
  if (epoch > flushed_) flushed_ = epoch;
  if (epoch > requested_) requested_ = epoch;
  return true;
}

void WalFlusher::acknowledge() {
  std::uint64_t n = 0;
  (void)!::read(event_fd_, &n, sizeof n);
}

bool WalFlusher::busy() const {
  std::lock_guard lock(mu_);
  return requested_ > flushed_;
}

std::uint64_t WalFlusher::flushed() const {
  std::lock_guard lock(mu_);
  return flushed_;
}

bool WalFlusher::pending(std::int64_t* since_ns) const {
  std::lock_guard lock(mu_);
  if (requested_ <= flushed_) return false;
  *since_ns = oldest_request_ns_;
  return true;
}

bool WalFlusher::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

std::string WalFlusher::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

std::uint64_t WalFlusher::flushes() const {
  std::lock_guard lock(mu_);
  return flushes_;
}

}  // namespace ioasid::daemon
