// SPDX-License-Identifier: Apache-2.0
// channel.hpp: the connection machinery of the ioasidd client library (include/ioasid/client.hpp):
// one Unix socket to the daemon, HELLO, the session (OPEN_SESSION / RESUME), blocking request /
// reply exchanges with a per-call deadline, and reconnection with capped, jittered exponential
// backoff that resumes the session and resends the request with its original request id.
//
// Thread-safety: call() takes the channel's mutex; one request is in flight at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
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

  // Sends req and hands its reply (success or error status) to use(), under the channel's lock:
  // list bodies view the channel's buffer and are valid only during use(). Returns the transport
  // error (timed_out; not_found once the session is lost) without calling use().
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
  Errc establish(Clock::time_point deadline);
  Errc connect_once(Clock::time_point deadline);
  // One request and its reply on the current connection. io_error: the connection broke or the
  // reply was malformed (the caller reconnects); timed_out.
  Errc exchange(std::uint64_t rid, const broker::Request& req, Clock::time_point deadline,
                broker::Reply* out);
  Errc write_all(std::span<const std::byte> bytes, Clock::time_point deadline);
  // Reads one reply frame into rx_ (its header in *header). io_error: the connection broke, the
  // header is malformed or not a reply, or more than one frame arrived.
  Errc read_frame(Clock::time_point deadline, broker::Header* header);
  bool sleep_backoff(std::chrono::milliseconds* backoff, Clock::time_point deadline);
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
};

}  // namespace ioasid::client_detail
