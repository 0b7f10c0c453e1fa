// SPDX-License-Identifier: Apache-2.0
// proto.cc: the broker protocol codec (docs/protocol.md, version 1; layouts in
// include/ioasid/wire/broker_proto.hpp). The order of the checks and the action of every failure
// are listed at the top of proto.hpp.
//
// Invariants: no read outside the spans given; every field goes through le*.load()/store(); a
// decoded frame re-encodes to exactly the bytes it was decoded from (the fuzz target checks it);
// one table (kTypes) holds every per-type fact: name, request size, mutating, session, features,
// reply body.
#include "broker/proto.hpp"

#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

namespace ioasid::broker {
namespace {

using bw::feature_bit;

// Index of each body in ReplyBody, for the table below.
template <class T, std::size_t I = 0>
constexpr std::size_t body_index() {
  if constexpr (std::is_same_v<std::variant_alternative_t<I, ReplyBody>, T>) {
    return I;
  } else {
    return body_index<T, I + 1>();
  }
}

constexpr std::size_t kNoBody = body_index<std::monostate>();
constexpr std::size_t kVariable = std::numeric_limits<std::size_t>::max();

struct TypeInfo {
  MsgType type;
  const char* name;
  std::size_t request_size;  // exact payload size of the request
  bool mutating;
  bool session;
  std::uint64_t features;  // needed always (BIND/OPEN_SESSION add theirs by content)
  std::size_t body;        // index of the success reply body in ReplyBody
  std::size_t reply_size;  // payload size of a success reply (ReplyHead included); kVariable
};

constexpr std::size_t kHead = sizeof(bw::ReplyHead);
constexpr std::uint64_t kAdmin = feature_bit(bw::kFAdmin);

constexpr TypeInfo kTypes[] = {
    {MsgType::hello, "hello", sizeof(bw::HelloReq), false, false, 0, body_index<HelloReply>(),
     kHead + sizeof(bw::HelloReply)},
    {MsgType::open_session, "open_session", sizeof(bw::OpenSessionReq), true, false, 0,
     body_index<SessionReply>(), kHead + sizeof(bw::SessionReply)},
    {MsgType::resume, "resume", sizeof(bw::ResumeReq), true, false, feature_bit(bw::kFResume),
     body_index<SessionReply>(), kHead + sizeof(bw::SessionReply)},
    {MsgType::close_session, "close_session", 0, true, true, 0, kNoBody, kHead},
    {MsgType::alloc, "alloc", sizeof(bw::AllocReq), true, true, 0, body_index<AllocReply>(),
     kHead + sizeof(bw::AllocReply)},
    {MsgType::free, "free", sizeof(bw::IdReq), true, true, 0, kNoBody, kHead},
    {MsgType::get, "get", sizeof(bw::IdReq), true, true, 0, kNoBody, kHead},
    {MsgType::put, "put", sizeof(bw::IdReq), true, true, 0, body_index<PutReply>(),
     kHead + sizeof(bw::PutReply)},
    {MsgType::bind, "bind", sizeof(bw::BindReq), true, true, 0, kNoBody, kHead},
    {MsgType::unbind, "unbind", sizeof(bw::IdReq), true, true, 0, kNoBody, kHead},
    {MsgType::query, "query", sizeof(bw::IdReq), false, true, 0, body_index<QueryReply>(),
     kHead + sizeof(bw::IdEntry)},
    {MsgType::find, "find", sizeof(bw::FindReq), false, true, feature_bit(bw::kFSpid),
     body_index<FindReply>(), kHead + sizeof(bw::FindReply)},
    {MsgType::set_info, "set_info", 0, false, true, 0, body_index<SetInfoReply>(),
     kHead + sizeof(bw::SetEntry)},
    {MsgType::list_sets, "list_sets", sizeof(bw::ListSetsReq), false, false, kAdmin,
     body_index<ListSetsReply>(), kVariable},
    {MsgType::list_ids, "list_ids", sizeof(bw::ListIdsReq), false, false, kAdmin,
     body_index<ListIdsReply>(), kVariable},
    {MsgType::set_quota, "set_quota", sizeof(bw::SetQuotaReq), true, false, kAdmin, kNoBody, kHead},
    {MsgType::stats, "stats", 0, false, false, kAdmin, body_index<StatsReply>(),
     kHead + sizeof(bw::StatsReply)},
    {MsgType::status, "status", 0, false, false, kAdmin, body_index<StatusReply>(),
     kHead + sizeof(bw::StatusReply)},
    {MsgType::query_id, "query_id", sizeof(bw::IdReq), false, false, kAdmin,
     body_index<QueryIdReply>(), kHead + sizeof(bw::QueryIdReply)},
};
static_assert(std::size(kTypes) == std::variant_size_v<Request>, "one row per request");

const TypeInfo* info(std::uint32_t type) noexcept {
  for (const TypeInfo& t : kTypes) {
    if (bw::to_u32(t.type) == type) return &t;
  }
  return nullptr;
}

const TypeInfo& info(MsgType type) noexcept {
  const TypeInfo* t = info(bw::to_u32(type));
  return t != nullptr ? *t : kTypes[0];  // every MsgType has a row (static_assert above)
}

constexpr std::uint32_t kRequestFlags = bw::kProtocolVersion | bw::kFlagNeedReply;
constexpr std::uint32_t kReplyFlags = bw::kProtocolVersion | bw::kFlagReply;

tl::unexpected<DecodeError> close_conn(Reason r) noexcept {
  return tl::unexpected(DecodeError{r, Action::close, Errc::invalid_argument});
}
tl::unexpected<DecodeError> reject(Reason r, Errc e = Errc::invalid_argument) noexcept {
  return tl::unexpected(DecodeError{r, Action::error_reply, e});
}

// The first header check that flags and size fail (decode_header steps 2-4, 6), if any.
std::optional<Reason> header_fault(std::uint32_t flags, std::uint32_t size) noexcept {
  if ((flags & bw::kFlagVersionMask) != bw::kProtocolVersion) return Reason::bad_version;
  if ((flags & ~bw::kFlagsKnown) != 0) return Reason::unknown_flags;
  const bool reply = (flags & bw::kFlagReply) != 0;
  const bool need_reply = (flags & bw::kFlagNeedReply) != 0;
  if (reply == need_reply) return Reason::bad_direction;
  if (size > bw::kMaxPayload) return Reason::oversized;
  return std::nullopt;
}

template <std::size_t N>
bool zero(const std::uint8_t (&bytes)[N]) noexcept {
  return wire::all_zero(bytes);
}
bool zero(const wire::le32& v) noexcept { return v.load() == 0; }
bool zero(const ResumeToken& t) noexcept {
  return std::all_of(t.begin(), t.end(), [](std::uint8_t b) { return b == 0; });
}

// The payload as S; the caller has checked the size.
template <class S>
S load(std::span<const std::byte> payload) noexcept {
  static_assert(wire::WireStruct<S>);
  S s{};
  std::memcpy(&s, payload.data(), sizeof(S));
  return s;
}

ResumeToken token_of(const std::uint8_t (&t)[bw::kResumeTokenSize]) noexcept {
  ResumeToken out{};
  std::memcpy(out.data(), t, out.size());
  return out;
}
void store_token(std::uint8_t (&t)[bw::kResumeTokenSize], const ResumeToken& v) noexcept {
  std::memcpy(t, v.data(), v.size());
}

// ---- request payloads
// ----------------------------------------------------------------------------

Decoded<Request> decode_payload(MsgType type, std::span<const std::byte> p) noexcept {
  switch (type) {
    case MsgType::hello: {
      const auto w = load<bw::HelloReq>(p);
      if (!zero(w.reserved)) return reject(Reason::reserved_nonzero);
      if (w.max_version.load() == 0) return reject(Reason::invalid_value);
      return HelloRequest{w.max_version.load(), w.features.load()};
    }
    case MsgType::open_session: {
      const auto w = load<bw::OpenSessionReq>(p);
      const std::uint32_t flags = w.flags.load();
      if ((flags & ~bw::kOpenSessionFMask) != 0) return reject(Reason::unknown_flags);
      OpenSessionRequest r{w.vm_token.load(), w.quota.load(), std::nullopt};
      if ((flags & bw::kOpenSessionFResume) != 0) {
        r.resume = token_of(w.resume_token);
        if (zero(*r.resume)) return reject(Reason::invalid_value);
      } else {
        if (!zero(w.resume_token)) return reject(Reason::reserved_nonzero);
        if (r.quota == 0) return reject(Reason::invalid_value);
      }
      return r;
    }
    case MsgType::resume: {
      const auto w = load<bw::ResumeReq>(p);
      ResumeRequest r{w.vm_token.load(), token_of(w.resume_token)};
      if (zero(r.token)) return reject(Reason::invalid_value);
      return r;
    }
    case MsgType::close_session:
      return CloseSessionRequest{};
    case MsgType::alloc: {
      const auto w = load<bw::AllocReq>(p);
      AllocRequest r{w.min.load(), w.max.load()};
      if (r.min > r.max) return reject(Reason::inverted_range);
      return r;
    }
    case MsgType::free:
    case MsgType::get:
    case MsgType::put:
    case MsgType::unbind:
    case MsgType::query: {
      const auto w = load<bw::IdReq>(p);
      if (!zero(w.reserved)) return reject(Reason::reserved_nonzero);
      const Id id = w.id.load();
      switch (type) {
        case MsgType::free:
          return FreeRequest{id};
        case MsgType::get:
          return GetRequest{id};
        case MsgType::put:
          return PutRequest{id};
        case MsgType::unbind:
          return UnbindRequest{id};
        default:
          return QueryRequest{id};
      }
    }
    case MsgType::bind: {
      const auto w = load<bw::BindReq>(p);
      if (!zero(w.reserved)) return reject(Reason::reserved_nonzero);
      const std::uint32_t flags = w.flags.load();
      if ((flags & ~bw::kBindFMask) != 0) return reject(Reason::unknown_flags);
      BindRequest r{w.id.load(), kInvalidId};
      if ((flags & bw::kBindFSpid) != 0) {
        r.spid = w.spid.load();
        if (r.spid == bw::kNoId) return reject(Reason::invalid_value);
      } else if (!zero(w.spid)) {
        return reject(Reason::reserved_nonzero);
      }
      return r;
    }
    case MsgType::find: {
      const auto w = load<bw::FindReq>(p);
      if (!zero(w.reserved)) return reject(Reason::reserved_nonzero);
      if (w.spid.load() == bw::kNoId) return reject(Reason::invalid_value);
      return FindRequest{w.spid.load()};
    }
    case MsgType::set_info:
      return SetInfoRequest{};
    case MsgType::list_sets: {
      const auto w = load<bw::ListSetsReq>(p);
      if (!zero(w.reserved)) return reject(Reason::reserved_nonzero);
      return ListSetsRequest{w.cursor.load(), w.max_entries.load()};
    }
    case MsgType::list_ids: {
      const auto w = load<bw::ListIdsReq>(p);
      return ListIdsRequest{w.vm_token.load(), w.first.load(), w.max_entries.load()};
    }
    case MsgType::set_quota: {
      const auto w = load<bw::SetQuotaReq>(p);
      if (!zero(w.reserved)) return reject(Reason::reserved_nonzero);
      if (w.quota.load() == 0) return reject(Reason::invalid_value);
      return SetQuotaRequest{w.vm_token.load(), w.quota.load()};
    }
    case MsgType::stats:
      return StatsRequest{};
    case MsgType::status:
      return StatusRequest{};
    case MsgType::query_id: {
      const auto w = load<bw::IdReq>(p);
      if (!zero(w.reserved)) return reject(Reason::reserved_nonzero);
      return QueryIdRequest{w.id.load()};
    }
  }
  return reject(Reason::unknown_type, Errc::unsupported);  // unreachable: info() knew the type
}

template <class S>
void put_payload(EncodedRequest& out, const S& s) noexcept {
  static_assert(wire::WireStruct<S>);
  std::memcpy(out.bytes.data() + kHeaderSize, &s, sizeof(S));
  out.size = kHeaderSize + sizeof(S);
}

void put_header(std::span<std::byte> out, std::uint32_t type, std::uint32_t flags,
                std::size_t payload, std::uint64_t request_id) noexcept {
  bw::Header h{};
  h.type.store(type);
  h.flags.store(flags);
  h.size.store(static_cast<std::uint32_t>(payload));
  h.request_id.store(request_id);
  std::memcpy(out.data(), &h, sizeof(h));
}

// ---- reply bodies
// ----------------------------------------------------------------------------------

template <class S>
void put_at(std::span<std::byte> out, std::size_t offset, const S& s) noexcept {
  static_assert(wire::WireStruct<S>);
  std::memcpy(out.data() + offset, &s, sizeof(S));
}

bool valid_entry(const bw::SetEntry& w) noexcept {
  return w.state <= bw::kSetStateDying && zero(w.reserved);
}
bool valid_entry(const bw::IdEntry& w) noexcept {
  return w.state <= bw::kIdStateReserved && zero(w.reserved) && zero(w.reserved1);
}

// A list body: head H, then count entries W, exactly; each entry valid.
template <class H, class W>
Decoded<std::span<const std::byte>> list_entries(std::span<const std::byte> body,
                                                 std::uint32_t count) noexcept {
  const std::uint64_t want = sizeof(H) + std::uint64_t{count} * sizeof(W);
  if (body.size() != want) return close_conn(Reason::bad_length);
  const std::span<const std::byte> entries = body.subspan(sizeof(H));
  for (std::size_t i = 0; i < count; ++i) {
    if (!valid_entry(load<W>(entries.subspan(i * sizeof(W))))) {
      return close_conn(Reason::invalid_value);
    }
  }
  return entries;
}

Decoded<ReplyBody> decode_body(MsgType type, std::span<const std::byte> b) noexcept {
  switch (type) {
    case MsgType::hello: {
      const auto w = load<bw::HelloReply>(b);
      if (!zero(w.reserved)) return close_conn(Reason::reserved_nonzero);
      const HelloReply r{w.version.load(), w.max_payload.load(), w.features.load(),
                         w.max_in_flight.load()};
      if (r.version != bw::kProtocolVersion || r.max_payload == 0 ||
          r.max_payload > bw::kMaxPayload || (r.features & ~bw::kAllFeatures) != 0 ||
          r.max_in_flight == 0) {
        return close_conn(Reason::invalid_value);
      }
      return r;
    }
    case MsgType::open_session:
    case MsgType::resume: {
      const auto w = load<bw::SessionReply>(b);
      const std::uint32_t flags = w.flags.load();
      if ((flags & ~bw::kSessionFMask) != 0) return close_conn(Reason::unknown_flags);
      return SessionReply{w.vm_token.load(),
                          token_of(w.resume_token),
                          w.quota.load(),
                          w.count.load(),
                          (flags & bw::kSessionFResumed) != 0,
                          w.grace_seconds.load()};
    }
    case MsgType::alloc: {
      const auto w = load<bw::AllocReply>(b);
      if (!zero(w.reserved)) return close_conn(Reason::reserved_nonzero);
      return AllocReply{w.id.load()};
    }
    case MsgType::put: {
      const auto w = load<bw::PutReply>(b);
      if (!zero(w.reserved)) return close_conn(Reason::reserved_nonzero);
      const std::uint32_t flags = w.flags.load();
      if ((flags & ~bw::kPutFMask) != 0) return close_conn(Reason::unknown_flags);
      return PutReply{(flags & bw::kPutFReleased) != 0};
    }
    case MsgType::query: {
      const auto w = load<bw::IdEntry>(b);
      if (!valid_entry(w)) return close_conn(Reason::invalid_value);
      return QueryReply{from_wire(w)};
    }
    case MsgType::find: {
      const auto w = load<bw::FindReply>(b);
      if (!zero(w.reserved)) return close_conn(Reason::reserved_nonzero);
      return FindReply{w.id.load()};
    }
    case MsgType::set_info: {
      const auto w = load<bw::SetEntry>(b);
      if (!valid_entry(w)) return close_conn(Reason::invalid_value);
      return SetInfoReply{from_wire(w)};
    }
    case MsgType::list_sets: {
      if (b.size() < sizeof(bw::ListSetsReplyHead)) return close_conn(Reason::bad_length);
      const auto h = load<bw::ListSetsReplyHead>(b);
      if (!zero(h.reserved)) return close_conn(Reason::reserved_nonzero);
      auto entries = list_entries<bw::ListSetsReplyHead, bw::SetEntry>(b, h.count.load());
      if (!entries) return tl::unexpected(entries.error());
      return ListSetsReply{h.next_cursor.load(), SetList(*entries)};
    }
    case MsgType::list_ids: {
      if (b.size() < sizeof(bw::ListIdsReplyHead)) return close_conn(Reason::bad_length);
      const auto h = load<bw::ListIdsReplyHead>(b);
      auto entries = list_entries<bw::ListIdsReplyHead, bw::IdEntry>(b, h.count.load());
      if (!entries) return tl::unexpected(entries.error());
      return ListIdsReply{h.next_id.load(), IdList(*entries)};
    }
    case MsgType::stats: {
      const auto w = load<bw::StatsReply>(b);
      StatsReply r{};
      r.space.live_ids = w.live_ids.load();
      r.space.free_pending_ids = w.free_pending_ids.load();
      r.space.reserved_ids = w.reserved_ids.load();
      r.space.capacity = w.capacity.load();
      r.space.quota_reserved = w.quota_reserved.load();
      r.space.sets = w.sets.load();
      r.space.dying_sets = w.dying_sets.load();
      r.space.allocs = w.allocs.load();
      r.space.releases = w.releases.load();
      r.space.quota_refusals = w.quota_refusals.load();
      r.space.exhausted_refusals = w.exhausted_refusals.load();
      r.daemon = {w.clients.load(),         w.sessions.load(),          w.detached_sessions.load(),
                  w.requests.load(),        w.error_replies.load(),     w.protocol_errors.load(),
                  w.journal_commits.load(), w.journal_commit_ns.load(), w.journal_flushes.load()};
      return r;
    }
    case MsgType::status: {
      const auto w = load<bw::StatusReply>(b);
      if (!zero(w.reserved)) return close_conn(Reason::reserved_nonzero);
      const std::uint32_t flags = w.flags.load();
      if ((flags & ~bw::kStatusFMask) != 0) return close_conn(Reason::unknown_flags);
      StatusReply r;
      r.daemon_version = w.daemon_version.load();
      r.pid = w.pid.load();
      r.started_ms = w.started_ms.load();
      r.id_bits = w.id_bits.load();
      r.no_sync = (flags & bw::kStatusFNoSync) != 0;
      r.grace_seconds = w.grace_seconds.load();
      r.max_sessions_per_client = w.max_sessions_per_client.load();
      r.max_clients = w.max_clients.load();
      r.max_output = w.max_output.load();
      if (r.id_bits == 0 || r.id_bits > 32) return close_conn(Reason::invalid_value);
      return r;
    }
    case MsgType::query_id: {
      const auto w = load<bw::QueryIdReply>(b);
      if (!valid_entry(w.entry)) return close_conn(Reason::invalid_value);
      return QueryIdReply{w.vm_token.load(), from_wire(w.entry)};
    }
    case MsgType::close_session:
    case MsgType::free:
    case MsgType::get:
    case MsgType::bind:
    case MsgType::unbind:
    case MsgType::set_quota:
      return std::monostate{};
  }
  return close_conn(Reason::unknown_type);  // unreachable: info() knew the type
}

// Writes the body of a success reply at out[offset, ...). The caller has checked the sizes.
void put_body(std::span<std::byte> out, std::size_t at, const ReplyBody& body) noexcept {
  std::visit(
      [&](const auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          // status only
        } else if constexpr (std::is_same_v<T, HelloReply>) {
          bw::HelloReply w{};
          w.version.store(r.version);
          w.max_payload.store(r.max_payload);
          w.features.store(r.features);
          w.max_in_flight.store(r.max_in_flight);
          put_at(out, at, w);
        } else if constexpr (std::is_same_v<T, SessionReply>) {
          bw::SessionReply w{};
          w.vm_token.store(r.vm_token);
          store_token(w.resume_token, r.resume_token);
          w.quota.store(r.quota);
          w.count.store(r.count);
          w.flags.store(r.resumed ? bw::kSessionFResumed : 0);
          w.grace_seconds.store(r.grace_seconds);
          put_at(out, at, w);
        } else if constexpr (std::is_same_v<T, AllocReply>) {
          bw::AllocReply w{};
          w.id.store(r.id);
          put_at(out, at, w);
        } else if constexpr (std::is_same_v<T, PutReply>) {
          bw::PutReply w{};
          w.flags.store(r.released ? bw::kPutFReleased : 0);
          put_at(out, at, w);
        } else if constexpr (std::is_same_v<T, QueryReply>) {
          put_at(out, at, to_wire(r.info));
        } else if constexpr (std::is_same_v<T, FindReply>) {
          bw::FindReply w{};
          w.id.store(r.id);
          put_at(out, at, w);
        } else if constexpr (std::is_same_v<T, SetInfoReply>) {
          put_at(out, at, to_wire(r.set));
        } else if constexpr (std::is_same_v<T, ListSetsReply>) {
          bw::ListSetsReplyHead h{};
          h.next_cursor.store(r.next_cursor);
          h.count.store(static_cast<std::uint32_t>(r.sets.size()));
          put_at(out, at, h);
          const auto bytes = r.sets.bytes();
          if (!bytes.empty()) std::memcpy(out.data() + at + sizeof(h), bytes.data(), bytes.size());
        } else if constexpr (std::is_same_v<T, ListIdsReply>) {
          bw::ListIdsReplyHead h{};
          h.count.store(static_cast<std::uint32_t>(r.ids.size()));
          h.next_id.store(r.next_id);
          put_at(out, at, h);
          const auto bytes = r.ids.bytes();
          if (!bytes.empty()) std::memcpy(out.data() + at + sizeof(h), bytes.data(), bytes.size());
        } else if constexpr (std::is_same_v<T, StatusReply>) {
          bw::StatusReply w{};
          w.daemon_version.store(r.daemon_version);
          w.pid.store(r.pid);
          w.started_ms.store(r.started_ms);
          w.id_bits.store(r.id_bits);
          w.flags.store(r.no_sync ? bw::kStatusFNoSync : 0);
          w.grace_seconds.store(r.grace_seconds);
          w.max_sessions_per_client.store(r.max_sessions_per_client);
          w.max_clients.store(r.max_clients);
          w.max_output.store(r.max_output);
          put_at(out, at, w);
        } else if constexpr (std::is_same_v<T, QueryIdReply>) {
          bw::QueryIdReply w{};
          w.vm_token.store(r.vm_token);
          w.entry = to_wire(r.info);
          put_at(out, at, w);
        } else {
          static_assert(std::is_same_v<T, StatsReply>);
          bw::StatsReply w{};
          w.live_ids.store(r.space.live_ids);
          w.free_pending_ids.store(r.space.free_pending_ids);
          w.reserved_ids.store(r.space.reserved_ids);
          w.capacity.store(r.space.capacity);
          w.quota_reserved.store(r.space.quota_reserved);
          w.sets.store(r.space.sets);
          w.dying_sets.store(r.space.dying_sets);
          w.allocs.store(r.space.allocs);
          w.releases.store(r.space.releases);
          w.quota_refusals.store(r.space.quota_refusals);
          w.exhausted_refusals.store(r.space.exhausted_refusals);
          w.clients.store(r.daemon.clients);
          w.sessions.store(r.daemon.sessions);
          w.detached_sessions.store(r.daemon.detached_sessions);
          w.requests.store(r.daemon.requests);
          w.error_replies.store(r.daemon.error_replies);
          w.protocol_errors.store(r.daemon.protocol_errors);
          w.journal_commits.store(r.daemon.journal_commits);
          w.journal_commit_ns.store(r.daemon.journal_commit_ns);
          w.journal_flushes.store(r.daemon.journal_flushes);
          put_at(out, at, w);
        }
      },
      body);
}

// The payload size of a success body (ReplyHead included), or nullopt if the list is too long.
std::optional<std::size_t> body_payload_size(const TypeInfo& t, const ReplyBody& body) noexcept {
  if (t.reply_size != kVariable) return t.reply_size;
  if (const auto* s = std::get_if<ListSetsReply>(&body)) {
    if (s->sets.size() > bw::kMaxListSets) return std::nullopt;
    return kHead + sizeof(bw::ListSetsReplyHead) + s->sets.bytes().size();
  }
  if (const auto* i = std::get_if<ListIdsReply>(&body)) {
    if (i->ids.size() > bw::kMaxListIds) return std::nullopt;
    return kHead + sizeof(bw::ListIdsReplyHead) + i->ids.bytes().size();
  }
  return std::nullopt;
}

std::optional<std::size_t> reply_payload_size(const Reply& r) noexcept {
  if (r.status > 0) return std::nullopt;
  if (r.status < 0) {
    if (!std::holds_alternative<std::monostate>(r.body)) return std::nullopt;
    return kHead;
  }
  const TypeInfo* t = info(r.type);
  if (t == nullptr || r.body.index() != t->body) return std::nullopt;
  return body_payload_size(*t, r.body);
}

}  // namespace

// ---- names
// ------------------------------------------------------------------------------------------

const char* to_string(Reason r) noexcept {
  switch (r) {
    case Reason::short_header:
      return "short_header";
    case Reason::bad_version:
      return "bad_version";
    case Reason::unknown_flags:
      return "unknown_flags";
    case Reason::bad_direction:
      return "bad_direction";
    case Reason::header_reserved:
      return "header_reserved";
    case Reason::oversized:
      return "oversized";
    case Reason::not_a_request:
      return "not_a_request";
    case Reason::not_a_reply:
      return "not_a_reply";
    case Reason::size_mismatch:
      return "size_mismatch";
    case Reason::unknown_type:
      return "unknown_type";
    case Reason::bad_length:
      return "bad_length";
    case Reason::zero_request_id:
      return "zero_request_id";
    case Reason::reserved_nonzero:
      return "reserved_nonzero";
    case Reason::inverted_range:
      return "inverted_range";
    case Reason::invalid_value:
      return "invalid_value";
    case Reason::bad_status:
      return "bad_status";
  }
  return "unknown";
}

const char* to_string(Action a) noexcept {
  switch (a) {
    case Action::need_more:
      return "need_more";
    case Action::close:
      return "close";
    case Action::error_reply:
      return "error_reply";
  }
  return "unknown";
}

const char* to_string(MsgType t) noexcept {
  const TypeInfo* i = info(bw::to_u32(t));
  return i != nullptr ? i->name : "unknown";
}

// ---- header
// ---------------------------------------------------------------------------------------

Decoded<Header> decode_header(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() < kHeaderSize) {
    return tl::unexpected(
        DecodeError{Reason::short_header, Action::need_more, Errc::invalid_argument});
  }
  const auto w = load<bw::Header>(bytes);
  const Header h{w.type.load(), w.flags.load(), w.size.load(), w.request_id.load()};
  const std::optional<Reason> fault = header_fault(h.flags, bw::kMaxPayload);
  if (fault) return close_conn(*fault);
  if (!zero(w.reserved)) return close_conn(Reason::header_reserved);
  if (h.size > bw::kMaxPayload) return close_conn(Reason::oversized);
  return h;
}

// ---- requests
// -------------------------------------------------------------------------------------

MsgType request_type(const Request& r) noexcept { return kTypes[r.index()].type; }

bool is_known_type(std::uint32_t type) noexcept { return info(type) != nullptr; }

std::optional<std::size_t> request_payload_size(std::uint32_t type) noexcept {
  const TypeInfo* t = info(type);
  if (t == nullptr) return std::nullopt;
  return t->request_size;
}

bool is_mutating(MsgType t) noexcept { return info(t).mutating; }

bool is_admin(MsgType t) noexcept { return (info(t).features & kAdmin) != 0; }

bool needs_session(MsgType t) noexcept { return info(t).session; }

std::uint64_t required_features(const Request& r) noexcept {
  std::uint64_t f = info(request_type(r)).features;
  if (const auto* b = std::get_if<BindRequest>(&r); b != nullptr && b->spid != kInvalidId) {
    f |= feature_bit(bw::kFSpid);
  }
  if (const auto* o = std::get_if<OpenSessionRequest>(&r); o != nullptr && o->resume) {
    f |= feature_bit(bw::kFResume);
  }
  return f;
}

Decoded<Request> decode_request(const Header& header, std::span<const std::byte> payload) noexcept {
  if (header.is_reply()) return close_conn(Reason::not_a_request);
  if (const auto fault = header_fault(header.flags, header.size)) return close_conn(*fault);
  if (payload.size() != header.size) return close_conn(Reason::size_mismatch);
  const TypeInfo* t = info(header.type);
  if (t == nullptr) return reject(Reason::unknown_type, Errc::unsupported);
  if (payload.size() != t->request_size) return reject(Reason::bad_length);
  if (t->mutating && header.request_id == 0) return reject(Reason::zero_request_id);
  return decode_payload(t->type, payload);
}

EncodedRequest encode_request(std::uint64_t request_id, const Request& r) noexcept {
  EncodedRequest out;
  out.size = kHeaderSize;
  std::visit(
      [&out](const auto& q) {
        using T = std::decay_t<decltype(q)>;
        if constexpr (std::is_same_v<T, HelloRequest>) {
          bw::HelloReq w{};
          w.max_version.store(q.max_version);
          w.features.store(q.features);
          put_payload(out, w);
        } else if constexpr (std::is_same_v<T, OpenSessionRequest>) {
          bw::OpenSessionReq w{};
          w.vm_token.store(q.vm_token);
          w.quota.store(q.quota);
          if (q.resume) {
            w.flags.store(bw::kOpenSessionFResume);
            store_token(w.resume_token, *q.resume);
          }
          put_payload(out, w);
        } else if constexpr (std::is_same_v<T, ResumeRequest>) {
          bw::ResumeReq w{};
          w.vm_token.store(q.vm_token);
          store_token(w.resume_token, q.token);
          put_payload(out, w);
        } else if constexpr (std::is_same_v<T, AllocRequest>) {
          bw::AllocReq w{};
          w.min.store(q.min);
          w.max.store(q.max);
          put_payload(out, w);
        } else if constexpr (std::is_same_v<T, FreeRequest> || std::is_same_v<T, GetRequest> ||
                             std::is_same_v<T, PutRequest> || std::is_same_v<T, UnbindRequest> ||
                             std::is_same_v<T, QueryRequest> || std::is_same_v<T, QueryIdRequest>) {
          bw::IdReq w{};
          w.id.store(q.id);
          put_payload(out, w);
        } else if constexpr (std::is_same_v<T, BindRequest>) {
          bw::BindReq w{};
          w.id.store(q.id);
          if (q.spid != kInvalidId) {
            w.flags.store(bw::kBindFSpid);
            w.spid.store(q.spid);
          }
          put_payload(out, w);
        } else if constexpr (std::is_same_v<T, FindRequest>) {
          bw::FindReq w{};
          w.spid.store(q.spid);
          put_payload(out, w);
        } else if constexpr (std::is_same_v<T, ListSetsRequest>) {
          bw::ListSetsReq w{};
          w.cursor.store(q.cursor);
          w.max_entries.store(q.max_entries);
          put_payload(out, w);
        } else if constexpr (std::is_same_v<T, ListIdsRequest>) {
          bw::ListIdsReq w{};
          w.vm_token.store(q.vm_token);
          w.first.store(q.first);
          w.max_entries.store(q.max_entries);
          put_payload(out, w);
        } else if constexpr (std::is_same_v<T, SetQuotaRequest>) {
          bw::SetQuotaReq w{};
          w.vm_token.store(q.vm_token);
          w.quota.store(q.quota);
          put_payload(out, w);
        } else {
          static_assert(std::is_same_v<T, CloseSessionRequest> ||
                        std::is_same_v<T, SetInfoRequest> || std::is_same_v<T, StatsRequest> ||
                        std::is_same_v<T, StatusRequest>);
          // no payload
        }
      },
      r);
  put_header(out.bytes, bw::to_u32(request_type(r)), kRequestFlags, out.size - kHeaderSize,
             request_id);
  return out;
}

// ---- replies
// --------------------------------------------------------------------------------------

bool operator==(const QueryReply& a, const QueryReply& b) noexcept {
  return a.info.id == b.info.id && a.info.state == b.info.state && a.info.refs == b.info.refs &&
         a.info.binds == b.info.binds && a.info.spid == b.info.spid;
}

bool operator==(const QueryIdReply& a, const QueryIdReply& b) noexcept {
  return a.vm_token == b.vm_token && QueryReply{a.info} == QueryReply{b.info};
}

bool operator==(const StatsReply& a, const StatsReply& b) noexcept {
  const SpaceStats& x = a.space;
  const SpaceStats& y = b.space;
  return x.live_ids == y.live_ids && x.free_pending_ids == y.free_pending_ids &&
         x.reserved_ids == y.reserved_ids && x.capacity == y.capacity &&
         x.quota_reserved == y.quota_reserved && x.sets == y.sets && x.dying_sets == y.dying_sets &&
         x.allocs == y.allocs && x.releases == y.releases && x.quota_refusals == y.quota_refusals &&
         x.exhausted_refusals == y.exhausted_refusals && a.daemon == b.daemon;
}

bw::SetEntry to_wire(const SetEntry& e) noexcept {
  bw::SetEntry w{};
  w.vm_token.store(e.vm_token);
  w.quota.store(e.quota);
  w.count.store(e.count);
  w.bound.store(e.bound);
  w.peak.store(e.peak);
  w.quota_refusals.store(e.quota_refusals);
  w.state = static_cast<std::uint8_t>(e.state);
  return w;
}

bw::IdEntry to_wire(const IdInfo& e) noexcept {
  bw::IdEntry w{};
  w.id.store(e.id);
  w.state = static_cast<std::uint8_t>(e.state);
  w.refs.store(e.refs);
  w.binds.store(e.binds);
  w.spid.store(e.spid);
  return w;
}

SetEntry from_wire(const bw::SetEntry& w) noexcept {
  return SetEntry{w.vm_token.load(),
                  w.quota.load(),
                  w.count.load(),
                  w.bound.load(),
                  w.peak.load(),
                  w.quota_refusals.load(),
                  static_cast<SetState>(w.state)};
}

IdInfo from_wire(const bw::IdEntry& w) noexcept {
  return IdInfo{w.id.load(), static_cast<IdState>(w.state), w.refs.load(), w.binds.load(),
                w.spid.load()};
}

Errc Reply::error() const noexcept {
  // -INT32_MIN does not fit an int: compute in 64 bits; anything unknown becomes io_error.
  const std::int64_t err = -static_cast<std::int64_t>(status);
  if (err <= 0 || err > std::numeric_limits<int>::max()) return Errc::io_error;
  return from_errno(static_cast<int>(err));
}

Reply ok_reply(MsgType t, ReplyBody body) noexcept {
  return Reply{bw::to_u32(t), 0, std::move(body)};
}

Reply error_reply(std::uint32_t type, Errc e) noexcept {
  return Reply{type, -to_errno(guest_visible(e)), std::monostate{}};
}

std::optional<std::size_t> reply_frame_size(const Reply& r) noexcept {
  const auto payload = reply_payload_size(r);
  if (!payload) return std::nullopt;
  return kHeaderSize + *payload;
}

Result<std::size_t> encode_reply(std::span<std::byte> out, std::uint64_t request_id,
                                 const Reply& r) noexcept {
  const auto payload = reply_payload_size(r);
  if (!payload) return fail(Errc::invalid_argument);
  const std::size_t total = kHeaderSize + *payload;
  if (out.size() < total) return fail(Errc::out_of_range);
  put_header(out, r.type, kReplyFlags, *payload, request_id);
  bw::ReplyHead head{};
  head.status.store(static_cast<std::uint32_t>(r.status));
  put_at(out, kHeaderSize, head);
  put_body(out, kHeaderSize + kHead, r.body);
  return total;
}

Decoded<Reply> decode_reply(const Header& header, std::span<const std::byte> payload) noexcept {
  if (!header.is_reply()) return close_conn(Reason::not_a_reply);
  if (const auto fault = header_fault(header.flags, header.size)) return close_conn(*fault);
  if (payload.size() != header.size) return close_conn(Reason::size_mismatch);
  if (payload.size() < kHead) return close_conn(Reason::bad_length);
  const auto head = load<bw::ReplyHead>(payload);
  if (!zero(head.reserved)) return close_conn(Reason::reserved_nonzero);
  const auto status = static_cast<std::int32_t>(head.status.load());
  if (status > 0) return close_conn(Reason::bad_status);
  if (status < 0) {
    // An error reply is the head alone, whatever the type (it may answer a type the daemon did
    // not know).
    if (payload.size() != kHead) return close_conn(Reason::bad_status);
    return Reply{header.type, status, std::monostate{}};
  }
  const TypeInfo* t = info(header.type);
  if (t == nullptr) return close_conn(Reason::unknown_type);
  if (t->reply_size != kVariable && payload.size() != t->reply_size) {
    return close_conn(Reason::bad_length);
  }
  auto body = decode_body(t->type, payload.subspan(kHead));
  if (!body) return tl::unexpected(body.error());
  return Reply{header.type, 0, std::move(*body)};
}

}  // namespace ioasid::broker
