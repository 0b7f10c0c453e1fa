// SPDX-License-Identifier: Apache-2.0
// proto.hpp: the ioasidd broker protocol codec: pure functions from bytes to decoded frames and
// back, for both sides. The daemon uses decode_header + decode_request + encode_reply; the client
// library uses encode_request + decode_header + decode_reply.
//
// Spec and revision: docs/protocol.md, protocol version 1 (wire layouts:
// include/ioasid/wire/broker_proto.hpp).
//
// Every decode failure comes with the Action the receiver takes:
//   need_more    the bytes so far are a prefix of a header: read more (stream reassembly)
//   close        the stream cannot be trusted any more: close this connection only
//   error_reply  the frame is intact but the request is not acceptable: answer it with errc as
//                a negative errno status and keep the connection
//
// decode_header checks, in this order (the first failure wins; all but the first close):
//   1. at least 24 bytes                             else short_header     -> need_more
//   2. version (flags bits 1:0) is 1                 else bad_version
//   3. no flag bit outside kFlagsKnown               else unknown_flags
//   4. exactly one of REPLY and NEED_REPLY           else bad_direction
//   5. header reserved word is zero                  else header_reserved
//   6. size <= kMaxPayload                           else oversized
// decode_request then checks (the frame boundary is known, so most outcomes keep the connection):
//   1. the frame is a request (REPLY clear)          else not_a_request    -> close
//      and the header passes decode_header's checks  else that reason      -> close
//   2. payload.size() == header.size                 else size_mismatch    -> close
//   3. the type is known                             else unknown_type     -> -EOPNOTSUPP
//   4. the payload has exactly the type's size       else bad_length       -> -EINVAL
//   5. a mutating request has request_id != 0        else zero_request_id  -> -EINVAL
//   6. reserved fields and bytes are zero            else reserved_nonzero -> -EINVAL
//   7. no undefined message flag bit                 else unknown_flags    -> -EINVAL
//      (a field a flag gates, OPEN_SESSION's token or BIND's spid, is reserved when the flag is
//      clear, so for those two the flags are checked first)
//   8. ranges: ALLOC min <= max                      else inverted_range   -> -EINVAL
//   9. values: HELLO max_version >= 1, quotas >= 1 (OPEN_SESSION without RESUME, SET_QUOTA), a
//      resume token nonzero exactly when present, BIND_F_SPID and FIND with spid != kNoId
//                                                    else invalid_value    -> -EINVAL
// Decision: an inverted ALLOC range is refused here, like the virtio parser's inverted_range,
// since it needs no state; a range outside the space is left to the space (ERANGE), whose width
// the codec does not know.
// Everything that needs state is the daemon's: features negotiated (required_features(), answered
// -EOPNOTSUPP), a session open (needs_session()), ownership, IDs inside the space (ERANGE), quota.
// decode_reply: every failure is `close` (the daemon is broken or speaks another protocol).
//
// Synopsis
//   auto h = decode_header(buffered);            // need_more: read more; close: drop the peer
//   auto r = decode_request(*h, buffered.subspan(kHeaderSize, h->size));
//   if (!r && r.error().action == Action::error_reply)
//     encode_reply(out, h->request_id, error_reply(h->type, r.error().errc));
//
// Thread-safety: pure functions. Context: noexcept, no exceptions; decode allocates nothing (list
// replies are views into the decoded bytes).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <variant>

#include <tl/expected.hpp>

#include "ioasid/errc.hpp"
#include "ioasid/types.hpp"
#include "ioasid/wire/broker_proto.hpp"

namespace ioasid::broker {

namespace bw = ::ioasid::wire::broker;
using bw::MsgType;

inline constexpr std::size_t kHeaderSize = sizeof(bw::Header);
inline constexpr std::size_t kMaxFrame = kHeaderSize + bw::kMaxPayload;

// ---- outcomes -----------------------------------------------------------------------------------

enum class Action : std::uint8_t { need_more = 1, close, error_reply };

enum class Reason : std::uint8_t {
  short_header = 1,  // fewer than 24 bytes                                 need_more
  bad_version,       // flags version is not kProtocolVersion                close
  unknown_flags,     // undefined header flag, or message flag (EINVAL)      close / error_reply
  bad_direction,     // not exactly one of REPLY, NEED_REPLY                  close
  header_reserved,   // header reserved word nonzero                          close
  oversized,         // size > kMaxPayload                                    close
  not_a_request,     // a reply frame given to decode_request                 close
  not_a_reply,       // a request frame given to decode_reply                 close
  size_mismatch,     // payload span differs from header.size                 close
  unknown_type,      // type this side does not know                          error_reply / close
  bad_length,        // payload size is not the type's                        error_reply / close
  zero_request_id,   // a mutating request without a client token            error_reply
  reserved_nonzero,  // a reserved field is not zero                          error_reply / close
  inverted_range,    // ALLOC min > max                                       error_reply
  invalid_value,     // a field value the protocol never allows               error_reply / close
  bad_status,        // reply status > 0, or error reply with a body          close
};

struct DecodeError {
  Reason reason;
  Action action;
  Errc errc;  // the status to answer with (error_reply only; invalid_argument otherwise)
  friend bool operator==(const DecodeError&, const DecodeError&) = default;
};

template <class T>
using Decoded = tl::expected<T, DecodeError>;

// Stable lower-case names ("short_header", "close"), for logs and counters.
[[nodiscard]] const char* to_string(Reason r) noexcept;
[[nodiscard]] const char* to_string(Action a) noexcept;
// "alloc", "list_ids", ...; "unknown" for a number that is no message type.
[[nodiscard]] const char* to_string(MsgType t) noexcept;

// ---- header -------------------------------------------------------------------------------------

struct Header {
  std::uint32_t type = 0;  // raw: may be a type this side does not know
  std::uint32_t flags = 0;
  std::uint32_t size = 0;
  std::uint64_t request_id = 0;
  [[nodiscard]] bool is_reply() const noexcept { return (flags & bw::kFlagReply) != 0; }
  [[nodiscard]] std::uint32_t version() const noexcept { return flags & bw::kFlagVersionMask; }
  [[nodiscard]] std::size_t frame_size() const noexcept { return kHeaderSize + size; }
  friend bool operator==(const Header&, const Header&) = default;
};

// Decodes the header at the start of bytes (which may hold more: the payload, later frames).
// Context: pure, noexcept; any input is safe.
// Returns: the header; or short_header (need_more), bad_version, unknown_flags, bad_direction,
// header_reserved, oversized (close).
[[nodiscard]] Decoded<Header> decode_header(std::span<const std::byte> bytes) noexcept;

// ---- requests (host byte order; ranges inclusive) ---------------------------------------------

using ResumeToken = std::array<std::uint8_t, bw::kResumeTokenSize>;

struct HelloRequest {
  std::uint32_t max_version = bw::kProtocolVersion;
  std::uint64_t features = 0;
  friend bool operator==(const HelloRequest&, const HelloRequest&) = default;
};
struct OpenSessionRequest {
  std::uint64_t vm_token = 0;
  std::uint32_t quota = 0;              // >= 1, or 0 with a resume token (keep the set's)
  std::optional<ResumeToken> resume{};  // nonzero when present
  friend bool operator==(const OpenSessionRequest&, const OpenSessionRequest&) = default;
};
struct ResumeRequest {
  std::uint64_t vm_token = 0;
  ResumeToken token{};  // nonzero
  friend bool operator==(const ResumeRequest&, const ResumeRequest&) = default;
};
struct CloseSessionRequest {
  friend bool operator==(const CloseSessionRequest&, const CloseSessionRequest&) = default;
};
struct AllocRequest {
  Id min = 0;  // [min, max], min <= max
  Id max = 0;
  friend bool operator==(const AllocRequest&, const AllocRequest&) = default;
};
struct FreeRequest {
  Id id = 0;
  friend bool operator==(const FreeRequest&, const FreeRequest&) = default;
};
struct GetRequest {
  Id id = 0;
  friend bool operator==(const GetRequest&, const GetRequest&) = default;
};
struct PutRequest {
  Id id = 0;
  friend bool operator==(const PutRequest&, const PutRequest&) = default;
};
struct BindRequest {
  Id id = 0;
  Id spid = kInvalidId;  // kInvalidId: no guest PASID (as HostBackend::bind)
  friend bool operator==(const BindRequest&, const BindRequest&) = default;
};
struct UnbindRequest {
  Id id = 0;
  friend bool operator==(const UnbindRequest&, const UnbindRequest&) = default;
};
struct QueryRequest {
  Id id = 0;
  friend bool operator==(const QueryRequest&, const QueryRequest&) = default;
};
struct FindRequest {
  Id spid = 0;
  friend bool operator==(const FindRequest&, const FindRequest&) = default;
};
struct SetInfoRequest {
  friend bool operator==(const SetInfoRequest&, const SetInfoRequest&) = default;
};
struct ListSetsRequest {
  std::uint64_t cursor = 0;
  std::uint32_t max_entries = 0;  // 0: as many as fit
  friend bool operator==(const ListSetsRequest&, const ListSetsRequest&) = default;
};
struct ListIdsRequest {
  std::uint64_t vm_token = 0;
  Id first = 0;
  std::uint32_t max_entries = 0;  // 0: as many as fit
  friend bool operator==(const ListIdsRequest&, const ListIdsRequest&) = default;
};
struct SetQuotaRequest {
  std::uint64_t vm_token = 0;
  std::uint32_t quota = 0;  // >= 1
  friend bool operator==(const SetQuotaRequest&, const SetQuotaRequest&) = default;
};
struct StatsRequest {
  friend bool operator==(const StatsRequest&, const StatsRequest&) = default;
};
struct StatusRequest {
  friend bool operator==(const StatusRequest&, const StatusRequest&) = default;
};
// Any live PASID, whatever its set (admin).
struct QueryIdRequest {
  Id id = 0;
  friend bool operator==(const QueryIdRequest&, const QueryIdRequest&) = default;
};

using Request =
    std::variant<HelloRequest, OpenSessionRequest, ResumeRequest, CloseSessionRequest, AllocRequest,
                 FreeRequest, GetRequest, PutRequest, BindRequest, UnbindRequest, QueryRequest,
                 FindRequest, SetInfoRequest, ListSetsRequest, ListIdsRequest, SetQuotaRequest,
                 StatsRequest, StatusRequest, QueryIdRequest>;

// The wire type of a request.
[[nodiscard]] MsgType request_type(const Request& r) noexcept;

// True for a number that is a message type of this revision.
[[nodiscard]] bool is_known_type(std::uint32_t type) noexcept;

// The exact request payload size of a known type; nullopt for an unknown one.
[[nodiscard]] std::optional<std::size_t> request_payload_size(std::uint32_t type) noexcept;

// Requests that change state (OPEN_SESSION, RESUME, CLOSE_SESSION, ALLOC, FREE, GET, PUT, BIND,
// UNBIND, SET_QUOTA): they need a nonzero request_id, the exactly-once key.
[[nodiscard]] bool is_mutating(MsgType t) noexcept;

// Administration requests (LIST_SETS, LIST_IDS, SET_QUOTA, STATS, STATUS, QUERY_ID): they need
// kFAdmin negotiated and a peer the policy makes an admin.
[[nodiscard]] bool is_admin(MsgType t) noexcept;

// Requests that act on the connection's session (CLOSE_SESSION, ALLOC ... SET_INFO).
[[nodiscard]] bool needs_session(MsgType t) noexcept;

// The feature bits (feature_bit masks) this request needs negotiated: FIND and BIND with a spid
// need kFSpid; RESUME and OPEN_SESSION with a token need kFResume; admin requests need kFAdmin.
[[nodiscard]] std::uint64_t required_features(const Request& r) noexcept;

// Decodes the payload of a request frame whose header decode_header accepted.
// Context: pure, noexcept, no allocation; any input is safe.
// Returns: the request; or a DecodeError (see the top of this file for the order and actions).
[[nodiscard]] Decoded<Request> decode_request(const Header& header,
                                              std::span<const std::byte> payload) noexcept;

// A request frame: header (version 1 | NEED_REPLY) + payload.
struct EncodedRequest {
  std::array<std::byte, kHeaderSize + sizeof(bw::OpenSessionReq)> bytes{};  // the largest
  std::size_t size = 0;
  [[nodiscard]] std::span<const std::byte> span() const noexcept { return {bytes.data(), size}; }
};

// Encodes r with request_id. Writes the fields as they are (no validation), so that tests can
// build invalid requests; decode_request(encode_request(id, r)) == r for every r decode_request
// accepted, and the bytes are those it decoded.
[[nodiscard]] EncodedRequest encode_request(std::uint64_t request_id, const Request& r) noexcept;

// ---- replies ------------------------------------------------------------------------------------

struct HelloReply {
  std::uint32_t version = bw::kProtocolVersion;
  std::uint32_t max_payload = bw::kMaxPayload;
  std::uint64_t features = 0;
  std::uint32_t max_in_flight = 0;
  friend bool operator==(const HelloReply&, const HelloReply&) = default;
};
// OPEN_SESSION and RESUME.
struct SessionReply {
  std::uint64_t vm_token = 0;
  ResumeToken resume_token{};
  std::uint32_t quota = 0;
  std::uint32_t count = 0;
  bool resumed = false;
  std::uint32_t grace_seconds = 0;
  friend bool operator==(const SessionReply&, const SessionReply&) = default;
};
struct AllocReply {
  Id id = 0;
  friend bool operator==(const AllocReply&, const AllocReply&) = default;
};
struct PutReply {
  bool released = false;
  friend bool operator==(const PutReply&, const PutReply&) = default;
};
struct QueryReply {
  IdInfo info{};
  friend bool operator==(const QueryReply& a, const QueryReply& b) noexcept;
};
struct FindReply {
  Id id = 0;
  friend bool operator==(const FindReply&, const FindReply&) = default;
};
// SET_INFO reply, and one LIST_SETS entry (a set is named by its VM token on the wire).
struct SetEntry {
  std::uint64_t vm_token = 0;
  std::uint32_t quota = 0;
  std::uint32_t count = 0;
  std::uint32_t bound = 0;
  std::uint32_t peak = 0;
  std::uint64_t quota_refusals = 0;
  SetState state = SetState::alive;
  friend bool operator==(const SetEntry&, const SetEntry&) = default;
};
struct SetInfoReply {
  SetEntry set{};
  friend bool operator==(const SetInfoReply&, const SetInfoReply&) = default;
};

// The wire form of one list entry, and back. from_wire does not validate (decode_reply does).
[[nodiscard]] bw::SetEntry to_wire(const SetEntry& e) noexcept;
[[nodiscard]] bw::IdEntry to_wire(const IdInfo& e) noexcept;
[[nodiscard]] SetEntry from_wire(const bw::SetEntry& w) noexcept;
[[nodiscard]] IdInfo from_wire(const bw::IdEntry& w) noexcept;

// A read-only list of wire entries W, decoded one at a time into E. It views bytes it does not
// own: a decoded reply's list lives as long as the buffer it was decoded from; to encode one,
// build a contiguous array of W (to_wire) and view it.
template <class W, class E>
class EntryList {
 public:
  constexpr EntryList() noexcept = default;
  // Views whole entries at the start of bytes (a trailing partial entry is not part of it).
  explicit EntryList(std::span<const std::byte> bytes) noexcept
      : bytes_(bytes.first(bytes.size() - bytes.size() % sizeof(W))) {}
  explicit EntryList(std::span<const W> entries) noexcept : bytes_(std::as_bytes(entries)) {}

  [[nodiscard]] std::size_t size() const noexcept { return bytes_.size() / sizeof(W); }
  [[nodiscard]] bool empty() const noexcept { return bytes_.empty(); }
  // Entry i (i < size()), in host terms.
  [[nodiscard]] E operator[](std::size_t i) const noexcept { return from_wire(wire_at(i)); }
  [[nodiscard]] W wire_at(std::size_t i) const noexcept {
    W w{};
    std::memcpy(&w, bytes_.data() + i * sizeof(W), sizeof(W));
    return w;
  }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }

  friend bool operator==(const EntryList& a, const EntryList& b) noexcept {
    return std::ranges::equal(a.bytes_, b.bytes_);
  }

 private:
  std::span<const std::byte> bytes_{};
};

using SetList = EntryList<bw::SetEntry, SetEntry>;
using IdList = EntryList<bw::IdEntry, IdInfo>;

struct ListSetsReply {
  std::uint64_t next_cursor = 0;  // 0: no more
  SetList sets{};                 // at most kMaxListSets
  friend bool operator==(const ListSetsReply&, const ListSetsReply&) = default;
};
struct ListIdsReply {
  Id next_id = kInvalidId;  // kInvalidId: no more
  IdList ids{};             // at most kMaxListIds
  friend bool operator==(const ListIdsReply&, const ListIdsReply&) = default;
};

struct DaemonStats {
  std::uint64_t clients = 0;
  std::uint64_t sessions = 0;
  std::uint64_t detached_sessions = 0;
  std::uint64_t requests = 0;
  std::uint64_t error_replies = 0;
  std::uint64_t protocol_errors = 0;
  std::uint64_t journal_commits = 0;
  std::uint64_t journal_commit_ns = 0;
  std::uint64_t journal_flushes = 0;
  friend bool operator==(const DaemonStats&, const DaemonStats&) = default;
};
struct StatsReply {
  // The SpaceStats fields the wire carries: live_ids, free_pending_ids, reserved_ids, capacity,
  // quota_reserved, sets, dying_sets, allocs, releases, quota_refusals, exhausted_refusals (the
  // others decode as zero).
  SpaceStats space{};
  DaemonStats daemon{};
  friend bool operator==(const StatsReply& a, const StatsReply& b) noexcept;
};

// STATUS: the daemon's identity and configuration.
struct StatusReply {
  std::uint32_t daemon_version = 0;  // (major << 16) | (minor << 8) | patch
  std::uint32_t pid = 0;
  std::uint64_t started_ms = 0;        // CLOCK_REALTIME ms since the epoch
  std::uint32_t id_bits = kPasidBits;  // [1, 32]
  bool no_sync = false;                // --no-sync: acknowledged changes are not durable
  std::uint32_t grace_seconds = 0;
  std::uint32_t max_sessions_per_client = 0;
  std::uint32_t max_clients = 0;
  std::uint64_t max_output = 0;
  friend bool operator==(const StatusReply&, const StatusReply&) = default;
};
// QUERY_ID: a PASID and its owner.
struct QueryIdReply {
  std::uint64_t vm_token = 0;
  IdInfo info{};
  friend bool operator==(const QueryIdReply& a, const QueryIdReply& b) noexcept;
};

// The body of a success reply; std::monostate for errors and status-only replies (CLOSE_SESSION,
// FREE, GET, BIND, UNBIND, SET_QUOTA).
using ReplyBody = std::variant<std::monostate, HelloReply, SessionReply, AllocReply, PutReply,
                               QueryReply, FindReply, SetInfoReply, ListSetsReply, ListIdsReply,
                               StatsReply, StatusReply, QueryIdReply>;

struct Reply {
  std::uint32_t type = 0;   // the request's (raw: an error reply may answer an unknown type)
  std::int32_t status = 0;  // 0 or a negative errno
  ReplyBody body{};
  // The Errc of a negative status (from_errno: an errno it does not know is io_error).
  [[nodiscard]] Errc error() const noexcept;
  friend bool operator==(const Reply&, const Reply&) = default;
};

// A success reply to t with body.
[[nodiscard]] Reply ok_reply(MsgType t, ReplyBody body = {}) noexcept;
// The error reply to a request of raw type with e. The status is -to_errno(guest_visible(e)):
// a client never learns that an ID belongs to another set (not_owner is sent as -ENOENT).
[[nodiscard]] Reply error_reply(std::uint32_t type, Errc e) noexcept;

// The frame size of r (header included), or nullopt if encode_reply would refuse it.
[[nodiscard]] std::optional<std::size_t> reply_frame_size(const Reply& r) noexcept;

// Writes the frame of r (header: version 1 | REPLY, request_id echoed) at the start of out.
// Returns: the bytes written; invalid_argument (status > 0; an error with a body; a success whose
// body is not the type's, or to an unknown type; a list longer than its kMaxList*), out_of_range
// (out is too small; nothing written).
[[nodiscard]] Result<std::size_t> encode_reply(std::span<std::byte> out, std::uint64_t request_id,
                                               const Reply& r) noexcept;

// Decodes the payload of a reply frame (client side). List bodies view payload.
// Context: pure, noexcept, no allocation; any input is safe.
// Returns: the reply; or a DecodeError whose action is always close (not_a_reply, size_mismatch,
// unknown_type, bad_status, bad_length, reserved_nonzero, unknown_flags, invalid_value).
[[nodiscard]] Decoded<Reply> decode_reply(const Header& header,
                                          std::span<const std::byte> payload) noexcept;

}  // namespace ioasid::broker
