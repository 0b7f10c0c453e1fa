// SPDX-License-Identifier: Apache-2.0
// iommu_device_fuzz.cc: libFuzzer target driving an IommuDevice (virtio 1.2/1.3 §5.13 and the
// project's PASID extension) with sequences of requests, raw or structured, plus translate, config
// writes, feature changes and resets, all from fuzz bytes, against a real Space shared with a
// second VM. After every step it checks:
//   - Space::check_invariants() holds;
//   - the used length is 0 or a full reply (>= 4 bytes, within the writable buffer);
//   - every PASID the device answered ALLOC_PASID with (and not freed since) is owned by the VM's
//     set, and no answer exceeded config.max_pasid or a request max_pasid;
//   - the other VM's PASIDs are untouched (still active, never bound);
//   - the device's live counters stay within its caps.
// At the end the device is destroyed: the VM's set then holds exactly the PASIDs the model holds
// (binds released, per-endpoint host PASIDs freed, FREE_PENDING ones gone with their last bind).
//
// Input: byte 0 = configuration (bit 0: per-endpoint scope, bit 1: undeclared endpoints allowed,
// bit 2: byte granularity, bit 3: leave features unnegotiated), then steps: one opcode byte and
// its operands (missing bytes read as 0). Byte 0 with its high nibble 0xF selects instead a
// differential run of the domain interval map against a brute-force model (insert / erase / find).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <span>
#include <vector>

#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "virtio/internal/interval_map.hpp"
#include "virtio/request_parser.hpp"

namespace {

using namespace ioasid;          // NOLINT(build/namespaces)
using namespace ioasid::virtio;  // NOLINT(build/namespaces)

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "iommu_device_fuzz: %s\n", what);
    std::abort();
  }
}

class Input {
 public:
  Input(const std::uint8_t* d, std::size_t n) : d_(d), n_(n) {}
  bool done() const { return pos_ >= n_; }
  std::uint8_t u8() { return pos_ < n_ ? d_[pos_++] : 0; }
  std::uint32_t u32() {
    return u8() | std::uint32_t{u8()} << 8 | std::uint32_t{u8()} << 16 | std::uint32_t{u8()} << 24;
  }
  std::uint64_t u64() { return u32() | std::uint64_t{u32()} << 32; }
  std::span<const std::byte> bytes(std::size_t n) {
    n = std::min(n, n_ - std::min(pos_, n_));
    std::span<const std::byte> s(reinterpret_cast<const std::byte*>(d_) + pos_, n);
    pos_ += n;
    return s;
  }

 private:
  const std::uint8_t* d_;
  std::size_t n_;
  std::size_t pos_ = 0;
};

// Differential check of the domain interval map against a brute-force list of mappings over a
// 64-address space: every insert / erase outcome, the count and every lookup must agree.
void interval_map_differential(Input& in) {
  using virtio::internal::IntervalMap;
  using virtio::internal::Mapping;
  IntervalMap map;
  std::vector<Mapping> model;
  while (!in.done()) {
    const std::uint8_t op = in.u8();
    const std::uint64_t a = in.u8() % 64;
    const std::uint64_t b = a + in.u8() % 16;
    const bool intersects_any = std::any_of(
        model.begin(), model.end(), [&](const Mapping& m) { return m.start <= b && a <= m.end; });
    check(map.intersects(a, b) == intersects_any, "intersects");
    if ((op & 1) == 0) {
      const auto r = map.insert({a, b, a * 3, op});
      check((r == IntervalMap::Insert::ok) == !intersects_any, "insert outcome");
      if (r == IntervalMap::Insert::ok) model.push_back({a, b, a * 3, op});
    } else {
      const bool split = std::any_of(model.begin(), model.end(), [&](const Mapping& m) {
        return m.start <= b && a <= m.end && (m.start < a || m.end > b);
      });
      std::size_t removed = 0;
      const auto r = map.erase(a, b, &removed);
      check((r == IntervalMap::Erase::split) == split, "erase outcome");
      if (!split) {
        const auto before = model.size();
        std::erase_if(model, [&](const Mapping& m) { return a <= m.start && m.end <= b; });
        check(before - model.size() == removed, "erase count");
      } else {
        check(removed == 0, "split removed something");
      }
    }
    check(map.size() == model.size(), "size");
    for (std::uint64_t x = 0; x < 80; ++x) {
      Mapping got;
      const Mapping* hit = map.find(x, &got);
      const auto it = std::find_if(model.begin(), model.end(),
                                   [&](const Mapping& m) { return m.start <= x && x <= m.end; });
      check((hit != nullptr) == (it != model.end()), "find presence");
      if (hit != nullptr) {
        check(got.start == it->start && got.end == it->end && got.phys == it->phys &&
                  got.flags == it->flags,
              "find value");
      }
    }
  }
}

constexpr std::uint32_t kMaxPasid = 0xF0;
constexpr std::uint32_t kQuota = 24;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::uint8_t mode = in.u8();
  if ((mode & 0xF0) == 0xF0) {
    interval_map_differential(in);
    return 0;
  }

  SpaceConfig sc;
  sc.width_bits = 8;
  auto host = Space::create(sc).value();
  const SetId vm = host->create_set(1, kQuota).value();
  const SetId other = host->create_set(2, 4).value();
  LocalBackend backend(*host, vm);
  std::vector<Id> theirs;
  for (int i = 0; i < 3; ++i) theirs.push_back(host->alloc(other, 1, 0xFF, nullptr).value());

  IommuDeviceConfig cfg;
  cfg.endpoints = {{1, {{vi::kResvMemTMsi, 0x10000, 0x1FFFF}}}, {2, {}}, {3, {}}};
  cfg.allow_undeclared_endpoints = (mode & 2) != 0;
  cfg.page_size_mask = (mode & 4) != 0 ? 1 : ~std::uint64_t{0xFFF};
  cfg.pasid_scope = (mode & 1) != 0 ? PasidScope::per_endpoint : PasidScope::global;
  cfg.max_pasid = kMaxPasid;
  cfg.max_domains = 4;
  cfg.max_endpoints = 6;
  cfg.max_mappings = 32;
  cfg.max_binds = 8;
  cfg.fault_queue_depth = 4;
  cfg.probe_size = 64;

  std::set<Id> model;  // PASIDs ALLOC_PASID handed out and FREE_PASID has not freed
  {
    IommuDevice dev(backend, cfg);
    if ((mode & 8) == 0) check(dev.set_driver_features(dev.device_features()), "features");

    std::vector<std::byte> wbuf(256);
    while (!in.done()) {
      const std::uint8_t op = in.u8();
      Request req;
      bool structured = true;
      switch (op % 14) {
        case 0: {  // a raw request: readable length, bytes, writable length
          structured = false;
          const std::size_t rn = in.u8() % 96;
          auto rd = in.bytes(rn);
          std::vector<std::byte> readable(rd.begin(), rd.end());
          const std::size_t wn = in.u8() % wbuf.size();
          const std::size_t used = dev.handle_request(readable, std::span(wbuf).first(wn));
          check(used == 0 || (used >= 4 && used <= wn), "raw used length");
          if (used != 0 && !readable.empty() &&
              std::to_integer<std::uint8_t>(readable[0]) == vi::to_u8(vi::ReqType::free_pasid) &&
              wbuf[used - 4] == std::byte{0} && readable.size() >= 12) {
            std::uint32_t p = 0;
            std::memcpy(&p, readable.data() + 8, 4);  // little-endian hosts only (fuzzing)
            model.erase(p);
          }
          if (used == 8 && !readable.empty() &&
              std::to_integer<std::uint8_t>(readable[0]) == vi::to_u8(vi::ReqType::alloc_pasid) &&
              wbuf[4] == std::byte{0}) {
            std::uint32_t p = 0;
            std::memcpy(&p, wbuf.data(), 4);
            model.insert(p);
          }
          break;
        }
        case 1:
          req = AttachRequest{in.u8() % 6u, in.u8() % 5u, in.u8() & 1u};
          break;
        case 2:
          req = DetachRequest{in.u8() % 6u, in.u8() % 5u};
          break;
        case 3: {
          const std::uint64_t page = (mode & 4) != 0 ? 1 : 0x1000;
          const std::uint64_t s = (in.u8() % 64) * page;
          const std::uint64_t n = (in.u8() % 4 + 1) * page;
          req = MapRequest{in.u8() % 6u, s, s + n - 1, in.u8() * page, in.u8() & 7u};
          break;
        }
        case 4: {
          const std::uint64_t page = (mode & 4) != 0 ? 1 : 0x1000;
          const std::uint64_t s = (in.u8() % 64) * page;
          const std::uint64_t n = (in.u8() % 8 + 1) * page;
          req = UnmapRequest{in.u8() % 6u, s, s + n - 1};
          break;
        }
        case 5:
          req = ProbeRequest{in.u8() % 5u};
          break;
        case 6:
        case 7:
          req = AllocPasidRequest{in.u8() & 1 ? in.u8() : 0u};
          break;
        case 8:
          req = FreePasidRequest{in.u8()};
          break;
        case 9:
          req = BindPasidRequest{in.u8() % 5u, in.u8(), 0};
          break;
        case 10:
          req = UnbindPasidRequest{in.u8() % 5u, in.u8(), 0};
          break;
        case 11: {
          structured = false;
          const std::uint8_t a = in.u8();
          auto t = dev.translate(a % 5, std::uint64_t{in.u8()} << 12,
                                 static_cast<Access>(1u << (a >> 6 == 3 ? 2 : a >> 6)));
          (void)t;
          (void)dev.pop_fault();
          break;
        }
        case 12: {
          structured = false;
          const std::byte v{static_cast<std::uint8_t>(in.u8() % 3)};
          (void)dev.write_config(in.u8() % 48, {&v, 1});
          if ((in.u8() & 3) == 0) {
            (void)dev.set_driver_features(in.u64());
          }
          break;
        }
        default:
          structured = false;
          if ((op & 0x30) == 0) {
            dev.reset();
            if ((op & 0x40) == 0) (void)dev.set_driver_features(dev.device_features());
          }
          break;
      }
      if (structured) {
        std::uint32_t probe_size = 0;
        std::byte ps[4];
        dev.read_config(offsetof(vi::Config, probe_size), ps);
        std::memcpy(&probe_size, ps, 4);
        const EncodedRequest e = encode_request(req);
        const std::size_t wn = writable_size(req, probe_size);
        check(wn <= wbuf.size(), "writable size");
        const std::size_t used = dev.handle_request(e.span(), std::span(wbuf).first(wn));
        check(used == 0 || used == wn, "structured used length");
        const bool ok = used != 0 && wbuf[used - 4] == std::byte{0};
        if (const auto* a = std::get_if<AllocPasidRequest>(&req); a != nullptr && ok) {
          std::uint32_t p = 0;
          std::memcpy(&p, wbuf.data(), 4);
          check(p >= 1 && p <= kMaxPasid, "ALLOC answer above config.max_pasid");
          check(a->max_pasid == 0 || p <= a->max_pasid, "ALLOC answer above request max_pasid");
          model.insert(p);
        }
        if (const auto* f = std::get_if<FreePasidRequest>(&req); f != nullptr && ok) {
          check(model.erase(f->pasid) == 1, "FREE_PASID OK for a PASID the guest did not hold");
        }
      }

      check(host->check_invariants().has_value(), "space invariants");
      for (Id p : model) check(host->query(vm, p).has_value(), "model PASID not owned by the set");
      for (Id p : theirs) {
        auto q = host->query(other, p);
        check(q && q->state == IdState::active && q->binds == 0, "other VM's PASID touched");
      }
      const Stats s = dev.stats();
      check(s.domains <= cfg.max_domains, "domain cap");
      check(s.mappings <= cfg.max_mappings, "mapping cap");
      check(s.binds <= cfg.max_binds, "bind cap");
      check(s.endpoints_attached <= s.domains * cfg.max_endpoints, "attached endpoints");
    }
  }
  const SetInfo si = host->set_info(vm).value();
  check(si.count == model.size(), "set holds PASIDs beyond the guest's after teardown");
  check(si.bound == 0, "binds left after teardown");
  check(host->check_invariants().has_value(), "space invariants at the end");
  return 0;
}
