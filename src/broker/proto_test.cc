// SPDX-License-Identifier: Apache-2.0
// proto_test.cc: the broker protocol codec of broker/proto.hpp against docs/protocol.md (version
// 1): one named test per malformed header and request case (short, oversized, bad version, unknown
// flags, direction, reserved words, unknown type, every type too short and too long, zero client
// token, reserved bytes, unknown message flags, inverted ranges, invalid values), round trips of
// every request and every reply, malformed replies, stream reassembly, and golden byte layouts of
// four frames written out in hex so the format cannot drift silently.
// What the daemon does with a well-formed request (sessions, features, ownership, durability) is
// tested with the daemon.
#include "broker/proto.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "ioasid/wire/broker_proto.hpp"
#include "ioasid/wire/le.hpp"

namespace ioasid::broker {
namespace {

using Bytes = std::vector<std::byte>;

constexpr std::uint32_t kReqFlags = bw::kProtocolVersion | bw::kFlagNeedReply;
constexpr std::uint32_t kRepFlags = bw::kProtocolVersion | bw::kFlagReply;

Bytes hex(const std::string& s) {
  Bytes out;
  std::string digits;
  for (char c : s) {
    if (c != ' ' && c != '\n') digits.push_back(c);
  }
  for (std::size_t i = 0; i + 1 < digits.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoul(digits.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// A raw frame: header fields as given, then payload.
Bytes frame(std::uint32_t type, std::uint32_t flags, std::uint32_t size, std::uint64_t id,
            const Bytes& payload = {}, std::uint32_t reserved = 0) {
  bw::Header h{};
  h.type.store(type);
  h.flags.store(flags);
  h.size.store(size);
  h.reserved.store(reserved);
  h.request_id.store(id);
  Bytes out(sizeof(h));
  std::memcpy(out.data(), &h, sizeof(h));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

template <class S>
Bytes bytes_of(const S& s) {
  Bytes out(sizeof(S));
  std::memcpy(out.data(), &s, sizeof(S));
  return out;
}

// A request frame of type with payload (size taken from the payload).
Bytes request_frame(MsgType type, const Bytes& payload, std::uint64_t id = 1) {
  return frame(bw::to_u32(type), kReqFlags, static_cast<std::uint32_t>(payload.size()), id,
               payload);
}

Decoded<Request> decode_frame(const Bytes& f) {
  const auto h = decode_header(f);
  if (!h) return tl::unexpected(h.error());
  return decode_request(*h, std::span<const std::byte>(f).subspan(kHeaderSize, h->size));
}

Decoded<Reply> decode_reply_frame(const Bytes& f) {
  const auto h = decode_header(f);
  if (!h) return tl::unexpected(h.error());
  return decode_reply(*h, std::span<const std::byte>(f).subspan(kHeaderSize, h->size));
}

Bytes encode(const Reply& r, std::uint64_t id = 1) {
  Bytes out(kMaxFrame);
  const auto n = encode_reply(out, id, r);
  EXPECT_TRUE(n.has_value());
  out.resize(n.value_or(0));
  return out;
}

Bytes to_bytes(const EncodedRequest& e) { return Bytes(e.span().begin(), e.span().end()); }

void expect_close(const Decoded<Header>& r, Reason reason) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().reason, reason) << to_string(r.error().reason);
  EXPECT_EQ(r.error().action, Action::close);
}

template <class T>
void expect_reject(const Decoded<T>& r, Reason reason, Errc errc = Errc::invalid_argument) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().reason, reason) << to_string(r.error().reason);
  EXPECT_EQ(r.error().action, Action::error_reply);
  EXPECT_EQ(r.error().errc, errc);
}

template <class T>
void expect_closes(const Decoded<T>& r, Reason reason) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().reason, reason) << to_string(r.error().reason);
  EXPECT_EQ(r.error().action, Action::close);
}

const MsgType kAllTypes[] = {
    MsgType::hello,    MsgType::open_session, MsgType::resume,   MsgType::close_session,
    MsgType::alloc,    MsgType::free,         MsgType::get,      MsgType::put,
    MsgType::bind,     MsgType::unbind,       MsgType::query,    MsgType::find,
    MsgType::set_info, MsgType::list_sets,    MsgType::list_ids, MsgType::set_quota,
    MsgType::stats,    MsgType::status,       MsgType::query_id};

ResumeToken token(std::uint8_t first) {
  ResumeToken t{};
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::uint8_t>(first + i);
  return t;
}

// A valid request of every type (the decoder accepts each as is).
std::vector<Request> sample_requests() {
  return {HelloRequest{1, bw::kAllFeatures},
          HelloRequest{7, ~std::uint64_t{0}},
          OpenSessionRequest{0xCAFEF00D, 64, std::nullopt},
          OpenSessionRequest{~std::uint64_t{0}, 0, token(1)},
          OpenSessionRequest{0, 1, token(0xF0)},
          ResumeRequest{42, token(9)},
          CloseSessionRequest{},
          AllocRequest{1, 0xFFFFF},
          AllocRequest{5, 5},
          AllocRequest{0, 0xFFFFFFFF},
          FreeRequest{7},
          GetRequest{0},
          PutRequest{0xFFFFFFFF},
          BindRequest{3, kInvalidId},
          BindRequest{3, 0},
          BindRequest{3, 0xFFFFE},
          UnbindRequest{3},
          QueryRequest{0x12345},
          FindRequest{0},
          FindRequest{0xFFFFFFFE},
          SetInfoRequest{},
          ListSetsRequest{0, 0},
          ListSetsRequest{~std::uint64_t{0}, 100},
          ListIdsRequest{0xCAFEF00D, 0, 0},
          ListIdsRequest{1, 0xFFFFFFFF, 0xFFFFFFFF},
          SetQuotaRequest{5, 1},
          SetQuotaRequest{5, 0xFFFFFFFF},
          StatsRequest{},
          StatusRequest{},
          QueryIdRequest{0},
          QueryIdRequest{0xFFFFFFFF}};
}

// ---- constants and tables
// ------------------------------------------------------------------------

TEST(BrokerProtoConstants, TypeNumbersAreTheDocumentedOnes) {
  EXPECT_EQ(bw::to_u32(MsgType::hello), 0x01u);
  EXPECT_EQ(bw::to_u32(MsgType::open_session), 0x02u);
  EXPECT_EQ(bw::to_u32(MsgType::resume), 0x03u);
  EXPECT_EQ(bw::to_u32(MsgType::close_session), 0x04u);
  EXPECT_EQ(bw::to_u32(MsgType::alloc), 0x10u);
  EXPECT_EQ(bw::to_u32(MsgType::free), 0x11u);
  EXPECT_EQ(bw::to_u32(MsgType::get), 0x12u);
  EXPECT_EQ(bw::to_u32(MsgType::put), 0x13u);
  EXPECT_EQ(bw::to_u32(MsgType::bind), 0x14u);
  EXPECT_EQ(bw::to_u32(MsgType::unbind), 0x15u);
  EXPECT_EQ(bw::to_u32(MsgType::query), 0x16u);
  EXPECT_EQ(bw::to_u32(MsgType::find), 0x17u);
  EXPECT_EQ(bw::to_u32(MsgType::set_info), 0x18u);
  EXPECT_EQ(bw::to_u32(MsgType::list_sets), 0x40u);
  EXPECT_EQ(bw::to_u32(MsgType::list_ids), 0x41u);
  EXPECT_EQ(bw::to_u32(MsgType::set_quota), 0x42u);
  EXPECT_EQ(bw::to_u32(MsgType::stats), 0x43u);
  EXPECT_EQ(bw::to_u32(MsgType::status), 0x44u);
  EXPECT_EQ(bw::to_u32(MsgType::query_id), 0x45u);
  EXPECT_FALSE(is_known_type(0));
  EXPECT_FALSE(is_known_type(0x46));
  EXPECT_STREQ(to_string(static_cast<MsgType>(0x99)), "unknown");
}

TEST(BrokerProtoConstants, FramingConstants) {
  EXPECT_EQ(kHeaderSize, 24u);
  EXPECT_EQ(bw::kMaxPayload, 65536u);
  EXPECT_EQ(kMaxFrame, 24u + 65536u);
  EXPECT_EQ(bw::kFlagReply, 4u);
  EXPECT_EQ(bw::kFlagNeedReply, 8u);
  EXPECT_EQ(bw::kAllFeatures, 0x7u);
  // The longest lists fill the payload without passing it.
  EXPECT_LE(8 + 16 + std::size_t{bw::kMaxListSets} * 40, std::size_t{bw::kMaxPayload});
  EXPECT_GT(8 + 16 + std::size_t{bw::kMaxListSets + 1} * 40, std::size_t{bw::kMaxPayload});
  EXPECT_LE(8 + 8 + std::size_t{bw::kMaxListIds} * 24, std::size_t{bw::kMaxPayload});
  EXPECT_GT(8 + 8 + std::size_t{bw::kMaxListIds + 1} * 24, std::size_t{bw::kMaxPayload});
}

TEST(BrokerProtoConstants, EveryTypeIsNamedAndSized) {
  for (MsgType t : kAllTypes) {
    EXPECT_TRUE(is_known_type(bw::to_u32(t)));
    EXPECT_STRNE(to_string(t), "unknown");
    EXPECT_TRUE(request_payload_size(bw::to_u32(t)).has_value()) << to_string(t);
  }
  EXPECT_EQ(request_payload_size(bw::to_u32(MsgType::close_session)), 0u);
  EXPECT_EQ(request_payload_size(bw::to_u32(MsgType::open_session)), 32u);
  EXPECT_FALSE(request_payload_size(0x20).has_value());
}

TEST(BrokerProtoConstants, RequestTypeFollowsTheVariant) {
  const MsgType want[] = {
      MsgType::hello,    MsgType::open_session, MsgType::resume,   MsgType::close_session,
      MsgType::alloc,    MsgType::free,         MsgType::get,      MsgType::put,
      MsgType::bind,     MsgType::unbind,       MsgType::query,    MsgType::find,
      MsgType::set_info, MsgType::list_sets,    MsgType::list_ids, MsgType::set_quota,
      MsgType::stats,    MsgType::status,       MsgType::query_id};
  const Request each[] = {
      HelloRequest{},   OpenSessionRequest{}, ResumeRequest{},  CloseSessionRequest{},
      AllocRequest{},   FreeRequest{},        GetRequest{},     PutRequest{},
      BindRequest{},    UnbindRequest{},      QueryRequest{},   FindRequest{},
      SetInfoRequest{}, ListSetsRequest{},    ListIdsRequest{}, SetQuotaRequest{},
      StatsRequest{},   StatusRequest{},      QueryIdRequest{}};
  static_assert(std::size(want) == std::variant_size_v<Request>);
  for (std::size_t i = 0; i < std::size(want); ++i) EXPECT_EQ(request_type(each[i]), want[i]);
}

TEST(BrokerProtoConstants, MutatingSessionAndFeatureTables) {
  for (MsgType t : {MsgType::open_session, MsgType::resume, MsgType::close_session, MsgType::alloc,
                    MsgType::free, MsgType::get, MsgType::put, MsgType::bind, MsgType::unbind,
                    MsgType::set_quota}) {
    EXPECT_TRUE(is_mutating(t)) << to_string(t);
  }
  for (MsgType t :
       {MsgType::hello, MsgType::query, MsgType::find, MsgType::set_info, MsgType::list_sets,
        MsgType::list_ids, MsgType::stats, MsgType::status, MsgType::query_id}) {
    EXPECT_FALSE(is_mutating(t)) << to_string(t);
  }
  for (MsgType t : kAllTypes) {
    const bool admin = t == MsgType::list_sets || t == MsgType::list_ids ||
                       t == MsgType::set_quota || t == MsgType::stats || t == MsgType::status ||
                       t == MsgType::query_id;
    EXPECT_EQ(is_admin(t), admin) << to_string(t);
  }
  for (MsgType t :
       {MsgType::close_session, MsgType::alloc, MsgType::free, MsgType::get, MsgType::put,
        MsgType::bind, MsgType::unbind, MsgType::query, MsgType::find, MsgType::set_info}) {
    EXPECT_TRUE(needs_session(t)) << to_string(t);
  }
  for (MsgType t : {MsgType::hello, MsgType::open_session, MsgType::resume, MsgType::list_sets,
                    MsgType::list_ids, MsgType::set_quota, MsgType::stats, MsgType::status,
                    MsgType::query_id}) {
    EXPECT_FALSE(needs_session(t)) << to_string(t);
  }
  const std::uint64_t spid = bw::feature_bit(bw::kFSpid);
  const std::uint64_t resume = bw::feature_bit(bw::kFResume);
  const std::uint64_t admin = bw::feature_bit(bw::kFAdmin);
  EXPECT_EQ(required_features(HelloRequest{}), 0u);
  EXPECT_EQ(required_features(AllocRequest{1, 2}), 0u);
  EXPECT_EQ(required_features(BindRequest{1, kInvalidId}), 0u);
  EXPECT_EQ(required_features(BindRequest{1, 5}), spid);
  EXPECT_EQ(required_features(FindRequest{5}), spid);
  EXPECT_EQ(required_features(OpenSessionRequest{1, 8, std::nullopt}), 0u);
  EXPECT_EQ(required_features(OpenSessionRequest{1, 8, token(1)}), resume);
  EXPECT_EQ(required_features(ResumeRequest{1, token(1)}), resume);
  EXPECT_EQ(required_features(ListSetsRequest{}), admin);
  EXPECT_EQ(required_features(ListIdsRequest{}), admin);
  EXPECT_EQ(required_features(SetQuotaRequest{1, 1}), admin);
  EXPECT_EQ(required_features(StatsRequest{}), admin);
  EXPECT_EQ(required_features(StatusRequest{}), admin);
  EXPECT_EQ(required_features(QueryIdRequest{1}), admin);
}

// ---- header
// --------------------------------------------------------------------------------------

TEST(BrokerHeader, DecodesEveryField) {
  const Bytes f = frame(0x10, kReqFlags, 8, 0x0102030405060708u, Bytes(8));
  const auto h = decode_header(f);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->type, 0x10u);
  EXPECT_EQ(h->flags, kReqFlags);
  EXPECT_EQ(h->size, 8u);
  EXPECT_EQ(h->request_id, 0x0102030405060708u);
  EXPECT_EQ(h->version(), 1u);
  EXPECT_FALSE(h->is_reply());
  EXPECT_EQ(h->frame_size(), 32u);
}

TEST(BrokerHeader, ShortHeaderNeedsMoreBytes) {
  const Bytes f = frame(0x10, kReqFlags, 8, 1, Bytes(8));
  for (std::size_t n = 0; n < kHeaderSize; ++n) {
    const auto h = decode_header(std::span<const std::byte>(f).first(n));
    ASSERT_FALSE(h.has_value()) << n;
    EXPECT_EQ(h.error().reason, Reason::short_header);
    EXPECT_EQ(h.error().action, Action::need_more);
  }
  // The header alone is enough: the payload is the caller's to wait for.
  EXPECT_TRUE(decode_header(std::span<const std::byte>(f).first(kHeaderSize)).has_value());
}

TEST(BrokerHeader, ShortGarbageStillNeedsMore) {
  // Fewer than 24 bytes are never judged, however wrong they look.
  const Bytes junk(23, std::byte{0xFF});
  const auto h = decode_header(junk);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().action, Action::need_more);
}

TEST(BrokerHeader, OversizedSizeCloses) {
  expect_close(decode_header(frame(0x10, kReqFlags, bw::kMaxPayload + 1, 1)), Reason::oversized);
  expect_close(decode_header(frame(0x10, kReqFlags, 0xFFFFFFFF, 1)), Reason::oversized);
  expect_close(decode_header(frame(0x10, kRepFlags, 0x80000000u, 1)), Reason::oversized);
}

TEST(BrokerHeader, MaxSizeIsAccepted) {
  const auto h = decode_header(frame(0x99, kReqFlags, bw::kMaxPayload, 1));
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->size, bw::kMaxPayload);
}

TEST(BrokerHeader, BadVersionCloses) {
  for (std::uint32_t v : {0u, 2u, 3u}) {
    expect_close(decode_header(frame(0x10, v | bw::kFlagNeedReply, 8, 1)), Reason::bad_version);
    expect_close(decode_header(frame(0x10, v | bw::kFlagReply, 8, 1)), Reason::bad_version);
  }
}

TEST(BrokerHeader, UnknownFlagsClose) {
  for (unsigned bit = 4; bit < 32; ++bit) {
    expect_close(decode_header(frame(0x10, kReqFlags | (1u << bit), 8, 1)), Reason::unknown_flags);
  }
}

TEST(BrokerHeader, NeitherOrBothDirectionBitsClose) {
  expect_close(decode_header(frame(0x10, bw::kProtocolVersion, 8, 1)), Reason::bad_direction);
  expect_close(
      decode_header(frame(0x10, bw::kProtocolVersion | bw::kFlagReply | bw::kFlagNeedReply, 8, 1)),
      Reason::bad_direction);
}

TEST(BrokerHeader, NonzeroReservedWordCloses) {
  for (std::uint32_t r : {1u, 0x100u, 0x80000000u}) {
    expect_close(decode_header(frame(0x10, kReqFlags, 8, 1, {}, r)), Reason::header_reserved);
  }
}

TEST(BrokerHeader, VersionIsCheckedFirst) {
  // A frame of another version is recognised as such whatever else is wrong with it.
  expect_close(decode_header(frame(0x10, 0xFFFFFFF2u, 0xFFFFFFFF, 1, {}, 1)), Reason::bad_version);
}

// ---- requests: malformed
// -------------------------------------------------------------------------

TEST(BrokerRequest, UnknownTypeGetsErrorReplyAndKeepsTheConnection) {
  for (std::uint32_t t : {0u, 0x05u, 0x0Fu, 0x19u, 0x3Fu, 0x46u, 0x80u, 0xFFFFFFFFu}) {
    const auto r = decode_frame(frame(t, kReqFlags, 12, 1, Bytes(12)));
    expect_reject(r, Reason::unknown_type, Errc::unsupported);
  }
  // Whatever its size (up to the limit): the frame boundary is still known.
  Bytes big(bw::kMaxPayload, std::byte{0xAB});
  expect_reject(decode_frame(frame(0x99, kReqFlags, bw::kMaxPayload, 0, big)), Reason::unknown_type,
                Errc::unsupported);
}

TEST(BrokerRequest, UnknownTypeErrorReplyEncodes) {
  const Reply r = error_reply(0x99, Errc::unsupported);
  const Bytes f = encode(r, 77);
  const auto back = decode_reply_frame(f);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->type, 0x99u);
  EXPECT_EQ(back->status, -EOPNOTSUPP);
  EXPECT_EQ(back->error(), Errc::unsupported);
  EXPECT_EQ(decode_header(f)->request_id, 77u);
}

TEST(BrokerRequest, ReplyFrameToTheDaemonCloses) {
  const Bytes f = frame(0x10, kRepFlags, 8, 1, Bytes(8));
  expect_closes(decode_frame(f), Reason::not_a_request);
}

TEST(BrokerRequest, PayloadSpanDifferentFromHeaderSizeCloses) {
  const Bytes f = request_frame(MsgType::alloc, hex("01000000 02000000"));
  const auto h = decode_header(f);
  ASSERT_TRUE(h.has_value());
  const auto payload = std::span<const std::byte>(f).subspan(kHeaderSize);
  expect_closes(decode_request(*h, payload.first(7)), Reason::size_mismatch);
  Header forged = *h;
  forged.flags |= 1u << 20;  // a header decode_header would not have produced
  expect_closes(decode_request(forged, payload), Reason::unknown_flags);
}

class BrokerRequestLength : public ::testing::TestWithParam<MsgType> {};

TEST_P(BrokerRequestLength, TooShortGetsEinval) {
  const std::size_t n = *request_payload_size(bw::to_u32(GetParam()));
  if (n == 0) return;  // no payload: nothing is shorter (too long is tested below)
  expect_reject(decode_frame(request_frame(GetParam(), Bytes(n - 1))), Reason::bad_length);
  expect_reject(decode_frame(request_frame(GetParam(), Bytes(1))), Reason::bad_length);
  if (n > 1) expect_reject(decode_frame(request_frame(GetParam(), {})), Reason::bad_length);
}

TEST_P(BrokerRequestLength, TooLongGetsEinval) {
  const std::size_t n = *request_payload_size(bw::to_u32(GetParam()));
  expect_reject(decode_frame(request_frame(GetParam(), Bytes(n + 1))), Reason::bad_length);
  expect_reject(decode_frame(request_frame(GetParam(), Bytes(n + 8))), Reason::bad_length);
  expect_reject(decode_frame(request_frame(GetParam(), Bytes(bw::kMaxPayload))),
                Reason::bad_length);
}

TEST_P(BrokerRequestLength, ZeroRequestIdOnlyForNonMutating) {
  // Find a valid payload of this type among the samples.
  for (const Request& r : sample_requests()) {
    if (request_type(r) != GetParam()) continue;
    Bytes f = to_bytes(encode_request(0, r));
    const auto d = decode_frame(f);
    if (is_mutating(GetParam())) {
      expect_reject(d, Reason::zero_request_id);
    } else {
      ASSERT_TRUE(d.has_value()) << to_string(d.error().reason);
      EXPECT_EQ(*d, r);
    }
    return;
  }
  FAIL() << "no sample for " << to_string(GetParam());
}

INSTANTIATE_TEST_SUITE_P(EveryType, BrokerRequestLength, ::testing::ValuesIn(kAllTypes),
                         [](const auto& p) { return std::string(to_string(p.param)); });

TEST(BrokerRequest, HelloReservedNonzero) {
  bw::HelloReq w{};
  w.max_version.store(1);
  w.reserved.store(1);
  expect_reject(decode_frame(request_frame(MsgType::hello, bytes_of(w))), Reason::reserved_nonzero);
}

TEST(BrokerRequest, HelloVersionZero) {
  bw::HelloReq w{};
  expect_reject(decode_frame(request_frame(MsgType::hello, bytes_of(w))), Reason::invalid_value);
}

TEST(BrokerRequest, HelloUnknownFeatureBitsAreOffersNotErrors) {
  bw::HelloReq w{};
  w.max_version.store(3);
  w.features.store(~std::uint64_t{0});
  const auto r = decode_frame(request_frame(MsgType::hello, bytes_of(w)));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<HelloRequest>(*r).features, ~std::uint64_t{0});
}

TEST(BrokerRequest, IdRequestReservedNonzero) {
  for (MsgType t : {MsgType::free, MsgType::get, MsgType::put, MsgType::unbind, MsgType::query}) {
    for (std::size_t byte = 4; byte < 8; ++byte) {
      Bytes p(8);
      p[byte] = std::byte{1};
      expect_reject(decode_frame(request_frame(t, p)), Reason::reserved_nonzero);
    }
  }
}

TEST(BrokerRequest, OpenSessionUnknownFlags) {
  bw::OpenSessionReq w{};
  w.quota.store(8);
  w.flags.store(1u << 1);
  expect_reject(decode_frame(request_frame(MsgType::open_session, bytes_of(w))),
                Reason::unknown_flags);
}

TEST(BrokerRequest, OpenSessionTokenWithoutResumeFlagIsReserved) {
  bw::OpenSessionReq w{};
  w.quota.store(8);
  w.resume_token[15] = 1;
  expect_reject(decode_frame(request_frame(MsgType::open_session, bytes_of(w))),
                Reason::reserved_nonzero);
}

TEST(BrokerRequest, OpenSessionResumeFlagWithZeroToken) {
  bw::OpenSessionReq w{};
  w.quota.store(8);
  w.flags.store(bw::kOpenSessionFResume);
  expect_reject(decode_frame(request_frame(MsgType::open_session, bytes_of(w))),
                Reason::invalid_value);
}

TEST(BrokerRequest, OpenSessionZeroQuota) {
  bw::OpenSessionReq w{};
  w.vm_token.store(1);
  expect_reject(decode_frame(request_frame(MsgType::open_session, bytes_of(w))),
                Reason::invalid_value);
  // With a resume token, quota 0 means "keep the set's".
  w.flags.store(bw::kOpenSessionFResume);
  w.resume_token[0] = 1;
  const auto r = decode_frame(request_frame(MsgType::open_session, bytes_of(w)));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<OpenSessionRequest>(*r).quota, 0u);
  EXPECT_TRUE(std::get<OpenSessionRequest>(*r).resume.has_value());
}

TEST(BrokerRequest, ResumeZeroToken) {
  bw::ResumeReq w{};
  w.vm_token.store(1);
  expect_reject(decode_frame(request_frame(MsgType::resume, bytes_of(w))), Reason::invalid_value);
}

TEST(BrokerRequest, AllocInvertedRangeIsEinvalAtDecode) {
  bw::AllocReq w{};
  w.min.store(10);
  w.max.store(9);
  expect_reject(decode_frame(request_frame(MsgType::alloc, bytes_of(w))), Reason::inverted_range);
  w.min.store(0xFFFFFFFF);
  w.max.store(0);
  expect_reject(decode_frame(request_frame(MsgType::alloc, bytes_of(w))), Reason::inverted_range);
}

TEST(BrokerRequest, AllocRangeOutsideTheSpaceIsLeftToTheSpace) {
  // The codec does not know the space's width: [0, 2^32 - 1] decodes, the space answers ERANGE.
  bw::AllocReq w{};
  w.max.store(0xFFFFFFFF);
  const auto r = decode_frame(request_frame(MsgType::alloc, bytes_of(w)));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<AllocRequest>(*r), (AllocRequest{0, 0xFFFFFFFF}));
}

TEST(BrokerRequest, AllocSingleIdRange) {
  bw::AllocReq w{};
  w.min.store(7);
  w.max.store(7);
  const auto r = decode_frame(request_frame(MsgType::alloc, bytes_of(w)));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<AllocRequest>(*r), (AllocRequest{7, 7}));
}

TEST(BrokerRequest, BindReservedNonzero) {
  bw::BindReq w{};
  w.id.store(1);
  w.reserved.store(1);
  expect_reject(decode_frame(request_frame(MsgType::bind, bytes_of(w))), Reason::reserved_nonzero);
}

TEST(BrokerRequest, BindSpidWithoutFlagIsReserved) {
  bw::BindReq w{};
  w.id.store(1);
  w.spid.store(5);
  expect_reject(decode_frame(request_frame(MsgType::bind, bytes_of(w))), Reason::reserved_nonzero);
}

TEST(BrokerRequest, BindUnknownFlags) {
  for (unsigned bit = 1; bit < 32; ++bit) {
    bw::BindReq w{};
    w.flags.store(1u << bit);
    expect_reject(decode_frame(request_frame(MsgType::bind, bytes_of(w))), Reason::unknown_flags);
  }
}

TEST(BrokerRequest, BindSpidFlagWithNoId) {
  bw::BindReq w{};
  w.flags.store(bw::kBindFSpid);
  w.spid.store(bw::kNoId);
  expect_reject(decode_frame(request_frame(MsgType::bind, bytes_of(w))), Reason::invalid_value);
}

TEST(BrokerRequest, FindReservedNonzeroAndNoId) {
  bw::FindReq w{};
  w.reserved.store(0x100);
  expect_reject(decode_frame(request_frame(MsgType::find, bytes_of(w))), Reason::reserved_nonzero);
  w.reserved.store(0);
  w.spid.store(bw::kNoId);
  expect_reject(decode_frame(request_frame(MsgType::find, bytes_of(w))), Reason::invalid_value);
}

TEST(BrokerRequest, ListSetsReservedNonzero) {
  bw::ListSetsReq w{};
  w.reserved.store(1);
  expect_reject(decode_frame(request_frame(MsgType::list_sets, bytes_of(w))),
                Reason::reserved_nonzero);
}

TEST(BrokerRequest, QueryIdReservedNonzero) {
  bw::IdReq w{};
  w.id.store(5);
  w.reserved.store(1);
  expect_reject(decode_frame(request_frame(MsgType::query_id, bytes_of(w))),
                Reason::reserved_nonzero);
  w.reserved.store(0);
  const auto d = decode_frame(request_frame(MsgType::query_id, bytes_of(w)));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, Request(QueryIdRequest{5}));
}

TEST(BrokerRequest, SetQuotaReservedNonzeroAndZeroQuota) {
  bw::SetQuotaReq w{};
  w.quota.store(4);
  w.reserved.store(2);
  expect_reject(decode_frame(request_frame(MsgType::set_quota, bytes_of(w))),
                Reason::reserved_nonzero);
  w.reserved.store(0);
  w.quota.store(0);
  expect_reject(decode_frame(request_frame(MsgType::set_quota, bytes_of(w))),
                Reason::invalid_value);
}

// ---- requests: round trips
// -----------------------------------------------------------------------

TEST(BrokerRequest, EveryRequestRoundTrips) {
  std::uint64_t id = 1;
  for (const Request& r : sample_requests()) {
    const EncodedRequest e = encode_request(id, r);
    const Bytes f = to_bytes(e);
    const auto h = decode_header(f);
    ASSERT_TRUE(h.has_value());
    EXPECT_EQ(h->type, bw::to_u32(request_type(r)));
    EXPECT_EQ(h->flags, kReqFlags);
    EXPECT_EQ(h->request_id, id);
    EXPECT_EQ(h->frame_size(), f.size());
    EXPECT_EQ(h->size, *request_payload_size(h->type));
    const auto d = decode_frame(f);
    ASSERT_TRUE(d.has_value()) << to_string(request_type(r)) << ": " << to_string(d.error().reason);
    EXPECT_EQ(*d, r) << to_string(request_type(r));
    EXPECT_EQ(to_bytes(encode_request(id, *d)), f);
    ++id;
  }
}

TEST(BrokerRequest, EveryTypeHasASample) {
  std::vector<bool> seen(std::variant_size_v<Request>);
  for (const Request& r : sample_requests()) seen[r.index()] = true;
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(seen[i]) << i;
}

TEST(BrokerRequest, StreamReassemblyByteByByte) {
  // Three frames back to back, delivered one byte at a time.
  Bytes stream;
  const std::vector<Request> sent = {HelloRequest{1, 7}, AllocRequest{1, 100}, FreeRequest{5}};
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const Bytes f = to_bytes(encode_request(i + 1, sent[i]));
    stream.insert(stream.end(), f.begin(), f.end());
  }
  Bytes buffer;
  std::vector<Request> got;
  for (std::byte b : stream) {
    buffer.push_back(b);
    const auto h = decode_header(buffer);
    if (!h) {
      ASSERT_EQ(h.error().action, Action::need_more);
      continue;
    }
    if (buffer.size() < h->frame_size()) continue;
    const auto r = decode_request(*h, std::span<const std::byte>(buffer).subspan(kHeaderSize));
    ASSERT_TRUE(r.has_value());
    got.push_back(*r);
    buffer.clear();
  }
  EXPECT_EQ(got, sent);
  EXPECT_TRUE(buffer.empty());
}

// ---- replies
// -------------------------------------------------------------------------------------

std::vector<bw::SetEntry> sample_sets(std::size_t n) {
  std::vector<bw::SetEntry> v;
  for (std::size_t i = 0; i < n; ++i) {
    v.push_back(to_wire(SetEntry{0x1000 + i, 64, static_cast<std::uint32_t>(i), 1, 5, i * 3,
                                 i % 2 ? SetState::dying : SetState::alive}));
  }
  return v;
}

std::vector<bw::IdEntry> sample_ids(std::size_t n) {
  std::vector<bw::IdEntry> v;
  for (std::size_t i = 0; i < n; ++i) {
    v.push_back(to_wire(IdInfo{static_cast<Id>(i + 1), static_cast<IdState>(i % 4),
                               static_cast<std::uint32_t>(i), 1, i % 3 ? kInvalidId : Id(i)}));
  }
  return v;
}

TEST(BrokerReply, EveryReplyRoundTrips) {
  const auto sets = sample_sets(5);
  const auto ids = sample_ids(7);
  StatsReply stats{};
  stats.space.live_ids = 1;
  stats.space.exhausted_refusals = 11;
  stats.daemon.clients = 12;
  stats.daemon.journal_commit_ns = 0xFFFFFFFFFFFFFFFFu;
  stats.daemon.journal_flushes = 0x0102030405060708u;
  const std::vector<Reply> replies = {
      ok_reply(MsgType::hello, HelloReply{1, 4096, bw::kAllFeatures, 32}),
      ok_reply(MsgType::open_session, SessionReply{0xCAFEF00D, token(0x10), 64, 0, false, 30}),
      ok_reply(MsgType::resume, SessionReply{1, token(0x20), 8, 3, true, 0}),
      ok_reply(MsgType::close_session),
      ok_reply(MsgType::alloc, AllocReply{0xFFFFF}),
      ok_reply(MsgType::free),
      ok_reply(MsgType::get),
      ok_reply(MsgType::put, PutReply{true}),
      ok_reply(MsgType::put, PutReply{false}),
      ok_reply(MsgType::bind),
      ok_reply(MsgType::unbind),
      ok_reply(MsgType::query, QueryReply{IdInfo{5, IdState::free_pending, 2, 1, 9}}),
      ok_reply(MsgType::find, FindReply{5}),
      ok_reply(MsgType::set_info, SetInfoReply{SetEntry{7, 64, 3, 1, 9, 2, SetState::alive}}),
      ok_reply(MsgType::list_sets, ListSetsReply{99, SetList(std::span(sets))}),
      ok_reply(MsgType::list_sets, ListSetsReply{0, SetList{}}),
      ok_reply(MsgType::list_ids, ListIdsReply{8, IdList(std::span(ids))}),
      ok_reply(MsgType::list_ids, ListIdsReply{kInvalidId, IdList{}}),
      ok_reply(MsgType::set_quota),
      ok_reply(MsgType::stats, stats),
      ok_reply(MsgType::status,
               StatusReply{0x000100, 4242, 1700000000123u, 20, false, 30, 64, 1024, 1u << 20}),
      ok_reply(MsgType::status, StatusReply{0xFFFFFFFF, 1, ~std::uint64_t{0}, 32, true, 0,
                                            0xFFFFFFFF, 1, ~std::uint64_t{0}}),
      ok_reply(MsgType::query_id,
               QueryIdReply{0xCAFEF00D, IdInfo{5, IdState::free_pending, 2, 1, 9}}),
      ok_reply(MsgType::query_id,
               QueryIdReply{~std::uint64_t{0}, IdInfo{0xFFFFF, IdState::active, 1, 0, kInvalidId}}),
      error_reply(bw::to_u32(MsgType::status), Errc::permission_denied),
      error_reply(bw::to_u32(MsgType::query_id), Errc::not_found),
      error_reply(bw::to_u32(MsgType::alloc), Errc::quota_exceeded),
      error_reply(bw::to_u32(MsgType::hello), Errc::unsupported),
  };
  std::uint64_t id = 100;
  for (const Reply& r : replies) {
    const Bytes f = encode(r, id);
    EXPECT_EQ(reply_frame_size(r), f.size());
    const auto h = decode_header(f);
    ASSERT_TRUE(h.has_value());
    EXPECT_EQ(h->flags, kRepFlags);
    EXPECT_EQ(h->request_id, id);
    const auto d = decode_reply_frame(f);
    ASSERT_TRUE(d.has_value()) << r.type << ": " << to_string(d.error().reason);
    EXPECT_EQ(*d, r) << r.type;
    EXPECT_EQ(encode(*d, id), f);
    ++id;
  }
}

TEST(BrokerReply, ListEntriesDecodeToHostValues) {
  const auto ids = sample_ids(3);
  const Bytes f = encode(ok_reply(MsgType::list_ids, ListIdsReply{4, IdList(std::span(ids))}));
  const auto d = decode_reply_frame(f);
  ASSERT_TRUE(d.has_value());
  const auto& l = std::get<ListIdsReply>(d->body);
  ASSERT_EQ(l.ids.size(), 3u);
  EXPECT_EQ(l.ids[0].id, 1u);
  EXPECT_EQ(l.ids[0].spid, 0u);
  EXPECT_EQ(l.ids[1].state, IdState::active);
  EXPECT_EQ(l.ids[1].spid, kInvalidId);
  EXPECT_EQ(l.ids[2].refs, 2u);
  EXPECT_EQ(l.next_id, 4u);
}

TEST(BrokerReply, LongestListsFitTheLimit) {
  const auto sets = sample_sets(bw::kMaxListSets);
  const Bytes f = encode(ok_reply(MsgType::list_sets, ListSetsReply{1, SetList(std::span(sets))}));
  EXPECT_LE(f.size(), kMaxFrame);
  ASSERT_TRUE(decode_reply_frame(f).has_value());
  const auto ids = sample_ids(bw::kMaxListIds);
  const Bytes g = encode(ok_reply(MsgType::list_ids, ListIdsReply{1, IdList(std::span(ids))}));
  EXPECT_LE(g.size(), kMaxFrame);
  ASSERT_TRUE(decode_reply_frame(g).has_value());
}

TEST(BrokerReply, EncodeRefusesListsAboveTheLimit) {
  Bytes out(kMaxFrame + 4096);
  const auto sets = sample_sets(bw::kMaxListSets + 1);
  EXPECT_EQ(encode_reply(out, 1, ok_reply(MsgType::list_sets, ListSetsReply{0, SetList(sets)})),
            fail(Errc::invalid_argument));
  const auto ids = sample_ids(bw::kMaxListIds + 1);
  EXPECT_EQ(encode_reply(out, 1, ok_reply(MsgType::list_ids, ListIdsReply{0, IdList(ids)})),
            fail(Errc::invalid_argument));
}

TEST(BrokerReply, EncodeRefusesInconsistentReplies) {
  Bytes out(kMaxFrame);
  // A body that is not the type's.
  EXPECT_EQ(encode_reply(out, 1, ok_reply(MsgType::alloc, PutReply{true})),
            fail(Errc::invalid_argument));
  EXPECT_EQ(encode_reply(out, 1, ok_reply(MsgType::alloc)), fail(Errc::invalid_argument));
  EXPECT_EQ(encode_reply(out, 1, ok_reply(MsgType::free, AllocReply{1})),
            fail(Errc::invalid_argument));
  // A success to an unknown type.
  EXPECT_EQ(encode_reply(out, 1, Reply{0x99, 0, {}}), fail(Errc::invalid_argument));
  // A positive status; an error with a body.
  EXPECT_EQ(encode_reply(out, 1, Reply{bw::to_u32(MsgType::free), 2, {}}),
            fail(Errc::invalid_argument));
  EXPECT_EQ(encode_reply(out, 1, Reply{bw::to_u32(MsgType::alloc), -ENOSPC, AllocReply{1}}),
            fail(Errc::invalid_argument));
  EXPECT_FALSE(reply_frame_size(Reply{0x99, 0, {}}).has_value());
}

TEST(BrokerReply, EncodeRefusesASmallBufferAndWritesNothing) {
  const Reply r = ok_reply(MsgType::alloc, AllocReply{5});
  Bytes out(kHeaderSize + 15, std::byte{0xEE});
  EXPECT_EQ(encode_reply(out, 1, r), fail(Errc::out_of_range));
  EXPECT_EQ(out, Bytes(kHeaderSize + 15, std::byte{0xEE}));
  out.resize(kHeaderSize + 16);
  EXPECT_EQ(encode_reply(out, 1, r), Result<std::size_t>(kHeaderSize + 16));
}

TEST(BrokerReply, StatusIsTheNegativeErrnoOfTheErrorTable) {
  for (unsigned i = 1; i <= static_cast<unsigned>(kLastErrc); ++i) {
    const auto e = static_cast<Errc>(i);
    const Reply r = error_reply(bw::to_u32(MsgType::get), e);
    EXPECT_EQ(r.status, -to_errno(guest_visible(e))) << to_string(e);
    const auto d = decode_reply_frame(encode(r));
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->error(), guest_visible(e)) << to_string(e);
  }
}

TEST(BrokerReply, NotOwnerIsSentAsNotFound) {
  const Reply r = error_reply(bw::to_u32(MsgType::free), Errc::not_owner);
  EXPECT_EQ(r.status, -ENOENT);
  EXPECT_EQ(r, error_reply(bw::to_u32(MsgType::free), Errc::not_found));
}

TEST(BrokerReply, UnknownNegativeStatusDecodesAsIoError) {
  for (std::int32_t s : {-ENOTTY, -4095, std::numeric_limits<std::int32_t>::min()}) {
    bw::ReplyHead head{};
    head.status.store(static_cast<std::uint32_t>(s));
    const Bytes f = frame(bw::to_u32(MsgType::get), kRepFlags, 8, 1, bytes_of(head));
    const auto d = decode_reply_frame(f);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->status, s);
    EXPECT_EQ(d->error(), Errc::io_error);
    EXPECT_EQ(encode(*d), f);
  }
}

// ---- replies: malformed (the client closes)
// ------------------------------------------------------

Bytes reply_payload(std::int32_t status, const Bytes& body = {}) {
  bw::ReplyHead head{};
  head.status.store(static_cast<std::uint32_t>(status));
  Bytes p = bytes_of(head);
  p.insert(p.end(), body.begin(), body.end());
  return p;
}

Bytes reply_frame(MsgType t, const Bytes& payload) {
  return frame(bw::to_u32(t), kRepFlags, static_cast<std::uint32_t>(payload.size()), 1, payload);
}

TEST(BrokerReplyMalformed, RequestFrameToTheClientCloses) {
  const Bytes f = request_frame(MsgType::alloc, reply_payload(0, Bytes(8)));
  expect_closes(decode_reply_frame(f), Reason::not_a_reply);
}

TEST(BrokerReplyMalformed, ShorterThanTheStatus) {
  expect_closes(decode_reply_frame(reply_frame(MsgType::free, Bytes(4))), Reason::bad_length);
  expect_closes(decode_reply_frame(reply_frame(MsgType::free, {})), Reason::bad_length);
}

TEST(BrokerReplyMalformed, PositiveStatus) {
  expect_closes(decode_reply_frame(reply_frame(MsgType::free, reply_payload(1))),
                Reason::bad_status);
}

TEST(BrokerReplyMalformed, ErrorWithABody) {
  expect_closes(decode_reply_frame(reply_frame(MsgType::alloc, reply_payload(-ENOSPC, Bytes(8)))),
                Reason::bad_status);
}

TEST(BrokerReplyMalformed, HeadReservedNonzero) {
  Bytes p = reply_payload(0);
  p[4] = std::byte{1};
  expect_closes(decode_reply_frame(reply_frame(MsgType::free, p)), Reason::reserved_nonzero);
}

TEST(BrokerReplyMalformed, SuccessToAnUnknownType) {
  expect_closes(decode_reply_frame(frame(0x99, kRepFlags, 8, 1, reply_payload(0))),
                Reason::unknown_type);
}

TEST(BrokerReplyMalformed, EveryFixedBodyTooShortOrTooLong) {
  for (MsgType t : kAllTypes) {
    if (t == MsgType::list_sets || t == MsgType::list_ids) continue;
    const Bytes ok = encode(ok_reply(t, [&]() -> ReplyBody {
      switch (t) {
        case MsgType::hello:
          return HelloReply{1, 4096, 0, 1};
        case MsgType::open_session:
        case MsgType::resume:
          return SessionReply{};
        case MsgType::alloc:
          return AllocReply{};
        case MsgType::put:
          return PutReply{};
        case MsgType::query:
          return QueryReply{};
        case MsgType::find:
          return FindReply{};
        case MsgType::set_info:
          return SetInfoReply{};
        case MsgType::stats:
          return StatsReply{};
        case MsgType::status:
          return StatusReply{};
        case MsgType::query_id:
          return QueryIdReply{};
        default:
          return std::monostate{};
      }
    }()));
    ASSERT_TRUE(decode_reply_frame(ok).has_value()) << to_string(t);
    const Bytes payload(ok.begin() + kHeaderSize, ok.end());
    Bytes longer = payload;
    longer.push_back(std::byte{0});
    expect_closes(decode_reply_frame(reply_frame(t, longer)), Reason::bad_length);
    if (payload.size() > sizeof(bw::ReplyHead)) {
      Bytes shorter(payload.begin(), payload.end() - 1);
      expect_closes(decode_reply_frame(reply_frame(t, shorter)), Reason::bad_length);
    }
  }
}

TEST(BrokerReplyMalformed, ListCountDisagreesWithSize) {
  const auto ids = sample_ids(3);
  Bytes f = encode(ok_reply(MsgType::list_ids, ListIdsReply{4, IdList(std::span(ids))}));
  Bytes p(f.begin() + kHeaderSize, f.end());
  p[8] = std::byte{4};  // count 3 -> 4
  expect_closes(decode_reply_frame(reply_frame(MsgType::list_ids, p)), Reason::bad_length);
  p[8] = std::byte{2};
  expect_closes(decode_reply_frame(reply_frame(MsgType::list_ids, p)), Reason::bad_length);
  p[8] = std::byte{0xFF};
  p[11] = std::byte{0xFF};  // count 0xFF0000FF: the multiplication must not wrap
  expect_closes(decode_reply_frame(reply_frame(MsgType::list_ids, p)), Reason::bad_length);
  expect_closes(decode_reply_frame(reply_frame(MsgType::list_sets, reply_payload(0, Bytes(15)))),
                Reason::bad_length);
  expect_closes(decode_reply_frame(reply_frame(MsgType::list_ids, reply_payload(0, Bytes(7)))),
                Reason::bad_length);
}

TEST(BrokerReplyMalformed, ListEntryWithBadStateOrReserved) {
  auto sets = sample_sets(2);
  sets[1].state = 2;
  expect_closes(decode_reply_frame(encode(
                    ok_reply(MsgType::list_sets, ListSetsReply{0, SetList(std::span(sets))}))),
                Reason::invalid_value);
  auto ids = sample_ids(2);
  ids[0].reserved1.store(1);
  expect_closes(decode_reply_frame(
                    encode(ok_reply(MsgType::list_ids, ListIdsReply{0, IdList(std::span(ids))}))),
                Reason::invalid_value);
}

TEST(BrokerReplyMalformed, QueryUnknownState) {
  bw::IdEntry w = to_wire(IdInfo{1, IdState::active, 1, 0, kInvalidId});
  w.state = 4;
  expect_closes(decode_reply_frame(reply_frame(MsgType::query, reply_payload(0, bytes_of(w)))),
                Reason::invalid_value);
}

TEST(BrokerReplyMalformed, PutUnknownFlags) {
  bw::PutReply w{};
  w.flags.store(2);
  expect_closes(decode_reply_frame(reply_frame(MsgType::put, reply_payload(0, bytes_of(w)))),
                Reason::unknown_flags);
}

TEST(BrokerReplyMalformed, SessionUnknownFlags) {
  bw::SessionReply w{};
  w.flags.store(0x80000000u);
  expect_closes(
      decode_reply_frame(reply_frame(MsgType::open_session, reply_payload(0, bytes_of(w)))),
      Reason::unknown_flags);
}

TEST(BrokerReplyMalformed, HelloOutOfContract) {
  const HelloReply bad[] = {{2, 4096, 0, 1},       {0, 4096, 0, 1},
                            {1, 0, 0, 1},          {1, bw::kMaxPayload + 1, 0, 1},
                            {1, 4096, 1u << 3, 1}, {1, 4096, 0, 0}};
  for (const HelloReply& h : bad) {
    expect_closes(decode_reply_frame(encode(ok_reply(MsgType::hello, h))), Reason::invalid_value);
  }
}

TEST(BrokerReplyMalformed, StatusReservedFlagsAndWidth) {
  bw::StatusReply w{};
  w.id_bits.store(20);
  ASSERT_TRUE(
      decode_reply_frame(reply_frame(MsgType::status, reply_payload(0, bytes_of(w)))).has_value());
  w.reserved.store(1);
  expect_closes(decode_reply_frame(reply_frame(MsgType::status, reply_payload(0, bytes_of(w)))),
                Reason::reserved_nonzero);
  w.reserved.store(0);
  w.flags.store(2);
  expect_closes(decode_reply_frame(reply_frame(MsgType::status, reply_payload(0, bytes_of(w)))),
                Reason::unknown_flags);
  w.flags.store(bw::kStatusFNoSync);
  for (std::uint32_t bits : {0u, 33u, 0xFFFFFFFFu}) {
    w.id_bits.store(bits);
    expect_closes(decode_reply_frame(reply_frame(MsgType::status, reply_payload(0, bytes_of(w)))),
                  Reason::invalid_value);
  }
}

TEST(BrokerReplyMalformed, QueryIdBadEntry) {
  bw::QueryIdReply w{};
  w.vm_token.store(7);
  w.entry = to_wire(IdInfo{1, IdState::active, 1, 0, kInvalidId});
  ASSERT_TRUE(decode_reply_frame(reply_frame(MsgType::query_id, reply_payload(0, bytes_of(w))))
                  .has_value());
  w.entry.state = 4;
  expect_closes(decode_reply_frame(reply_frame(MsgType::query_id, reply_payload(0, bytes_of(w)))),
                Reason::invalid_value);
  w.entry.state = 1;
  w.entry.reserved[2] = 1;
  expect_closes(decode_reply_frame(reply_frame(MsgType::query_id, reply_payload(0, bytes_of(w)))),
                Reason::invalid_value);
}

// ---- golden layouts
// --------------------------------------------------------------------------------

TEST(BrokerGolden, AllocRequest) {
  const Bytes want =
      hex("10000000"          // type ALLOC
          "09000000"          // flags: version 1 | NEED_REPLY
          "08000000"          // size 8
          "00000000"          // reserved
          "0807060504030201"  // request_id 0x0102030405060708
          "01000000"          // min 1
          "ffff0f00");        // max 0xFFFFF
  EXPECT_EQ(to_bytes(encode_request(0x0102030405060708u, AllocRequest{1, 0xFFFFF})), want);
  const auto d = decode_frame(want);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, Request(AllocRequest{1, 0xFFFFF}));
}

TEST(BrokerGolden, OpenSessionReply) {
  const Bytes want =
      hex("02000000"                          // type OPEN_SESSION
          "05000000"                          // flags: version 1 | REPLY
          "30000000"                          // size 48
          "00000000"                          // reserved
          "0700000000000000"                  // request_id 7
          "00000000"                          // status 0
          "00000000"                          // reserved
          "0df0feca00000000"                  // vm_token 0xCAFEF00D
          "101112131415161718191a1b1c1d1e1f"  // resume_token
          "40000000"                          // quota 64
          "03000000"                          // count 3
          "01000000"                          // flags: RESUMED
          "1e000000");                        // grace_seconds 30
  const Reply r =
      ok_reply(MsgType::open_session, SessionReply{0xCAFEF00D, token(0x10), 64, 3, true, 30});
  EXPECT_EQ(encode(r, 7), want);
  const auto d = decode_reply_frame(want);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, r);
}

TEST(BrokerGolden, StatusReply) {
  const Bytes want =
      hex("44000000"          // type STATUS
          "05000000"          // flags: version 1 | REPLY
          "38000000"          // size 56
          "00000000"          // reserved
          "0300000000000000"  // request_id 3
          "00000000"          // status 0
          "00000000"          // reserved
          "00010000"          // daemon_version 0.1.0
          "92100000"          // pid 4242
          "7b68e5cf8b010000"  // started_ms 1700000000123
          "14000000"          // id_bits 20
          "01000000"          // flags: NO_SYNC
          "1e000000"          // grace_seconds 30
          "40000000"          // max_sessions_per_client 64
          "00040000"          // max_clients 1024
          "00000000"          // reserved
          "0000100000000000"  // max_output 1 MiB
      );
  const Reply r = ok_reply(MsgType::status, StatusReply{0x000100, 4242, 1700000000123u, 20, true,
                                                        30, 64, 1024, 1u << 20});
  EXPECT_EQ(encode(r, 3), want);
  const auto d = decode_reply_frame(want);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, r);
}

TEST(BrokerGolden, ErrorReply) {
  const Bytes want =
      hex("11000000"          // type FREE
          "05000000"          // flags: version 1 | REPLY
          "08000000"          // size 8
          "00000000"          // reserved
          "0900000000000000"  // request_id 9
          "feffffff"          // status -ENOENT (-2)
          "00000000");        // reserved
  EXPECT_EQ(encode(error_reply(bw::to_u32(MsgType::free), Errc::not_owner), 9), want);
}

// ---- names
// -----------------------------------------------------------------------------------------

TEST(BrokerProtoNames, EveryReasonAndActionIsNamed) {
  for (unsigned i = 1; i <= static_cast<unsigned>(Reason::bad_status); ++i) {
    EXPECT_STRNE(to_string(static_cast<Reason>(i)), "unknown") << i;
  }
  EXPECT_STREQ(to_string(Action::need_more), "need_more");
  EXPECT_STREQ(to_string(Action::close), "close");
  EXPECT_STREQ(to_string(Action::error_reply), "error_reply");
}

}  // namespace
}  // namespace ioasid::broker
