// SPDX-License-Identifier: Apache-2.0
// channel.cc: the client library's connection, session and reconnection logic (channel.hpp).
#include "client/channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace ioasid::client_detail {

namespace b = ioasid::broker;
namespace bw = ioasid::wire::broker;

namespace {

std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

Channel::Channel(Config config)
    : cfg_(std::move(config)),
      // Request ids start from the wall clock so that a later process of the same VM (which
      // resumes the session) never reuses an id the daemon still holds a stored reply for.
      next_rid_(realtime_ns()),
      rx_(b::kMaxFrame),
      rng_(static_cast<std::uint32_t>(realtime_ns() ^ static_cast<std::uint64_t>(getpid()))),
      prx_(2 * b::kMaxFrame) {
  open_rid_ = ++next_rid_;
}

Channel::~Channel() { drop(); }

void Channel::drop() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  broken_ = false;
}

void Channel::mark_broken() {
  if (fd_ < 0 || broken_) return;
  broken_ = true;
  ::shutdown(fd_, SHUT_RDWR);  // a reader or writer blocked on it returns now
  close_if_unused();
}

void Channel::close_if_unused() {
  if (!broken_ || reading_ || writing_) return;
  drop();
  wake_all();  // whoever waited for the broken socket to be let go: one of them reconnects
}

bool Channel::wait(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                   Clock::time_point deadline) {
  if (deadline == Clock::time_point::max()) {
    cv.wait(lock);
    return true;
  }
  return cv.wait_until(lock, deadline) == std::cv_status::no_timeout || Clock::now() < deadline;
}

void Channel::wake_all() {
  for (auto& [rid, w] : waiters_) w->cv.notify_one();
  slot_cv_.notify_all();
}

void Channel::wake_one(bool (*needs)(const Waiter&, std::uint64_t generation)) {
  for (auto& [rid, w] : waiters_) {
    if (needs(*w, generation_)) {
      w->cv.notify_one();
      return;
    }
  }
}

std::uint32_t Channel::slots() const {
  return std::clamp<std::uint32_t>(hello_.max_in_flight, 1, kMaxPipelined);
}

Channel::Clock::time_point Channel::deadline_from_now() const {
  if (cfg_.timeout.count() <= 0) return Clock::time_point::max();
  return Clock::now() + cfg_.timeout;
}

ResumeToken Channel::token() const {
  std::lock_guard g(mu_);
  return token_;
}
bool Channel::resumed() const {
  std::lock_guard g(mu_);
  return resumed_;
}
std::uint32_t Channel::grace() const {
  std::lock_guard g(mu_);
  return grace_;
}
std::uint64_t Channel::reconnects() const {
  std::lock_guard g(mu_);
  return connects_ > 0 ? connects_ - 1 : 0;
}
b::HelloReply Channel::hello() const {
  std::lock_guard g(mu_);
  return hello_;
}
void Channel::forget_session() {
  std::lock_guard g(mu_);
  lost_ = true;
  mark_broken();
  wake_all();
}

bool Channel::backoff_wait(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds* backoff,
                           Clock::time_point deadline) {
  const auto wait = next_backoff(backoff, deadline);
  if (!wait) return false;
  lock.unlock();
  std::this_thread::sleep_for(*wait);
  lock.lock();
  return true;
}

bool Channel::sleep_backoff(std::chrono::milliseconds* backoff, Clock::time_point deadline) {
  const auto wait = next_backoff(backoff, deadline);
  if (!wait) return false;
  std::this_thread::sleep_for(*wait);
  return true;
}

std::optional<std::chrono::milliseconds> Channel::next_backoff(std::chrono::milliseconds* backoff,
                                                               Clock::time_point deadline) {
  const auto now = Clock::now();
  if (now >= deadline) return std::nullopt;
  // Full jitter in [backoff/2, backoff]: clients that lost the daemon together do not all come
  // back in the same millisecond.
  const auto half = std::max<std::int64_t>(1, backoff->count() / 2);
  std::uniform_int_distribution<std::int64_t> dist(half,
                                                   std::max<std::int64_t>(half, backoff->count()));
  auto wait = std::chrono::milliseconds(dist(rng_));
  if (deadline != Clock::time_point::max()) {
    wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                              std::chrono::milliseconds(1));
  }
  *backoff = std::min(cfg_.backoff_max, *backoff * 2);
  return wait;
}

Errc Channel::write_all(std::span<const std::byte> bytes, Clock::time_point deadline,
                        std::size_t* written) {
  std::size_t done = 0;
  struct Report {
    std::size_t* to;
    const std::size_t& done;
    ~Report() {
      if (to != nullptr) *to = done;
    }
  } report{written, done};
  while (done < bytes.size()) {
    const ssize_t n =
        ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int ms = -1;
      if (deadline != Clock::time_point::max()) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return Errc::timed_out;
        ms = static_cast<int>(std::min<std::int64_t>(left.count(), 1 << 30));
      }
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, ms) == 0) return Errc::timed_out;
      continue;
    }
    return Errc::io_error;
  }
  return Errc{};
}

Errc Channel::read_frame(Clock::time_point deadline, broker::Header* header) {
  rx_len_ = 0;
  while (true) {
    if (rx_len_ >= b::kHeaderSize) {
      auto h = b::decode_header(std::span<const std::byte>(rx_.data(), rx_len_));
      if (!h || !h->is_reply()) return Errc::io_error;
      if (rx_len_ >= h->frame_size()) {
        // One request is in flight: anything after its reply is a protocol violation.
        if (rx_len_ > h->frame_size()) return Errc::io_error;
        *header = *h;
        return Errc{};
      }
    }
    if (Errc e = receive_into(rx_, &rx_len_, deadline); e != Errc{}) return e;
  }
}

Errc Channel::receive_into(std::vector<std::byte>& buffer, std::size_t* len,
                           Clock::time_point deadline) {
  // A reply cannot be there before the daemon has had the request: wait first, then take
  // whatever has arrived in one recv (a whole small frame, usually). The wait is the blocking recv
  // itself, one system call per reply as for a plain blocking client, whenever it is bounded well
  // enough: without a deadline, or when the socket's receive timeout (SO_RCVTIMEO, the per-call
  // timeout, set at connect) ends no more than a millisecond after the deadline. Otherwise (a
  // retry after backoff used part of the call's time) poll waits for the rest of it.
  while (true) {
    bool polled = false;
    if (deadline != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return Errc::timed_out;
      polled = rcvtimeo_ms_ == 0 || left.count() + 1 < rcvtimeo_ms_;
      if (polled) {
        pollfd pf{fd_, POLLIN, 0};
        const int ready =
            ::poll(&pf, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1 << 30)));
        if (ready == 0) return Errc::timed_out;
        if (ready < 0) {
          if (errno == EINTR) continue;
          return Errc::io_error;
        }
      }
    }
    const ssize_t r =
        ::recv(fd_, buffer.data() + *len, buffer.size() - *len, polled ? MSG_DONTWAIT : 0);
    if (r > 0) {
      *len += static_cast<std::size_t>(r);
      return Errc{};
    }
    if (r == 0) return Errc::io_error;
    // EAGAIN: SO_RCVTIMEO expired (or, after poll, nothing after all); the deadline decides.
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    return Errc::io_error;
  }
}

Errc Channel::exchange(std::uint64_t rid, const b::Request& req, Clock::time_point deadline,
                       b::Reply* out) {
  const b::EncodedRequest enc = b::encode_request(rid, req);
  if (Errc e = write_all(enc.span(), deadline); e != Errc{}) return e;
  b::Header h;
  if (Errc e = read_frame(deadline, &h); e != Errc{}) return e;
  auto r = b::decode_reply(h, std::span<const std::byte>(rx_.data() + b::kHeaderSize, h.size));
  // A malformed reply, or an answer to another request, means the stream cannot be trusted.
  if (!r || h.request_id != rid || h.type != bw::to_u32(b::request_type(req))) {
    return Errc::io_error;
  }
  *out = *r;
  return Errc{};
}

Errc Channel::connect_once(Clock::time_point deadline) {
  sockaddr_un addr{};
  if (cfg_.path.empty() || cfg_.path.size() >= sizeof addr.sun_path) {
    return Errc::invalid_argument;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, cfg_.path.c_str(), cfg_.path.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Errc::io_error;
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    connect_errno_ = errno;
    drop();
    return Errc::io_error;
  }
  connect_errno_ = 0;
  // The socket stays blocking: a send is MSG_DONTWAIT (a full buffer waits in poll, bounded by
  // the deadline); a receive blocks for at most the per-call timeout (read_frame).
  rcvtimeo_ms_ = 0;
  if (cfg_.timeout.count() > 0) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(cfg_.timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>(cfg_.timeout.count() % 1000 * 1000);
    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0) {
      rcvtimeo_ms_ = cfg_.timeout.count();
    }
  }
  ++connects_;
  b::Reply r;
  if (Errc e =
          exchange(++next_rid_, b::HelloRequest{bw::kProtocolVersion, cfg_.features}, deadline, &r);
      e != Errc{}) {
    drop();
    return e;
  }
  if (r.status != 0) {
    drop();
    return r.error();
  }
  const auto& hello = std::get<b::HelloReply>(r.body);
  if ((hello.features & ~cfg_.features) != 0) {
    drop();
    return Errc::io_error;
  }
  hello_ = hello;
  return Errc{};
}

Errc Channel::establish(Clock::time_point deadline) {
  if (Errc e = connect_once(deadline); e != Errc{}) return e;
  if (!cfg_.session) return Errc{};
  b::Reply r;
  Errc e;
  const bool opening = !have_session_;
  // A retried OPEN_SESSION (same request id) gets the stored answer if the first one executed and
  // its reply was lost; while the daemon still holds that broken connection it answers exists.
  const bool open_retry = opening && open_sent_;
  if (opening) {
    open_sent_ = true;
    b::OpenSessionRequest o;
    o.vm_token = cfg_.vm_token;
    o.quota = cfg_.quota;
    o.resume = cfg_.resume;
    e = exchange(open_rid_, o, deadline, &r);
  } else {
    e = exchange(++next_rid_, b::ResumeRequest{cfg_.vm_token, token_}, deadline, &r);
  }
  if (e != Errc{}) {
    drop();
    return e;
  }
  if (opening) open_sent_ = false;  // answered: nothing of it is pending any more
  if (r.status != 0) {
    drop();
    const Errc err = r.error();
    // The daemon has not noticed yet that our previous connection is gone.
    if (err == Errc::exists && (!opening || open_retry)) return Errc::try_again;
    if (err == Errc::not_found && !opening) lost_ = true;
    return err;
  }
  const auto& s = std::get<b::SessionReply>(r.body);
  if (opening) {
    resumed_ = s.resumed;
    token_ = s.resume_token;
    grace_ = s.grace_seconds;
    have_session_ = true;
  }
  return Errc{};
}

void Channel::deliver(std::uint64_t generation) {
  std::size_t off = 0;
  while (prx_len_ - off >= b::kHeaderSize) {
    const auto bytes = std::span<const std::byte>(prx_.data() + off, prx_len_ - off);
    auto h = b::decode_header(bytes);
    if (!h || !h->is_reply()) {
      mark_broken();  // the stream cannot be trusted: every request in flight is resent
      wake_all();
      prx_len_ = 0;
      return;
    }
    if (bytes.size() < h->frame_size()) break;
    // A reply nobody waits for answers a call that timed out: dropped.
    if (auto it = waiters_.find(h->request_id);
        it != waiters_.end() && it->second->sent_on == generation && !it->second->done) {
      it->second->frame.assign(bytes.begin(), bytes.begin() + h->frame_size());
      it->second->done = true;
      it->second->cv.notify_one();
    }
    off += h->frame_size();
  }
  if (off > 0) {
    std::memmove(prx_.data(), prx_.data() + off, prx_len_ - off);
    prx_len_ -= off;
  }
}

Errc Channel::start() {
  std::lock_guard g(mu_);
  const auto deadline = deadline_from_now();
  auto backoff = cfg_.backoff_initial;
  // Resuming after a VMM restart: the daemon may not have seen the old process's connection close
  // yet and answers exists for a short while; a session held by a live connection answers it
  // for good, so this is retried for two seconds at most.
  const auto exists_until = Clock::now() + std::chrono::seconds(cfg_.resume ? 2 : 0);
  while (true) {
    const Errc e = establish(deadline);
    if (e == Errc{}) ++generation_;
    if (e == Errc{} || e == Errc::timed_out) return e;
    if (!cfg_.retry_connect && connect_errno_ != 0) {
      return connect_errno_ == EACCES || connect_errno_ == EPERM ? Errc::permission_denied
                                                                 : Errc::io_error;
    }
    if (e == Errc::exists && Clock::now() < exists_until) {
      if (!sleep_backoff(&backoff, deadline)) return Errc::timed_out;
      continue;
    }
    if (e != Errc::io_error && e != Errc::try_again) return e;
    if (!sleep_backoff(&backoff, deadline)) return Errc::timed_out;
  }
}

Errc Channel::call(const b::Request& req, const std::function<void(const b::Reply&)>& use) {
  std::unique_lock lock(mu_);
  if (lost_) return Errc::not_found;
  const auto deadline = deadline_from_now();
  // A slot: at most slots() calls in flight (the daemon's window, kMaxPipelined).
  while (waiters_.size() >= slots()) {
    if (!wait(lock, slot_cv_, deadline)) return Errc::timed_out;
    if (lost_) return Errc::not_found;
  }
  const std::uint64_t rid = ++next_rid_;
  const b::EncodedRequest enc = b::encode_request(rid, req);
  Waiter self;
  waiters_.emplace(rid, &self);
  struct Leave {
    Channel* ch;
    std::uint64_t rid;
    ~Leave() {
      ch->waiters_.erase(rid);
      ch->slot_cv_.notify_one();
      // This caller may have been the one a free role was handed to (and timed out meanwhile).
      if (!ch->writing_) ch->wake_one(&Waiter::needs_writer);
      if (!ch->reading_) ch->wake_one(&Waiter::needs_reader);
    }
  } leave{this, rid};

  auto backoff = cfg_.backoff_initial;
  // RESUME answered exists: at first the daemon has not yet seen our broken connection close;
  // if that lasts, another process took the session over with the token, and it is not ours any
  // more.
  std::optional<Clock::time_point> taken_over_at;
  while (true) {
    if (self.done) {
      // Decoded here, from this call's copy: a malformed reply or an answer of another type
      // means the stream cannot be trusted; the request is sent again on a new connection.
      const auto h = b::decode_header(self.frame);
      std::optional<b::Reply> reply;
      if (h) {
        auto r =
            b::decode_reply(*h, std::span<const std::byte>(self.frame).subspan(b::kHeaderSize));
        if (r && h->type == bw::to_u32(b::request_type(req))) reply = *r;
      }
      if (reply) {
        lock.unlock();
        use(*reply);
        lock.lock();
        return Errc{};
      }
      if (self.sent_on == generation_) mark_broken();
      self.done = false;
      self.sent_on = 0;
      wake_all();
      continue;
    }
    if (lost_) return Errc::not_found;
    if (establishing_ || (broken_ && fd_ >= 0)) {
      // Somebody connects, or the reader or writer still holds the broken socket.
      if (!wait(lock, self.cv, deadline) && !self.done) return Errc::timed_out;
      continue;
    }
    if (fd_ < 0) {
      // Connecting (and the session handshake) runs under the lock with nothing else on the new
      // socket; the requests in flight are sent again afterwards, with their ids.
      establishing_ = true;
      prx_len_ = 0;
      const Errc e = establish(deadline);
      if (e == Errc{}) {
        ++generation_;
        establishing_ = false;
        wake_all();
        continue;
      }
      if (e == Errc::try_again) {
        if (!taken_over_at) taken_over_at = Clock::now() + std::chrono::seconds(3);
        if (Clock::now() >= *taken_over_at) lost_ = true;
      }
      // The backoff is slept outside the lock, still as the one who connects.
      const bool retry = !lost_ && (e == Errc::io_error || e == Errc::try_again) &&
                         backoff_wait(lock, &backoff, deadline);
      establishing_ = false;
      wake_all();
      if (lost_) return Errc::not_found;
      if (retry) continue;
      return e == Errc::io_error || e == Errc::try_again ? Errc::timed_out : e;
    }
    if (self.sent_on != generation_) {
      if (writing_) {
        if (!wait(lock, self.cv, deadline) && !self.done) return Errc::timed_out;
        continue;
      }
      writing_ = true;
      // Marked sent before the write: the reader may receive the reply before this thread has
      // the lock again.
      self.sent_on = generation_;
      lock.unlock();
      std::size_t written = 0;
      const Errc e = write_all(enc.span(), deadline, &written);
      lock.lock();
      writing_ = false;
      if (e != Errc{}) self.sent_on = 0;
      // A frame cut short would corrupt the stream; nothing written leaves it intact.
      if (e != Errc{} && (e != Errc::timed_out || written > 0)) {
        mark_broken();
        wake_all();
      } else {
        wake_one(&Waiter::needs_writer);  // the writer's role is free: to one who has to send
      }
      close_if_unused();
      if (e == Errc::timed_out) return e;
      if (e != Errc{} && !backoff_wait(lock, &backoff, deadline)) return Errc::timed_out;
      continue;
    }
    if (reading_) {
      if (!wait(lock, self.cv, deadline) && !self.done) return Errc::timed_out;
      continue;
    }
    reading_ = true;
    const std::uint64_t gen = generation_;
    lock.unlock();
    const Errc e = receive_into(prx_, &prx_len_, deadline);
    lock.lock();
    reading_ = false;
    if (gen == generation_ && !broken_) {
      if (e == Errc{}) {
        deliver(gen);  // wakes each caller whose reply it was
      } else if (e == Errc::io_error) {
        mark_broken();
        wake_all();
      }
    }
    close_if_unused();
    // The reader's role is free: to one who still waits for a reply (unless that is this thread,
    // which reads again).
    if (self.done || e != Errc{}) wake_one(&Waiter::needs_reader);
    if (e == Errc::timed_out && !self.done) return e;
    if (e == Errc::io_error && !self.done && !backoff_wait(lock, &backoff, deadline)) {
      return Errc::timed_out;
    }
  }
}

}  // namespace ioasid::client_detail
