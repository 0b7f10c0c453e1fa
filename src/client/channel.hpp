// SPDX-License-Identifier: Apache-2.0
// channel.hpp: the connection machinery of the ioasidd client library (include/ioasid/client.hpp):
// one Unix socket to the daemon, HELLO, the session (OPEN_SESSION / RESUME), blocking request /
// reply exchanges with a per-call deadline, and reconnection with capped, jittered exponential
// backoff that resumes the session and resends every request in flight with its original id.
//
// Pipelining: threads that call() at the same time share the connection with one request each in
// flight (up to the daemon's HELLO max_in_flight, at most kMaxPipelined; more callers wait for a
// slot). Whoever needs a reply and finds nobody reading becomes the reader: it receives for
// everyone and hands each reply to its caller by request id, then passes the role on. At most one
// thread writes and one reads the socket at a time, outside the mutex; a broken connection is
// shut down at once (waking both) and closed by the last of them. Connecting and the session
// handshake run under the mutex, with nothing else in flight. A single caller costs what it did
// before pipelining: one send and one blocking recv per request.
//
// Thread-safety: every member function may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "broker/proto.hpp"
#include "ioasid/client.hpp"

namespace ioasid::client_detail {

class Channel {
 public:
  // Requests one channel keeps in flight at most: well inside the daemon's window of stored
  // replies (256 per session), so that every retry after a reconnect finds its answer.
  static constexpr std::uint32_t kMaxPipelined = 32;

  struct Config {
    std::string path;
    std::uint64_t features = 0;
    bool session = false;  // open / resume a VM session on every connection
    std::uint64_t vm_token = 0;
    std::uint32_t quota = 0;
    std::optional<ResumeToken> resume;
    std::chrono::milliseconds timeout{0};
    std::chrono::milliseconds backoff_initial{10};
    std::chrono::milliseconds backoff_max{1000};
    // false: start() gives up at once when connect() fails (nothing listens, or the socket's
    // mode refuses us) instead of retrying until the timeout.
    bool retry_connect = true;
  };
  explicit Channel(Config config);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Connects (and opens the session) with retries until the timeout. Returns Errc{} or the error;
  // without retry_connect, a failed connect() is io_error, or permission_denied for EACCES/EPERM.
  Errc start();

  // Sends req and hands its reply (success or error status) to use(), on the calling thread and
  // outside the channel's lock: list bodies view a buffer of this call and are valid only during
  // use(). Returns the transport error (timed_out; not_found once the session is lost) without
  // calling use().
  Errc call(const broker::Request& req, const std::function<void(const broker::Reply&)>& use);

  [[nodiscard]] ResumeToken token() const;
  [[nodiscard]] bool resumed() const;
  [[nodiscard]] std::uint32_t grace() const;
  [[nodiscard]] std::uint64_t reconnects() const;
  // The daemon's HELLO reply on the current (or last) connection.
  [[nodiscard]] broker::HelloReply hello() const;
  // After CLOSE_SESSION: no session any more.
  void forget_session();

 private:
  using Clock = std::chrono::steady_clock;
  // One call in flight: its reply is handed over here by whoever reads it.
  struct Waiter {
    std::uint64_t sent_on = 0;  // the connection (generation) the request went out on; 0: not yet
    bool done = false;
    std::vector<std::byte> frame;  // the reply frame
    std::condition_variable cv;    // its reply arrived, or a role it may need is free
    static bool needs_writer(const Waiter& w, std::uint64_t generation) {
      return !w.done && w.sent_on != generation;
    }
    static bool needs_reader(const Waiter& w, std::uint64_t generation) {
      return !w.done && w.sent_on == generation;
    }
  };
  Errc establish(Clock::time_point deadline);
  Errc connect_once(Clock::time_point deadline);
  // One request and its reply on the current connection. io_error: the connection broke or the
  // reply was malformed (the caller reconnects); timed_out.
  Errc exchange(std::uint64_t rid, const broker::Request& req, Clock::time_point deadline,
                broker::Reply* out);
  Errc write_all(std::span<const std::byte> bytes, Clock::time_point deadline,
                 std::size_t* written = nullptr);
  // One recv (after waiting for data until the deadline) appended to buffer[*len, size).
  Errc receive_into(std::vector<std::byte>& buffer, std::size_t* len, Clock::time_point deadline);
  // Hands every whole reply frame in prx_ to its waiter. The caller holds mu_.
  void deliver(std::uint64_t generation);
  // The connection cannot be trusted any more: shut down now, closed by close_if_unused().
  void mark_broken();
  void close_if_unused();
  // Waits on cv until notified or the deadline; false when the deadline passed.
  static bool wait(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                   Clock::time_point deadline);
  // Wakes every caller (the connection changed) / the first one that needs(*w) (a role is free).
  // The caller holds mu_.
  void wake_all();
  void wake_one(bool (*needs)(const Waiter&, std::uint64_t generation));
  [[nodiscard]] std::uint32_t slots() const;
  // Reads one reply frame into rx_ (its header in *header). io_error: the connection broke, the
  // header is malformed or not a reply, or more than one frame arrived.
  Errc read_frame(Clock::time_point deadline, broker::Header* header);
  // The next backoff wait (full jitter), or nothing when the deadline has passed; doubles *backoff.
  // Uses rng_: called under mu_.
  std::optional<std::chrono::milliseconds> next_backoff(std::chrono::milliseconds* backoff,
                                                        Clock::time_point deadline);
  bool sleep_backoff(std::chrono::milliseconds* backoff, Clock::time_point deadline);
  // Sleeps the next backoff with lock released; false when the deadline has passed.
  bool backoff_wait(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds* backoff,
                    Clock::time_point deadline);
  void drop();
  Clock::time_point deadline_from_now() const;

  Config cfg_;
  mutable std::mutex mu_;
  int fd_ = -1;
  bool have_session_ = false;  // a session was opened; reconnects resume it
  bool lost_ = false;          // the session is gone (not resumable)
  bool resumed_ = false;
  ResumeToken token_{};
  std::uint32_t grace_ = 0;
  std::uint64_t next_rid_ = 0;
  std::uint64_t open_rid_ = 0;  // OPEN_SESSION's id, kept across its retries (exactly-once)
  bool open_sent_ = false;      // an OPEN_SESSION was sent and its answer not received
  std::uint64_t connects_ = 0;
  int connect_errno_ = 0;  // errno of the last failed connect(), 0 after a successful one
  broker::HelloReply hello_{};
  std::vector<std::byte> rx_;  // kMaxFrame bytes, rx_len_ of them received
  std::size_t rx_len_ = 0;
  std::int64_t rcvtimeo_ms_ = 0;  // SO_RCVTIMEO of the current socket; 0: none
  std::minstd_rand rng_;
  // Pipelining (under mu_).
  std::condition_variable slot_cv_;           // a slot is free (callers beyond slots() wait here)
  std::map<std::uint64_t, Waiter*> waiters_;  // by request id
  std::uint64_t generation_ = 0;              // connections made; a Waiter's sent_on refers to one
  bool reading_ = false;                      // a thread receives on fd_ outside the lock
  bool writing_ = false;                      // a thread sends on fd_ outside the lock
  bool establishing_ = false;                 // a thread connects (or waits out its backoff)
  bool broken_ = false;                       // fd_ is shut down, to be closed when unused
  std::vector<std::byte> prx_;  // the reader's buffer: 2 * kMaxFrame, prx_len_ of them received
  std::size_t prx_len_ = 0;
};

}  // namespace ioasid::client_detail
