// SPDX-License-Identifier: Apache-2.0
// broker_proto.hpp: the ioasidd broker protocol as data: the frame header, flags, version,
// feature bits, message type numbers, and every request and reply payload, with explicit
// little-endian field types (wire/le.hpp) and no bitfields.
//
// Spec and revision: project-defined, protocol version 1; docs/protocol.md is its specification
// (message by message, in the manner of QEMU docs/interop/vhost-user.rst, whose framing it
// follows: type, flags with the version in the low bits, REPLY and NEED_REPLY, size).
//
// Frame = Header (24 bytes) + payload (Header::size bytes, at most kMaxPayload). A reply echoes
// the request's type and request_id, sets kFlagReply, and carries a ReplyHead (status: 0 or a
// negative errno) followed, on success only, by the type's reply body.
//
// Synopsis
//   Header h{};  h.type.store(to_u32(MsgType::alloc));
//   h.flags.store(kProtocolVersion | kFlagNeedReply);  h.size.store(sizeof(AllocReq));
//   h.request_id.store(42);
//
// Invariants: every struct is trivially copyable with alignment 1 and no padding; each size and
// field offset is checked at compile time below. Reserved fields must be zero (a receiver rejects
// them otherwise, see docs/protocol.md "Errors"). Ranges are inclusive, [min, max].
// Thread-safety: types and constants only. Not here: decoding and validation
// (src/broker/proto.hpp), the daemon, durability, credentials.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "ioasid/wire/le.hpp"

namespace ioasid::wire::broker {

// ---- framing
// -------------------------------------------------------------------------------------

// The one protocol version this revision speaks. It sits in Header::flags bits 1:0 (vhost-user
// style), so a frame of an unknown version is recognisable before anything else is parsed.
inline constexpr std::uint32_t kProtocolVersion = 1;
inline constexpr std::uint32_t kFlagVersionMask = 0x3;
// The frame is a reply (daemon to client).
inline constexpr std::uint32_t kFlagReply = 1u << 2;
// The sender wants a reply. Version 1 answers every request, so a request sets exactly this bit
// and a reply exactly kFlagReply; any other combination is a malformed header.
inline constexpr std::uint32_t kFlagNeedReply = 1u << 3;
inline constexpr std::uint32_t kFlagsKnown = kFlagVersionMask | kFlagReply | kFlagNeedReply;

// The largest payload (bytes after the header) either side may send or accept. A header that
// announces more closes the connection before any payload byte is read.
inline constexpr std::uint32_t kMaxPayload = 64 * 1024;

// struct ioasid_broker_hdr (24 bytes).
struct Header {
  le32 type;        // MsgType; a reply echoes the request's
  le32 flags;       // version (bits 1:0) | kFlagReply | kFlagNeedReply; other bits zero
  le32 size;        // payload bytes after the header, <= kMaxPayload
  le32 reserved;    // zero (keeps request_id and the payload 8-byte aligned in a buffer)
  le64 request_id;  // client token (exactly-once key for mutating requests); echoed in the reply
};

// ---- feature bits (bit numbers of HelloReq::features / HelloReply::features)
// -----------------------

inline constexpr unsigned kFSpid = 0;    // BIND with a guest PASID (BIND_F_SPID) and FIND
inline constexpr unsigned kFResume = 1;  // resume tokens: OPEN_SESSION_F_RESUME, RESUME
// LIST_SETS, LIST_IDS, SET_QUOTA, STATS, STATUS, QUERY_ID (policy permitting).
inline constexpr unsigned kFAdmin = 2;

[[nodiscard]] constexpr std::uint64_t feature_bit(unsigned bit) noexcept {
  return std::uint64_t{1} << bit;
}
inline constexpr std::uint64_t kAllFeatures =
    feature_bit(kFSpid) | feature_bit(kFResume) | feature_bit(kFAdmin);

// ---- message types
// ---------------------------------------------------------------------------------

enum class MsgType : std::uint32_t {
  // 0 is never a message type.
  // Connection and session (0x01-0x0F).
  hello = 0x01,
  open_session = 0x02,
  resume = 0x03,
  close_session = 0x04,
  // The session's own set (0x10-0x3F).
  alloc = 0x10,
  free = 0x11,
  get = 0x12,
  put = 0x13,
  bind = 0x14,
  unbind = 0x15,
  query = 0x16,
  find = 0x17,
  set_info = 0x18,
  // Administration (0x40-0x5F), kFAdmin.
  list_sets = 0x40,
  list_ids = 0x41,
  set_quota = 0x42,
  stats = 0x43,
  status = 0x44,
  query_id = 0x45,
};

[[nodiscard]] constexpr std::uint32_t to_u32(MsgType t) noexcept {
  return static_cast<std::uint32_t>(t);
}

// ---- flags of individual messages
// ----------------------------------------------------------------

inline constexpr std::uint32_t kOpenSessionFResume = 1u << 0;  // resume_token is valid (kFResume)
inline constexpr std::uint32_t kOpenSessionFMask = kOpenSessionFResume;
inline constexpr std::uint32_t kSessionFResumed = 1u << 0;  // the reply resumed an existing session
inline constexpr std::uint32_t kSessionFMask = kSessionFResumed;
inline constexpr std::uint32_t kBindFSpid = 1u << 0;  // spid is valid (kFSpid)
inline constexpr std::uint32_t kBindFMask = kBindFSpid;
inline constexpr std::uint32_t kPutFReleased = 1u << 0;  // the put released the ID
inline constexpr std::uint32_t kPutFMask = kPutFReleased;

// IdEntry::state and SetEntry::state values (ioasid::IdState / ioasid::SetState).
inline constexpr std::uint8_t kIdStateFree = 0;
inline constexpr std::uint8_t kIdStateActive = 1;
inline constexpr std::uint8_t kIdStateFreePending = 2;
inline constexpr std::uint8_t kIdStateReserved = 3;
inline constexpr std::uint8_t kSetStateAlive = 0;
inline constexpr std::uint8_t kSetStateDying = 1;

// StatusReply::flags.
inline constexpr std::uint32_t kStatusFNoSync = 1u << 0;  // started with --no-sync: not durable
inline constexpr std::uint32_t kStatusFMask = kStatusFNoSync;

// A PASID field that holds no PASID (ioasid::kInvalidId).
inline constexpr std::uint32_t kNoId = 0xFFFFFFFFu;

inline constexpr std::size_t kResumeTokenSize = 16;

// ---- replies: the common head
// ------------------------------------------------------------------------

// Every reply payload starts with this. status is 0 or a negative errno (int32, two's complement,
// as the C ABI returns it). An error reply is exactly this head; a success reply is this head
// followed by the type's reply body (none for status-only replies).
struct ReplyHead {
  le32 status;
  le32 reserved;
};

// ---- requests and their reply bodies
// -------------------------------------------------------------

// HELLO (0x01). The first request on a connection; the header carries version 1.
struct HelloReq {
  le32 max_version;  // highest protocol version the client speaks, >= 1
  le32 reserved;
  le64 features;  // every feature the client supports (unknown bits allowed)
};
struct HelloReply {
  le32 version;        // the version both use from now on
  le32 max_payload;    // the daemon's limit, <= kMaxPayload
  le64 features;       // negotiated: a subset of the request's
  le32 max_in_flight;  // requests a connection may have outstanding
  le32 reserved;
};

// OPEN_SESSION (0x02): open the set of vm_token with quota, or with kOpenSessionFResume resume its
// detached session when resume_token matches (open a fresh one otherwise).
struct OpenSessionReq {
  le64 vm_token;
  le32 quota;  // >= 1; 0 only with kOpenSessionFResume (keep the set's quota)
  le32 flags;  // kOpenSessionF*
  std::uint8_t resume_token[kResumeTokenSize];  // nonzero with kOpenSessionFResume, else zero
};
// The reply body of OPEN_SESSION and RESUME.
struct SessionReply {
  le64 vm_token;
  std::uint8_t resume_token[kResumeTokenSize];  // all zero without kFResume
  le32 quota;
  le32 count;          // IDs the set holds now (nonzero after a resume)
  le32 flags;          // kSessionF*
  le32 grace_seconds;  // how long the session outlives its connection
};

// RESUME (0x03): take over the detached session of vm_token; fails if it is gone.
struct ResumeReq {
  le64 vm_token;
  std::uint8_t resume_token[kResumeTokenSize];  // nonzero
};

// CLOSE_SESSION (0x04): no payload; status-only reply.

// ALLOC (0x10): an ID in [min, max] (inclusive, min <= max).
struct AllocReq {
  le32 min;
  le32 max;
};
struct AllocReply {
  le32 id;
  le32 reserved;
};

// FREE (0x11), GET (0x12), PUT (0x13), UNBIND (0x15), QUERY (0x16): one ID.
struct IdReq {
  le32 id;
  le32 reserved;
};
// PUT reply body.
struct PutReply {
  le32 flags;  // kPutF*
  le32 reserved;
};

// BIND (0x14).
struct BindReq {
  le32 id;
  le32 flags;  // kBindF*
  le32 spid;   // with kBindFSpid: the guest PASID (not kNoId); without: zero
  le32 reserved;
};

// QUERY reply body, and one LIST_IDS entry.
struct IdEntry {
  le32 id;
  std::uint8_t state;  // kIdState*
  std::uint8_t reserved[3];
  le32 refs;
  le32 binds;
  le32 spid;  // kNoId when the ID has no guest PASID
  le32 reserved1;
};

// FIND (0x17): the ID bound to guest PASID spid in the session's set.
struct FindReq {
  le32 spid;
  le32 reserved;
};
struct FindReply {
  le32 id;
  le32 reserved;
};

// SET_INFO (0x18): no payload. Reply body, and one LIST_SETS entry:
struct SetEntry {
  le64 vm_token;
  le32 quota;
  le32 count;
  le32 bound;
  le32 peak;
  le64 quota_refusals;
  std::uint8_t state;  // kSetState*
  std::uint8_t reserved[7];
};

// LIST_SETS (0x40): sets from an opaque cursor (0 = the first).
struct ListSetsReq {
  le64 cursor;
  le32 max_entries;  // 0: as many as fit
  le32 reserved;
};
// Reply body: this head, then count SetEntry.
struct ListSetsReplyHead {
  le64 next_cursor;  // 0: no more
  le32 count;
  le32 reserved;
};

// LIST_IDS (0x41): the live IDs of vm_token's set, ascending from first (inclusive).
struct ListIdsReq {
  le64 vm_token;
  le32 first;
  le32 max_entries;  // 0: as many as fit
};
// Reply body: this head, then count IdEntry.
struct ListIdsReplyHead {
  le32 count;
  le32 next_id;  // where the next page starts; kNoId: no more
};

// SET_QUOTA (0x42): status-only reply.
struct SetQuotaReq {
  le64 vm_token;
  le32 quota;  // >= 1
  le32 reserved;
};

// STATS (0x43): no payload. Reply body:
struct StatsReply {
  // The space (ioasid::SpaceStats).
  le64 live_ids;
  le64 free_pending_ids;
  le64 reserved_ids;
  le64 capacity;
  le64 quota_reserved;
  le64 sets;
  le64 dying_sets;
  le64 allocs;
  le64 releases;
  le64 quota_refusals;
  le64 exhausted_refusals;
  // The daemon.
  le64 clients;            // connections now
  le64 sessions;           // sessions now (attached + detached)
  le64 detached_sessions;  // in their grace period
  le64 requests;           // requests answered since start
  le64 error_replies;      // of which with a nonzero status
  le64 protocol_errors;    // connections closed for a malformed frame
  le64 journal_commits;    // durable transactions
  le64 journal_commit_ns;  // their total duration
  le64 journal_flushes;    // flushes of the WAL the replies waited for (group commit's groups)
};

// STATUS (0x44): no payload. Reply body: the daemon's identity and configuration.
struct StatusReply {
  le32 daemon_version;  // (major << 16) | (minor << 8) | patch of the ioasid release
  le32 pid;
  le64 started_ms;  // CLOCK_REALTIME, milliseconds since the epoch, when it started serving
  le32 id_bits;     // the space's width, [1, 32]
  le32 flags;       // kStatusF*
  le32 grace_seconds;
  le32 max_sessions_per_client;
  le32 max_clients;
  le32 reserved;
  le64 max_output;  // unsent reply bytes after which a client is paused
};

// QUERY_ID (0x45): any live PASID, whatever its set (request: IdReq). Reply body:
struct QueryIdReply {
  le64 vm_token;  // the owner
  IdEntry entry;
};

// ---- list capacities
// ---------------------------------------------------------------------------------

inline constexpr std::uint32_t kMaxListSets = static_cast<std::uint32_t>(
    (kMaxPayload - sizeof(ReplyHead) - sizeof(ListSetsReplyHead)) / sizeof(SetEntry));
inline constexpr std::uint32_t kMaxListIds = static_cast<std::uint32_t>(
    (kMaxPayload - sizeof(ReplyHead) - sizeof(ListIdsReplyHead)) / sizeof(IdEntry));

// ---- layout checks
// -----------------------------------------------------------------------------------

#define IOASID_BROKER_WIRE(S, size)                                              \
  static_assert(sizeof(S) == (size), #S ": size");                               \
  static_assert(alignof(S) == 1, #S ": alignment");                              \
  static_assert(std::is_trivially_copyable_v<S> && std::is_standard_layout_v<S>, \
                #S ": not a plain wire struct")
#define IOASID_BROKER_AT(S, field, off) \
  static_assert(offsetof(S, field) == (off), #S "::" #field ": offset")

IOASID_BROKER_WIRE(Header, 24);
IOASID_BROKER_AT(Header, type, 0);
IOASID_BROKER_AT(Header, flags, 4);
IOASID_BROKER_AT(Header, size, 8);
IOASID_BROKER_AT(Header, reserved, 12);
IOASID_BROKER_AT(Header, request_id, 16);

IOASID_BROKER_WIRE(ReplyHead, 8);
IOASID_BROKER_AT(ReplyHead, status, 0);
IOASID_BROKER_AT(ReplyHead, reserved, 4);

IOASID_BROKER_WIRE(HelloReq, 16);
IOASID_BROKER_AT(HelloReq, max_version, 0);
IOASID_BROKER_AT(HelloReq, reserved, 4);
IOASID_BROKER_AT(HelloReq, features, 8);
IOASID_BROKER_WIRE(HelloReply, 24);
IOASID_BROKER_AT(HelloReply, version, 0);
IOASID_BROKER_AT(HelloReply, max_payload, 4);
IOASID_BROKER_AT(HelloReply, features, 8);
IOASID_BROKER_AT(HelloReply, max_in_flight, 16);
IOASID_BROKER_AT(HelloReply, reserved, 20);

IOASID_BROKER_WIRE(OpenSessionReq, 32);
IOASID_BROKER_AT(OpenSessionReq, vm_token, 0);
IOASID_BROKER_AT(OpenSessionReq, quota, 8);
IOASID_BROKER_AT(OpenSessionReq, flags, 12);
IOASID_BROKER_AT(OpenSessionReq, resume_token, 16);
IOASID_BROKER_WIRE(SessionReply, 40);
IOASID_BROKER_AT(SessionReply, vm_token, 0);
IOASID_BROKER_AT(SessionReply, resume_token, 8);
IOASID_BROKER_AT(SessionReply, quota, 24);
IOASID_BROKER_AT(SessionReply, count, 28);
IOASID_BROKER_AT(SessionReply, flags, 32);
IOASID_BROKER_AT(SessionReply, grace_seconds, 36);
IOASID_BROKER_WIRE(ResumeReq, 24);
IOASID_BROKER_AT(ResumeReq, vm_token, 0);
IOASID_BROKER_AT(ResumeReq, resume_token, 8);

IOASID_BROKER_WIRE(AllocReq, 8);
IOASID_BROKER_AT(AllocReq, min, 0);
IOASID_BROKER_AT(AllocReq, max, 4);
IOASID_BROKER_WIRE(AllocReply, 8);
IOASID_BROKER_AT(AllocReply, id, 0);
IOASID_BROKER_AT(AllocReply, reserved, 4);
IOASID_BROKER_WIRE(IdReq, 8);
IOASID_BROKER_AT(IdReq, id, 0);
IOASID_BROKER_AT(IdReq, reserved, 4);
IOASID_BROKER_WIRE(PutReply, 8);
IOASID_BROKER_AT(PutReply, flags, 0);
IOASID_BROKER_AT(PutReply, reserved, 4);
IOASID_BROKER_WIRE(BindReq, 16);
IOASID_BROKER_AT(BindReq, id, 0);
IOASID_BROKER_AT(BindReq, flags, 4);
IOASID_BROKER_AT(BindReq, spid, 8);
IOASID_BROKER_AT(BindReq, reserved, 12);
IOASID_BROKER_WIRE(IdEntry, 24);
IOASID_BROKER_AT(IdEntry, id, 0);
IOASID_BROKER_AT(IdEntry, state, 4);
IOASID_BROKER_AT(IdEntry, reserved, 5);
IOASID_BROKER_AT(IdEntry, refs, 8);
IOASID_BROKER_AT(IdEntry, binds, 12);
IOASID_BROKER_AT(IdEntry, spid, 16);
IOASID_BROKER_AT(IdEntry, reserved1, 20);
IOASID_BROKER_WIRE(FindReq, 8);
IOASID_BROKER_AT(FindReq, spid, 0);
IOASID_BROKER_AT(FindReq, reserved, 4);
IOASID_BROKER_WIRE(FindReply, 8);
IOASID_BROKER_AT(FindReply, id, 0);
IOASID_BROKER_AT(FindReply, reserved, 4);
IOASID_BROKER_WIRE(SetEntry, 40);
IOASID_BROKER_AT(SetEntry, vm_token, 0);
IOASID_BROKER_AT(SetEntry, quota, 8);
IOASID_BROKER_AT(SetEntry, count, 12);
IOASID_BROKER_AT(SetEntry, bound, 16);
IOASID_BROKER_AT(SetEntry, peak, 20);
IOASID_BROKER_AT(SetEntry, quota_refusals, 24);
IOASID_BROKER_AT(SetEntry, state, 32);
IOASID_BROKER_AT(SetEntry, reserved, 33);

IOASID_BROKER_WIRE(ListSetsReq, 16);
IOASID_BROKER_AT(ListSetsReq, cursor, 0);
IOASID_BROKER_AT(ListSetsReq, max_entries, 8);
IOASID_BROKER_AT(ListSetsReq, reserved, 12);
IOASID_BROKER_WIRE(ListSetsReplyHead, 16);
IOASID_BROKER_AT(ListSetsReplyHead, next_cursor, 0);
IOASID_BROKER_AT(ListSetsReplyHead, count, 8);
IOASID_BROKER_AT(ListSetsReplyHead, reserved, 12);
IOASID_BROKER_WIRE(ListIdsReq, 16);
IOASID_BROKER_AT(ListIdsReq, vm_token, 0);
IOASID_BROKER_AT(ListIdsReq, first, 8);
IOASID_BROKER_AT(ListIdsReq, max_entries, 12);
IOASID_BROKER_WIRE(ListIdsReplyHead, 8);
IOASID_BROKER_AT(ListIdsReplyHead, count, 0);
IOASID_BROKER_AT(ListIdsReplyHead, next_id, 4);
IOASID_BROKER_WIRE(SetQuotaReq, 16);
IOASID_BROKER_AT(SetQuotaReq, vm_token, 0);
IOASID_BROKER_AT(SetQuotaReq, quota, 8);
IOASID_BROKER_AT(SetQuotaReq, reserved, 12);
IOASID_BROKER_WIRE(StatsReply, 160);
IOASID_BROKER_AT(StatsReply, live_ids, 0);
IOASID_BROKER_AT(StatsReply, exhausted_refusals, 80);
IOASID_BROKER_AT(StatsReply, clients, 88);
IOASID_BROKER_AT(StatsReply, protocol_errors, 128);
IOASID_BROKER_AT(StatsReply, journal_commit_ns, 144);
IOASID_BROKER_AT(StatsReply, journal_flushes, 152);
IOASID_BROKER_WIRE(StatusReply, 48);
IOASID_BROKER_AT(StatusReply, daemon_version, 0);
IOASID_BROKER_AT(StatusReply, pid, 4);
IOASID_BROKER_AT(StatusReply, started_ms, 8);
IOASID_BROKER_AT(StatusReply, id_bits, 16);
IOASID_BROKER_AT(StatusReply, flags, 20);
IOASID_BROKER_AT(StatusReply, grace_seconds, 24);
IOASID_BROKER_AT(StatusReply, max_sessions_per_client, 28);
IOASID_BROKER_AT(StatusReply, max_clients, 32);
IOASID_BROKER_AT(StatusReply, reserved, 36);
IOASID_BROKER_AT(StatusReply, max_output, 40);
IOASID_BROKER_WIRE(QueryIdReply, 32);
IOASID_BROKER_AT(QueryIdReply, vm_token, 0);
IOASID_BROKER_AT(QueryIdReply, entry, 8);

static_assert(kMaxListSets == 1637 && kMaxListIds == 2730);
static_assert((kProtocolVersion & ~kFlagVersionMask) == 0 && kProtocolVersion != 0);

#undef IOASID_BROKER_AT
#undef IOASID_BROKER_WIRE

}  // namespace ioasid::wire::broker
