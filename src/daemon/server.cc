// SPDX-License-Identifier: Apache-2.0
// server.cc: ioasidd's event loop, sessions, request execution, group commit and recovery
// (server.hpp, docs/daemon.md).
#include "daemon/server.hpp"

#include <fmt/core.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <iterator>
#include <unordered_map>

#include "daemon/reply_queue.hpp"

namespace ioasid::daemon {

namespace b = ioasid::broker;
namespace bw = ioasid::wire::broker;
using bw::MsgType;

struct Conn {
  int fd = -1;
  PeerCred cred;
  std::vector<std::byte> in;  // received bytes; in_off of them already consumed
  std::size_t in_off = 0;
  ReplyQueue out;
  bool hello = false;
  std::uint64_t features = 0;
  Session* session = nullptr;
  bool eof = false;   // the peer closed (or the socket failed): close once processed
  bool dead = false;  // close without processing more
  std::uint32_t interest = 0;
  [[nodiscard]] std::size_t pending_out() const noexcept { return out.pending(); }
  [[nodiscard]] std::size_t pending_in() const noexcept { return in.size() - in_off; }
};

// A stored reply: the frame as sent, its row in the store and the seq it was first stored at
// (Store::put_reply).
struct StoredFrame {
  std::int64_t seq = 0;
  std::int64_t first_seq = 0;
  std::vector<std::byte> frame;
};

struct Session {
  std::uint64_t vm = 0;
  SetId set;
  Token16 token{};
  bool resumable = false;
  std::uint32_t owner_uid = 0;
  Conn* conn = nullptr;
  std::int64_t deadline_ms = 0;  // detached: when the grace period ends
  // Exactly-once: the stored replies, by request id, and their request ids oldest first (the
  // session keeps the newest replies_kept).
  std::unordered_map<std::uint64_t, StoredFrame> replies;
  std::deque<std::uint64_t> reply_order;
  std::deque<std::int64_t> reply_rows;  // the seq of every row of the session's, oldest first
};

namespace {

constexpr std::size_t kMaxInBuffer = 2 * b::kMaxFrame;
// The table of stored replies is pruned from its oldest end once it holds more than twice the
// live replies plus this many rows, at most kReplyPruneBatch rows at a time.
constexpr std::size_t kReplyLogSlack = 1024;
constexpr std::size_t kReplyPruneBatch = 64;

template <class... Args>
void log(int level, fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "<{}>ioasidd: {}\n", level, fmt::format(f, std::forward<Args>(args)...));
}

std::int64_t mono_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Messages a client can trigger at will (malformed frames, refused credentials) are limited to
// kPeerLogBurst per second, plus one line saying how many were suppressed.
constexpr int kPeerLogBurst = 20;

bool peer_log_allowed() {
  static std::int64_t window = 0;
  static int used = 0;
  static std::uint64_t suppressed = 0;
  const std::int64_t now = mono_ns() / 1'000'000'000;
  if (now != window) {
    if (suppressed > 0) log(4, "{} client-triggered messages suppressed", suppressed);
    window = now;
    used = 0;
    suppressed = 0;
  }
  if (used < kPeerLogBurst) {
    ++used;
    return true;
  }
  ++suppressed;
  return false;
}

Token16 random_token() {
  Token16 t{};
  while (true) {
    std::size_t got = 0;
    while (got < t.size()) {
      const ssize_t n = getrandom(t.data() + got, t.size() - got, 0);
      if (n > 0) got += static_cast<std::size_t>(n);
    }
    if (std::any_of(t.begin(), t.end(), [](std::uint8_t v) { return v != 0; })) return t;
  }
}

b::SetEntry to_entry(const SetInfo& i) {
  b::SetEntry e;
  e.vm_token = i.owner_token;
  e.quota = i.quota;
  e.count = i.count;
  e.bound = i.bound;
  e.peak = i.peak;
  e.quota_refusals = i.quota_refusals;
  e.state = i.state;
  return e;
}

}  // namespace

std::int64_t realtime_ms() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

Server::Server(ServerConfig config, Store* store)
    : config_(std::move(config)), store_(store), started_ms_(realtime_ms()) {}

Server::~Server() {
  for (auto& [fd, c] : conns_) ::close(fd);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

std::unique_ptr<Server> Server::create(ServerConfig config, Store* store, std::string* error) {
  std::unique_ptr<Server> s(new Server(std::move(config), store));
  SpaceConfig sc;
  sc.width_bits = s->config_.id_bits;
  sc.capacity = s->config_.capacity;
  auto space = Space::create(sc);
  if (!space) {
    *error = fmt::format("cannot create a {}-bit space with capacity {}: {}", sc.width_bits,
                         sc.capacity, to_string(space.error()));
    return nullptr;
  }
  s->space_ = std::move(*space);
  if (!s->rebuild(error)) return nullptr;
  if (store->durability() == Durability::flush_after_commit) {
    s->flusher_ = std::make_unique<WalFlusher>(store->wal_path(), store->directory());
    if (!s->flusher_->start()) {
      *error = std::string("eventfd: ") + std::strerror(errno);
      return nullptr;
    }
    // The rebuilt state (fresh grace periods, reclaimed sessions) is durable before the daemon
    // reports readiness.
    if (!s->flusher_->flush_now(0)) {
      *error = s->flusher_->error();
      return nullptr;
    }
  }
  s->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (s->epoll_fd_ < 0) {
    *error = std::string("epoll_create1: ") + std::strerror(errno);
    return nullptr;
  }
  for (int fd :
       {s->config_.listen_fd, s->config_.signal_fd, s->flusher_ ? s->flusher_->event_fd() : -1}) {
    if (fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      *error = std::string("epoll_ctl: ") + std::strerror(errno);
      return nullptr;
    }
  }
  return s;
}

// ---- recovery ---------------------------------------------------------------------------------

bool Server::rebuild(std::string* error) {
  std::int64_t bits = 0;
  std::int64_t cap = 0;
  const bool have_bits = store_->get_meta("id_bits", &bits);
  const bool have_cap = store_->get_meta("capacity", &cap);
  if (have_bits && bits != static_cast<std::int64_t>(config_.id_bits)) {
    *error = fmt::format("the state was written with --id-bits {}, not {}", bits, config_.id_bits);
    return false;
  }
  if (have_cap && cap != static_cast<std::int64_t>(config_.capacity)) {
    *error = fmt::format("the state was written with --capacity {}, not {}", cap, config_.capacity);
    return false;
  }
  std::vector<StoredSession> sessions;
  std::vector<StoredId> ids;
  std::vector<StoredReply> replies;
  if (!store_->load_sessions(&sessions) || !store_->load_ids(&ids) ||
      !store_->load_replies(&replies)) {
    *error = store_->last_error();
    return false;
  }
  for (const StoredSession& ss : sessions) {
    auto set = space_->create_set(ss.vm_token, ss.quota);
    if (!set) {
      *error = fmt::format("store: session {} (quota {}) cannot be rebuilt: {}", ss.vm_token,
                           ss.quota, to_string(set.error()));
      return false;
    }
    auto s = std::make_unique<Session>();
    s->vm = ss.vm_token;
    s->set = *set;
    s->token = ss.resume_token;
    s->resumable = ss.resumable;
    s->owner_uid = ss.owner_uid;
    s->deadline_ms = ss.deadline_ms;
    sessions_.emplace(ss.vm_token, std::move(s));
  }
  for (const StoredId& si : ids) {
    auto it = sessions_.find(si.vm_token);
    const IdInfo& want = si.info;
    auto bad = [&](const char* what) {
      *error = fmt::format("store: PASID {} of VM {} cannot be rebuilt ({})", want.id, si.vm_token,
                           what);
      return false;
    };
    if (it == sessions_.end()) return bad("no such session");
    const SetId set = it->second->set;
    auto id = space_->alloc(set, want.id, want.id, nullptr);
    if (!id || *id != want.id) return bad("alloc");
    for (std::uint32_t i = 0; i < want.binds; ++i) {
      if (!space_->bind(set, want.id, i == 0 ? want.spid : kInvalidId)) return bad("bind");
    }
    // Now refs = 1 + binds; a FREE_PENDING ID gets one more, which free() drops.
    const std::uint64_t target =
        std::uint64_t{want.refs} + (want.state == IdState::free_pending ? 1 : 0);
    std::uint64_t refs = 1 + std::uint64_t{want.binds};
    for (; refs < target; ++refs) {
      if (!space_->get(set, want.id)) return bad("get");
    }
    for (; refs > target && refs > 1; --refs) {
      if (!space_->put(set, want.id)) return bad("put");
    }
    if (want.state == IdState::free_pending && !space_->free(set, want.id)) return bad("free");
    auto got = space_->query(set, want.id);
    if (!got || got->refs != want.refs || got->binds != want.binds || got->spid != want.spid ||
        got->state != want.state) {
      return bad("state differs after replay");
    }
  }
  // Every connection is gone: attached sessions start their grace period now.
  const std::int64_t now = realtime_ms();
  if (!store_->begin()) {
    *error = store_->last_error();
    return false;
  }
  // The rows in seq order make the log; each session's window is its newest replies_kept in the
  // order they were first stored (a reply appended again by pruning keeps its first seq).
  std::map<std::uint64_t, std::vector<StoredReply*>> by_session;
  for (StoredReply& r : replies) {
    auto it = sessions_.find(r.vm_token);
    if (it == sessions_.end()) {  // a session's that is gone (none is left, normally)
      if (!store_->delete_reply(r.seq)) {
        *error = store_->last_error();
        return false;
      }
      continue;
    }
    reply_log_.push_back({r.seq, r.vm_token, r.request_id});
    it->second->reply_rows.push_back(r.seq);
    by_session[r.vm_token].push_back(&r);
  }
  for (auto& [vm, rows] : by_session) {
    std::stable_sort(rows.begin(), rows.end(), [](const StoredReply* a, const StoredReply* b) {
      return a->first_seq < b->first_seq;
    });
    Session& s = *sessions_.find(vm)->second;
    for (StoredReply* r : rows) {
      remember_reply(s, r->request_id, StoredFrame{r->seq, r->first_seq, std::move(r->frame)});
    }
  }
  if ((!have_bits && !store_->set_meta("id_bits", config_.id_bits)) ||
      (!have_cap && !store_->set_meta("capacity", static_cast<std::int64_t>(config_.capacity)))) {
    *error = store_->last_error();
    return false;
  }
  std::vector<Session*> gone;
  for (auto& [vm, s] : sessions_) {
    if (!s->resumable || config_.grace_seconds == 0) {
      gone.push_back(s.get());
    } else if (s->deadline_ms == 0) {
      s->deadline_ms = now + std::int64_t{config_.grace_seconds} * 1000;
      if (!store_->set_session_deadline(vm, s->deadline_ms)) {
        *error = store_->last_error();
        return false;
      }
    }
  }
  for (Session* s : gone) teardown(*s);
  if (!store_->commit()) {
    *error = store_->last_error();
    return false;
  }
  log(6, "state rebuilt: {} sessions, {} PASIDs, {} stored replies; {} sessions reclaimed",
      sessions.size(), ids.size(), replies.size(), gone.size());
  return true;
}

// ---- the loop ---------------------------------------------------------------------------------

void Server::fatal(const std::string& what) {
  log(2, "fatal: {}; exiting (a restart replays the committed state)", what);
  std::fflush(stderr);
  _exit(1);
}

void Server::need_txn() {
  if (!store_->begin()) fatal("store begin: " + store_->last_error());
}

bool Server::has_frame(const Conn& c) const {
  if (c.dead || c.pending_in() < b::kHeaderSize) return false;
  auto h = b::decode_header(std::span(c.in).subspan(c.in_off));
  if (!h) return h.error().action == b::Action::close;
  return c.pending_in() >= h->frame_size();
}

int Server::next_timeout(std::int64_t now_ms) const {
  for (const auto& [fd, c] : conns_) {
    if (c->dead || (c->eof && !has_frame(*c))) return 0;
    if (c->pending_out() < config_.max_output && has_frame(*c)) return 0;
  }
  std::int64_t next = -1;
  for (const auto& [vm, s] : sessions_) {
    if (s->conn != nullptr || s->deadline_ms == 0) continue;
    const std::int64_t left = std::max<std::int64_t>(0, s->deadline_ms - now_ms);
    if (next < 0 || left < next) next = left;
  }
  if (next > 60'000) next = 60'000;
  return static_cast<int>(next);
}

int Server::run() {
  log(6, "serving: {}-bit space, {} sessions, grace {}s", config_.id_bits, sessions_.size(),
      config_.grace_seconds);
  epoll_event events[64];
  const std::int64_t beat_ns = std::int64_t{config_.heartbeat_ms} * 1'000'000;
  std::int64_t last_beat_ns = mono_ns();
  while (!stop_) {
    int timeout_ms = next_timeout(realtime_ms());
    if (beat_ns > 0) {
      // Rounded up: a beat less than 1 ms away waits 1 ms rather than spinning with timeout 0.
      const auto left_ms = static_cast<int>(
          (std::max<std::int64_t>(0, last_beat_ns + beat_ns - mono_ns()) + 999'999) / 1'000'000);
      if (timeout_ms < 0 || timeout_ms > left_ms) timeout_ms = left_ms;
    }
    const int n = epoll_wait(epoll_fd_, events, 64, timeout_ms);
    if (n < 0 && errno != EINTR) fatal(std::string("epoll_wait: ") + std::strerror(errno));
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == config_.listen_fd) {
        accept_all();
      } else if (flusher_ && fd == flusher_->event_fd()) {
        flusher_->acknowledge();
      } else if (fd == config_.signal_fd) {
        signalfd_siginfo si{};
        if (::read(fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
          log(6, "signal {}: exiting", si.ssi_signo);
        }
        stop_ = true;
      } else if (auto it = conns_.find(fd); it != conns_.end()) {
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) read_conn(*it->second);
      }
    }
    for (auto& [fd, c] : conns_) process_conn(*c);
    expire(realtime_ms());
    // While a flush is in progress the transaction stays open and gathers what the next
    // iterations execute; it is committed when the flush is back (its eventfd wakes the loop), so
    // that each flush carries everything that arrived during the one before.
    const bool flush_busy = flusher_ && flusher_->busy();
    if (store_->in_transaction() && !flush_busy) {
      if (flusher_) {
        // Overlap pays when there is something to do meanwhile. With nothing waiting, the loop
        // flushes itself: a hand-off to the thread and back would cost two wake-ups on the one
        // client's round trip.
        const bool alone = !work_waiting();
        commit();
        if (alone) {
          if (!flusher_->flush_now(commit_epoch_)) fatal("WAL flush: " + flusher_->error());
        } else {
          flusher_->request(commit_epoch_);
        }
      } else {
        commit();
        durable_epoch_ = commit_epoch_;  // COMMIT flushed (or nothing is ever flushed)
      }
    }
    if (flusher_) {
      if (flusher_->failed()) fatal("WAL flush: " + flusher_->error());
      durable_epoch_ = flusher_->flushed();
    }
    // Replies go out only now, after COMMIT, and as far as what they depend on is durable. Those
    // of a transaction still open wait for the commit after the newest one.
    const std::uint64_t depends_on = commit_epoch_ + (store_->in_transaction() ? 1 : 0);
    std::vector<int> closing;
    for (auto& [fd, c] : conns_) {
      c->out.hold(depends_on, durable_epoch_);
      c->out.release(durable_epoch_);
      if (!c->dead) flush(*c);
      if (c->dead || (c->eof && c->session == nullptr && !has_frame(*c) && !c->out.holding())) {
        closing.push_back(fd);
      } else {
        update_interest(*c);
      }
    }
    for (int fd : closing) {
      auto it = conns_.find(fd);
      if (it->second->session != nullptr) continue;  // detached next iteration, in a transaction
      ::close(fd);
      conns_.erase(it);
    }
    if (beat_ns > 0 && mono_ns() - last_beat_ns >= beat_ns) {
      // A flush that has not come back within a beat interval stalls the daemon as surely as a
      // stuck loop: no beat then.
      std::int64_t since = 0;
      const bool flush_stuck =
          flusher_ && flusher_->pending(&since) && mono_ns() - since >= beat_ns;
      if (!flush_stuck) {
        last_beat_ns = mono_ns();
        if (config_.heartbeat) config_.heartbeat(sessions_.size(), conns_.size());
      }
    }
  }
  flush_at_exit();
  return 0;
}

bool Server::work_waiting() const {
  if (next_timeout(realtime_ms()) == 0) return true;  // frames already buffered
  epoll_event ev{};
  return epoll_wait(epoll_fd_, &ev, 1, 0) > 0;  // level-triggered: reported again later
}

void Server::commit() {
  const std::int64_t t0 = mono_ns();
  if (!store_->commit()) fatal("store commit: " + store_->last_error());
  ++stats_.journal_commits;
  stats_.journal_commit_ns += static_cast<std::uint64_t>(mono_ns() - t0);
  ++commit_epoch_;
}

void Server::flush_at_exit() {
  // Stopping: what was executed is committed and flushed now, and the replies it held are sent
  // if the sockets take them (a client whose reply is lost retries; the reply is stored).
  if (store_->in_transaction()) commit();
  if (flusher_ == nullptr || durable_epoch_ == commit_epoch_) return;
  if (!flusher_->flush_now(commit_epoch_)) {
    log(3, "WAL flush at exit: {}", flusher_->error());
    return;
  }
  durable_epoch_ = commit_epoch_;
  for (auto& [fd, c] : conns_) {
    c->out.release(durable_epoch_);
    if (!c->dead) flush(*c);
  }
}

void Server::accept_all() {
  while (true) {
    const int fd = accept4(config_.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) log(4, "accept: {}", std::strerror(errno));
      return;
    }
    if (conns_.size() >= config_.max_clients) {
      log(4, "refusing a connection: {} clients already", conns_.size());
      ::close(fd);
      continue;
    }
    ucred uc{};
    socklen_t len = sizeof uc;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0) {
      log(4, "SO_PEERCRED: {}", std::strerror(errno));
      ::close(fd);
      continue;
    }
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->cred = PeerCred{uc.pid, uc.uid, uc.gid};
    c->interest = EPOLLIN | EPOLLRDHUP;
    epoll_event ev{};
    ev.events = c->interest;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    conns_.emplace(fd, std::move(c));
  }
}

void Server::read_conn(Conn& c) {
  if (c.eof || c.dead) return;
  // Received into one scratch buffer and appended: growing c.in by a whole 64 KiB before each
  // recv would zero it every time (a memset per request on the round-trip path).
  if (scratch_.empty()) scratch_.resize(64 * 1024);
  while (c.pending_in() < kMaxInBuffer) {
    if (c.in_off > 0 && c.in_off == c.in.size()) {
      c.in.clear();
      c.in_off = 0;
    }
    const std::size_t want = std::min(scratch_.size(), kMaxInBuffer - c.pending_in());
    const ssize_t n = ::recv(c.fd, scratch_.data(), want, 0);
    if (n > 0) {
      c.in.insert(c.in.end(), scratch_.begin(), scratch_.begin() + n);
      // A short read drained the socket: no second recv just to see EAGAIN (the level-triggered
      // epoll reports what arrives later, an end of stream included).
      if (static_cast<std::size_t>(n) < want) return;
      continue;
    }
    if (n < 0 && (errno == EINTR)) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    c.eof = true;  // 0: orderly close; < 0: reset
    return;
  }
}

void Server::update_interest(Conn& c) {
  // After the peer's end of stream only EPOLLOUT is of interest (a level-triggered RDHUP would
  // fire in every iteration).
  std::uint32_t want = c.eof ? 0u : static_cast<std::uint32_t>(EPOLLRDHUP);
  if (!c.eof && c.pending_in() < kMaxInBuffer && c.pending_out() < config_.max_output) {
    want |= EPOLLIN;
  }
  if (c.out.sendable() > 0) want |= EPOLLOUT;
  if (want == c.interest) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.fd = c.fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev) == 0) c.interest = want;
}

void Server::flush(Conn& c) {
  while (c.out.sendable() > 0) {
    const auto bytes = c.out.send_view();
    const ssize_t n = ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.consumed(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    c.dead = true;  // the peer is gone; detached at the next iteration
    break;
  }
}

void Server::process_conn(Conn& c) {
  std::uint32_t handled = 0;
  while (!c.dead && handled < config_.max_inflight && c.pending_out() < config_.max_output) {
    const auto bytes = std::span<const std::byte>(c.in).subspan(c.in_off);
    auto h = b::decode_header(bytes);
    if (!h) {
      if (h.error().action == b::Action::need_more) break;
      ++stats_.protocol_errors;
      if (peer_log_allowed()) {
        log(4, "pid {} uid {}: closing the connection: {}", c.cred.pid, c.cred.uid,
            b::to_string(h.error().reason));
      }
      c.dead = true;
      break;
    }
    if (bytes.size() < h->frame_size()) break;
    handle_frame(c, *h, bytes.subspan(b::kHeaderSize, h->size));
    c.in_off += h->frame_size();
    ++handled;
  }
  if (c.in_off > 0 && c.in_off == c.in.size()) {
    c.in.clear();
    c.in_off = 0;
  } else if (c.in_off > b::kMaxFrame) {
    c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(c.in_off));
    c.in_off = 0;
  }
  if ((c.dead || (c.eof && !has_frame(c))) && c.session != nullptr) detach(c);
}

void Server::handle_frame(Conn& c, const b::Header& h, std::span<const std::byte> payload) {
  auto req = b::decode_request(h, payload);
  if (!req) {
    if (req.error().action == b::Action::close) {
      ++stats_.protocol_errors;
      if (peer_log_allowed()) {
        log(4, "pid {}: closing the connection: {}", c.cred.pid, b::to_string(req.error().reason));
      }
      c.dead = true;
      return;
    }
    ++stats_.requests;
    send(c, h.request_id, b::error_reply(h.type, req.error().errc));
    return;
  }
  ++stats_.requests;
  execute(c, h.request_id, *req);
}

void Server::send_raw(Conn& c, const std::vector<std::byte>& frame) {
  const auto to = c.out.append(frame.size());
  std::copy(frame.begin(), frame.end(), to.begin());
}

void Server::send(Conn& c, std::uint64_t rid, const b::Reply& r, Session* store_for) {
  if (r.status < 0) ++stats_.error_replies;
  const auto size = b::reply_frame_size(r);
  if (!size) fatal("a reply the codec refuses");
  const auto to = c.out.append(*size);
  auto n = b::encode_reply(to, rid, r);
  if (!n) fatal("a reply the codec refuses");
  if (store_for == nullptr || r.status < 0) return;
  // Exactly-once: the reply is stored in the transaction that holds the change.
  store_reply(*store_for, rid, std::vector<std::byte>(to.begin(), to.end()));
}

// Stored replies. The store appends every session's to one table, so the replies of a batch share
// its last pages (a table keyed by session wrote one or two pages per session and commit, which
// cost more than the rest of the requests' work together: bench/README.md). Each session keeps
// its newest replies_kept; an older one's row is garbage, deleted with the oldest rows in one
// range once the table holds more than twice the live rows (plus kReplyLogSlack). A live row
// met there, the reply of a session that has been quiet since, is first appended again: every
// session keeps its replies however busy the others are.
void Server::store_reply(Session& s, std::uint64_t rid, std::vector<std::byte> frame) {
  need_txn();
  std::int64_t seq = 0;
  if (!store_->put_reply(s.vm, rid, frame, 0, &seq)) fatal("store: " + store_->last_error());
  reply_log_.push_back({seq, s.vm, rid});
  s.reply_rows.push_back(seq);
  remember_reply(s, rid, StoredFrame{seq, seq, std::move(frame)});
  prune_replies();
}

void Server::remember_reply(Session& s, std::uint64_t rid, StoredFrame stored) {
  // The same request id again (not done by the daemon: a retry gets the stored reply) keeps its
  // place; its older row is left to be pruned as garbage.
  if (s.replies.insert_or_assign(rid, std::move(stored)).second) {
    s.reply_order.push_back(rid);
    ++live_replies_;
  }
  while (s.reply_order.size() > config_.replies_kept) {
    s.replies.erase(s.reply_order.front());
    s.reply_order.pop_front();
    --live_replies_;
  }
}

bool Server::reply_is_live(const LoggedReply& r) const {
  auto s = sessions_.find(r.vm);
  if (s == sessions_.end()) return false;
  auto it = s->second->replies.find(r.request_id);
  return it != s->second->replies.end() && it->second.seq == r.seq;
}

void Server::prune_replies() {
  if (reply_log_.size() <= 2 * live_replies_ + kReplyLogSlack + kReplyPruneBatch) return;
  std::int64_t last = 0;
  for (std::size_t n = 0; n < kReplyPruneBatch && !reply_log_.empty(); ++n) {
    const LoggedReply r = reply_log_.front();
    reply_log_.pop_front();
    last = r.seq;
    auto it = sessions_.find(r.vm);
    if (it == sessions_.end()) continue;  // a row of a session torn down (already deleted)
    Session& s = *it->second;
    if (!s.reply_rows.empty() && s.reply_rows.front() == r.seq) s.reply_rows.pop_front();
    if (!reply_is_live(r)) continue;
    StoredFrame& kept = s.replies.find(r.request_id)->second;
    if (!store_->put_reply(r.vm, r.request_id, kept.frame, kept.first_seq, &kept.seq)) {
      fatal("store: " + store_->last_error());
    }
    reply_log_.push_back({kept.seq, r.vm, r.request_id});
    s.reply_rows.push_back(kept.seq);
  }
  if (!store_->delete_replies_through(last)) fatal("store: " + store_->last_error());
}

void Server::drop_replies(Session& s) {
  // Their entries stay in the log (dead: no session holds them) until pruning reaches them.
  need_txn();
  for (const std::int64_t seq : s.reply_rows) {
    if (!store_->delete_reply(seq)) fatal("store: " + store_->last_error());
  }
  live_replies_ -= s.replies.size();
  s.replies.clear();
  s.reply_order.clear();
  s.reply_rows.clear();
}

bool Server::stored_reply(Conn& c, Session& s, std::uint64_t rid, b::MsgType t) {
  auto it = s.replies.find(rid);
  if (it == s.replies.end()) return false;
  auto h = b::decode_header(it->second.frame);
  if (!h || h->type != bw::to_u32(t)) {
    // The token was used for another request: a client bug, refused without executing.
    send(c, rid, b::error_reply(bw::to_u32(t), Errc::invalid_argument));
    return true;
  }
  send_raw(c, it->second.frame);
  return true;
}

void Server::sync_id(Session& s, Id id) {
  need_txn();
  auto q = space_->query(s.set, id);
  const bool ok = q ? store_->put_id(s.vm, *q) : store_->delete_id(id);
  if (!ok) fatal("store: " + store_->last_error());
}

// ---- sessions ---------------------------------------------------------------------------------

b::SessionReply Server::session_reply(const Session& s, bool resumed) const {
  b::SessionReply r;
  r.vm_token = s.vm;
  if (s.resumable) r.resume_token = s.token;
  auto info = space_->set_info(s.set);
  if (info) {
    r.quota = info->quota;
    r.count = info->count;
  }
  r.resumed = resumed;
  r.grace_seconds = s.resumable ? config_.grace_seconds : 0;
  return r;
}

b::Reply Server::attach(Conn& c, Session& s, bool resumed) {
  s.conn = &c;
  c.session = &s;
  if (s.deadline_ms != 0) {
    s.deadline_ms = 0;
    need_txn();
    if (!store_->set_session_deadline(s.vm, 0)) fatal("store: " + store_->last_error());
  }
  return b::ok_reply(MsgType::open_session, session_reply(s, resumed));
}

b::Reply Server::open_session(Conn& c, std::uint64_t rid, const b::OpenSessionRequest& r) {
  const std::uint32_t type = bw::to_u32(MsgType::open_session);
  if (c.session != nullptr) return b::error_reply(type, Errc::invalid_argument);
  if (!config_.policy.may_open(c.cred, r.vm_token)) {
    if (peer_log_allowed()) {
      log(5, "pid {} uid {} gid {}: may not open VM {}", c.cred.pid, c.cred.uid, c.cred.gid,
          r.vm_token);
    }
    return b::error_reply(type, Errc::permission_denied);
  }
  auto it = sessions_.find(r.vm_token);
  if (it != sessions_.end()) {
    Session& s = *it->second;
    if (s.conn != nullptr) return b::error_reply(type, Errc::exists);
    // A retry of the OPEN_SESSION that created it (its reply was lost): the original answer.
    if (auto st = s.replies.find(rid); st != s.replies.end()) {
      auto h = b::decode_header(st->second.frame);
      if (h && h->type == type) {
        attach(c, s, false);
        send_raw(c, st->second.frame);
        return b::Reply{};  // type 0: already sent
      }
    }
    if (r.resume && s.resumable && *r.resume == s.token) {
      b::Reply reply = attach(c, s, true);
      if (r.quota != 0 && r.quota != std::get<b::SessionReply>(reply.body).quota) {
        auto q = space_->set_quota(s.set, r.quota);
        if (q) {
          need_txn();
          if (!store_->set_session_quota(s.vm, r.quota)) fatal("store: " + store_->last_error());
          reply.body = session_reply(s, true);
        }
      }
      return reply;
    }
    return b::error_reply(type, Errc::exists);
  }
  if (r.quota == 0) return b::error_reply(type, Errc::invalid_argument);
  const auto owned = std::count_if(sessions_.begin(), sessions_.end(), [&](const auto& kv) {
    return kv.second->owner_uid == c.cred.uid;
  });
  if (static_cast<std::uint64_t>(owned) >= config_.max_sessions_per_client) {
    return b::error_reply(type, Errc::exhausted);
  }
  auto set = space_->create_set(r.vm_token, r.quota);
  if (!set) return b::error_reply(type, set.error());
  auto s = std::make_unique<Session>();
  s->vm = r.vm_token;
  s->set = *set;
  s->resumable = (c.features & bw::feature_bit(bw::kFResume)) != 0;
  if (s->resumable) s->token = random_token();
  s->owner_uid = c.cred.uid;
  StoredSession ss;
  ss.vm_token = s->vm;
  ss.quota = r.quota;
  ss.resume_token = s->token;
  ss.resumable = s->resumable;
  ss.owner_uid = s->owner_uid;
  need_txn();
  if (!store_->put_session(ss)) fatal("store: " + store_->last_error());
  Session& ref = *s;
  sessions_.emplace(r.vm_token, std::move(s));
  return attach(c, ref, false);
}

b::Reply Server::resume(Conn& c, std::uint64_t rid, const b::ResumeRequest& r) {
  const std::uint32_t type = bw::to_u32(MsgType::resume);
  if (c.session != nullptr) return b::error_reply(type, Errc::invalid_argument);
  if (!config_.policy.may_open(c.cred, r.vm_token)) {
    return b::error_reply(type, Errc::permission_denied);
  }
  auto it = sessions_.find(r.vm_token);
  if (it == sessions_.end() || !it->second->resumable || it->second->token != r.token) {
    return b::error_reply(type, Errc::not_found);
  }
  Session& s = *it->second;
  if (s.conn != nullptr) return b::error_reply(type, Errc::exists);
  (void)rid;
  b::Reply reply = attach(c, s, true);
  reply.type = type;
  return reply;
}

void Server::detach(Conn& c) {
  Session* s = c.session;
  c.session = nullptr;
  if (s == nullptr) return;
  s->conn = nullptr;
  if (!s->resumable || config_.grace_seconds == 0) {
    log(6, "VM {}: connection closed, session without grace: reclaiming", s->vm);
    teardown(*s);
    return;
  }
  s->deadline_ms = realtime_ms() + std::int64_t{config_.grace_seconds} * 1000;
  need_txn();
  if (!store_->set_session_deadline(s->vm, s->deadline_ms)) {
    fatal("store: " + store_->last_error());
  }
  log(6, "VM {}: connection closed, session kept for {}s", s->vm, config_.grace_seconds);
}

void Server::teardown(Session& s) {
  // Every reference on the set's IDs was taken through this session (a client can reach only its
  // own set), so the VM's end drops them all: unbind, put, and the last put frees each ID (FREE
  // notified); the set is then empty and destroyed at once.
  auto ids = space_->list_ids(s.set);
  std::vector<Id> held;
  if (ids) {
    for (const IdInfo& info : *ids) {
      held.push_back(info.id);
      for (std::uint32_t i = 0; i < info.binds; ++i) (void)space_->unbind(s.set, info.id);
      for (std::uint32_t i = 0; i <= info.refs + 1; ++i) {
        auto p = space_->put(s.set, info.id);
        if (!p || *p) break;
      }
    }
  }
  auto destroyed = space_->destroy_set(s.set);
  if (!destroyed || !*destroyed) log(3, "VM {}: set not destroyed at once", s.vm);
  need_txn();
  drop_replies(s);
  if (!store_->delete_session(s.vm, held)) fatal("store: " + store_->last_error());
  if (s.conn != nullptr) s.conn->session = nullptr;
  sessions_.erase(s.vm);
}

void Server::expire(std::int64_t now_ms) {
  std::vector<Session*> gone;
  for (auto& [vm, s] : sessions_) {
    if (s->conn == nullptr && s->deadline_ms != 0 && s->deadline_ms <= now_ms) {
      gone.push_back(s.get());
    }
  }
  for (Session* s : gone) {
    log(6, "VM {}: grace period over: reclaiming its PASIDs", s->vm);
    teardown(*s);
  }
}

// ---- requests ---------------------------------------------------------------------------------

void Server::execute(Conn& c, std::uint64_t rid, const b::Request& req) {
  const MsgType t = b::request_type(req);
  const std::uint32_t type = bw::to_u32(t);
  if (t == MsgType::hello) {
    if (c.hello) return send(c, rid, b::error_reply(type, Errc::invalid_argument));
    c.hello = true;
    c.features = std::get<b::HelloRequest>(req).features & bw::kAllFeatures;
    b::HelloReply h;
    h.features = c.features;
    h.max_in_flight = config_.max_inflight;
    return send(c, rid, b::ok_reply(t, h));
  }
  if (!c.hello) return send(c, rid, b::error_reply(type, Errc::unsupported));
  if ((b::required_features(req) & ~c.features) != 0) {
    return send(c, rid, b::error_reply(type, Errc::unsupported));
  }
  if (b::needs_session(t) && c.session == nullptr) {
    return send(c, rid, b::error_reply(type, Errc::permission_denied));
  }
  if (b::is_admin(t) && !config_.policy.is_admin(c.cred)) {
    return send(c, rid, b::error_reply(type, Errc::permission_denied));
  }
  Session* s = c.session;
  if (s != nullptr && b::is_mutating(t) && b::needs_session(t) && t != MsgType::close_session &&
      stored_reply(c, *s, rid, t)) {
    return;
  }

  if (t == MsgType::open_session) {
    b::Reply r = open_session(c, rid, std::get<b::OpenSessionRequest>(req));
    if (r.type == 0) return;  // a stored reply was sent
    return send(c, rid, r, r.status == 0 ? c.session : nullptr);
  }
  if (t == MsgType::resume) {
    b::Reply r = resume(c, rid, std::get<b::ResumeRequest>(req));
    return send(c, rid, r);
  }
  if (t == MsgType::close_session) {
    teardown(*s);
    return send(c, rid, b::ok_reply(t));
  }

  auto err = [&](Errc e) { send(c, rid, b::error_reply(type, e)); };
  auto ok = [&](b::ReplyBody body, Id changed) {
    if (changed != kInvalidId) sync_id(*s, changed);
    send(c, rid, b::ok_reply(t, std::move(body)), b::is_mutating(t) ? s : nullptr);
  };

  switch (t) {
    case MsgType::alloc: {
      const auto& a = std::get<b::AllocRequest>(req);
      auto id = space_->alloc(s->set, a.min, a.max, nullptr);
      if (!id) return err(id.error());
      return ok(b::AllocReply{*id}, *id);
    }
    case MsgType::free: {
      const Id id = std::get<b::FreeRequest>(req).id;
      auto r = space_->free(s->set, id);
      if (!r) return err(r.error());
      return ok({}, id);
    }
    case MsgType::get: {
      const Id id = std::get<b::GetRequest>(req).id;
      auto r = space_->get(s->set, id);
      if (!r) return err(r.error());
      return ok({}, id);
    }
    case MsgType::put: {
      const Id id = std::get<b::PutRequest>(req).id;
      auto r = space_->put(s->set, id);
      if (!r) return err(r.error());
      return ok(b::PutReply{*r}, id);
    }
    case MsgType::bind: {
      const auto& bq = std::get<b::BindRequest>(req);
      auto r = space_->bind(s->set, bq.id, bq.spid);
      if (!r) return err(r.error());
      return ok({}, bq.id);
    }
    case MsgType::unbind: {
      const Id id = std::get<b::UnbindRequest>(req).id;
      auto r = space_->unbind(s->set, id);
      if (!r) return err(r.error());
      return ok({}, id);
    }
    case MsgType::query: {
      auto r = space_->query(s->set, std::get<b::QueryRequest>(req).id);
      if (!r) return err(r.error());
      return ok(b::QueryReply{*r}, kInvalidId);
    }
    case MsgType::find: {
      auto r = space_->find_by_spid(s->set, std::get<b::FindRequest>(req).spid);
      if (!r) return err(r.error());
      return ok(b::FindReply{*r}, kInvalidId);
    }
    case MsgType::set_info: {
      auto r = space_->set_info(s->set);
      if (!r) return err(r.error());
      return ok(b::SetInfoReply{to_entry(*r)}, kInvalidId);
    }
    case MsgType::list_sets: {
      const auto& l = std::get<b::ListSetsRequest>(req);
      auto listed = space_->list_sets();
      if (!listed) return err(listed.error());
      std::vector<SetInfo>& sets = *listed;
      std::sort(sets.begin(), sets.end(),
                [](const SetInfo& x, const SetInfo& y) { return x.owner_token < y.owner_token; });
      // The cursor is the index of the next entry plus one; sets created or destroyed between
      // pages may shift it (a listing is not a snapshot).
      if (l.cursor > sets.size() + 1) return err(Errc::invalid_argument);
      const std::size_t first = l.cursor == 0 ? 0 : l.cursor - 1;
      std::size_t n = sets.size() - std::min(first, sets.size());
      std::size_t cap = bw::kMaxListSets;
      if (l.max_entries != 0) cap = std::min<std::size_t>(cap, l.max_entries);
      n = std::min(n, cap);
      std::vector<bw::SetEntry> wire(n);
      for (std::size_t i = 0; i < n; ++i) wire[i] = b::to_wire(to_entry(sets[first + i]));
      b::ListSetsReply r;
      r.next_cursor = first + n < sets.size() ? first + n + 1 : 0;
      r.sets = b::SetList(std::span<const bw::SetEntry>(wire));
      return ok(r, kInvalidId);
    }
    case MsgType::list_ids: {
      const auto& l = std::get<b::ListIdsRequest>(req);
      auto set = space_->find_set(l.vm_token);
      if (!set) return err(set.error());
      auto ids = space_->list_ids(*set);
      if (!ids) return err(ids.error());
      std::sort(ids->begin(), ids->end(),
                [](const IdInfo& x, const IdInfo& y) { return x.id < y.id; });
      auto from = std::lower_bound(ids->begin(), ids->end(), l.first,
                                   [](const IdInfo& x, Id v) { return x.id < v; });
      std::size_t cap = bw::kMaxListIds;
      if (l.max_entries != 0) cap = std::min<std::size_t>(cap, l.max_entries);
      const std::size_t n = std::min<std::size_t>(cap, static_cast<std::size_t>(ids->end() - from));
      std::vector<bw::IdEntry> wire(n);
      for (std::size_t i = 0; i < n; ++i)
        wire[i] = b::to_wire(from[static_cast<std::ptrdiff_t>(i)]);
      b::ListIdsReply r;
      const auto next = from + static_cast<std::ptrdiff_t>(n);
      r.next_id = next == ids->end() ? kInvalidId : next->id;
      r.ids = b::IdList(std::span<const bw::IdEntry>(wire));
      return ok(r, kInvalidId);
    }
    case MsgType::set_quota: {
      const auto& q = std::get<b::SetQuotaRequest>(req);
      auto set = space_->find_set(q.vm_token);
      if (!set) return err(set.error());
      auto r = space_->set_quota(*set, q.quota);
      if (!r) return err(r.error());
      need_txn();
      if (!store_->set_session_quota(q.vm_token, q.quota)) fatal("store: " + store_->last_error());
      return send(c, rid, b::ok_reply(t));
    }
    case MsgType::stats: {
      b::StatsReply r;
      r.space = space_->stats();
      r.daemon = stats_;
      r.daemon.journal_flushes = flusher_ ? flusher_->flushes()
                                 : store_->durability() == Durability::none
                                     ? 0
                                     : stats_.journal_commits;
      r.daemon.clients = conns_.size();
      r.daemon.sessions = sessions_.size();
      r.daemon.detached_sessions = static_cast<std::uint64_t>(
          std::count_if(sessions_.begin(), sessions_.end(),
                        [](const auto& kv) { return kv.second->conn == nullptr; }));
      return ok(r, kInvalidId);
    }
    case MsgType::status: {
      b::StatusReply r;
      r.daemon_version = config_.daemon_version;
      r.pid = static_cast<std::uint32_t>(::getpid());
      r.started_ms = static_cast<std::uint64_t>(started_ms_);
      r.id_bits = config_.id_bits;
      r.no_sync = config_.no_sync;
      r.grace_seconds = config_.grace_seconds;
      r.max_sessions_per_client = config_.max_sessions_per_client;
      r.max_clients = config_.max_clients;
      r.max_output = config_.max_output;
      return ok(r, kInvalidId);
    }
    case MsgType::query_id: {
      // The owner is the one session whose set the ID belongs to: O(sessions), an admin request.
      const Id id = std::get<b::QueryIdRequest>(req).id;
      auto any = space_->query(SetId::any(), id);
      if (!any) return err(any.error());
      for (const auto& [vm, session] : sessions_) {
        if (auto q = space_->query(session->set, id))
          return ok(b::QueryIdReply{vm, *q}, kInvalidId);
      }
      return err(Errc::not_found);  // live but in no session's set: cannot happen in ioasidd
    }
    default:
      return err(Errc::unsupported);
  }
}

}  // namespace ioasid::daemon
