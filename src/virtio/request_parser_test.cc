// SPDX-License-Identifier: Apache-2.0
// request_parser_test.cc: parse_request and the encoders of virtio/request_parser.hpp, against
// virtio 1.2/1.3 §5.13.6 (Linux UAPI v0.12) and the project's PASID extension
// (docs/virtio-iommu-pasid.md): one named test per valid request, one per malformed case (short,
// long, reserved bytes, unknown flags, overflowing ranges, unknown type, feature not negotiated),
// the spec's example request sequences as far as they concern parsing, and the le* wrappers.
// What the device does with a well-formed request (domains, mappings, ownership) is tested with
// the device model.
#include "virtio/request_parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

#include "ioasid/wire/le.hpp"
#include "ioasid/wire/virtio_iommu.hpp"

namespace ioasid::virtio {
namespace {

using wire::le32;
using wire::le64;

constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

// Features a typical Linux guest negotiates with a QEMU-like device, plus the whole extension.
constexpr std::uint64_t kBase = vi::feature_bit(vi::kFInputRange) |
                                vi::feature_bit(vi::kFDomainRange) |
                                vi::feature_bit(vi::kFMapUnmap) | vi::feature_bit(vi::kFProbe);
constexpr std::uint64_t kAll = vi::kStandardFeatures | vi::kPasidFeatures;
constexpr std::uint64_t kPasid = kBase | vi::feature_bit(vi::kFPasidAlloc);
constexpr std::uint64_t kPasidBind = kPasid | vi::feature_bit(vi::kFPasidBind);

// The readable part of a wire request struct (everything before the device-writable part).
template <class S>
std::vector<std::byte> readable(const S& s, std::size_t n = sizeof(S) - sizeof(vi::ReqTail)) {
  std::vector<std::byte> v(n);
  std::memcpy(v.data(), &s, std::min(n, sizeof(S)));
  return v;
}

template <class S>
S with_type(vi::ReqType t) {
  S s{};
  s.head.type = vi::to_u8(t);
  return s;
}

vi::ReqAttach attach_req(std::uint32_t domain, std::uint32_t endpoint, std::uint32_t flags = 0) {
  auto s = with_type<vi::ReqAttach>(vi::ReqType::attach);
  s.domain.store(domain);
  s.endpoint.store(endpoint);
  s.flags.store(flags);
  return s;
}

vi::ReqDetach detach_req(std::uint32_t domain, std::uint32_t endpoint) {
  auto s = with_type<vi::ReqDetach>(vi::ReqType::detach);
  s.domain.store(domain);
  s.endpoint.store(endpoint);
  return s;
}

vi::ReqMap map_req(std::uint32_t domain, std::uint64_t start, std::uint64_t end, std::uint64_t phys,
                   std::uint32_t flags) {
  auto s = with_type<vi::ReqMap>(vi::ReqType::map);
  s.domain.store(domain);
  s.virt_start.store(start);
  s.virt_end.store(end);
  s.phys_start.store(phys);
  s.flags.store(flags);
  return s;
}

vi::ReqUnmap unmap_req(std::uint32_t domain, std::uint64_t start, std::uint64_t end) {
  auto s = with_type<vi::ReqUnmap>(vi::ReqType::unmap);
  s.domain.store(domain);
  s.virt_start.store(start);
  s.virt_end.store(end);
  return s;
}

vi::ReqProbe probe_req(std::uint32_t endpoint) {
  auto s = with_type<vi::ReqProbe>(vi::ReqType::probe);
  s.endpoint.store(endpoint);
  return s;
}

std::vector<std::byte> alloc_bytes(std::uint32_t word) {
  auto s = with_type<vi::ReqAllocPasid>(vi::ReqType::alloc_pasid);
  s.reserved.store(word);
  return readable(s, offsetof(vi::ReqAllocPasid, pasid));
}

vi::ReqFreePasid free_req(std::uint32_t pasid, std::uint32_t reserved = 0) {
  auto s = with_type<vi::ReqFreePasid>(vi::ReqType::free_pasid);
  s.reserved.store(reserved);
  s.pasid.store(pasid);
  return s;
}

template <class S = vi::ReqBindPasid>
S bind_req(vi::ReqType t, std::uint32_t endpoint, std::uint32_t pasid, std::uint32_t flags = 0) {
  auto s = with_type<S>(t);
  s.endpoint.store(endpoint);
  s.pasid.store(pasid);
  s.flags.store(flags);
  return s;
}

ParseResult parse(const std::vector<std::byte>& b, std::uint64_t f) { return parse_request(b, f); }

// Expects a parse failure with this error and, through status_for, this device answer.
void expect_error(const ParseResult& r, ParseError e) {
  ASSERT_FALSE(r.has_value()) << "parsed as variant index " << r->index();
  EXPECT_EQ(r.error(), e) << to_string(r.error()) << " instead of " << to_string(e);
}

void expect_no_write(const ParseResult& r, ParseError e) {
  expect_error(r, e);
  EXPECT_FALSE(status_for(e).has_value()) << "expected used length 0";
}

void expect_status(const ParseResult& r, ParseError e, vi::Status st) {
  expect_error(r, e);
  ASSERT_TRUE(status_for(e).has_value());
  EXPECT_EQ(*status_for(e), st);
}

template <class T>
T expect_ok(const ParseResult& r) {
  EXPECT_TRUE(r.has_value()) << (r ? "" : to_string(r.error()));
  if (!r) return T{};
  EXPECT_TRUE(std::holds_alternative<T>(*r));
  return std::holds_alternative<T>(*r) ? std::get<T>(*r) : T{};
}

// Every valid request of every type, as bytes, with the features that make it valid.
struct Sample {
  const char* name;
  std::vector<std::byte> bytes;
  std::uint64_t features;
};

std::vector<Sample> samples() {
  return {
      {"attach", readable(attach_req(1, 8)), kBase},
      {"detach", readable(detach_req(1, 8)), kBase},
      {"map", readable(map_req(1, 0x1000, 0x1fff, 0xa000, vi::kMapFRead)), kBase},
      {"unmap", readable(unmap_req(1, 0x1000, 0x1fff)), kBase},
      {"probe", readable(probe_req(8), sizeof(vi::ReqProbe)), kBase},
      {"alloc_pasid", alloc_bytes(0), kPasid},
      {"free_pasid", readable(free_req(42)), kPasid},
      {"bind_pasid", readable(bind_req(vi::ReqType::bind_pasid, 8, 42)), kPasidBind},
      {"unbind_pasid", readable(bind_req<vi::ReqUnbindPasid>(vi::ReqType::unbind_pasid, 8, 42)),
       kPasidBind},
  };
}

// ---- little-endian wrappers
// ----------------------------------------------------------------------

TEST(WireLe, StoresLeastSignificantByteFirst) {
  le32 v{};
  EXPECT_EQ(v.load(), 0u);
  v.store(0x11223344u);
  EXPECT_EQ(v.bytes()[0], std::byte{0x44});
  EXPECT_EQ(v.bytes()[3], std::byte{0x11});
  EXPECT_EQ(v.load(), 0x11223344u);
  const le64 w(0x0102030405060708ull);
  EXPECT_EQ(w.bytes()[0], std::byte{0x08});
  EXPECT_EQ(w.bytes()[7], std::byte{0x01});
  EXPECT_EQ(w, le64(0x0102030405060708ull));
}

TEST(WireLe, ReadWriteAreBoundsChecked) {
  std::array<std::byte, 6> buf{};
  EXPECT_TRUE(wire::write_le<std::uint32_t>(buf, 2, 0xAABBCCDDu));
  EXPECT_FALSE(wire::write_le<std::uint32_t>(buf, 3, 1));
  EXPECT_FALSE(wire::write_le<std::uint16_t>(buf, 7, 1));
  EXPECT_EQ(wire::read_le<std::uint32_t>(buf, 2), 0xAABBCCDDu);
  EXPECT_EQ(wire::read_le<std::uint16_t>(buf, 4), 0xAABBu);
  EXPECT_FALSE(wire::read_le<std::uint32_t>(buf, 3).has_value());
  EXPECT_FALSE(wire::read_le<std::uint64_t>(buf, kU64Max).has_value());
  EXPECT_FALSE(wire::read_struct<vi::ReqAttach>(std::span<const std::byte>(buf)).has_value());
}

// ---- valid requests
// -------------------------------------------------------------------------------

TEST(RequestParser, ParsesAttach) {
  // Bytes written by hand: type 1, domain 0x01020304, endpoint 8, flags 0, little endian.
  const std::vector<std::byte> b = {
      std::byte{1},    std::byte{0},    std::byte{0},    std::byte{0}, std::byte{0x04},
      std::byte{0x03}, std::byte{0x02}, std::byte{0x01}, std::byte{8}, std::byte{0},
      std::byte{0},    std::byte{0},    std::byte{0},    std::byte{0}, std::byte{0},
      std::byte{0},    std::byte{0},    std::byte{0},    std::byte{0}, std::byte{0}};
  const auto a = expect_ok<AttachRequest>(parse(b, kBase));
  EXPECT_EQ(a, (AttachRequest{0x01020304, 8, 0}));
  EXPECT_EQ(encode_request(a).span().size(), b.size());
  EXPECT_TRUE(std::equal(b.begin(), b.end(), encode_request(a).span().begin()));
}

TEST(RequestParser, ParsesAttachBypassWithBypassConfig) {
  const auto f = kBase | vi::feature_bit(vi::kFBypassConfig);
  EXPECT_EQ(expect_ok<AttachRequest>(parse(readable(attach_req(3, 9, vi::kAttachFBypass)), f)),
            (AttachRequest{3, 9, vi::kAttachFBypass}));
}

TEST(RequestParser, ParsesDetach) {
  EXPECT_EQ(expect_ok<DetachRequest>(parse(readable(detach_req(1, 8)), kBase)),
            (DetachRequest{1, 8}));
}

TEST(RequestParser, DetachIgnoresReserved) {
  // §5.13.6.4: the device MUST ignore DETACH's reserved bytes.
  auto s = detach_req(1, 8);
  std::memset(s.reserved, 0xA5, sizeof(s.reserved));
  EXPECT_EQ(expect_ok<DetachRequest>(parse(readable(s), kBase)), (DetachRequest{1, 8}));
}

TEST(RequestParser, ParsesMap) {
  const auto m = expect_ok<MapRequest>(
      parse(readable(map_req(1, 0x1000, 0x1fff, 0xa000, vi::kMapFRead | vi::kMapFWrite)), kBase));
  EXPECT_EQ(m, (MapRequest{1, 0x1000, 0x1fff, 0xa000, vi::kMapFRead | vi::kMapFWrite}));
}

TEST(RequestParser, ParsesMapMmioWithFMmio) {
  const auto f = kBase | vi::feature_bit(vi::kFMmio);
  const auto m = expect_ok<MapRequest>(parse(
      readable(map_req(2, 0xfee00000, 0xfee00fff, 0xfee00000, vi::kMapFWrite | vi::kMapFMmio)), f));
  EXPECT_EQ(m.flags, vi::kMapFWrite | vi::kMapFMmio);
}

TEST(RequestParser, ParsesMapOfOneByte) {
  // virt_start == virt_end is one byte, legal with byte granularity (§5.13.6 page_size_mask).
  EXPECT_EQ(expect_ok<MapRequest>(parse(readable(map_req(1, 5, 5, 7, vi::kMapFRead)), kBase)),
            (MapRequest{1, 5, 5, 7, vi::kMapFRead}));
}

TEST(RequestParser, ParsesMapEndingAtTopOfAddressSpace) {
  // virt_end and phys end at 2^64-1: end + 1 wraps, but nothing overflows in [start, end].
  const auto m = expect_ok<MapRequest>(
      parse(readable(map_req(1, kU64Max - 0xfff, kU64Max, kU64Max - 0xfff, vi::kMapFRead)), kBase));
  EXPECT_EQ(m.virt_end, kU64Max);
}

TEST(RequestParser, ParsesUnmap) {
  EXPECT_EQ(expect_ok<UnmapRequest>(parse(readable(unmap_req(1, 0x1000, 0x1fff)), kBase)),
            (UnmapRequest{1, 0x1000, 0x1fff}));
}

TEST(RequestParser, ParsesUnmapOfWholeAddressSpace) {
  EXPECT_EQ(expect_ok<UnmapRequest>(parse(readable(unmap_req(4, 0, kU64Max)), kBase)),
            (UnmapRequest{4, 0, kU64Max}));
}

TEST(RequestParser, ParsesProbe) {
  EXPECT_EQ(expect_ok<ProbeRequest>(parse(readable(probe_req(8), sizeof(vi::ReqProbe)), kBase)),
            (ProbeRequest{8}));
}

TEST(RequestParser, ProbeIgnoresReserved) {
  // §5.13.6.8: the device MUST ignore PROBE's reserved bytes.
  auto s = probe_req(8);
  std::memset(s.reserved, 0xFF, sizeof(s.reserved));
  EXPECT_EQ(expect_ok<ProbeRequest>(parse(readable(s, sizeof(s)), kBase)), (ProbeRequest{8}));
}

TEST(RequestParser, HeadReservedIsIgnored) {
  // §5.13.6: the device MUST ignore head.reserved, for every request type.
  for (Sample s : samples()) {
    s.bytes[1] = s.bytes[2] = s.bytes[3] = std::byte{0x5A};
    EXPECT_TRUE(parse(s.bytes, s.features).has_value()) << s.name;
  }
}

TEST(RequestParser, ParsesAllocPasid) {
  EXPECT_EQ(expect_ok<AllocPasidRequest>(parse(alloc_bytes(0), kPasid)), (AllocPasidRequest{0}));
  EXPECT_EQ(readable_size(vi::to_u8(vi::ReqType::alloc_pasid)), 8u);
}

TEST(RequestParser, ParsesAllocPasidWithMaxPasid) {
  const auto f = kPasid | vi::feature_bit(vi::kFPasidMaxReq);
  EXPECT_EQ(expect_ok<AllocPasidRequest>(parse(alloc_bytes(0xFF), f)), (AllocPasidRequest{0xFF}));
  EXPECT_EQ(expect_ok<AllocPasidRequest>(parse(alloc_bytes(0), f)), (AllocPasidRequest{0}));
}

TEST(RequestParser, ParsesFreePasid) {
  EXPECT_EQ(expect_ok<FreePasidRequest>(parse(readable(free_req(0x12345)), kPasid)),
            (FreePasidRequest{0x12345}));
  EXPECT_EQ(readable_size(vi::to_u8(vi::ReqType::free_pasid)), 12u);
}

TEST(RequestParser, ParsesBindPasid) {
  EXPECT_EQ(expect_ok<BindPasidRequest>(
                parse(readable(bind_req(vi::ReqType::bind_pasid, 8, 42)), kPasidBind)),
            (BindPasidRequest{8, 42, 0}));
}

TEST(RequestParser, ParsesUnbindPasid) {
  EXPECT_EQ(
      expect_ok<UnbindPasidRequest>(parse(
          readable(bind_req<vi::ReqUnbindPasid>(vi::ReqType::unbind_pasid, 8, 42)), kPasidBind)),
      (UnbindPasidRequest{8, 42, 0}));
}

TEST(RequestParser, EveryValidRequestRoundTrips) {
  for (const Sample& s : samples()) {
    const ParseResult r = parse(s.bytes, s.features);
    ASSERT_TRUE(r.has_value()) << s.name;
    EXPECT_EQ(request_type(*r), static_cast<vi::ReqType>(s.bytes[0]));
    const EncodedRequest e = encode_request(*r);
    ASSERT_EQ(e.size, s.bytes.size()) << s.name;
    EXPECT_TRUE(std::equal(s.bytes.begin(), s.bytes.end(), e.bytes.begin())) << s.name;
    EXPECT_EQ(parse_request(e.span(), s.features), r) << s.name;
  }
}

// ---- malformed: framing
// -----------------------------------------------------------------------------

TEST(RequestParser, NoHeadIsUsedLengthZero) {
  for (std::size_t n = 0; n < sizeof(vi::ReqHead); ++n) {
    const std::vector<std::byte> b(n, std::byte{1});
    expect_no_write(parse(b, kAll), ParseError::no_head);
  }
}

TEST(RequestParser, TooShortIsUsedLengthZero) {
  for (const Sample& s : samples()) {
    for (std::size_t n = sizeof(vi::ReqHead); n < s.bytes.size(); ++n) {
      const std::vector<std::byte> b(s.bytes.begin(), s.bytes.begin() + n);
      SCOPED_TRACE(s.name);
      expect_no_write(parse(b, s.features), ParseError::too_short);
    }
  }
}

TEST(RequestParser, TooLongIsInval) {
  for (const Sample& s : samples()) {
    for (std::size_t extra : {1u, 4u, 64u}) {
      std::vector<std::byte> b = s.bytes;
      b.resize(b.size() + extra);
      SCOPED_TRACE(s.name);
      expect_status(parse(b, s.features), ParseError::too_long, vi::Status::inval);
    }
  }
}

TEST(RequestParser, UnknownTypeIsUsedLengthZero) {
  // Type 0, the draft types 6-8 (ATTACH_TABLE, INVALIDATE, PAGE_RESP), the first unused private
  // value and the maximum: used length 0 (§5.13.6 device rule), not QEMU's S_UNSUPP.
  for (std::uint8_t t : {0x00, 0x06, 0x07, 0x08, 0x7F, 0x84, 0xFF}) {
    std::vector<std::byte> b(64);
    b[0] = std::byte{t};
    expect_no_write(parse(b, kAll), ParseError::unknown_type);
    EXPECT_FALSE(readable_size(t).has_value());
  }
}

TEST(RequestParser, ProbeWithoutFeatureIsUsedLengthZero) {
  // §5.13.6.8.2: PROBE without F_PROBE: the device does not write the buffer.
  expect_no_write(
      parse(readable(probe_req(8), sizeof(vi::ReqProbe)), kAll & ~vi::feature_bit(vi::kFProbe)),
      ParseError::probe_not_offered);
}

TEST(RequestParser, ShortRequestWinsOverMissingFeature) {
  // Framing is checked before features: a short MAP without F_MAP_UNMAP is still unparseable.
  std::vector<std::byte> b = readable(map_req(1, 0, 0xfff, 0, vi::kMapFRead));
  b.resize(20);
  expect_no_write(parse(b, 0), ParseError::too_short);
}

// ---- malformed: features
// -----------------------------------------------------------------------------

TEST(RequestParser, MapWithoutMapUnmapIsUnsupp) {
  expect_status(parse(readable(map_req(1, 0, 0xfff, 0, vi::kMapFRead)),
                      kAll & ~vi::feature_bit(vi::kFMapUnmap)),
                ParseError::not_negotiated, vi::Status::unsupp);
}

TEST(RequestParser, UnmapWithoutMapUnmapIsUnsupp) {
  expect_status(parse(readable(unmap_req(1, 0, 0xfff)), kAll & ~vi::feature_bit(vi::kFMapUnmap)),
                ParseError::not_negotiated, vi::Status::unsupp);
}

TEST(RequestParser, AllocPasidWithoutFeatureIsUnsupp) {
  expect_status(parse(alloc_bytes(0), kBase), ParseError::not_negotiated, vi::Status::unsupp);
  // The dependent bits alone do not enable the request.
  expect_status(parse(alloc_bytes(0), kAll & ~vi::feature_bit(vi::kFPasidAlloc)),
                ParseError::not_negotiated, vi::Status::unsupp);
}

TEST(RequestParser, FreePasidWithoutFeatureIsUnsupp) {
  expect_status(parse(readable(free_req(1)), kBase), ParseError::not_negotiated,
                vi::Status::unsupp);
}

TEST(RequestParser, BindPasidWithoutBindFeatureIsUnsupp) {
  expect_status(parse(readable(bind_req(vi::ReqType::bind_pasid, 8, 1)), kPasid),
                ParseError::not_negotiated, vi::Status::unsupp);
  expect_status(parse(readable(bind_req<vi::ReqUnbindPasid>(vi::ReqType::unbind_pasid, 8, 1)),
                      kBase | vi::feature_bit(vi::kFPasidBind)),
                ParseError::not_negotiated, vi::Status::unsupp);
}

TEST(RequestParser, FeatureDependencies) {
  EXPECT_TRUE(features_consistent(0));
  EXPECT_TRUE(features_consistent(kAll));
  EXPECT_TRUE(features_consistent(kPasid));
  EXPECT_FALSE(features_consistent(kBase | vi::feature_bit(vi::kFPasidBind)));
  EXPECT_FALSE(features_consistent(kBase | vi::feature_bit(vi::kFPasidMaxReq)));
  EXPECT_FALSE(features_consistent(kBase | vi::feature_bit(vi::kFPasidPerEndpoint)));
}

// ---- malformed: reserved fields
// -------------------------------------------------------------------

TEST(RequestParser, AttachReservedNonzeroIsInval) {
  // §5.13.6.3.2: MUST reject with S_INVAL. Every reserved byte on its own.
  for (std::size_t i = 0; i < 4; ++i) {
    auto s = attach_req(1, 8);
    s.reserved[i] = 1;
    expect_status(parse(readable(s), kAll), ParseError::reserved_nonzero, vi::Status::inval);
  }
}

TEST(RequestParser, UnmapReservedNonzeroIsInval) {
  for (std::size_t i = 0; i < 4; ++i) {
    auto s = unmap_req(1, 0, 0xfff);
    s.reserved[i] = 0x80;
    expect_status(parse(readable(s), kAll), ParseError::reserved_nonzero, vi::Status::inval);
  }
}

TEST(RequestParser, AllocPasidReservedNonzeroIsInval) {
  // Without F_PASID_MAX_REQ the word after the head is reserved.
  for (std::uint32_t word : {1u, 0x100u, 0x80000000u}) {
    expect_status(parse(alloc_bytes(word), kPasidBind), ParseError::reserved_nonzero,
                  vi::Status::inval);
  }
}

TEST(RequestParser, FreePasidReservedNonzeroIsInval) {
  expect_status(parse(readable(free_req(5, 1)), kPasid), ParseError::reserved_nonzero,
                vi::Status::inval);
  expect_status(parse(readable(free_req(5, 0x01000000)), kAll), ParseError::reserved_nonzero,
                vi::Status::inval);
}

TEST(RequestParser, BindPasidReservedNonzeroIsInval) {
  for (std::size_t i = 0; i < 4; ++i) {
    auto b = bind_req(vi::ReqType::bind_pasid, 8, 1);
    b.reserved[i] = 2;
    expect_status(parse(readable(b), kAll), ParseError::reserved_nonzero, vi::Status::inval);
    auto u = bind_req<vi::ReqUnbindPasid>(vi::ReqType::unbind_pasid, 8, 1);
    u.reserved[i] = 2;
    expect_status(parse(readable(u), kAll), ParseError::reserved_nonzero, vi::Status::inval);
  }
}

TEST(RequestParser, ReservedCheckedBeforeFlags) {
  auto s = attach_req(1, 8, 0x80);
  s.reserved[0] = 1;
  expect_error(parse(readable(s), kAll), ParseError::reserved_nonzero);
}

// ---- malformed: flags
// ------------------------------------------------------------------------------

TEST(RequestParser, AttachUnknownFlagsIsInval) {
  for (std::uint32_t flag = 2; flag != 0; flag <<= 1) {
    expect_status(parse(readable(attach_req(1, 8, flag)), kAll), ParseError::unknown_flags,
                  vi::Status::inval);
  }
}

TEST(RequestParser, AttachBypassWithoutBypassConfigIsInval) {
  expect_status(parse(readable(attach_req(1, 8, vi::kAttachFBypass)),
                      kAll & ~vi::feature_bit(vi::kFBypassConfig)),
                ParseError::unknown_flags, vi::Status::inval);
}

TEST(RequestParser, MapUnknownFlagsIsInval) {
  for (std::uint32_t flag = 8; flag != 0; flag <<= 1) {
    expect_status(parse(readable(map_req(1, 0, 0xfff, 0, vi::kMapFRead | flag)), kAll),
                  ParseError::unknown_flags, vi::Status::inval);
  }
}

TEST(RequestParser, MapMmioWithoutFMmioIsInval) {
  expect_status(parse(readable(map_req(1, 0, 0xfff, 0, vi::kMapFWrite | vi::kMapFMmio)),
                      kAll & ~vi::feature_bit(vi::kFMmio)),
                ParseError::unknown_flags, vi::Status::inval);
}

TEST(RequestParser, BindPasidUnknownFlagsIsInval) {
  for (std::uint32_t flag = 1; flag != 0; flag <<= 1) {
    expect_status(parse(readable(bind_req(vi::ReqType::bind_pasid, 8, 1, flag)), kAll),
                  ParseError::unknown_flags, vi::Status::inval);
    expect_status(
        parse(readable(bind_req<vi::ReqUnbindPasid>(vi::ReqType::unbind_pasid, 8, 1, flag)), kAll),
        ParseError::unknown_flags, vi::Status::inval);
  }
}

// ---- malformed: ranges
// ------------------------------------------------------------------------------

TEST(RequestParser, MapInvertedRangeIsInval) {
  expect_status(parse(readable(map_req(1, 0x2000, 0x1fff, 0, vi::kMapFRead)), kAll),
                ParseError::inverted_range, vi::Status::inval);
  expect_status(parse(readable(map_req(1, kU64Max, 0, 0, vi::kMapFRead)), kAll),
                ParseError::inverted_range, vi::Status::inval);
}

TEST(RequestParser, UnmapInvertedRangeIsInval) {
  expect_status(parse(readable(unmap_req(1, 1, 0)), kAll), ParseError::inverted_range,
                vi::Status::inval);
}

TEST(RequestParser, MapPhysEndOverflowIsRange) {
  // phys_end = phys_start + (virt_end - virt_start) would wrap past 2^64-1.
  expect_status(parse(readable(map_req(1, 0, 0x1fff, kU64Max - 0xfff, vi::kMapFRead)), kAll),
                ParseError::range_overflow, vi::Status::range);
  expect_status(parse(readable(map_req(1, 0x1000, kU64Max, 0x2000, vi::kMapFRead)), kAll),
                ParseError::range_overflow, vi::Status::range);
}

TEST(RequestParser, MapOfWholeAddressSpaceIsRange) {
  // [0, 2^64-1] has length 2^64: not representable, so refused even with phys_start 0.
  expect_status(parse(readable(map_req(1, 0, kU64Max, 0, vi::kMapFRead)), kAll),
                ParseError::range_overflow, vi::Status::range);
}

TEST(RequestParser, StatusForEveryParseError) {
  EXPECT_FALSE(status_for(ParseError::no_head));
  EXPECT_FALSE(status_for(ParseError::unknown_type));
  EXPECT_FALSE(status_for(ParseError::probe_not_offered));
  EXPECT_FALSE(status_for(ParseError::too_short));
  EXPECT_EQ(status_for(ParseError::too_long), vi::Status::inval);
  EXPECT_EQ(status_for(ParseError::not_negotiated), vi::Status::unsupp);
  EXPECT_EQ(status_for(ParseError::reserved_nonzero), vi::Status::inval);
  EXPECT_EQ(status_for(ParseError::unknown_flags), vi::Status::inval);
  EXPECT_EQ(status_for(ParseError::inverted_range), vi::Status::inval);
  EXPECT_EQ(status_for(ParseError::range_overflow), vi::Status::range);
  EXPECT_STREQ(to_string(ParseError::range_overflow), "range_overflow");
}

// ---- the spec's example sequences (§5.13 introduction and §5.13.6.6 UNMAP)
// ---------------------------- Each request of a sequence parses to exactly the fields the example
// names. What the device then does (which mappings go, which requests fail) belongs to the
// device-model tests.

TEST(RequestParserSpecExamples, AttachMapUnmapDetach) {
  // §5.13 introduction: attach endpoint 8 to domain 1, map [0x1000, 0x1fff] -> 0xa000 read-only,
  // unmap it, detach.
  EXPECT_EQ(expect_ok<AttachRequest>(parse(readable(attach_req(1, 0x8)), kBase)),
            (AttachRequest{1, 8, 0}));
  EXPECT_EQ(expect_ok<MapRequest>(
                parse(readable(map_req(1, 0x1000, 0x1fff, 0xa000, vi::kMapFRead)), kBase)),
            (MapRequest{1, 0x1000, 0x1fff, 0xa000, vi::kMapFRead}));
  EXPECT_EQ(expect_ok<UnmapRequest>(parse(readable(unmap_req(1, 0x1000, 0x1fff)), kBase)),
            (UnmapRequest{1, 0x1000, 0x1fff}));
  EXPECT_EQ(expect_ok<DetachRequest>(parse(readable(detach_req(1, 0x8)), kBase)),
            (DetachRequest{1, 8}));
}

struct Range {
  std::uint64_t start, end;
};

// Parses the maps then the unmap of one §5.13.6.6 example, all in domain 1.
void parse_unmap_example(std::initializer_list<Range> maps, Range unmap) {
  for (const Range& m : maps) {
    const auto r = expect_ok<MapRequest>(
        parse(readable(map_req(1, m.start, m.end, 0x100000 + m.start, vi::kMapFRead)), kBase));
    EXPECT_EQ(r.virt_start, m.start);
    EXPECT_EQ(r.virt_end, m.end);
  }
  const auto u =
      expect_ok<UnmapRequest>(parse(readable(unmap_req(1, unmap.start, unmap.end)), kBase));
  EXPECT_EQ(u, (UnmapRequest{1, unmap.start, unmap.end}));
}

TEST(RequestParserSpecExamples, Unmap1NothingMapped) { parse_unmap_example({}, {0, 4}); }
TEST(RequestParserSpecExamples, Unmap2ExactMapping) { parse_unmap_example({{0, 9}}, {0, 9}); }
TEST(RequestParserSpecExamples, Unmap3TwoAdjacentMappings) {
  parse_unmap_example({{0, 4}, {5, 9}}, {0, 9});
}
TEST(RequestParserSpecExamples, Unmap4SplitIsAWellFormedRequest) {
  // The device refuses it (S_RANGE, nothing removed); the request itself parses.
  parse_unmap_example({{0, 9}}, {0, 4});
}
TEST(RequestParserSpecExamples, Unmap5FirstOfTwo) { parse_unmap_example({{0, 4}, {5, 9}}, {0, 4}); }
TEST(RequestParserSpecExamples, Unmap6SpillsOverHole) { parse_unmap_example({{0, 4}}, {0, 9}); }
TEST(RequestParserSpecExamples, Unmap7TwoMappingsAndHole) {
  parse_unmap_example({{0, 4}, {10, 14}}, {0, 14});
}

// ---- parse_pasid_request: the device's in-line parse of the hot pair ----------------------------

PasidParse fast(const std::vector<std::byte>& b, std::uint64_t f) {
  return parse_pasid_request(b, f);
}

TEST(PasidFastParse, TakesWellFormedAllocAndFree) {
  const PasidParse a = fast(alloc_bytes(0), kPasid);
  EXPECT_EQ(a.kind, PasidParse::Kind::alloc);
  EXPECT_EQ(a.value, 0u);
  const PasidParse m = fast(alloc_bytes(0x1234), kPasid | vi::feature_bit(vi::kFPasidMaxReq));
  EXPECT_EQ(m.kind, PasidParse::Kind::alloc);
  EXPECT_EQ(m.value, 0x1234u);
  const PasidParse f = fast(readable(free_req(0xABCDE)), kPasid);
  EXPECT_EQ(f.kind, PasidParse::Kind::free);
  EXPECT_EQ(f.value, 0xABCDEu);
  // head.reserved is ignored, as parse_request ignores it.
  std::vector<std::byte> r = readable(free_req(7));
  r[1] = r[2] = r[3] = std::byte{0xFF};
  EXPECT_EQ(fast(r, kPasid).kind, PasidParse::Kind::free);
}

// Everything parse_request refuses (or that is another type) is left to parse_request.
TEST(PasidFastParse, LeavesEverythingElseToParseRequest) {
  const auto other = [](const std::vector<std::byte>& b, std::uint64_t f) {
    EXPECT_EQ(fast(b, f).kind, PasidParse::Kind::other);
  };
  other(alloc_bytes(0), kBase);                    // feature not negotiated
  other(readable(free_req(1)), kBase);             // feature not negotiated
  other(alloc_bytes(1), kPasidBind);               // reserved word without F_PASID_MAX_REQ
  other(readable(free_req(5, 1)), kAll);           // reserved nonzero
  other(readable(free_req(5, 0x01000000)), kAll);  // reserved nonzero, top byte
  other(readable(free_req(5), 11), kPasid);        // too short
  other(readable(free_req(5), 13), kPasid);        // too long
  std::vector<std::byte> a = alloc_bytes(0);
  a.push_back(std::byte{0});
  other(a, kPasid);                                                 // too long
  other(std::vector<std::byte>(a.begin(), a.begin() + 7), kPasid);  // too short
  other({}, kAll);                                                  // no head
  for (const Sample& s : samples()) {
    if (s.name != std::string_view("alloc_pasid") && s.name != std::string_view("free_pasid")) {
      other(s.bytes, kAll);
    }
  }
}

TEST(RequestEncoders, HotPairMatchesEncodeRequest) {
  for (std::uint32_t v : {0u, 1u, 0x12345u, 0xFFFFFu, 0xFFFFFFFFu}) {
    const auto a = encode_alloc_pasid_request(v);
    const EncodedRequest ea = encode_request(AllocPasidRequest{v});
    EXPECT_TRUE(std::equal(a.begin(), a.end(), ea.span().begin(), ea.span().end())) << v;
    const auto f = encode_free_pasid_request(v);
    const EncodedRequest ef = encode_request(FreePasidRequest{v});
    EXPECT_TRUE(std::equal(f.begin(), f.end(), ef.span().begin(), ef.span().end())) << v;
  }
}

// ---- device-writable encoders -------------------------------------------------------------------

TEST(RequestEncoders, WritableSizes) {
  EXPECT_EQ(writable_size(AttachRequest{}, 0), 4u);
  EXPECT_EQ(writable_size(MapRequest{}, 512), 4u);
  EXPECT_EQ(writable_size(ProbeRequest{}, 512), 516u);
  EXPECT_EQ(writable_size(AllocPasidRequest{}, 0), 8u);
  EXPECT_EQ(writable_size(FreePasidRequest{}, 0), 4u);
  EXPECT_EQ(writable_size(BindPasidRequest{}, 0), 4u);
}

TEST(RequestEncoders, Tail) {
  std::array<std::byte, 4> out;
  out.fill(std::byte{0xEE});
  ASSERT_TRUE(encode_tail(out, vi::Status::noent));
  EXPECT_EQ(out,
            (std::array<std::byte, 4>{std::byte{6}, std::byte{0}, std::byte{0}, std::byte{0}}));
  std::array<std::byte, 3> small{};
  EXPECT_FALSE(encode_tail(small, vi::Status::ok));
}

TEST(RequestEncoders, AllocPasidReply) {
  std::array<std::byte, 8> out{};
  ASSERT_TRUE(encode_alloc_pasid_reply(out, vi::Status::ok, 0x12345));
  EXPECT_EQ(wire::read_le<std::uint32_t>(out, 0), 0x12345u);
  EXPECT_EQ(out[4], std::byte{0});
  ASSERT_TRUE(encode_alloc_pasid_reply(out, vi::Status::nomem, 0x12345));
  EXPECT_EQ(wire::read_le<std::uint32_t>(out, 0), vi::kPasidInvalid);
  EXPECT_EQ(out[4], std::byte{8});
  std::array<std::byte, 7> small{};
  EXPECT_FALSE(encode_alloc_pasid_reply(small, vi::Status::ok, 1));
  EXPECT_EQ(small, (std::array<std::byte, 7>{}));
}

TEST(RequestEncoders, ProbeProperties) {
  std::vector<std::byte> props(64, std::byte{0xCC});
  const ResvMemRegion regions[] = {{vi::kResvMemTMsi, 0xfee00000, 0xfeefffff}};
  ASSERT_EQ(encode_probe_properties(props, regions), 24u);
  const auto p = wire::read_struct<vi::ProbeResvMem>(props);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->head.type.load(), vi::kProbeTResvMem);
  EXPECT_EQ(p->head.length.load(), 20u);  // the property without its 4-byte header
  EXPECT_EQ(p->subtype, vi::kResvMemTMsi);
  EXPECT_EQ(p->start.load(), 0xfee00000u);
  EXPECT_EQ(p->end.load(), 0xfeefffffu);
  // The rest is zero, which also ends the list (type 0).
  for (std::size_t i = 24; i < props.size(); ++i) EXPECT_EQ(props[i], std::byte{0}) << i;
  // Two regions do not fit in 40 bytes: nothing is written.
  std::vector<std::byte> small(40, std::byte{0xCC});
  const ResvMemRegion two[] = {{}, {}};
  EXPECT_FALSE(encode_probe_properties(small, two).has_value());
  EXPECT_EQ(small, std::vector<std::byte>(40, std::byte{0xCC}));
}

TEST(RequestEncoders, Fault) {
  std::array<std::byte, 24> out{};
  ASSERT_TRUE(encode_fault(out, {vi::kFaultRMapping, vi::kFaultFWrite | 0x8000u, 8, 0xdead000}));
  const auto f = wire::read_struct<vi::Fault>(out);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->reason, vi::kFaultRMapping);
  EXPECT_EQ(f->flags.load(), vi::kFaultFWrite | vi::kFaultFAddress);  // undefined bit cleared
  EXPECT_EQ(f->endpoint.load(), 8u);
  EXPECT_EQ(f->address.load(), 0xdead000u);
  ASSERT_TRUE(encode_fault(out, {vi::kFaultRDomain, vi::kFaultFAddress, 3, std::nullopt}));
  EXPECT_EQ(wire::read_struct<vi::Fault>(out)->flags.load(), 0u);  // no address, no F_ADDRESS
  std::array<std::byte, 23> small{};
  EXPECT_FALSE(encode_fault(small, {}));
}

}  // namespace
}  // namespace ioasid::virtio
