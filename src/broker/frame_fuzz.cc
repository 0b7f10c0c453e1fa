// SPDX-License-Identifier: Apache-2.0
// frame_fuzz.cc: libFuzzer target for the broker protocol codec (docs/protocol.md, version 1).
// The input is a byte stream as a peer would send it; it is cut into frames exactly as the daemon
// and the client library do (decode_header, wait for header.size payload bytes, decode), until a
// frame closes the connection or the bytes run out. Client input is hostile: nothing may crash,
// and
//   - decode_header answers need_more exactly when fewer than 24 bytes are left, and a header it
//     accepts has version 1, exactly one direction bit and size <= kMaxPayload;
//   - a request that decodes re-encodes (encode_request with its request_id) to exactly the bytes
//     of its frame, has the type's payload size and, if mutating, a nonzero request_id;
//   - a request that does not decode (from an intact frame) gets an error reply, EOPNOTSUPP for an
//     unknown type and EINVAL otherwise, and that reply encodes and decodes back;
//   - a reply that decodes re-encodes (encode_reply) to exactly the bytes of its frame;
//   - a request frame is never taken for a reply, nor the reverse.
// Seed corpus: src/broker/fuzz_corpus (frames of every kind, streams of several frames).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "broker/proto.hpp"

namespace {

using namespace ioasid::broker;  // NOLINT(build/namespaces)
using ioasid::Errc;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "broker_frame_fuzz: %s\n", what);
    std::abort();
  }
}

bool same(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

std::array<std::byte, kMaxFrame> g_out;

void check_request(const Header& h, std::span<const std::byte> frame,
                   std::span<const std::byte> payload) {
  const Decoded<Request> r = decode_request(h, payload);
  if (r) {
    check(request_type(*r) == static_cast<MsgType>(h.type), "decoded type differs from header");
    check(request_payload_size(h.type) == payload.size(), "accepted a request of the wrong size");
    check(!is_mutating(request_type(*r)) || h.request_id != 0, "mutating request without token");
    const EncodedRequest e = encode_request(h.request_id, *r);
    check(same(e.span(), frame), "request re-encodes to different bytes");
    return;
  }
  const DecodeError e = r.error();
  check(e.action == Action::error_reply, "an intact request frame closed the connection");
  check((e.reason == Reason::unknown_type) == (e.errc == Errc::unsupported) &&
            (e.errc == Errc::unsupported || e.errc == Errc::invalid_argument),
        "error reply status");
  check((e.reason == Reason::unknown_type) == !is_known_type(h.type), "unknown_type");
  const Reply er = error_reply(h.type, e.errc);
  const auto n = encode_reply(g_out, h.request_id, er);
  check(n.has_value() && *n == kHeaderSize + 8, "error reply does not encode");
  const auto back_h = decode_header(std::span<const std::byte>(g_out.data(), *n));
  check(back_h.has_value() && back_h->is_reply() && back_h->request_id == h.request_id,
        "error reply header");
  const auto back =
      decode_reply(*back_h, std::span<const std::byte>(g_out.data() + kHeaderSize, 8));
  check(back.has_value() && *back == er && back->error() == e.errc, "error reply round trip");
}

void check_reply(const Header& h, std::span<const std::byte> frame,
                 std::span<const std::byte> payload) {
  const Decoded<Reply> r = decode_reply(h, payload);
  if (!r) {
    check(r.error().action == Action::close, "a malformed reply did not close");
    return;
  }
  check(r->type == h.type && r->status <= 0, "decoded reply fields");
  check(reply_frame_size(*r) == frame.size(), "reply_frame_size");
  const auto n = encode_reply(g_out, h.request_id, *r);
  check(n.has_value() && same(std::span<const std::byte>(g_out.data(), *n), frame),
        "reply re-encodes to different bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data), size);
  for (;;) {
    const Decoded<Header> h = decode_header(rest);
    if (!h) {
      const bool short_input = rest.size() < kHeaderSize;
      check((h.error().action == Action::need_more) == short_input, "need_more iff short");
      check(h.error().action != Action::error_reply, "a header failure asked for a reply");
      return 0;
    }
    check(h->version() == 1 && h->size <= ioasid::wire::broker::kMaxPayload,
          "accepted a bad header");
    if (rest.size() < h->frame_size()) return 0;  // the payload is not all there yet
    const std::span<const std::byte> frame = rest.first(h->frame_size());
    const std::span<const std::byte> payload = frame.subspan(kHeaderSize);
    if (h->is_reply()) {
      check_reply(*h, frame, payload);
      const auto as_request = decode_request(*h, payload);
      check(!as_request && as_request.error().reason == Reason::not_a_request, "reply as request");
      // A client closes on any bad reply: the stream ends here if this one was.
      if (!decode_reply(*h, payload)) return 0;
    } else {
      check_request(*h, frame, payload);
      const auto as_reply = decode_reply(*h, payload);
      check(!as_reply && as_reply.error().reason == Reason::not_a_reply, "request as reply");
    }
    rest = rest.subspan(frame.size());
  }
}
