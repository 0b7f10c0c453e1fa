// SPDX-License-Identifier: Apache-2.0
// request_parser.cc: parse_request and the virtio-iommu encoders (virtio 1.2/1.3 §5.13.6, Linux
// UAPI v0.12; PASID extension per docs/virtio-iommu-pasid.md). The order of the checks and every
// choice the spec leaves open are listed at the top of request_parser.hpp.
//
// Invariants: no read outside `readable`; a successful parse consumed exactly readable_size(type)
// bytes; every field went through le*.load(); encode_request is the inverse of parse_request on
// everything parse_request accepts.
#include "virtio/request_parser.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <type_traits>

namespace ioasid::virtio {
namespace {

constexpr std::size_t kTail = sizeof(vi::ReqTail);

// The readable part of a request whose writable part is only the tail.
template <class S>
constexpr std::size_t readable_of() {
  return sizeof(S) - kTail;
}

constexpr bool has(std::uint64_t features, unsigned bit) {
  return (features & vi::feature_bit(bit)) != 0;
}

// Copies the readable bytes into a zeroed S (the writable part stays zero). The caller has
// checked readable.size() <= sizeof(S).
template <class S>
S load_struct(std::span<const std::byte> readable) {
  static_assert(wire::WireStruct<S>);
  S s{};
  std::memcpy(&s, readable.data(), std::min(readable.size(), sizeof(S)));
  return s;
}

template <class S>
void store_struct(EncodedRequest& out, const S& s, std::size_t readable) {
  static_assert(wire::WireStruct<S>);
  std::memcpy(out.bytes.data(), &s, readable);
  out.size = readable;
}

template <std::size_t N>
bool zero(const std::uint8_t (&reserved)[N]) {
  return wire::all_zero(reserved);
}

ParseResult parse_attach(std::span<const std::byte> b, std::uint64_t f) {
  const auto r = load_struct<vi::ReqAttach>(b);
  // §5.13.6.3.2: nonzero reserved and unknown flags MUST be rejected with S_INVAL.
  if (!zero(r.reserved)) return tl::unexpected(ParseError::reserved_nonzero);
  const std::uint32_t known = has(f, vi::kFBypassConfig) ? vi::kAttachFBypass : 0;
  const std::uint32_t flags = r.flags.load();
  if ((flags & ~known) != 0) return tl::unexpected(ParseError::unknown_flags);
  return AttachRequest{r.domain.load(), r.endpoint.load(), flags};
}

ParseResult parse_detach(std::span<const std::byte> b) {
  const auto r = load_struct<vi::ReqDetach>(b);
  // §5.13.6.4.2: the device MUST ignore reserved.
  return DetachRequest{r.domain.load(), r.endpoint.load()};
}

ParseResult parse_map(std::span<const std::byte> b, std::uint64_t f) {
  const auto r = load_struct<vi::ReqMap>(b);
  const std::uint32_t known =
      vi::kMapFRead | vi::kMapFWrite | (has(f, vi::kFMmio) ? vi::kMapFMmio : 0);
  const std::uint32_t flags = r.flags.load();
  // §5.13.6.5.2: an unrecognised flag bit MUST be rejected with S_INVAL; MMIO is recognised only
  // with F_MMIO (§5.13.6.5: "only available when ... negotiated").
  if ((flags & ~known) != 0) return tl::unexpected(ParseError::unknown_flags);
  MapRequest m{r.domain.load(), r.virt_start.load(), r.virt_end.load(), r.phys_start.load(), flags};
  // §5.13.6.5.1: virt_end must not be below virt_start (an inverted range is an invalid
  // parameter). start == end is a one-byte mapping, legal with byte granularity.
  if (m.virt_start > m.virt_end) return tl::unexpected(ParseError::inverted_range);
  const std::uint64_t last_offset = m.virt_end - m.virt_start;  // length - 1
  // The length (last_offset + 1) must be representable, and phys_end = phys_start + last_offset
  // must not wrap: out-of-range parameters.
  if (last_offset == std::numeric_limits<std::uint64_t>::max() ||
      m.phys_start > std::numeric_limits<std::uint64_t>::max() - last_offset) {
    return tl::unexpected(ParseError::range_overflow);
  }
  return m;
}

ParseResult parse_unmap(std::span<const std::byte> b) {
  const auto r = load_struct<vi::ReqUnmap>(b);
  // §5.13.6.6.2: the device MAY reject nonzero reserved with S_INVAL; we do, and do nothing.
  if (!zero(r.reserved)) return tl::unexpected(ParseError::reserved_nonzero);
  UnmapRequest u{r.domain.load(), r.virt_start.load(), r.virt_end.load()};
  // [0, 2^64-1] is a valid UNMAP ("unmap everything"); only an inverted range is invalid.
  if (u.virt_start > u.virt_end) return tl::unexpected(ParseError::inverted_range);
  return u;
}

ParseResult parse_probe(std::span<const std::byte> b) {
  const auto r = load_struct<vi::ReqProbe>(b);
  // §5.13.6.8.2: the device MUST ignore reserved.
  return ProbeRequest{r.endpoint.load()};
}

ParseResult parse_alloc_pasid(std::span<const std::byte> b, std::uint64_t f) {
  const auto r = load_struct<vi::ReqAllocPasidMax>(b);
  const std::uint32_t word = r.max_pasid.load();
  if (has(f, vi::kFPasidMaxReq)) return AllocPasidRequest{word};
  // Without F_PASID_MAX_REQ the word is ReqAllocPasid::reserved and must be zero.
  if (word != 0) return tl::unexpected(ParseError::reserved_nonzero);
  return AllocPasidRequest{0};
}

ParseResult parse_free_pasid(std::span<const std::byte> b) {
  const auto r = load_struct<vi::ReqFreePasid>(b);
  if (r.reserved.load() != 0) return tl::unexpected(ParseError::reserved_nonzero);
  return FreePasidRequest{r.pasid.load()};
}

template <class Req, class Out>
ParseResult parse_bind_like(std::span<const std::byte> b) {
  const auto r = load_struct<Req>(b);
  if (!zero(r.reserved)) return tl::unexpected(ParseError::reserved_nonzero);
  const std::uint32_t flags = r.flags.load();
  if ((flags & ~vi::kBindPasidFMask) != 0) return tl::unexpected(ParseError::unknown_flags);
  return Out{r.endpoint.load(), r.pasid.load(), flags};
}

// The feature bits a known, well-framed request of this type needs (besides PROBE, handled
// before the length check).
std::uint64_t required_features(vi::ReqType t) {
  switch (t) {
    case vi::ReqType::map:
    case vi::ReqType::unmap:
      return vi::feature_bit(vi::kFMapUnmap);
    case vi::ReqType::alloc_pasid:
    case vi::ReqType::free_pasid:
      return vi::feature_bit(vi::kFPasidAlloc);
    case vi::ReqType::bind_pasid:
    case vi::ReqType::unbind_pasid:
      return vi::feature_bit(vi::kFPasidAlloc) | vi::feature_bit(vi::kFPasidBind);
    case vi::ReqType::attach:
    case vi::ReqType::detach:
    case vi::ReqType::probe:
      break;
  }
  return 0;
}

template <class S>
void put_head(S& s, vi::ReqType t) {
  s.head.type = vi::to_u8(t);
}

}  // namespace

vi::ReqType request_type(const Request& r) noexcept {
  static constexpr vi::ReqType kTypes[] = {
      vi::ReqType::attach,     vi::ReqType::detach,     vi::ReqType::map,
      vi::ReqType::unmap,      vi::ReqType::probe,      vi::ReqType::alloc_pasid,
      vi::ReqType::free_pasid, vi::ReqType::bind_pasid, vi::ReqType::unbind_pasid};
  static_assert(std::size(kTypes) == std::variant_size_v<Request>);
  return kTypes[r.index()];
}

std::optional<vi::Status> status_for(ParseError e) noexcept {
  switch (e) {
    case ParseError::no_head:
    case ParseError::unknown_type:
    case ParseError::probe_not_offered:
    case ParseError::too_short:
      return std::nullopt;
    case ParseError::not_negotiated:
      return vi::Status::unsupp;
    case ParseError::too_long:
    case ParseError::reserved_nonzero:
    case ParseError::unknown_flags:
    case ParseError::inverted_range:
      return vi::Status::inval;
    case ParseError::range_overflow:
      return vi::Status::range;
  }
  return std::nullopt;
}

const char* to_string(ParseError e) noexcept {
  switch (e) {
    case ParseError::no_head:
      return "no_head";
    case ParseError::unknown_type:
      return "unknown_type";
    case ParseError::probe_not_offered:
      return "probe_not_offered";
    case ParseError::too_short:
      return "too_short";
    case ParseError::too_long:
      return "too_long";
    case ParseError::not_negotiated:
      return "not_negotiated";
    case ParseError::reserved_nonzero:
      return "reserved_nonzero";
    case ParseError::unknown_flags:
      return "unknown_flags";
    case ParseError::inverted_range:
      return "inverted_range";
    case ParseError::range_overflow:
      return "range_overflow";
  }
  return "unknown";
}

namespace {

// readable_size() as a plain size, 0 for an unknown type: parse_request's path. A std::optional
// return travels through memory and costs a store-forwarding stall on every request (perf: ~15% of
// an ALLOC_PASID + FREE_PASID pair through the device model).
std::size_t readable_size_or_zero(std::uint8_t type) noexcept {
  switch (static_cast<vi::ReqType>(type)) {
    case vi::ReqType::attach:
      return readable_of<vi::ReqAttach>();  // 20
    case vi::ReqType::detach:
      return readable_of<vi::ReqDetach>();  // 20
    case vi::ReqType::map:
      return readable_of<vi::ReqMap>();  // 36
    case vi::ReqType::unmap:
      return readable_of<vi::ReqUnmap>();  // 28
    case vi::ReqType::probe:
      return sizeof(vi::ReqProbe);  // 72
    case vi::ReqType::alloc_pasid:
      return offsetof(vi::ReqAllocPasid, pasid);  // 8: pasid is device-writable
    case vi::ReqType::free_pasid:
      return readable_of<vi::ReqFreePasid>();  // 12
    case vi::ReqType::bind_pasid:
      return readable_of<vi::ReqBindPasid>();  // 20
    case vi::ReqType::unbind_pasid:
      return readable_of<vi::ReqUnbindPasid>();  // 20
  }
  return 0;
}

}  // namespace

std::optional<std::size_t> readable_size(std::uint8_t type) noexcept {
  const std::size_t n = readable_size_or_zero(type);
  if (n == 0) return std::nullopt;
  return n;
}

std::size_t writable_size(const Request& r, std::uint32_t probe_size) noexcept {
  if (std::holds_alternative<ProbeRequest>(r)) return std::size_t{probe_size} + kTail;
  if (std::holds_alternative<AllocPasidRequest>(r)) {
    return sizeof(vi::ReqAllocPasid) - offsetof(vi::ReqAllocPasid, pasid);  // 8
  }
  return kTail;
}

ParseResult parse_request(std::span<const std::byte> readable,
                          std::uint64_t negotiated_features) noexcept {
  if (readable.size() < sizeof(vi::ReqHead)) return tl::unexpected(ParseError::no_head);
  const std::uint8_t raw_type = std::to_integer<std::uint8_t>(readable[0]);
  const std::size_t want = readable_size_or_zero(raw_type);
  if (want == 0) return tl::unexpected(ParseError::unknown_type);
  const auto type = static_cast<vi::ReqType>(raw_type);
  // §5.13.6.8.2: PROBE without F_PROBE: do not write the buffer, used length 0.
  if (type == vi::ReqType::probe && !has(negotiated_features, vi::kFProbe)) {
    return tl::unexpected(ParseError::probe_not_offered);
  }
  if (readable.size() < want) return tl::unexpected(ParseError::too_short);
  if (readable.size() > want) return tl::unexpected(ParseError::too_long);
  const std::uint64_t need = required_features(type);
  if ((negotiated_features & need) != need) return tl::unexpected(ParseError::not_negotiated);

  const std::uint64_t f = negotiated_features;
  switch (type) {
    case vi::ReqType::attach:
      return parse_attach(readable, f);
    case vi::ReqType::detach:
      return parse_detach(readable);
    case vi::ReqType::map:
      return parse_map(readable, f);
    case vi::ReqType::unmap:
      return parse_unmap(readable);
    case vi::ReqType::probe:
      return parse_probe(readable);
    case vi::ReqType::alloc_pasid:
      return parse_alloc_pasid(readable, f);
    case vi::ReqType::free_pasid:
      return parse_free_pasid(readable);
    case vi::ReqType::bind_pasid:
      return parse_bind_like<vi::ReqBindPasid, BindPasidRequest>(readable);
    case vi::ReqType::unbind_pasid:
      return parse_bind_like<vi::ReqUnbindPasid, UnbindPasidRequest>(readable);
  }
  return tl::unexpected(ParseError::unknown_type);  // unreachable: readable_size knew the type
}

bool features_consistent(std::uint64_t features) noexcept {
  const std::uint64_t dependents = vi::feature_bit(vi::kFPasidMaxReq) |
                                   vi::feature_bit(vi::kFPasidBind) |
                                   vi::feature_bit(vi::kFPasidPerEndpoint);
  return (features & dependents) == 0 || has(features, vi::kFPasidAlloc);
}

EncodedRequest encode_request(const Request& r) noexcept {
  EncodedRequest out;
  std::visit(
      [&out](const auto& q) {
        using T = std::decay_t<decltype(q)>;
        if constexpr (std::is_same_v<T, AttachRequest>) {
          vi::ReqAttach s{};
          put_head(s, vi::ReqType::attach);
          s.domain.store(q.domain);
          s.endpoint.store(q.endpoint);
          s.flags.store(q.flags);
          store_struct(out, s, readable_of<vi::ReqAttach>());
        } else if constexpr (std::is_same_v<T, DetachRequest>) {
          vi::ReqDetach s{};
          put_head(s, vi::ReqType::detach);
          s.domain.store(q.domain);
          s.endpoint.store(q.endpoint);
          store_struct(out, s, readable_of<vi::ReqDetach>());
        } else if constexpr (std::is_same_v<T, MapRequest>) {
          vi::ReqMap s{};
          put_head(s, vi::ReqType::map);
          s.domain.store(q.domain);
          s.virt_start.store(q.virt_start);
          s.virt_end.store(q.virt_end);
          s.phys_start.store(q.phys_start);
          s.flags.store(q.flags);
          store_struct(out, s, readable_of<vi::ReqMap>());
        } else if constexpr (std::is_same_v<T, UnmapRequest>) {
          vi::ReqUnmap s{};
          put_head(s, vi::ReqType::unmap);
          s.domain.store(q.domain);
          s.virt_start.store(q.virt_start);
          s.virt_end.store(q.virt_end);
          store_struct(out, s, readable_of<vi::ReqUnmap>());
        } else if constexpr (std::is_same_v<T, ProbeRequest>) {
          vi::ReqProbe s{};
          put_head(s, vi::ReqType::probe);
          s.endpoint.store(q.endpoint);
          store_struct(out, s, sizeof(vi::ReqProbe));
        } else if constexpr (std::is_same_v<T, AllocPasidRequest>) {
          vi::ReqAllocPasidMax s{};
          put_head(s, vi::ReqType::alloc_pasid);
          s.max_pasid.store(q.max_pasid);  // 0: the reserved word of ReqAllocPasid
          store_struct(out, s, offsetof(vi::ReqAllocPasidMax, pasid));
        } else if constexpr (std::is_same_v<T, FreePasidRequest>) {
          vi::ReqFreePasid s{};
          put_head(s, vi::ReqType::free_pasid);
          s.pasid.store(q.pasid);
          store_struct(out, s, readable_of<vi::ReqFreePasid>());
        } else if constexpr (std::is_same_v<T, BindPasidRequest>) {
          vi::ReqBindPasid s{};
          put_head(s, vi::ReqType::bind_pasid);
          s.endpoint.store(q.endpoint);
          s.pasid.store(q.pasid);
          s.flags.store(q.flags);
          store_struct(out, s, readable_of<vi::ReqBindPasid>());
        } else {
          static_assert(std::is_same_v<T, UnbindPasidRequest>);
          vi::ReqUnbindPasid s{};
          put_head(s, vi::ReqType::unbind_pasid);
          s.endpoint.store(q.endpoint);
          s.pasid.store(q.pasid);
          s.flags.store(q.flags);
          store_struct(out, s, readable_of<vi::ReqUnbindPasid>());
        }
      },
      r);
  return out;
}

std::optional<std::size_t> encode_probe_properties(
    std::span<std::byte> out, std::span<const ResvMemRegion> regions) noexcept {
  constexpr std::size_t kProp = sizeof(vi::ProbeResvMem);
  if (regions.size() > out.size() / kProp) return std::nullopt;
  std::size_t pos = 0;
  for (const ResvMemRegion& reg : regions) {
    vi::ProbeResvMem p{};
    p.head.type.store(vi::kProbeTResvMem);
    p.head.length.store(static_cast<std::uint16_t>(kProp - sizeof(vi::ProbeProperty)));
    p.subtype = reg.subtype;
    p.start.store(reg.start);
    p.end.store(reg.end);
    std::memcpy(out.data() + pos, &p, kProp);
    pos += kProp;
  }
  std::fill(out.begin() + static_cast<std::ptrdiff_t>(pos), out.end(), std::byte{0});
  return pos;
}

bool encode_fault(std::span<std::byte> out, const FaultEvent& f) noexcept {
  constexpr std::uint32_t kDefined =
      vi::kFaultFRead | vi::kFaultFWrite | vi::kFaultFExec | vi::kFaultFAddress;
  vi::Fault w{};
  w.reason = f.reason;
  std::uint32_t flags = f.flags & kDefined & ~vi::kFaultFAddress;
  if (f.address) {
    flags |= vi::kFaultFAddress;
    w.address.store(*f.address);
  }
  w.flags.store(flags);
  w.endpoint.store(f.endpoint);
  return wire::write_struct(out, w);
}

}  // namespace ioasid::virtio
