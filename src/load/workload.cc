// SPDX-License-Identifier: Apache-2.0
// workload.cc: ioasid-load's client threads (workload.hpp).
#include "load/workload.hpp"

#include <fmt/core.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "broker/proto.hpp"
#include "ioasid/client.hpp"

namespace ioasid::load {

namespace {

namespace b = ioasid::broker;
namespace bw = ioasid::wire::broker;
using Clock = std::chrono::steady_clock;

enum Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

std::uint64_t ns_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// What the threads share.
struct Shared {
  const WorkloadConfig* cfg = nullptr;
  std::atomic<int> phase{kWarmup};
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::mutex mu;
  std::string error;  // the first failure
  void fail(std::string what) {
    std::lock_guard g(mu);
    if (error.empty()) error = std::move(what);
    phase.store(kStop);
    go.store(true);
  }
  bool wait_for_go() {
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire))
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    return phase.load() != kStop;
  }
};

// Per thread: what it measured.
struct Tally {
  std::uint64_t pairs = 0;
  std::uint64_t requests = 0;
  LatencyHistogram request, alloc, free, pair;
  void merge(const Tally& o) {
    pairs += o.pairs;
    requests += o.requests;
    request.merge(o.request);
    alloc.merge(o.alloc);
    free.merge(o.free);
    pair.merge(o.pair);
  }
};

void library_loop(Shared& sh, const WorkloadConfig& cfg, DaemonBackend& d, unsigned index,
                  Tally& t);

// One library client: its DaemonBackend shared by cfg.threads threads (a VMM's vCPU or queue
// threads), whose requests the library pipelines on the one connection.
void library_client(Shared& sh, unsigned index, Tally& t) {
  const WorkloadConfig& cfg = *sh.cfg;
  DaemonOptions o;
  o.socket_path = cfg.socket;
  o.vm_token = cfg.vm_base + index;
  o.quota = std::max(2u, 2 * cfg.threads);
  o.timeout = cfg.timeout;
  auto vm = DaemonBackend::open(o);
  if (!vm) {
    sh.fail(fmt::format("client {}: cannot open VM {} on {}: {}", index, o.vm_token, cfg.socket,
                        to_string(vm.error())));
    sh.ready.fetch_add(1);
    return;
  }
  if (!sh.wait_for_go()) return;
  DaemonBackend& d = **vm;
  std::vector<std::unique_ptr<Tally>> extra;
  std::vector<std::thread> threads;
  for (unsigned k = 1; k < cfg.threads; ++k) {
    extra.push_back(std::make_unique<Tally>());
    threads.emplace_back(
        [&sh, &d, &cfg, index, &mine = *extra.back()] { library_loop(sh, cfg, d, index, mine); });
  }
  library_loop(sh, cfg, d, index, t);
  for (auto& th : threads) th.join();
  for (const auto& x : extra) t.merge(*x);
  (void)d.close_session();
}

void library_loop(Shared& sh, const WorkloadConfig& cfg, DaemonBackend& d, unsigned index,
                  Tally& t) {
  while (true) {
    const int phase = sh.phase.load(std::memory_order_relaxed);
    if (phase == kStop) break;
    const auto t0 = Clock::now();
    Id id = kInvalidId;
    if (const Errc e = d.alloc_raw(cfg.min, cfg.max, &id); e != Errc{}) {
      return sh.fail(fmt::format("client {}: alloc: {}", index, to_string(e)));
    }
    const auto t1 = Clock::now();
    if (const Errc e = d.free_raw(id); e != Errc{}) {
      return sh.fail(fmt::format("client {}: free of {}: {}", index, id, to_string(e)));
    }
    const auto t2 = Clock::now();
    // Counted only if the pair completed inside the measured period.
    if (phase == kMeasure && sh.phase.load(std::memory_order_relaxed) == kMeasure) {
      t.alloc.record(ns_between(t0, t1));
      t.free.record(ns_between(t1, t2));
      t.request.record(ns_between(t0, t1));
      t.request.record(ns_between(t1, t2));
      t.pair.record(ns_between(t0, t2));
      t.requests += 2;
      ++t.pairs;
    }
  }
}

// A blocking Unix stream connection with a receive timeout.
int connect_to(const std::string& path, std::chrono::milliseconds timeout, std::string* error) {
  sockaddr_un a{};
  if (path.size() >= sizeof a.sun_path) {
    *error = "socket path too long: " + path;
    return -1;
  }
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    *error = fmt::format("connect {}: {}", path, std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return -1;
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool send_all(int fd, const std::byte* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool recv_all(int fd, std::byte* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// The protocol over a blocking socket: frames in, decoded replies out.
class RawClient {
 public:
  explicit RawClient(int fd) : fd_(fd) {}
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void queue(std::uint64_t rid, const b::Request& r) {
    const auto e = b::encode_request(rid, r);
    out_.insert(out_.end(), e.span().begin(), e.span().end());
  }
  bool flush() {
    const bool ok = send_all(fd_, out_.data(), out_.size());
    out_.clear();
    return ok;
  }
  // The next reply (blocking). False on EOF, timeout or a malformed frame.
  bool next(b::Reply* r, std::uint64_t* rid) {
    while (true) {
      if (in_.size() - off_ >= b::kHeaderSize) {
        auto h = b::decode_header(std::span(in_).subspan(off_));
        if (!h || !h->is_reply()) return false;
        if (in_.size() - off_ >= h->frame_size()) {
          auto d = b::decode_reply(*h, std::span(in_).subspan(off_ + b::kHeaderSize, h->size));
          if (!d) return false;
          *r = *d;
          *rid = h->request_id;
          off_ += h->frame_size();
          return true;
        }
      }
      if (off_ > 0) {
        in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(off_));
        off_ = 0;
      }
      const std::size_t old = in_.size();
      in_.resize(old + 64 * 1024);
      const ssize_t n = ::recv(fd_, in_.data() + old, 64 * 1024, 0);
      in_.resize(old + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
    }
  }
  // One request and its reply.
  bool call(std::uint64_t rid, const b::Request& req, b::Reply* r) {
    queue(rid, req);
    std::uint64_t got = 0;
    return flush() && next(r, &got) && got == rid;
  }

 private:
  int fd_;
  std::vector<std::byte> out_;
  std::vector<std::byte> in_;
  std::size_t off_ = 0;
};

void pipelined_client(Shared& sh, unsigned index, Tally& t) {
  const WorkloadConfig& cfg = *sh.cfg;
  std::string why;
  const int fd = connect_to(cfg.socket, cfg.timeout, &why);
  if (fd < 0) {
    sh.fail(fmt::format("client {}: {}", index, why));
    sh.ready.fetch_add(1);
    return;
  }
  RawClient c(fd);
  // Request ids from the clock, as the client library does: unique per session across runs.
  std::uint64_t rid = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()) | 1;
  b::Reply r;
  b::OpenSessionRequest open;
  open.vm_token = cfg.vm_base + index;
  open.quota = cfg.depth + 1;
  if (!c.call(++rid, b::HelloRequest{bw::kProtocolVersion, 0}, &r) || r.status != 0 ||
      !c.call(++rid, open, &r) || r.status != 0) {
    sh.fail(fmt::format("client {}: cannot open VM {} on {}: status {}", index, open.vm_token,
                        cfg.socket, r.status));
    sh.ready.fetch_add(1);
    return;
  }
  if (!sh.wait_for_go()) return;
  struct InFlight {
    bool alloc;
    Clock::time_point sent;
  };
  std::map<std::uint64_t, InFlight> flight;
  const auto start = Clock::now();
  for (unsigned i = 0; i < cfg.depth; ++i) {
    c.queue(++rid, b::AllocRequest{cfg.min, cfg.max});
    flight[rid] = {true, start};
  }
  if (!c.flush()) return sh.fail(fmt::format("client {}: send failed", index));
  while (sh.phase.load(std::memory_order_relaxed) != kStop) {
    std::uint64_t got = 0;
    if (!c.next(&r, &got)) return sh.fail(fmt::format("client {}: no reply", index));
    const auto now = Clock::now();
    auto it = flight.find(got);
    if (it == flight.end()) return sh.fail(fmt::format("client {}: unexpected reply", index));
    const InFlight f = it->second;
    flight.erase(it);
    if (r.status != 0) {
      return sh.fail(
          fmt::format("client {}: {}: status {}", index, f.alloc ? "alloc" : "free", r.status));
    }
    const bool measured = sh.phase.load(std::memory_order_relaxed) == kMeasure;
    if (measured) {
      const std::uint64_t ns = ns_between(f.sent, now);
      (f.alloc ? t.alloc : t.free).record(ns);
      t.request.record(ns);
      ++t.requests;
      if (!f.alloc) ++t.pairs;
    }
    if (f.alloc) {
      c.queue(++rid, b::FreeRequest{std::get<b::AllocReply>(r.body).id});
    } else {
      c.queue(++rid, b::AllocRequest{cfg.min, cfg.max});
    }
    flight[rid] = {!f.alloc, now};
    if (!c.flush()) return sh.fail(fmt::format("client {}: send failed", index));
  }
  // Drain what is still in flight, then end the session (its PASIDs go back at once).
  while (!flight.empty()) {
    std::uint64_t got = 0;
    if (!c.next(&r, &got)) return;
    flight.erase(got);
  }
  (void)c.call(++rid, b::CloseSessionRequest{}, &r);
}

void echo_client(Shared& sh, unsigned index, Tally& t) {
  const WorkloadConfig& cfg = *sh.cfg;
  std::string why;
  const int fd = connect_to(cfg.socket, cfg.timeout, &why);
  if (fd < 0) {
    sh.fail(fmt::format("client {}: {}", index, why));
    sh.ready.fetch_add(1);
    return;
  }
  const b::EncodedRequest req = b::encode_request(1, b::AllocRequest{cfg.min, cfg.max});
  std::vector<std::byte> reply(echo_reply_size());
  if (!sh.wait_for_go()) {
    ::close(fd);
    return;
  }
  auto round_trip = [&] {
    return send_all(fd, req.span().data(), req.span().size()) &&
           recv_all(fd, reply.data(), reply.size());
  };
  while (true) {
    const int phase = sh.phase.load(std::memory_order_relaxed);
    if (phase == kStop) break;
    const auto t0 = Clock::now();
    if (!round_trip()) break;
    const auto t1 = Clock::now();
    if (!round_trip()) break;
    const auto t2 = Clock::now();
    if (phase == kMeasure && sh.phase.load(std::memory_order_relaxed) == kMeasure) {
      t.request.record(ns_between(t0, t1));
      t.request.record(ns_between(t1, t2));
      t.pair.record(ns_between(t0, t2));
      t.requests += 2;
      ++t.pairs;
    }
  }
  if (sh.phase.load() != kStop) sh.fail(fmt::format("client {}: echo failed", index));
  ::close(fd);
}

}  // namespace

bool pin_current_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) == 0;
}

std::size_t echo_request_size() { return b::kHeaderSize + sizeof(bw::AllocReq); }
std::size_t echo_reply_size() {
  return *b::reply_frame_size(b::ok_reply(bw::MsgType::alloc, b::AllocReply{1}));
}

bool run_workload(const WorkloadConfig& cfg, WorkloadResult* out, std::string* error) {
  Shared sh;
  sh.cfg = &cfg;
  std::vector<std::unique_ptr<Tally>> tallies;
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < cfg.clients; ++i) {
    tallies.push_back(std::make_unique<Tally>());
    Tally& t = *tallies.back();
    const int cpu = cfg.client_cpus.empty() ? -1 : cfg.client_cpus[i % cfg.client_cpus.size()];
    threads.emplace_back([&sh, &t, i, kind = cfg.kind, cpu] {
      if (cpu >= 0) (void)pin_current_thread(cpu);
      switch (kind) {
        case ClientKind::library:
          return library_client(sh, i, t);
        case ClientKind::pipelined:
          return pipelined_client(sh, i, t);
        case ClientKind::echo:
          return echo_client(sh, i, t);
      }
    });
  }
  // Every client connected (or failed): go, warm up, measure, stop.
  while (sh.ready.load() < cfg.clients) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  sh.go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(cfg.warmup);
  int expected = kWarmup;
  const auto t0 = Clock::now();
  sh.phase.compare_exchange_strong(expected, kMeasure);
  std::this_thread::sleep_for(cfg.duration);
  expected = kMeasure;
  const auto t1 = Clock::now();
  sh.phase.compare_exchange_strong(expected, kStop);
  for (auto& th : threads) th.join();
  if (!sh.error.empty()) {
    *error = sh.error;
    return false;
  }
  *out = WorkloadResult{};
  out->seconds = std::chrono::duration<double>(t1 - t0).count();
  for (const auto& t : tallies) {
    out->pairs += t->pairs;
    out->requests += t->requests;
    out->request.merge(t->request);
    out->alloc.merge(t->alloc);
    out->free.merge(t->free);
    out->pair.merge(t->pair);
  }
  return true;
}

}  // namespace ioasid::load
