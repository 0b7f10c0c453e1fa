// SPDX-License-Identifier: Apache-2.0
// fsync_baseline.cc: the cost of one durable write per request (fsync_baseline.hpp).
#include "load/fsync_baseline.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sqlite3.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

namespace ioasid::load {

namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t ns_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// Runs op until duration has passed and at least 20 operations were done; op returns false on
// failure.
bool time_loop(DurableWriteCost* c, std::chrono::milliseconds duration,
               const std::function<bool(std::uint64_t)>& op) {
  const auto start = Clock::now();
  const auto until = start + duration;
  auto now = start;
  while (c->operations < 20 || now < until) {
    const auto t0 = Clock::now();
    if (!op(c->operations)) return false;
    now = Clock::now();
    c->latency.record(ns_between(t0, now));
    ++c->operations;
  }
  c->seconds = std::chrono::duration<double>(now - start).count();
  return true;
}

bool file_method(const std::string& path, bool append, std::chrono::milliseconds duration,
                 DurableWriteCost* c, std::string* error) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = fmt::format("{}: {}", path, std::strerror(errno));
    return false;
  }
  char block[4096];
  std::memset(block, 0x5A, sizeof block);
  bool ok = true;
  if (!append) {
    // Preallocate and flush once, so that the loop changes no metadata.
    ok = ::pwrite(fd, block, sizeof block, 0) == static_cast<ssize_t>(sizeof block) &&
         ::fsync(fd) == 0;
  }
  ok = ok && time_loop(c, duration, [&](std::uint64_t i) {
         block[0] = static_cast<char>(i);
         if (append) {
           return ::write(fd, block, sizeof block) == static_cast<ssize_t>(sizeof block) &&
                  ::fsync(fd) == 0;
         }
         return ::pwrite(fd, block, sizeof block, 0) == static_cast<ssize_t>(sizeof block) &&
                ::fdatasync(fd) == 0;
       });
  if (!ok) *error = fmt::format("{}: {}", path, std::strerror(errno));
  ::close(fd);
  ::unlink(path.c_str());
  return ok;
}

bool sqlite_method(const std::string& path, std::chrono::milliseconds duration, DurableWriteCost* c,
                   std::string* error) {
  sqlite3* db = nullptr;
  auto fail_with = [&](const char* what) {
    *error = fmt::format("{}: {}: {}", path, what, db ? sqlite3_errmsg(db) : "out of memory");
    return false;
  };
  bool ok = sqlite3_open(path.c_str(), &db) == SQLITE_OK;
  sqlite3_stmt* put = nullptr;
  ok = ok && sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) == SQLITE_OK &&
       sqlite3_exec(db, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr) == SQLITE_OK &&
       sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v BLOB)", nullptr,
                    nullptr, nullptr) == SQLITE_OK &&
       sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t(k, v) VALUES(?1, zeroblob(24))", -1, &put,
                          nullptr) == SQLITE_OK;
  if (!ok) {
    fail_with("open");
  } else {
    ok = time_loop(c, duration, [&](std::uint64_t i) {
      if (sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) return false;
      sqlite3_bind_int64(put, 1, static_cast<sqlite3_int64>(i % 1024));
      const bool step = sqlite3_step(put) == SQLITE_DONE;
      sqlite3_reset(put);
      return step && sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK;
    });
    if (!ok) fail_with("transaction");
  }
  sqlite3_finalize(put);
  sqlite3_close(db);
  for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((path + suffix).c_str());
  return ok;
}

}  // namespace

bool measure_durable_writes(const std::string& dir, std::chrono::milliseconds duration,
                            std::vector<DurableWriteCost>* out, std::string* error) {
  auto cost = [](const char* method, const char* what) {
    DurableWriteCost c;
    c.method = method;
    c.what = what;
    return c;
  };
  DurableWriteCost overwrite = cost("overwrite", "pwrite 4 KiB in place + fdatasync");
  DurableWriteCost append = cost("append", "write 4 KiB at the end + fsync");
  DurableWriteCost sqlite = cost("sqlite", "SQLite WAL, synchronous=FULL, one transaction per row");
  if (!file_method(dir + "/fsync-overwrite", false, duration, &overwrite, error) ||
      !file_method(dir + "/fsync-append", true, duration, &append, error) ||
      !sqlite_method(dir + "/fsync-sqlite.sqlite3", duration, &sqlite, error)) {
    return false;
  }
  for (DurableWriteCost* c : {&overwrite, &append, &sqlite}) {
    c->rates = {c->per_second()};
    out->push_back(std::move(*c));
  }
  return true;
}

void keep_faster(std::vector<DurableWriteCost>* kept, std::vector<DurableWriteCost> later) {
  if (kept->empty()) {
    *kept = std::move(later);
    return;
  }
  for (DurableWriteCost& l : later) {
    for (DurableWriteCost& k : *kept) {
      if (k.method != l.method) continue;
      std::vector<double> rates = k.rates;
      rates.insert(rates.end(), l.rates.begin(), l.rates.end());
      if (l.per_second() > k.per_second()) k = std::move(l);
      k.rates = std::move(rates);
    }
  }
}

std::string filesystem_type(const std::string& path) {
  struct statfs s {};
  if (::statfs(path.c_str(), &s) != 0) return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    case 0x794C7630:
      return "overlayfs";
    case 0x2FC12FC1:
      return "zfs";
    case 0x6969:
      return "nfs";
    default:
      return fmt::format("0x{:x}", static_cast<unsigned long>(s.f_type));
  }
}

}  // namespace ioasid::load
