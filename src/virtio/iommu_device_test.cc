// SPDX-License-Identifier: Apache-2.0
// iommu_device_test.cc: conformance of the virtio-iommu device model core (IommuDevice) against
// virtio 1.2/1.3 §5.13 and the project's PASID extension (docs/virtio-iommu-pasid.md): feature
// negotiation, config space, every base request's device rules and the spec's UNMAP example
// sequences, caps, every malformed case routed through the device, PASID ALLOC/FREE/BIND/UNBIND
// against a real Space through LocalBackend (two VMs, two devices of one VM, quotas, max_pasid,
// per-endpoint scope), translate + faults, reset and rate-limited logging.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "virtio/request_parser.hpp"

namespace ioasid::virtio {
namespace {

constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint32_t kEp = 8;   // a declared endpoint with an MSI and a reserved region
constexpr std::uint32_t kEp2 = 9;  // a declared endpoint without regions
constexpr std::uint64_t kMsiStart = 0xFEE00000, kMsiEnd = 0xFEEFFFFF;
constexpr std::uint64_t kResvStart = 0x8000000, kResvEnd = 0x80FFFFF;
constexpr std::uint32_t kRW = vi::kMapFRead | vi::kMapFWrite;

std::uint64_t bit(unsigned b) { return vi::feature_bit(b); }

// A HostBackend over a real LocalBackend that can be told to fail (a daemon going away) or to
// answer out of range (a broken allocator): the cases LocalBackend itself never produces.
class FaultyBackend final : public HostBackend {
 public:
  explicit FaultyBackend(HostBackend& real) : real_(real) {}
  Errc inject{};      // returned by alloc/free/bind instead of calling the real backend
  Id bad_answer = 0;  // nonzero: alloc answers this after a real allocation of it
  Errc alloc_raw(Id min, Id max, Id* out) noexcept override {
    if (inject != Errc{}) return inject;
    if (bad_answer != 0) return real_.alloc_raw(bad_answer, bad_answer, out);
    return real_.alloc_raw(min, max, out);
  }
  Errc free_raw(Id id) noexcept override { return inject != Errc{} ? inject : real_.free_raw(id); }
  Result<void> get(Id id) noexcept override { return real_.get(id); }
  Result<bool> put(Id id) noexcept override { return real_.put(id); }
  Result<void> bind(Id id, Id spid) noexcept override {
    if (inject != Errc{}) return fail(inject);
    return real_.bind(id, spid);
  }
  Result<void> unbind(Id id) noexcept override { return real_.unbind(id); }
  Result<IdInfo> query(Id id) noexcept override { return real_.query(id); }
  Result<Id> find_by_spid(Id spid) noexcept override { return real_.find_by_spid(spid); }
  Result<SetInfo> set_info() noexcept override { return real_.set_info(); }

 private:
  HostBackend& real_;
};

struct Reply {
  std::size_t used = 0;
  std::vector<std::byte> buf;
  std::uint8_t status() const {
    return used < 4 ? 0xFF : std::to_integer<std::uint8_t>(buf[used - 4]);
  }
  std::uint32_t pasid() const {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint32_t>(buf[i]);
    return v;
  }
};

std::uint8_t S(vi::Status s) { return vi::to_u8(s); }

class VirtioIommuDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = Space::create({}).value();
    vm_ = host_->create_set(/*owner_token=*/1, /*quota=*/8).value();
    other_ = host_->create_set(/*owner_token=*/2, /*quota=*/8).value();
    backend_ = std::make_unique<LocalBackend>(*host_, vm_);
    other_backend_ = std::make_unique<LocalBackend>(*host_, other_);
    dev_ = make(config());
  }
  void TearDown() override { ASSERT_TRUE(host_->check_invariants()); }

  static IommuDeviceConfig config() {
    IommuDeviceConfig c;
    c.endpoints = {
        {kEp,
         {{vi::kResvMemTMsi, kMsiStart, kMsiEnd}, {vi::kResvMemTReserved, kResvStart, kResvEnd}}},
        {kEp2, {}}};
    return c;
  }

  // A device with every offered feature negotiated (unless negotiate is false).
  std::unique_ptr<IommuDevice> make(IommuDeviceConfig c, HostBackend* b = nullptr,
                                    bool negotiate = true) {
    auto d = std::make_unique<IommuDevice>(b ? *b : *backend_, std::move(c));
    if (negotiate) {
      EXPECT_TRUE(d->set_driver_features(d->device_features()));
    }
    return d;
  }

  std::uint32_t probe_size(IommuDevice& d) {
    std::byte b[4];
    d.read_config(offsetof(vi::Config, probe_size), b);
    return std::to_integer<std::uint32_t>(b[0]) | std::to_integer<std::uint32_t>(b[1]) << 8 |
           std::to_integer<std::uint32_t>(b[2]) << 16 | std::to_integer<std::uint32_t>(b[3]) << 24;
  }

  Reply raw(IommuDevice& d, std::span<const std::byte> readable, std::size_t writable) {
    Reply r;
    r.buf.assign(writable, std::byte{0xAA});
    r.used = d.handle_request(readable, r.buf);
    return r;
  }
  Reply send(IommuDevice& d, const Request& req) {
    return raw(d, encode_request(req).span(), writable_size(req, probe_size(d)));
  }
  Reply send(const Request& req) { return send(*dev_, req); }
  std::uint8_t st(IommuDevice& d, const Request& req) { return send(d, req).status(); }
  std::uint8_t st(const Request& req) { return send(*dev_, req).status(); }

  Id alloc(IommuDevice& d, std::uint32_t max = 0) {
    Reply r = send(d, AllocPasidRequest{max});
    EXPECT_EQ(r.used, 8u);
    EXPECT_EQ(r.status(), S(vi::Status::ok));
    return r.pasid();
  }

  std::uint8_t attach(std::uint32_t domain, std::uint32_t ep, std::uint32_t flags = 0) {
    return st(AttachRequest{domain, ep, flags});
  }
  std::uint8_t map(std::uint32_t domain, std::uint64_t s, std::uint64_t e, std::uint64_t phys = 0,
                   std::uint32_t flags = kRW) {
    return st(MapRequest{domain, s, e, phys, flags});
  }
  std::uint8_t unmap(std::uint32_t domain, std::uint64_t s, std::uint64_t e) {
    return st(UnmapRequest{domain, s, e});
  }

  std::unique_ptr<Space> host_;
  SetId vm_, other_;
  std::unique_ptr<LocalBackend> backend_, other_backend_;
  std::unique_ptr<IommuDevice> dev_;
};

// A device with byte granularity, for the spec's UNMAP examples (addresses 0-14).
class VirtioUnmapExampleTest : public VirtioIommuDeviceTest {
 protected:
  void SetUp() override {
    VirtioIommuDeviceTest::SetUp();
    IommuDeviceConfig c = config();
    c.page_size_mask = 1;
    dev_ = make(c);
    ASSERT_EQ(attach(1, kEp2), S(vi::Status::ok));
  }
  bool mapped(std::uint64_t a) { return dev_->translate(kEp2, a, Access::read).has_value(); }
};

// ---- features -------------------------------------------------------------------------------

TEST_F(VirtioIommuDeviceTest, OffersStandardAndPasidFeatures) {
  const std::uint64_t f = dev_->device_features();
  EXPECT_EQ(f, bit(vi::kFInputRange) | bit(vi::kFDomainRange) | bit(vi::kFMapUnmap) |
                   bit(vi::kFProbe) | bit(vi::kFMmio) | bit(vi::kFBypassConfig) |
                   bit(vi::kFPasidAlloc) | bit(vi::kFPasidMaxReq) | bit(vi::kFPasidBind));
  EXPECT_EQ(dev_->negotiated_features(), f);
  EXPECT_EQ(dev_->pasid_scope(), PasidScope::global);
}

TEST_F(VirtioIommuDeviceTest, AdjustsOfferedFeatures) {
  IommuDeviceConfig c = config();
  c.features |= bit(vi::kFBypass) | bit(vi::kFPasidPerEndpoint) | bit(40);
  auto d = make(c, nullptr, false);
  // F_BYPASS with F_BYPASS_CONFIG, bit 59 in global scope and undefined bits are not offered.
  EXPECT_EQ(d->device_features(), config().features);
  c.pasid_scope = PasidScope::per_endpoint;
  EXPECT_EQ(make(c, nullptr, false)->device_features(),
            config().features | bit(vi::kFPasidPerEndpoint));
  c.max_pasid = 0;  // no PASID extension at all
  EXPECT_EQ(make(c, nullptr, false)->device_features() & vi::kPasidFeatures, 0u);
}

TEST_F(VirtioIommuDeviceTest, RefusesFeaturesNotOfferedOrInconsistent) {
  auto d = make(config(), nullptr, false);
  EXPECT_EQ(d->negotiated_features(), 0u);
  EXPECT_FALSE(d->set_driver_features(bit(vi::kFBypass)));       // not offered
  EXPECT_FALSE(d->set_driver_features(bit(vi::kFPasidMaxReq)));  // 57 without 56
  EXPECT_FALSE(d->set_driver_features(bit(vi::kFPasidBind)));    // 58 without 56
  EXPECT_EQ(d->negotiated_features(), 0u);
  // Transport bits (VERSION_1 = 32, ACCESS_PLATFORM = 33) are not the device's business.
  EXPECT_TRUE(d->set_driver_features(bit(vi::kFMapUnmap) | bit(32) | bit(33)));
  EXPECT_EQ(d->negotiated_features(), bit(vi::kFMapUnmap));

  IommuDeviceConfig c = config();
  c.pasid_scope = PasidScope::per_endpoint;
  auto p = make(c, nullptr, false);
  EXPECT_FALSE(p->set_driver_features(bit(vi::kFPasidAlloc) | bit(vi::kFPasidPerEndpoint)));
  EXPECT_TRUE(p->set_driver_features(bit(vi::kFPasidAlloc) | bit(vi::kFPasidBind) |
                                     bit(vi::kFPasidPerEndpoint)));
  EXPECT_EQ(p->pasid_scope(), PasidScope::per_endpoint);
}

TEST_F(VirtioIommuDeviceTest, FeatureNotNegotiatedIsNotUsable) {
  auto d = make(config(), nullptr, false);
  ASSERT_TRUE(d->set_driver_features(bit(vi::kFDomainRange)));
  EXPECT_EQ(st(*d, AttachRequest{1, kEp, 0}), S(vi::Status::ok));
  EXPECT_EQ(st(*d, MapRequest{1, 0, 0xFFF, 0, kRW}), S(vi::Status::unsupp));
  EXPECT_EQ(st(*d, UnmapRequest{1, 0, 0xFFF}), S(vi::Status::unsupp));
  EXPECT_EQ(send(*d, AllocPasidRequest{}).status(), S(vi::Status::unsupp));
  EXPECT_EQ(send(*d, AllocPasidRequest{}).pasid(), vi::kPasidInvalid);
  EXPECT_EQ(st(*d, FreePasidRequest{1}), S(vi::Status::unsupp));
  EXPECT_EQ(st(*d, BindPasidRequest{kEp, 1, 0}), S(vi::Status::unsupp));
  // ATTACH_F_BYPASS needs F_BYPASS_CONFIG negotiated; MAP_F_MMIO needs F_MMIO.
  EXPECT_EQ(st(*d, AttachRequest{2, kEp2, vi::kAttachFBypass}), S(vi::Status::inval));
  // PROBE not negotiated: used length 0.
  EXPECT_EQ(send(*d, ProbeRequest{kEp}).used, 0u);
  EXPECT_EQ(host_->set_info(vm_).value().count, 0u);
}

// ---- config space ---------------------------------------------------------------------------

TEST_F(VirtioIommuDeviceTest, ConfigSpaceLayout) {
  IommuDeviceConfig c = config();
  c.input_range = {0x1000, 0xFFFF'FFFF'FFFF};
  c.domain_range = {1, 100};
  c.probe_size = 256;
  c.max_pasid = 0x3FF;
  c.bypass = 1;
  auto d = make(c);
  std::byte b[64];
  d->read_config(0, b);
  vi::ConfigPasid cfg{};
  std::memcpy(&cfg, b, sizeof(cfg));
  EXPECT_EQ(cfg.base.page_size_mask.load(), ~std::uint64_t{0xFFF});
  EXPECT_EQ(cfg.base.input_range.start.load(), 0x1000u);
  EXPECT_EQ(cfg.base.input_range.end.load(), 0xFFFF'FFFF'FFFFu);
  EXPECT_EQ(cfg.base.domain_range.start.load(), 1u);
  EXPECT_EQ(cfg.base.domain_range.end.load(), 100u);
  EXPECT_EQ(cfg.base.probe_size.load(), 256u);
  EXPECT_EQ(cfg.base.bypass, 1);
  EXPECT_EQ(cfg.max_pasid.load(), 0x3FFu);
  EXPECT_EQ(IommuDevice::kConfigSize, 48u);
  for (std::size_t i = sizeof(cfg); i < sizeof(b); ++i) EXPECT_EQ(b[i], std::byte{0}) << i;
  // Partial and out-of-range reads.
  std::byte one[2];
  d->read_config(offsetof(vi::ConfigPasid, max_pasid), one);
  EXPECT_EQ(one[0], std::byte{0xFF});
  EXPECT_EQ(one[1], std::byte{0x03});
  std::byte far[4] = {std::byte{1}, std::byte{1}, std::byte{1}, std::byte{1}};
  d->read_config(0xFFFFFFFE, far);
  for (std::byte x : far) EXPECT_EQ(x, std::byte{0});
}

TEST_F(VirtioIommuDeviceTest, ProbeSizeGrowsToFitRegions) {
  IommuDeviceConfig c = config();
  c.probe_size = 8;  // too small for two RESV_MEM properties (48 bytes)
  auto d = make(c);
  EXPECT_EQ(probe_size(*d), 48u);
}

TEST_F(VirtioIommuDeviceTest, OnlyBypassIsWritable) {
  const std::byte one{1}, two{2};
  auto d = make(config(), nullptr, false);
  EXPECT_FALSE(d->write_config(offsetof(vi::Config, bypass), {&one, 1}));  // not negotiated
  ASSERT_TRUE(d->set_driver_features(bit(vi::kFBypassConfig)));
  EXPECT_TRUE(d->write_config(offsetof(vi::Config, bypass), {&one, 1}));
  std::byte b{};
  d->read_config(offsetof(vi::Config, bypass), {&b, 1});
  EXPECT_EQ(b, std::byte{1});
  EXPECT_FALSE(d->write_config(offsetof(vi::Config, bypass), {&two, 1}));  // only 0 or 1
  EXPECT_FALSE(d->write_config(0, {&one, 1}));                             // page_size_mask
  EXPECT_FALSE(d->write_config(offsetof(vi::ConfigPasid, max_pasid), {&one, 1}));
  const std::byte four[4] = {};
  EXPECT_FALSE(d->write_config(offsetof(vi::Config, bypass), four));
  d->read_config(offsetof(vi::Config, bypass), {&b, 1});
  EXPECT_EQ(b, std::byte{1});
  EXPECT_EQ(d->stats().config_writes_refused, 5u);
}

// ---- ATTACH / DETACH ------------------------------------------------------------------------

TEST_F(VirtioIommuDeviceTest, AttachAndDetach) {
  EXPECT_EQ(attach(1, kEp), S(vi::Status::ok));
  EXPECT_EQ(attach(1, kEp2), S(vi::Status::ok));  // two endpoints, one domain
  EXPECT_EQ(attach(1, kEp), S(vi::Status::ok));   // already there: no change
  EXPECT_EQ(dev_->stats().domains, 1u);
  EXPECT_EQ(dev_->stats().endpoints_attached, 2u);
  EXPECT_EQ(attach(1, 77), S(vi::Status::noent));  // unknown endpoint
  EXPECT_EQ(st(DetachRequest{1, 77}), S(vi::Status::noent));
  EXPECT_EQ(st(DetachRequest{2, kEp}), S(vi::Status::inval));  // not attached to domain 2
  EXPECT_EQ(st(DetachRequest{1, kEp}), S(vi::Status::ok));
  EXPECT_EQ(st(DetachRequest{1, kEp}), S(vi::Status::inval));  // no longer attached
  EXPECT_EQ(dev_->stats().domains, 1u);
  EXPECT_EQ(st(DetachRequest{1, kEp2}), S(vi::Status::ok));
  EXPECT_EQ(dev_->stats().domains, 0u);  // the last endpoint left: the domain is gone
  EXPECT_EQ(map(1, 0, 0xFFF), S(vi::Status::noent));
}

TEST_F(VirtioIommuDeviceTest, AttachMovesEndpointAndFreesTheOldDomain) {
  ASSERT_EQ(attach(1, kEp2), S(vi::Status::ok));
  ASSERT_EQ(map(1, 0x1000, 0x1FFF, 0x5000), S(vi::Status::ok));
  EXPECT_EQ(attach(2, kEp2), S(vi::Status::ok));  // implies DETACH from 1
  EXPECT_EQ(dev_->stats().domains, 1u);
  EXPECT_EQ(dev_->stats().mappings, 0u);
  EXPECT_EQ(map(1, 0x1000, 0x1FFF), S(vi::Status::noent));
  EXPECT_EQ(st(DetachRequest{1, kEp2}), S(vi::Status::inval));
  // Domain 1 reborn: empty.
  EXPECT_EQ(attach(1, kEp2), S(vi::Status::ok));
  EXPECT_FALSE(dev_->translate(kEp2, 0x1000, Access::read));
}

TEST_F(VirtioIommuDeviceTest, AttachChecksDomainRangeAndBypassFlag) {
  IommuDeviceConfig c = config();
  c.domain_range = {10, 20};
  dev_ = make(c);
  EXPECT_EQ(attach(9, kEp), S(vi::Status::range));
  EXPECT_EQ(attach(21, kEp), S(vi::Status::range));
  EXPECT_EQ(attach(10, kEp, vi::kAttachFBypass), S(vi::Status::ok));
  EXPECT_EQ(attach(10, kEp2), S(vi::Status::inval));  // bypass domain, flag missing
  EXPECT_EQ(attach(11, kEp2), S(vi::Status::ok));
  EXPECT_EQ(attach(11, kEp, vi::kAttachFBypass), S(vi::Status::inval));
  EXPECT_EQ(map(10, 0, 0xFFF), S(vi::Status::inval));  // MAP / UNMAP on a bypass domain
  EXPECT_EQ(unmap(10, 0, 0xFFF), S(vi::Status::inval));
}

TEST_F(VirtioIommuDeviceTest, UndeclaredEndpointsAreCapped) {
  IommuDeviceConfig c = config();
  c.allow_undeclared_endpoints = true;
  c.max_endpoints = 4;  // kEp, kEp2 and two more
  dev_ = make(c);
  EXPECT_EQ(attach(1, 100), S(vi::Status::ok));
  EXPECT_EQ(attach(1, 101), S(vi::Status::ok));
  EXPECT_EQ(attach(1, 102), S(vi::Status::nomem));
  EXPECT_EQ(dev_->stats().cap_refusals, 1u);
  EXPECT_EQ(st(DetachRequest{1, 101}), S(vi::Status::ok));  // frees the record
  EXPECT_EQ(attach(1, 102), S(vi::Status::ok));
  EXPECT_EQ(st(DetachRequest{1, 555}), S(vi::Status::inval));  // exists, not attached
  Reply p = send(ProbeRequest{555});                           // exists, no regions
  EXPECT_EQ(p.status(), S(vi::Status::ok));
  EXPECT_EQ(p.buf[0], std::byte{0});
}

TEST_F(VirtioIommuDeviceTest, DomainsAreCapped) {
  IommuDeviceConfig c = config();
  c.max_domains = 1;
  dev_ = make(c);
  EXPECT_EQ(attach(1, kEp), S(vi::Status::ok));
  EXPECT_EQ(attach(2, kEp2), S(vi::Status::nomem));
  EXPECT_EQ(dev_->stats().domains, 1u);
  // Moving the only endpoint frees domain 1 at the same time: allowed.
  EXPECT_EQ(attach(2, kEp), S(vi::Status::ok));
  EXPECT_EQ(dev_->stats().domains, 1u);
}

// ---- MAP / UNMAP ----------------------------------------------------------------------------

TEST_F(VirtioIommuDeviceTest, MapChecksAlignmentRangeAndOverlap) {
  IommuDeviceConfig c = config();
  c.input_range = {0x1000, 0xFFFFFFFF};
  dev_ = make(c);
  ASSERT_EQ(attach(1, kEp2), S(vi::Status::ok));
  EXPECT_EQ(map(1, 0x1001, 0x1FFF), S(vi::Status::range));           // virt_start
  EXPECT_EQ(map(1, 0x1000, 0x1FFE), S(vi::Status::range));           // virt_end + 1
  EXPECT_EQ(map(1, 0x1000, 0x1FFF, 0x10), S(vi::Status::range));     // phys_start
  EXPECT_EQ(map(1, 0x0, 0xFFF), S(vi::Status::range));               // below input_range
  EXPECT_EQ(map(1, 0xFFFFF000, 0x100000FFF), S(vi::Status::range));  // above input_range
  EXPECT_EQ(map(2, 0x1000, 0x1FFF), S(vi::Status::noent));           // no such domain
  EXPECT_EQ(map(1, 0x2000, 0x3FFF, 0x10000), S(vi::Status::ok));
  EXPECT_EQ(map(1, 0x3000, 0x4FFF), S(vi::Status::inval));  // overlaps the end
  EXPECT_EQ(map(1, 0x1000, 0x2FFF), S(vi::Status::inval));  // overlaps the start
  EXPECT_EQ(map(1, 0x1000, 0x8FFF), S(vi::Status::inval));  // covers it
  EXPECT_EQ(map(1, 0x2000, 0x2FFF), S(vi::Status::inval));  // inside it
  EXPECT_EQ(map(1, 0x1000, 0x1FFF), S(vi::Status::ok));     // adjacent below
  EXPECT_EQ(map(1, 0x4000, 0x4FFF), S(vi::Status::ok));     // adjacent above
  EXPECT_EQ(dev_->stats().mappings, 3u);
  EXPECT_EQ(dev_->stats().maps, 3u);
  EXPECT_EQ(dev_->translate(kEp2, 0x3123, Access::write).value().phys, 0x11123u);
}

TEST_F(VirtioIommuDeviceTest, MapOverReservedRegionIsRefused) {
  ASSERT_EQ(attach(1, kEp), S(vi::Status::ok));
  EXPECT_EQ(map(1, kResvStart, kResvStart + 0xFFF), S(vi::Status::inval));
  EXPECT_EQ(map(1, kMsiEnd - 0xFFF, kMsiEnd + 0x1000), S(vi::Status::inval));
  EXPECT_EQ(map(1, kResvStart - 0x1000, kResvStart - 1), S(vi::Status::ok));
}

TEST_F(VirtioIommuDeviceTest, MappingsAreCapped) {
  IommuDeviceConfig c = config();
  c.max_mappings = 2;
  dev_ = make(c);
  ASSERT_EQ(attach(1, kEp2), S(vi::Status::ok));
  EXPECT_EQ(map(1, 0x1000, 0x1FFF), S(vi::Status::ok));
  EXPECT_EQ(map(1, 0x2000, 0x2FFF), S(vi::Status::ok));
  EXPECT_EQ(map(1, 0x3000, 0x3FFF), S(vi::Status::nomem));
  EXPECT_EQ(unmap(1, 0x1000, 0x1FFF), S(vi::Status::ok));
  EXPECT_EQ(map(1, 0x3000, 0x3FFF), S(vi::Status::ok));
}

TEST_F(VirtioIommuDeviceTest, UnmapUnknownDomainAndUnmapEverything) {
  EXPECT_EQ(unmap(1, 0, 0xFFF), S(vi::Status::noent));
  ASSERT_EQ(attach(1, kEp2), S(vi::Status::ok));
  ASSERT_EQ(map(1, 0x1000, 0x1FFF), S(vi::Status::ok));
  ASSERT_EQ(map(1, 0xFFFF'FFFF'FFFF'F000, kU64Max), S(vi::Status::ok));
  EXPECT_EQ(unmap(1, 0, kU64Max), S(vi::Status::ok));
  EXPECT_EQ(dev_->stats().mappings, 0u);
}

// virtio 1.2 §5.13.6.7, the UNMAP examples, each from a blank address space.
TEST_F(VirtioUnmapExampleTest, Example1UnmapNothingSucceeds) {
  EXPECT_EQ(unmap(1, 0, 4), S(vi::Status::ok));
}
TEST_F(VirtioUnmapExampleTest, Example2UnmapWholeMapping) {
  ASSERT_EQ(map(1, 0, 9), S(vi::Status::ok));
  EXPECT_EQ(unmap(1, 0, 9), S(vi::Status::ok));
  EXPECT_FALSE(mapped(0));
}
TEST_F(VirtioUnmapExampleTest, Example3UnmapTwoAdjacentMappings) {
  ASSERT_EQ(map(1, 0, 4), S(vi::Status::ok));
  ASSERT_EQ(map(1, 5, 9), S(vi::Status::ok));
  EXPECT_EQ(unmap(1, 0, 9), S(vi::Status::ok));
  EXPECT_FALSE(mapped(0));
  EXPECT_FALSE(mapped(5));
}
TEST_F(VirtioUnmapExampleTest, Example4SplitFailsAndRemovesNothing) {
  ASSERT_EQ(map(1, 0, 9), S(vi::Status::ok));
  EXPECT_EQ(unmap(1, 0, 4), S(vi::Status::range));
  EXPECT_TRUE(mapped(0));
  EXPECT_TRUE(mapped(9));
  EXPECT_EQ(unmap(1, 5, 9), S(vi::Status::range));  // the other edge
  EXPECT_EQ(unmap(1, 3, 12), S(vi::Status::range));
  EXPECT_TRUE(mapped(3));
}
TEST_F(VirtioUnmapExampleTest, Example5UnmapFirstOfTwo) {
  ASSERT_EQ(map(1, 0, 4), S(vi::Status::ok));
  ASSERT_EQ(map(1, 5, 9), S(vi::Status::ok));
  EXPECT_EQ(unmap(1, 0, 4), S(vi::Status::ok));
  EXPECT_FALSE(mapped(0));
  EXPECT_TRUE(mapped(5));
}
TEST_F(VirtioUnmapExampleTest, Example6RangeSpillsOverAHole) {
  ASSERT_EQ(map(1, 0, 4), S(vi::Status::ok));
  EXPECT_EQ(unmap(1, 0, 9), S(vi::Status::ok));
  EXPECT_FALSE(mapped(0));
}
TEST_F(VirtioUnmapExampleTest, Example7TwoMappingsAroundAHole) {
  ASSERT_EQ(map(1, 0, 4), S(vi::Status::ok));
  ASSERT_EQ(map(1, 10, 14), S(vi::Status::ok));
  EXPECT_EQ(unmap(1, 0, 14), S(vi::Status::ok));
  EXPECT_FALSE(mapped(0));
  EXPECT_FALSE(mapped(10));
  EXPECT_EQ(dev_->stats().mappings, 0u);
}
TEST_F(VirtioUnmapExampleTest, SplitAtEitherEdgeKeepsEveryMapping) {
  ASSERT_EQ(map(1, 0, 4), S(vi::Status::ok));
  ASSERT_EQ(map(1, 5, 9), S(vi::Status::ok));
  ASSERT_EQ(map(1, 10, 14), S(vi::Status::ok));
  EXPECT_EQ(unmap(1, 0, 12), S(vi::Status::range));  // the last one would be split
  EXPECT_EQ(unmap(1, 2, 14), S(vi::Status::range));  // the first one would be split
  EXPECT_EQ(dev_->stats().mappings, 3u);
  EXPECT_EQ(unmap(1, 5, 9), S(vi::Status::ok));
  EXPECT_EQ(dev_->stats().mappings, 2u);
}
TEST_F(VirtioUnmapExampleTest, OneByteMappingWithByteGranularity) {
  EXPECT_EQ(map(1, 7, 7, 100), S(vi::Status::ok));
  EXPECT_EQ(dev_->translate(kEp2, 7, Access::read).value().phys, 100u);
}

// ---- PROBE ----------------------------------------------------------------------------------

TEST_F(VirtioIommuDeviceTest, ProbeReportsReservedRegions) {
  const std::uint32_t ps = probe_size(*dev_);
  Reply r = send(ProbeRequest{kEp});
  ASSERT_EQ(r.used, ps + 4u);
  EXPECT_EQ(r.status(), S(vi::Status::ok));
  vi::ProbeResvMem p[2];
  std::memcpy(p, r.buf.data(), sizeof(p));
  EXPECT_EQ(p[0].head.type.load(), vi::kProbeTResvMem);
  EXPECT_EQ(p[0].head.length.load(), 20u);
  EXPECT_EQ(p[0].subtype, vi::kResvMemTMsi);
  EXPECT_EQ(p[0].start.load(), kMsiStart);
  EXPECT_EQ(p[0].end.load(), kMsiEnd);
  EXPECT_EQ(p[1].subtype, vi::kResvMemTReserved);
  EXPECT_EQ(p[1].start.load(), kResvStart);
  for (std::size_t i = sizeof(p); i < ps; ++i) ASSERT_EQ(r.buf[i], std::byte{0}) << i;
  EXPECT_EQ(r.buf[ps + 1], std::byte{0});  // tail.reserved
  EXPECT_EQ(send(ProbeRequest{77}).status(), S(vi::Status::noent));
  EXPECT_EQ(send(ProbeRequest{77}).used, ps + 4u);
}

TEST_F(VirtioIommuDeviceTest, ProbeWithShortPropertiesIsInvalWithoutProperties) {
  const auto req = encode_request(ProbeRequest{kEp});
  Reply r = raw(*dev_, req.span(), 40);  // room for a tail, not for probe_size properties
  EXPECT_EQ(r.used, 40u);
  EXPECT_EQ(r.status(), S(vi::Status::inval));
  for (std::size_t i = 0; i < 36; ++i) EXPECT_EQ(r.buf[i], std::byte{0});
  EXPECT_EQ(raw(*dev_, req.span(), 3).used, 0u);  // not even a tail
}

// ---- malformed requests through the device --------------------------------------------------

TEST_F(VirtioIommuDeviceTest, MalformedRequestsFollowTheParserOutcomes) {
  const auto attach_bytes = encode_request(AttachRequest{1, kEp, 0});
  auto bytes = [&](std::size_t n) {
    std::vector<std::byte> v(attach_bytes.bytes.begin(), attach_bytes.bytes.begin() + n);
    return v;
  };
  // No head, unknown type, too short: used length 0, buffer untouched.
  Reply r = raw(*dev_, bytes(3), 4);
  EXPECT_EQ(r.used, 0u);
  EXPECT_EQ(r.buf[0], std::byte{0xAA});
  auto unknown = bytes(20);
  unknown[0] = std::byte{0x42};
  EXPECT_EQ(raw(*dev_, unknown, 4).used, 0u);
  EXPECT_EQ(raw(*dev_, bytes(19), 4).used, 0u);
  // Too long: INVAL.
  auto long_req = bytes(20);
  long_req.push_back(std::byte{0});
  EXPECT_EQ(raw(*dev_, long_req, 4).status(), S(vi::Status::inval));
  // Reserved nonzero, unknown flags: INVAL.
  auto reserved = bytes(20);
  reserved[offsetof(vi::ReqAttach, reserved) + 3] = std::byte{1};
  EXPECT_EQ(raw(*dev_, reserved, 4).status(), S(vi::Status::inval));
  auto flags = bytes(20);
  flags[offsetof(vi::ReqAttach, flags)] = std::byte{0x2};
  EXPECT_EQ(raw(*dev_, flags, 4).status(), S(vi::Status::inval));
  // Inverted and overflowing ranges.
  ASSERT_EQ(attach(1, kEp2), S(vi::Status::ok));
  EXPECT_EQ(st(UnmapRequest{1, 0x2000, 0x1FFF}), S(vi::Status::inval));
  EXPECT_EQ(st(MapRequest{1, 0x2000, 0x1FFF, 0, kRW}), S(vi::Status::inval));
  EXPECT_EQ(st(MapRequest{1, 0, kU64Max, 0, kRW}), S(vi::Status::range));
  EXPECT_EQ(st(MapRequest{1, 0x1000, 0x1FFF, kU64Max - 0xFFF + 1, kRW}), S(vi::Status::range));
  // ALLOC_PASID with a nonzero reserved word (no F_PASID_MAX_REQ): INVAL, PASID invalid.
  auto d = make(config(), nullptr, false);
  ASSERT_TRUE(d->set_driver_features(bit(vi::kFPasidAlloc)));
  auto alloc = encode_request(AllocPasidRequest{});
  std::vector<std::byte> a(alloc.bytes.begin(), alloc.bytes.begin() + alloc.size);
  a[4] = std::byte{1};
  Reply ar = raw(*d, a, 8);
  EXPECT_EQ(ar.used, 8u);
  EXPECT_EQ(ar.status(), S(vi::Status::inval));
  EXPECT_EQ(ar.pasid(), vi::kPasidInvalid);
  EXPECT_EQ(host_->set_info(vm_).value().count, 0u);

  const Stats s = dev_->stats();
  EXPECT_EQ(s.malformed[static_cast<std::size_t>(ParseError::no_head)], 1u);
  EXPECT_EQ(s.malformed[static_cast<std::size_t>(ParseError::unknown_type)], 1u);
  EXPECT_EQ(s.malformed[static_cast<std::size_t>(ParseError::too_short)], 1u);
  EXPECT_EQ(s.malformed[static_cast<std::size_t>(ParseError::too_long)], 1u);
  EXPECT_EQ(s.malformed[static_cast<std::size_t>(ParseError::reserved_nonzero)], 1u);
  EXPECT_EQ(s.malformed[static_cast<std::size_t>(ParseError::unknown_flags)], 1u);
  EXPECT_EQ(s.malformed[static_cast<std::size_t>(ParseError::inverted_range)], 2u);
  EXPECT_EQ(s.malformed[static_cast<std::size_t>(ParseError::range_overflow)], 2u);
  EXPECT_EQ(s.used_zero, 3u);
  EXPECT_EQ(s.domains, 1u);  // nothing malformed changed anything
}

TEST_F(VirtioIommuDeviceTest, WritableTooSmallGivesUsedLengthZeroAndChangesNothing) {
  const auto alloc = encode_request(AllocPasidRequest{});
  Reply r = raw(*dev_, alloc.span(), 4);  // ALLOC needs 8 writable bytes
  EXPECT_EQ(r.used, 0u);
  EXPECT_EQ(r.buf[0], std::byte{0xAA});
  EXPECT_EQ(host_->set_info(vm_).value().count, 0u);
  const auto att = encode_request(AttachRequest{1, kEp, 0});
  EXPECT_EQ(raw(*dev_, att.span(), 3).used, 0u);
  EXPECT_EQ(dev_->stats().domains, 0u);
  EXPECT_EQ(dev_->stats().reply_small, 2u);
  // A larger buffer: the reply is written at its start, the used length is the reply's size.
  Reply big = raw(*dev_, att.span(), 64);
  EXPECT_EQ(big.used, 4u);
  EXPECT_EQ(big.status(), S(vi::Status::ok));
  EXPECT_EQ(big.buf[4], std::byte{0xAA});
}

// ---- statuses from the host backend ---------------------------------------------------------

TEST_F(VirtioIommuDeviceTest, BackendFailuresMapThroughTheErrorTable) {
  FaultyBackend faulty(*backend_);
  auto d = make(config(), &faulty);
  faulty.inject = Errc::io_error;  // the daemon is unreachable
  EXPECT_EQ(send(*d, AllocPasidRequest{}).status(), S(vi::Status::ioerr));
  EXPECT_EQ(st(*d, FreePasidRequest{1}), S(vi::Status::ioerr));
  faulty.inject = Errc::timed_out;
  EXPECT_EQ(st(*d, BindPasidRequest{kEp, 1, 0}), S(vi::Status::ioerr));
  faulty.inject = Errc::try_again;
  EXPECT_EQ(send(*d, AllocPasidRequest{}).status(), S(vi::Status::deverr));
  faulty.inject = Errc{};
  // An allocator answering outside [1, max_pasid]: handed back, the guest sees a failure.
  IommuDeviceConfig c = config();
  c.max_pasid = 16;
  auto small = make(c, &faulty);
  faulty.bad_answer = 100;
  Reply r = send(*small, AllocPasidRequest{});
  EXPECT_EQ(r.status(), S(vi::Status::ioerr));
  EXPECT_EQ(r.pasid(), vi::kPasidInvalid);
  EXPECT_EQ(host_->set_info(vm_).value().count, 0u);
  EXPECT_EQ(small->stats().backend_bad_answers, 1u);
  EXPECT_GE(d->stats().backend_errors, 3u);
}

// ---- PASID extension ------------------------------------------------------------------------

TEST_F(VirtioIommuDeviceTest, AllocAndFreePasid) {
  const Id a = alloc(*dev_);
  const Id b = alloc(*dev_);
  EXPECT_EQ(a, 1u);  // PASID 0 is never handed out
  EXPECT_EQ(b, 2u);
  EXPECT_EQ(host_->query(vm_, a).value().state, IdState::active);
  EXPECT_EQ(st(FreePasidRequest{a}), S(vi::Status::ok));
  EXPECT_FALSE(host_->query(vm_, a).has_value());
  EXPECT_EQ(st(FreePasidRequest{a}), S(vi::Status::noent));  // twice
  EXPECT_EQ(st(FreePasidRequest{0}), S(vi::Status::noent));
  EXPECT_EQ(st(FreePasidRequest{0xFFFFFFFF}), S(vi::Status::noent));
  EXPECT_EQ(st(FreePasidRequest{500}), S(vi::Status::noent));  // never allocated
  EXPECT_EQ(dev_->stats().pasid_allocs, 2u);
  EXPECT_EQ(dev_->stats().pasid_frees, 1u);
  EXPECT_EQ(dev_->stats().pasid_free_fails, 4u);
}

TEST_F(VirtioIommuDeviceTest, QuotaGivesNomem) {
  for (int i = 0; i < 8; ++i) alloc(*dev_);
  Reply r = send(AllocPasidRequest{});
  EXPECT_EQ(r.status(), S(vi::Status::nomem));
  EXPECT_EQ(r.pasid(), vi::kPasidInvalid);
  EXPECT_EQ(host_->set_info(vm_).value().count, 8u);
}

TEST_F(VirtioIommuDeviceTest, ConfigMaxPasidIsHonoured) {
  IommuDeviceConfig c = config();
  c.max_pasid = 3;
  auto d = make(c);
  EXPECT_EQ(alloc(*d), 1u);
  EXPECT_EQ(alloc(*d), 2u);
  EXPECT_EQ(alloc(*d), 3u);
  EXPECT_EQ(send(*d, AllocPasidRequest{}).status(), S(vi::Status::nomem));     // quota left: 5
  EXPECT_EQ(send(*d, AllocPasidRequest{100}).status(), S(vi::Status::nomem));  // clamped
}

TEST_F(VirtioIommuDeviceTest, RequestMaxPasidIsHonoured) {
  EXPECT_EQ(alloc(*dev_, 2), 1u);
  EXPECT_EQ(alloc(*dev_, 2), 2u);
  EXPECT_EQ(send(AllocPasidRequest{2}).status(), S(vi::Status::nomem));
  EXPECT_EQ(alloc(*dev_, 0), 3u);  // 0: no request-level limit
  EXPECT_EQ(send(AllocPasidRequest{1}).status(), S(vi::Status::nomem));
}

TEST_F(VirtioIommuDeviceTest, FreeOfAnotherVmsPasidIsNoentAndChangesNothing) {
  auto vm2 = make(config(), other_backend_.get());
  const Id theirs = alloc(*vm2);
  const Id mine = alloc(*dev_);
  EXPECT_NE(theirs, mine);  // one system-wide space
  EXPECT_EQ(st(FreePasidRequest{theirs}), S(vi::Status::noent));
  EXPECT_EQ(host_->query(other_, theirs).value().state, IdState::active);
  EXPECT_EQ(st(BindPasidRequest{kEp, theirs, 0}), S(vi::Status::noent));  // the bind rule
  EXPECT_EQ(host_->query(other_, theirs).value().binds, 0u);
  EXPECT_EQ(st(*vm2, FreePasidRequest{mine}), S(vi::Status::noent));
  EXPECT_EQ(st(*vm2, FreePasidRequest{theirs}), S(vi::Status::ok));
}

TEST_F(VirtioIommuDeviceTest, TwoDevicesOfOneVmShareTheSet) {
  auto second = make(config());
  const Id a = alloc(*dev_);
  const Id b = alloc(*second);
  EXPECT_NE(a, b);
  EXPECT_EQ(st(*second, FreePasidRequest{a}), S(vi::Status::ok));  // ALLOC on one, FREE on other
  EXPECT_EQ(st(*dev_, BindPasidRequest{kEp, b, 0}), S(vi::Status::ok));
  EXPECT_EQ(st(*dev_, UnbindPasidRequest{kEp, b, 0}), S(vi::Status::ok));
  EXPECT_EQ(st(*dev_, FreePasidRequest{b}), S(vi::Status::ok));
  EXPECT_EQ(host_->set_info(vm_).value().count, 0u);
}

TEST_F(VirtioIommuDeviceTest, BindAndUnbind) {
  const Id p = alloc(*dev_);
  EXPECT_EQ(st(BindPasidRequest{77, p, 0}), S(vi::Status::noent));       // unknown endpoint
  EXPECT_EQ(st(BindPasidRequest{kEp, p + 1, 0}), S(vi::Status::noent));  // not allocated
  EXPECT_EQ(st(BindPasidRequest{kEp, 0, 0}), S(vi::Status::noent));
  EXPECT_EQ(st(BindPasidRequest{kEp, p, 0}), S(vi::Status::ok));
  EXPECT_EQ(st(BindPasidRequest{kEp, p, 0}), S(vi::Status::inval));  // already bound
  EXPECT_EQ(st(BindPasidRequest{kEp2, p, 0}), S(vi::Status::ok));    // another endpoint
  EXPECT_EQ(host_->query(vm_, p).value().binds, 2u);
  EXPECT_EQ(dev_->host_pasid(kEp, p).value(), p);
  EXPECT_EQ(dev_->stats().binds, 2u);
  EXPECT_EQ(st(UnbindPasidRequest{kEp, p + 1, 0}), S(vi::Status::noent));
  EXPECT_EQ(st(UnbindPasidRequest{77, p, 0}), S(vi::Status::noent));
  EXPECT_EQ(st(UnbindPasidRequest{kEp, p, 0}), S(vi::Status::ok));
  EXPECT_EQ(st(UnbindPasidRequest{kEp, p, 0}), S(vi::Status::noent));
  EXPECT_FALSE(dev_->host_pasid(kEp, p));
  EXPECT_EQ(host_->query(vm_, p).value().binds, 1u);
}

TEST_F(VirtioIommuDeviceTest, FreeWhileBoundIsPendingUntilTheLastUnbind) {
  const Id p = alloc(*dev_);
  ASSERT_EQ(st(BindPasidRequest{kEp, p, 0}), S(vi::Status::ok));
  EXPECT_EQ(st(FreePasidRequest{p}), S(vi::Status::ok));
  EXPECT_EQ(host_->query(vm_, p).value().state, IdState::free_pending);
  EXPECT_EQ(st(FreePasidRequest{p}), S(vi::Status::inval));           // FREE_PENDING
  EXPECT_EQ(st(BindPasidRequest{kEp2, p, 0}), S(vi::Status::inval));  // no new binds
  EXPECT_EQ(st(UnbindPasidRequest{kEp, p, 0}), S(vi::Status::ok));
  EXPECT_FALSE(host_->query(vm_, p).has_value());  // released
  EXPECT_EQ(alloc(*dev_), p);
}

TEST_F(VirtioIommuDeviceTest, BindsAreCapped) {
  IommuDeviceConfig c = config();
  c.max_binds = 1;
  dev_ = make(c);
  const Id p = alloc(*dev_);
  EXPECT_EQ(st(BindPasidRequest{kEp, p, 0}), S(vi::Status::ok));
  EXPECT_EQ(st(BindPasidRequest{kEp2, p, 0}), S(vi::Status::nomem));
  EXPECT_EQ(host_->query(vm_, p).value().binds, 1u);
}

TEST_F(VirtioIommuDeviceTest, PerEndpointScope) {
  IommuDeviceConfig c = config();
  c.pasid_scope = PasidScope::per_endpoint;
  c.max_pasid = 0xFF;
  dev_ = make(c);
  ASSERT_EQ(dev_->pasid_scope(), PasidScope::per_endpoint);
  EXPECT_EQ(send(AllocPasidRequest{}).status(), S(vi::Status::unsupp));
  EXPECT_EQ(st(FreePasidRequest{1}), S(vi::Status::unsupp));
  // The same PASID value on two endpoints: two host PASIDs of the VM's set.
  EXPECT_EQ(st(BindPasidRequest{kEp, 5, 0}), S(vi::Status::ok));
  EXPECT_EQ(st(BindPasidRequest{kEp2, 5, 0}), S(vi::Status::ok));
  EXPECT_EQ(st(BindPasidRequest{kEp, 5, 0}), S(vi::Status::inval));
  EXPECT_EQ(st(BindPasidRequest{kEp, 0x100, 0}), S(vi::Status::range));  // above max_pasid
  EXPECT_EQ(st(BindPasidRequest{77, 5, 0}), S(vi::Status::noent));
  const Id h1 = dev_->host_pasid(kEp, 5).value();
  const Id h2 = dev_->host_pasid(kEp2, 5).value();
  EXPECT_NE(h1, h2);
  EXPECT_EQ(host_->query(vm_, h1).value().binds, 1u);
  EXPECT_EQ(host_->set_info(vm_).value().count, 2u);
  EXPECT_EQ(st(UnbindPasidRequest{kEp, 5, 0}), S(vi::Status::ok));
  EXPECT_FALSE(host_->query(vm_, h1).has_value());  // freed with its bind
  EXPECT_EQ(st(UnbindPasidRequest{kEp, 5, 0}), S(vi::Status::noent));
  // Quota: the set holds 8.
  for (std::uint32_t p = 1; p <= 7; ++p) {
    EXPECT_EQ(st(BindPasidRequest{kEp, p, 0}), S(vi::Status::ok)) << p;
  }
  EXPECT_EQ(st(BindPasidRequest{kEp, 8, 0}), S(vi::Status::nomem));
  dev_->reset();
  EXPECT_EQ(host_->set_info(vm_).value().count, 0u);
}

// ---- translate and faults -------------------------------------------------------------------

TEST_F(VirtioIommuDeviceTest, TranslateAndFaults) {
  int notified = 0;
  dev_->set_fault_notifier([&] { ++notified; });
  // Not attached, no bypass: DOMAIN fault.
  auto r = dev_->translate(kEp2, 0x1000, Access::read);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::not_found);
  auto f = dev_->pop_fault();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->reason, vi::kFaultRDomain);
  EXPECT_EQ(f->endpoint, kEp2);
  EXPECT_EQ(f->flags, vi::kFaultFRead);
  EXPECT_EQ(f->address, 0x1000u);
  EXPECT_FALSE(dev_->pop_fault());

  ASSERT_EQ(attach(1, kEp2), S(vi::Status::ok));
  ASSERT_EQ(map(1, 0x1000, 0x2FFF, 0x80000, vi::kMapFRead), S(vi::Status::ok));
  auto t = dev_->translate(kEp2, 0x1234, Access::read).value();
  EXPECT_EQ(t.phys, 0x80234u);
  EXPECT_EQ(t.iova_last, 0x2FFFu);
  EXPECT_FALSE(t.bypass);
  EXPECT_TRUE(dev_->translate(kEp2, 0x1234, Access::exec));  // exec needs READ
  EXPECT_EQ(dev_->translate(kEp2, 0x1234, Access::write).error(), Errc::permission_denied);
  EXPECT_EQ(dev_->translate(kEp2, 0x3000, Access::read).error(), Errc::out_of_range);
  f = dev_->pop_fault();
  EXPECT_EQ(f->reason, vi::kFaultRMapping);
  EXPECT_EQ(f->flags, vi::kFaultFWrite);
  f = dev_->pop_fault();
  EXPECT_EQ(f->reason, vi::kFaultRMapping);
  EXPECT_EQ(f->address, 0x3000u);
  // The event-queue encoding of a fault.
  std::byte ev[24];
  ASSERT_TRUE(encode_fault(ev, *f));
  vi::Fault w{};
  std::memcpy(&w, ev, sizeof(w));
  EXPECT_EQ(w.flags.load(), vi::kFaultFRead | vi::kFaultFAddress);
  EXPECT_EQ(notified, 3);
  EXPECT_EQ(dev_->stats().faults, 3u);
}

TEST_F(VirtioIommuDeviceTest, TranslateBypassAndReservedRegions) {
  // MSI doorbell: identity even when unattached; a RESERVED region faults.
  auto msi = dev_->translate(kEp, kMsiStart + 0x40, Access::write).value();
  EXPECT_TRUE(msi.bypass);
  EXPECT_EQ(msi.phys, kMsiStart + 0x40);
  EXPECT_EQ(msi.iova_last, kMsiEnd);
  ASSERT_EQ(attach(1, kEp), S(vi::Status::ok));
  EXPECT_EQ(dev_->translate(kEp, kResvStart, Access::read).error(), Errc::out_of_range);
  EXPECT_EQ(dev_->pop_fault()->reason, vi::kFaultRMapping);
  // A bypass domain is the identity.
  ASSERT_EQ(attach(2, kEp2, vi::kAttachFBypass), S(vi::Status::ok));
  EXPECT_EQ(dev_->translate(kEp2, 0x1234, Access::write).value().phys, 0x1234u);
  // Config bypass lets unattached endpoints through; attached ones still translate.
  const std::byte one{1};
  ASSERT_TRUE(dev_->write_config(offsetof(vi::Config, bypass), {&one, 1}));
  ASSERT_EQ(st(DetachRequest{2, kEp2}), S(vi::Status::ok));
  EXPECT_TRUE(dev_->translate(kEp2, 0x5000, Access::read).value().bypass);
  EXPECT_EQ(dev_->translate(kEp, 0x5000, Access::read).error(), Errc::out_of_range);
}

TEST_F(VirtioIommuDeviceTest, BootBypassAppliesBeforeNegotiationAndLegacyBypass) {
  IommuDeviceConfig c = config();
  c.bypass = 1;
  auto d = make(c, nullptr, false);
  EXPECT_TRUE(d->translate(kEp2, 0x1000, Access::read).value().bypass);
  // Legacy F_BYPASS (without F_BYPASS_CONFIG): unattached endpoints bypass once negotiated.
  c.bypass = 0;
  c.features = bit(vi::kFMapUnmap) | bit(vi::kFBypass);
  auto legacy = make(c, nullptr, false);
  EXPECT_FALSE(legacy->translate(kEp2, 0x1000, Access::read));
  ASSERT_TRUE(legacy->set_driver_features(bit(vi::kFMapUnmap) | bit(vi::kFBypass)));
  EXPECT_TRUE(legacy->translate(kEp2, 0x1000, Access::read));
}

TEST_F(VirtioIommuDeviceTest, FaultQueueDropsWhenFull) {
  IommuDeviceConfig c = config();
  c.fault_queue_depth = 2;
  dev_ = make(c);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(dev_->translate(kEp2, 0x1000 * i, Access::read));
  EXPECT_EQ(dev_->stats().faults_dropped, 3u);
  EXPECT_EQ(dev_->pop_fault()->address, 0u);
  EXPECT_EQ(dev_->pop_fault()->address, 0x1000u);
  EXPECT_FALSE(dev_->pop_fault());
}

// ---- reset and teardown ---------------------------------------------------------------------

TEST_F(VirtioIommuDeviceTest, ResetDropsDeviceStateButNotThePasidsOrBypass) {
  const std::byte one{1};
  ASSERT_TRUE(dev_->write_config(offsetof(vi::Config, bypass), {&one, 1}));
  const Id p = alloc(*dev_);
  ASSERT_EQ(st(BindPasidRequest{kEp, p, 0}), S(vi::Status::ok));
  ASSERT_EQ(attach(1, kEp2), S(vi::Status::ok));
  ASSERT_EQ(map(1, 0x1000, 0x1FFF), S(vi::Status::ok));
  ASSERT_FALSE(dev_->translate(kEp2, 0x9000, Access::read));
  dev_->reset();
  const Stats s = dev_->stats();
  EXPECT_EQ(s.domains, 0u);
  EXPECT_EQ(s.mappings, 0u);
  EXPECT_EQ(s.binds, 0u);
  EXPECT_EQ(s.endpoints_attached, 0u);
  EXPECT_FALSE(dev_->pop_fault());
  EXPECT_EQ(dev_->negotiated_features(), 0u);
  EXPECT_EQ(host_->query(vm_, p).value().binds, 0u);               // host reference dropped
  EXPECT_EQ(host_->query(vm_, p).value().state, IdState::active);  // the PASID stays the VM's
  std::byte b{};
  dev_->read_config(offsetof(vi::Config, bypass), {&b, 1});
  EXPECT_EQ(b, std::byte{1});  // the spec: bypass does not change on device reset
  EXPECT_EQ(send(AllocPasidRequest{}).status(), S(vi::Status::unsupp));
  ASSERT_TRUE(dev_->set_driver_features(dev_->device_features()));
  EXPECT_EQ(st(FreePasidRequest{p}), S(vi::Status::ok));
}

TEST_F(VirtioIommuDeviceTest, DestroyingTheDeviceDropsItsBinds) {
  const Id p = alloc(*dev_);
  ASSERT_EQ(st(BindPasidRequest{kEp, p, 0}), S(vi::Status::ok));
  dev_.reset();
  EXPECT_EQ(host_->query(vm_, p).value().binds, 0u);
  EXPECT_EQ(host_->query(vm_, p).value().state, IdState::active);
}

// ---- logging --------------------------------------------------------------------------------

struct LogCount {
  int lines = 0;
  std::string last;
};

TEST_F(VirtioIommuDeviceTest, GuestTriggeredLogLinesAreRateLimited) {
  LogCount lc;
  IommuDeviceConfig c = config();
  c.log_sink = [](void* opaque, LogLevel, const char* msg) {
    auto* l = static_cast<LogCount*>(opaque);
    ++l->lines;
    l->last = msg;
  };
  c.log_opaque = &lc;
  c.log_burst = 3;
  c.log_per_second = 0;  // never refilled: deterministic
  dev_ = make(c);
  const std::byte junk[4] = {std::byte{0x42}};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(raw(*dev_, junk, 4).used, 0u);
  EXPECT_EQ(lc.lines, 3);
  EXPECT_NE(lc.last.find("unknown_type"), std::string::npos);
  EXPECT_EQ(dev_->stats().log_lines, 3u);
  EXPECT_EQ(dev_->stats().log_dropped, 7u);
  EXPECT_EQ(dev_->stats().requests, 10u);
  // The device keeps working.
  EXPECT_EQ(alloc(*dev_), 1u);
}

}  // namespace
}  // namespace ioasid::virtio
