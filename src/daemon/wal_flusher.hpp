// SPDX-License-Identifier: Apache-2.0
// wal_flusher.hpp: makes ioasidd's committed transactions durable on a thread of their own, so
// that the event loop executes the next batch of requests while the previous one is flushed.
//
// The store runs SQLite with synchronous=NORMAL: COMMIT writes the transaction's WAL frames and
// returns without flushing them (checkpoints still flush the WAL before and the database after
// copying). The daemon numbers its commits (epochs); after each one it calls request(epoch), and
// this thread calls fdatasync() on its own descriptor of the same WAL file. An fdatasync that
// starts after a COMMIT returned covers every frame that COMMIT wrote, so when flushed() reaches
// an epoch, every change committed up to it is on stable storage and its replies may go out.
// Requests that arrive while a flush runs are covered together by the next one.
//
// The WAL file is opened at the first flush (it exists once a transaction has committed) and its
// directory is flushed once then, so that the file's name is durable too. The descriptor is kept:
// SQLite deletes or replaces the WAL only when the database is closed or leaves WAL mode, which
// the daemon never does while it serves. (A link-count check before every flush was measured: an
// fstat() there added about 70 us to each flush on this machine's ext4, bench/README.md.)
//
// Thread-safety: request(), flushed(), flush_now() and the accessors may be called from any
// thread; the event loop polls event_fd() and calls acknowledge() when it is readable.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace ioasid::daemon {

class WalFlusher {
 public:
  // wal_path: the database's "-wal" file; dir: the directory that holds it.
  WalFlusher(std::string wal_path, std::string dir);
  ~WalFlusher();  // stops the thread after the flush in progress (pending requests are dropped)
  WalFlusher(const WalFlusher&) = delete;
  WalFlusher& operator=(const WalFlusher&) = delete;

  // Starts the thread. Returns false (errno set) if the eventfd cannot be created.
  bool start();

  // Every commit up to epoch (increasing) is to be flushed.
  void request(std::uint64_t epoch);
  // Flushes on the calling thread whatever was committed until now (startup, shutdown), which
  // makes every epoch up to epoch durable. Returns false on failure (error() says why).
  bool flush_now(std::uint64_t epoch);

  // Readable when a flush completed (or failed); acknowledge() drains it.
  [[nodiscard]] int event_fd() const noexcept { return event_fd_; }
  void acknowledge();

  // A requested flush has not completed yet.
  [[nodiscard]] bool busy() const;
  // The highest epoch known durable.
  [[nodiscard]] std::uint64_t flushed() const;
  // Epochs requested and not yet flushed exist, the oldest requested at this CLOCK_MONOTONIC ns.
  [[nodiscard]] bool pending(std::int64_t* since_ns) const;
  // A flush failed: the daemon must stop (what was committed but not flushed is in doubt).
  [[nodiscard]] bool failed() const;
  [[nodiscard]] std::string error() const;
  [[nodiscard]] std::uint64_t flushes() const;

 private:
  void loop();
  // Opens the WAL if needed and fdatasync()s it. Called with io_mu_ held.
  bool sync_file(std::string* error);

  const std::string wal_path_;
  const std::string dir_;
  int event_fd_ = -1;
  std::thread thread_;

  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable wake_;
  bool stop_ = false;
  std::uint64_t requested_ = 0;
  std::uint64_t flushed_ = 0;
  std::int64_t oldest_request_ns_ = 0;  // when the oldest unflushed request was made
  std::uint64_t flushes_ = 0;
  bool failed_ = false;
  std::string error_;

  std::mutex io_mu_;  // serializes sync_file() (the loop thread and flush_now())
  int wal_fd_ = -1;
};

}  // namespace ioasid::daemon
