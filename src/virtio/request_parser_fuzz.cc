// SPDX-License-Identifier: Apache-2.0
// request_parser_fuzz.cc: libFuzzer target for parse_request (virtio 1.2/1.3 §5.13.6 and the
// project's PASID extension, docs/virtio-iommu-pasid.md). Guest input is hostile: any bytes under
// any feature mask must parse without crashing, and
//   - a successful parse consumed exactly readable_size(type) bytes and reports that type;
//   - encode_request(parsed) reproduces the input, except the bytes the spec says the device
//     ignores (head.reserved, DETACH reserved[8], PROBE reserved[64]), and parses back to the same
//     request (the round trip);
//   - negotiating more features never turns a successful parse into a failure or changes it;
//   - a failure is one of the documented outcomes: used length 0 only for framing errors, and a
//     non-OK status otherwise; no_head only below 4 bytes;
//   - parse_pasid_request (the device's in-line parse of the hot pair) returns ALLOC_PASID /
//     FREE_PASID exactly when parse_request does, with the same field, and `other` otherwise.
// Input: bytes [0, 8) = negotiated feature mask (little endian; shorter inputs use 0), the rest =
// the device-readable part of one request.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "virtio/request_parser.hpp"

namespace {

using namespace ioasid::virtio;  // NOLINT(build/namespaces)

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "request_parser_fuzz: %s\n", what);
    std::abort();
  }
}

// Zeroes the bytes of a request the device ignores, so they compare equal to an encoding.
void mask_ignored(std::vector<std::byte>& b) {
  std::fill(b.begin() + 1, b.begin() + 4, std::byte{0});  // head.reserved
  const auto type = static_cast<vi::ReqType>(b[0]);
  if (type == vi::ReqType::detach) {
    std::fill(b.begin() + offsetof(vi::ReqDetach, reserved),
              b.begin() + offsetof(vi::ReqDetach, tail), std::byte{0});
  } else if (type == vi::ReqType::probe) {
    std::fill(b.begin() + offsetof(vi::ReqProbe, reserved), b.end(), std::byte{0});
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::uint64_t features = 0;
  const std::size_t fsize = size < 8 ? size : 8;
  std::memcpy(&features, data, fsize);  // host order is fine: any 64-bit value is a valid mask
  const std::span<const std::byte> readable(reinterpret_cast<const std::byte*>(data) + fsize,
                                            size - fsize);

  const ParseResult r = parse_request(readable, features);
  // The device's in-line parse of ALLOC_PASID / FREE_PASID agrees with parse_request both ways.
  const PasidParse fast = parse_pasid_request(readable, features);
  if (const auto* a = r ? std::get_if<AllocPasidRequest>(&*r) : nullptr) {
    check(fast.kind == PasidParse::Kind::alloc && fast.value == a->max_pasid, "fast ALLOC parse");
  } else if (const auto* f = r ? std::get_if<FreePasidRequest>(&*r) : nullptr) {
    check(fast.kind == PasidParse::Kind::free && fast.value == f->pasid, "fast FREE parse");
  } else {
    check(fast.kind == PasidParse::Kind::other, "fast parse took what parse_request does not");
  }
  if (!r) {
    const ParseError e = r.error();
    const bool framing = e == ParseError::no_head || e == ParseError::unknown_type ||
                         e == ParseError::probe_not_offered || e == ParseError::too_short;
    check(framing == !status_for(e).has_value(), "used-length-0 outcome for a non-framing error");
    check(!status_for(e) || *status_for(e) != vi::Status::ok, "a failure reported as S_OK");
    check((e == ParseError::no_head) == (readable.size() < sizeof(vi::ReqHead)), "no_head");
    check(std::strcmp(to_string(e), "unknown") != 0, "unnamed ParseError");
    return 0;
  }

  const std::uint8_t type = std::to_integer<std::uint8_t>(readable[0]);
  check(readable_size(type) == readable.size(), "accepted a request of the wrong size");
  check(vi::to_u8(request_type(*r)) == type, "decoded type differs from head.type");
  check(writable_size(*r, 64) >= sizeof(vi::ReqTail), "writable part without a tail");

  const EncodedRequest enc = encode_request(*r);
  std::vector<std::byte> in(readable.begin(), readable.end());
  mask_ignored(in);
  check(enc.size == in.size() && std::memcmp(enc.bytes.data(), in.data(), in.size()) == 0,
        "encoding differs from the input outside ignored fields");
  const ParseResult again = parse_request(enc.span(), features);
  check(again.has_value() && *again == *r, "re-encoded request parses differently");

  const ParseResult more =
      parse_request(readable, features | vi::kStandardFeatures | vi::kPasidFeatures);
  check(more.has_value() && *more == *r, "more features changed a successful parse");

  // The device-writable encoders on sizes derived from the input.
  std::vector<std::byte> props(readable.size());
  const ResvMemRegion region{type, features, ~features};
  const auto used = encode_probe_properties(props, std::span<const ResvMemRegion>(&region, 1));
  check(used.has_value() == (props.size() >= sizeof(vi::ProbeResvMem)), "probe property fit");
  std::vector<std::byte> fault(readable.size() % 32);
  check(encode_fault(fault, {type, static_cast<std::uint32_t>(features), 1, features}) ==
            (fault.size() >= sizeof(vi::Fault)),
        "fault fit");
  return 0;
}
