// SPDX-License-Identifier: Apache-2.0
// client.cc: ioasid::DaemonBackend and ioasid::DaemonAdmin (include/ioasid/client.hpp) over the
// client channel (channel.hpp).
#include "ioasid/client.hpp"

#include <new>

#include "client/channel.hpp"

namespace ioasid {

namespace b = ioasid::broker;
namespace bw = ioasid::wire::broker;
using client_detail::Channel;

namespace {

// Runs req; on a success reply hands it to on_ok; returns the error otherwise.
template <class F>
Errc run(Channel& ch, const b::Request& req, F&& on_ok) noexcept {
  try {
    Errc status{};
    const Errc e = ch.call(req, [&](const b::Reply& r) {
      if (r.status != 0) {
        status = r.error();
      } else {
        on_ok(r);
      }
    });
    return e != Errc{} ? e : status;
  } catch (const std::bad_alloc&) {
    return Errc::no_memory;
  } catch (...) {
    return Errc::io_error;
  }
}

Result<void> as_result(Errc e) noexcept {
  if (e != Errc{}) return fail(e);
  return {};
}

SetInfo from_entry(const b::SetEntry& e) noexcept {
  SetInfo i;
  i.owner_token = e.vm_token;
  i.quota = e.quota;
  i.count = e.count;
  i.bound = e.bound;
  i.peak = e.peak;
  i.quota_refusals = e.quota_refusals;
  i.state = e.state;
  return i;
}

}  // namespace

// ---- DaemonBackend ----------------------------------------------------------------------------

DaemonBackend::DaemonBackend(std::unique_ptr<Channel> channel) noexcept : ch_(std::move(channel)) {}
DaemonBackend::~DaemonBackend() = default;

Result<std::unique_ptr<DaemonBackend>> DaemonBackend::open(const DaemonOptions& o) noexcept {
  if (o.socket_path.empty()) return fail(Errc::invalid_argument);
  if (o.quota == 0 && !o.resume_token) return fail(Errc::invalid_argument);
  if (o.resume_token) {
    bool zero = true;
    for (auto v : *o.resume_token) zero = zero && v == 0;
    if (zero) return fail(Errc::invalid_argument);
  }
  try {
    Channel::Config c;
    c.path = o.socket_path;
    c.features = bw::feature_bit(bw::kFSpid) | bw::feature_bit(bw::kFResume);
    c.session = true;
    c.vm_token = o.vm_token;
    c.quota = o.quota;
    c.resume = o.resume_token;
    c.timeout = o.timeout;
    c.backoff_initial = std::max(o.backoff_initial, std::chrono::milliseconds(1));
    c.backoff_max = std::max(o.backoff_max, c.backoff_initial);
    auto ch = std::make_unique<Channel>(std::move(c));
    if (Errc e = ch->start(); e != Errc{}) return fail(e);
    return std::make_unique<DaemonBackend>(std::move(ch));
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
}

Errc DaemonBackend::alloc_raw(Id min, Id max, Id* out) noexcept {
  if (min > max) return Errc::invalid_argument;
  return run(*ch_, b::AllocRequest{min, max},
             [&](const b::Reply& r) { *out = std::get<b::AllocReply>(r.body).id; });
}

Errc DaemonBackend::free_raw(Id id) noexcept {
  return run(*ch_, b::FreeRequest{id}, [](const b::Reply&) {});
}

Result<void> DaemonBackend::get(Id id) noexcept {
  return as_result(run(*ch_, b::GetRequest{id}, [](const b::Reply&) {}));
}

Result<bool> DaemonBackend::put(Id id) noexcept {
  bool released = false;
  const Errc e = run(*ch_, b::PutRequest{id},
                     [&](const b::Reply& r) { released = std::get<b::PutReply>(r.body).released; });
  if (e != Errc{}) return fail(e);
  return released;
}

Result<void> DaemonBackend::bind(Id id, Id spid) noexcept {
  return as_result(run(*ch_, b::BindRequest{id, spid}, [](const b::Reply&) {}));
}

Result<void> DaemonBackend::unbind(Id id) noexcept {
  return as_result(run(*ch_, b::UnbindRequest{id}, [](const b::Reply&) {}));
}

Result<IdInfo> DaemonBackend::query(Id id) noexcept {
  IdInfo info;
  const Errc e = run(*ch_, b::QueryRequest{id},
                     [&](const b::Reply& r) { info = std::get<b::QueryReply>(r.body).info; });
  if (e != Errc{}) return fail(e);
  return info;
}

Result<Id> DaemonBackend::find_by_spid(Id spid) noexcept {
  if (spid == kInvalidId) return fail(Errc::not_found);
  Id id = kInvalidId;
  const Errc e = run(*ch_, b::FindRequest{spid},
                     [&](const b::Reply& r) { id = std::get<b::FindReply>(r.body).id; });
  if (e != Errc{}) return fail(e);
  return id;
}

Result<SetInfo> DaemonBackend::set_info() noexcept {
  SetInfo info;
  const Errc e = run(*ch_, b::SetInfoRequest{}, [&](const b::Reply& r) {
    info = from_entry(std::get<b::SetInfoReply>(r.body).set);
  });
  if (e != Errc{}) return fail(e);
  return info;
}

Result<void> DaemonBackend::close_session() noexcept {
  const Errc e = run(*ch_, b::CloseSessionRequest{}, [](const b::Reply&) {});
  // A CLOSE_SESSION whose reply was lost: the retry cannot resume a session that is gone.
  if (e == Errc{} || e == Errc::not_found) {
    ch_->forget_session();
    return {};
  }
  return fail(e);
}

ResumeToken DaemonBackend::resume_token() const noexcept { return ch_->token(); }
bool DaemonBackend::resumed() const noexcept { return ch_->resumed(); }
std::uint32_t DaemonBackend::grace_seconds() const noexcept { return ch_->grace(); }
std::uint64_t DaemonBackend::reconnects() const noexcept { return ch_->reconnects(); }

// ---- DaemonAdmin ------------------------------------------------------------------------------

DaemonAdmin::DaemonAdmin(std::unique_ptr<Channel> channel) noexcept : ch_(std::move(channel)) {}
DaemonAdmin::~DaemonAdmin() = default;

Result<std::unique_ptr<DaemonAdmin>> DaemonAdmin::open(const std::string& socket_path,
                                                       std::chrono::milliseconds timeout) noexcept {
  try {
    AdminOptions o;
    o.socket_path = socket_path;
    o.timeout = timeout;
    return open(o);
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
}

Result<std::unique_ptr<DaemonAdmin>> DaemonAdmin::open(const AdminOptions& o) noexcept {
  if (o.socket_path.empty()) return fail(Errc::invalid_argument);
  try {
    Channel::Config c;
    c.path = o.socket_path;
    c.features = bw::kAllFeatures;
    c.timeout = o.timeout;
    c.retry_connect = o.wait_for_daemon;
    auto ch = std::make_unique<Channel>(std::move(c));
    if (Errc e = ch->start(); e != Errc{}) return fail(e);
    return std::make_unique<DaemonAdmin>(std::move(ch));
  } catch (const std::bad_alloc&) {
    return fail(Errc::no_memory);
  }
}

Result<std::vector<SetInfo>> DaemonAdmin::list_sets() noexcept {
  std::vector<SetInfo> all;
  std::uint64_t cursor = 0;
  do {
    std::uint64_t next = 0;
    const Errc e = run(*ch_, b::ListSetsRequest{cursor, 0}, [&](const b::Reply& r) {
      const auto& l = std::get<b::ListSetsReply>(r.body);
      for (std::size_t i = 0; i < l.sets.size(); ++i) all.push_back(from_entry(l.sets[i]));
      next = l.next_cursor;
    });
    if (e != Errc{}) return fail(e);
    cursor = next;
  } while (cursor != 0);
  return all;
}

Result<std::vector<IdInfo>> DaemonAdmin::list_ids(std::uint64_t vm_token) noexcept {
  std::vector<IdInfo> all;
  Id first = 0;
  while (true) {
    Id next = kInvalidId;
    const Errc e = run(*ch_, b::ListIdsRequest{vm_token, first, 0}, [&](const b::Reply& r) {
      const auto& l = std::get<b::ListIdsReply>(r.body);
      for (std::size_t i = 0; i < l.ids.size(); ++i) all.push_back(l.ids[i]);
      next = l.next_id;
    });
    if (e != Errc{}) return fail(e);
    if (next == kInvalidId) return all;
    first = next;
  }
}

Result<void> DaemonAdmin::set_quota(std::uint64_t vm_token, std::uint32_t quota) noexcept {
  return as_result(run(*ch_, b::SetQuotaRequest{vm_token, quota}, [](const b::Reply&) {}));
}

Result<DaemonStats> DaemonAdmin::stats() noexcept {
  DaemonStats s;
  const Errc e = run(*ch_, b::StatsRequest{}, [&](const b::Reply& r) {
    const auto& st = std::get<b::StatsReply>(r.body);
    s.space = st.space;
    s.clients = st.daemon.clients;
    s.sessions = st.daemon.sessions;
    s.detached_sessions = st.daemon.detached_sessions;
    s.requests = st.daemon.requests;
    s.error_replies = st.daemon.error_replies;
    s.protocol_errors = st.daemon.protocol_errors;
    s.journal_commits = st.daemon.journal_commits;
    s.journal_commit_ns = st.daemon.journal_commit_ns;
    s.journal_flushes = st.daemon.journal_flushes;
  });
  if (e != Errc{}) return fail(e);
  return s;
}

Result<DaemonStatus> DaemonAdmin::status() noexcept {
  DaemonStatus s;
  const Errc e = run(*ch_, b::StatusRequest{}, [&](const b::Reply& r) {
    const auto& st = std::get<b::StatusReply>(r.body);
    s.daemon_version = st.daemon_version;
    s.pid = st.pid;
    s.started_ms = st.started_ms;
    s.id_bits = st.id_bits;
    s.durable = !st.no_sync;
    s.grace_seconds = st.grace_seconds;
    s.max_sessions_per_client = st.max_sessions_per_client;
    s.max_clients = st.max_clients;
    s.max_output = st.max_output;
  });
  if (e != Errc{}) return fail(e);
  const b::HelloReply h = ch_->hello();
  s.protocol_version = h.version;
  s.features = h.features;
  s.max_in_flight = h.max_in_flight;
  s.max_payload = h.max_payload;
  return s;
}

Result<DaemonIdInfo> DaemonAdmin::query_id(Id id) noexcept {
  DaemonIdInfo out;
  const Errc e = run(*ch_, b::QueryIdRequest{id}, [&](const b::Reply& r) {
    const auto& q = std::get<b::QueryIdReply>(r.body);
    out.vm_token = q.vm_token;
    out.info = q.info;
  });
  if (e != Errc{}) return fail(e);
  return out;
}

}  // namespace ioasid
