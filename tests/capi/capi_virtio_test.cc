// SPDX-License-Identifier: Apache-2.0
// capi_virtio_test.cc: the virtio-iommu part of the C ABI (include/ioasid/ioasid.h), function by
// function: device creation and its config struct (size rules, E2BIG, every invalid field),
// feature negotiation errors, config space reads and writes, requests through handle_request
// built by hand from the wire structs (a full ALLOC_PASID / BIND / ATTACH / MAP / translate /
// UNMAP / DETACH / UNBIND / FREE_PASID sequence, malformed and unnegotiated requests), translate
// and faults, per-endpoint host PASIDs, reset, stats; guest memory; the transport with real split
// virtqueues in guest memory (driven by the C++ DriverQueue as a guest would), NEEDS_RESET, the
// deferred mode; and the remote device with a guest in a forked process.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "ioasid/guest_memory.hpp"
#include "ioasid/ioasid.h"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_guest_driver.hpp"
#include "ioasid/virtio_remote.hpp"
#include "ioasid/virtqueue.hpp"
#include "ioasid/wire/virtio_iommu.hpp"

namespace {

namespace vi = ioasid::wire::virtio_iommu;
namespace vio = ioasid::virtio;

constexpr uint64_t bit(unsigned b) { return uint64_t{1} << b; }

// The default offer (ioasid.h: ioasid_virtio_iommu_config.features).
constexpr uint64_t kDefaultFeatures =
    bit(IOASID_VIRTIO_IOMMU_F_INPUT_RANGE) | bit(IOASID_VIRTIO_IOMMU_F_DOMAIN_RANGE) |
    bit(IOASID_VIRTIO_IOMMU_F_MAP_UNMAP) | bit(IOASID_VIRTIO_IOMMU_F_PROBE) |
    bit(IOASID_VIRTIO_IOMMU_F_MMIO) | bit(IOASID_VIRTIO_IOMMU_F_BYPASS_CONFIG) |
    bit(IOASID_VIRTIO_IOMMU_F_PASID_ALLOC) | bit(IOASID_VIRTIO_IOMMU_F_PASID_MAX_REQ) |
    bit(IOASID_VIRTIO_IOMMU_F_PASID_BIND);

ioasid_virtio_iommu_config device_config() {
  ioasid_virtio_iommu_config c;
  std::memset(&c, 0, sizeof(c));
  c.size = sizeof(c);
  return c;
}

uint32_t le32_at(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t le64_at(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// ---- requests built by hand from the wire structs -----------------------------------------------

vi::ReqAllocPasid alloc_pasid_req() {
  vi::ReqAllocPasid r{};
  r.head.type = vi::to_u8(vi::ReqType::alloc_pasid);
  return r;
}
vi::ReqFreePasid free_pasid_req(uint32_t pasid) {
  vi::ReqFreePasid r{};
  r.head.type = vi::to_u8(vi::ReqType::free_pasid);
  r.pasid.store(pasid);
  return r;
}
vi::ReqBindPasid bind_req(vi::ReqType type, uint32_t endpoint, uint32_t pasid) {
  vi::ReqBindPasid r{};
  r.head.type = vi::to_u8(type);
  r.endpoint.store(endpoint);
  r.pasid.store(pasid);
  return r;
}
vi::ReqAttach attach_req(uint32_t domain, uint32_t endpoint) {
  vi::ReqAttach r{};
  r.head.type = vi::to_u8(vi::ReqType::attach);
  r.domain.store(domain);
  r.endpoint.store(endpoint);
  return r;
}
vi::ReqDetach detach_req(uint32_t domain, uint32_t endpoint) {
  vi::ReqDetach r{};
  r.head.type = vi::to_u8(vi::ReqType::detach);
  r.domain.store(domain);
  r.endpoint.store(endpoint);
  return r;
}
vi::ReqMap map_req(uint32_t domain, uint64_t start, uint64_t end, uint64_t phys, uint32_t flags) {
  vi::ReqMap r{};
  r.head.type = vi::to_u8(vi::ReqType::map);
  r.domain.store(domain);
  r.virt_start.store(start);
  r.virt_end.store(end);
  r.phys_start.store(phys);
  r.flags.store(flags);
  return r;
}
vi::ReqUnmap unmap_req(uint32_t domain, uint64_t start, uint64_t end) {
  vi::ReqUnmap r{};
  r.head.type = vi::to_u8(vi::ReqType::unmap);
  r.domain.store(domain);
  r.virt_start.store(start);
  r.virt_end.store(end);
  return r;
}

// The readable part of a request: everything before its device-writable part.
template <class T>
constexpr size_t readable_size() {
  if constexpr (std::is_same_v<T, vi::ReqAllocPasid>) {
    return offsetof(vi::ReqAllocPasid, pasid);
  } else {
    return offsetof(T, tail);
  }
}

struct Reply {
  int rc = 1;
  size_t used = 0;
  std::vector<std::byte> bytes;
  // The tail's status (tail at used - 4), or 0xFF without a reply.
  uint8_t status() const { return used < 4 ? 0xFF : std::to_integer<uint8_t>(bytes[used - 4]); }
};

// Sends one request through ioasid_virtio_iommu_handle_request with writable bytes of room.
template <class T>
Reply send(ioasid_virtio_iommu* d, const T& req, size_t writable = 8,
           size_t readable = readable_size<T>()) {
  Reply r;
  r.bytes.assign(writable, std::byte{0xEE});
  r.rc = ioasid_virtio_iommu_handle_request(d, &req, readable, r.bytes.data(), writable, &r.used);
  return r;
}

class CapiVirtioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(ioasid_space_create(nullptr, &space_), 0);
    ASSERT_EQ(ioasid_set_create(space_, 1, 64, &set_), 0);
    ASSERT_EQ(ioasid_backend_local_create(space_, set_, &be_), 0);
  }
  void TearDown() override {
    ioasid_backend_destroy(be_);
    ioasid_space_destroy(space_);
  }
  // A device with endpoints 8 (an MSI region at 0xFEE00000 and a RESERVED one at 0x10000000)
  // and 9, everything else default.
  ioasid_virtio_iommu* make_device(uint32_t flags = 0) {
    ioasid_virtio_iommu_config c = device_config();
    c.flags = flags;
    c.endpoints = endpoints_;
    c.endpoint_count = 2;
    c.fault_fn = [](void* opaque) { ++*static_cast<int*>(opaque); };
    c.fault_opaque = &faults_notified_;
    ioasid_virtio_iommu* d = nullptr;
    EXPECT_EQ(ioasid_virtio_iommu_create(be_, &c, &d), 0);
    return d;
  }
  uint32_t set_count() {
    ioasid_set_info info;
    EXPECT_EQ(ioasid_set_query(space_, set_, &info), 0);
    return info.count;
  }
  bool held(ioasid_t id) {
    void* p = nullptr;
    return ioasid_find(space_, set_, id, nullptr, nullptr, &p) == 0;
  }

  ioasid_space* space_ = nullptr;
  ioasid_set_t set_ = 0;
  ioasid_backend* be_ = nullptr;
  int faults_notified_ = 0;
  const ioasid_virtio_iommu_resv resv8_[2] = {
      {0xFEE00000, 0xFEEFFFFF, IOASID_VIRTIO_IOMMU_RESV_MSI, 0},
      {0x10000000, 0x1000FFFF, IOASID_VIRTIO_IOMMU_RESV_RESERVED, 0}};
  const ioasid_virtio_iommu_endpoint endpoints_[2] = {{8, 2, resv8_}, {9, 0, nullptr}};
};

// ---- device creation ----------------------------------------------------------------------------

TEST_F(CapiVirtioTest, CreateErrors) {
  ioasid_virtio_iommu* d = nullptr;
  ioasid_virtio_iommu_config c = device_config();
  EXPECT_EQ(ioasid_virtio_iommu_create(nullptr, &c, &d), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_create(be_, &c, nullptr), -EINVAL);

  // Size rules.
  c.size = sizeof(c) - 1;
  EXPECT_EQ(ioasid_virtio_iommu_create(be_, &c, &d), -EINVAL);
  c.size = 0;
  EXPECT_EQ(ioasid_virtio_iommu_create(be_, &c, &d), -EINVAL);
  struct Longer {
    ioasid_virtio_iommu_config c;
    uint64_t future[2];
  } big;
  std::memset(&big, 0, sizeof(big));
  big.c.size = sizeof(big);
  big.future[1] = 0x100;
  EXPECT_EQ(ioasid_virtio_iommu_create(be_, &big.c, &d), -E2BIG);
  big.future[1] = 0;
  ASSERT_EQ(ioasid_virtio_iommu_create(be_, &big.c, &d), 0);  // a zero tail is fine
  ioasid_virtio_iommu_destroy(d);
  d = nullptr;

  // Every invalid field, one at a time.
  const ioasid_virtio_iommu_resv bad_subtype = {0, 0xFFF, 2, 0};
  const ioasid_virtio_iommu_resv bad_reserved = {0, 0xFFF, IOASID_VIRTIO_IOMMU_RESV_MSI, 1};
  const ioasid_virtio_iommu_resv inverted = {0x2000, 0x1000, IOASID_VIRTIO_IOMMU_RESV_MSI, 0};
  const ioasid_virtio_iommu_endpoint ep_bad_subtype = {1, 1, &bad_subtype};
  const ioasid_virtio_iommu_endpoint ep_bad_reserved = {1, 1, &bad_reserved};
  const ioasid_virtio_iommu_endpoint ep_inverted = {1, 1, &inverted};
  const ioasid_virtio_iommu_endpoint ep_null_resv = {1, 1, nullptr};
  const ioasid_virtio_iommu_endpoint twice[2] = {{4, 0, nullptr}, {4, 0, nullptr}};
  struct Case {
    const char* what;
    void (*apply)(ioasid_virtio_iommu_config&, const void*);
    const void* arg;
  };
  const Case cases[] = {
      {"unknown flag", [](ioasid_virtio_iommu_config& x, const void*) { x.flags = 1u << 3; },
       nullptr},
      {"reserved0", [](ioasid_virtio_iommu_config& x, const void*) { x.reserved0 = 1; }, nullptr},
      {"feature bit 20", [](ioasid_virtio_iommu_config& x, const void*) { x.features = bit(20); },
       nullptr},
      {"feature bit 59 (a flag)",
       [](ioasid_virtio_iommu_config& x, const void*) {
         x.features = kDefaultFeatures | bit(IOASID_VIRTIO_IOMMU_F_PASID_PER_ENDPOINT);
       },
       nullptr},
      {"input range inverted",
       [](ioasid_virtio_iommu_config& x, const void*) {
         x.input_start = 0x2000;
         x.input_end = 0x1000;
       },
       nullptr},
      {"domain range inverted",
       [](ioasid_virtio_iommu_config& x, const void*) {
         x.domain_start = 10;
         x.domain_end = 9;
       },
       nullptr},
      {"max_pasid above 20 bits",
       [](ioasid_virtio_iommu_config& x, const void*) { x.max_pasid = 0x100000; }, nullptr},
      {"endpoints NULL", [](ioasid_virtio_iommu_config& x, const void*) { x.endpoint_count = 1; },
       nullptr},
      {"resv NULL",
       [](ioasid_virtio_iommu_config& x, const void* a) {
         x.endpoints = static_cast<const ioasid_virtio_iommu_endpoint*>(a);
         x.endpoint_count = 1;
       },
       &ep_null_resv},
      {"resv subtype",
       [](ioasid_virtio_iommu_config& x, const void* a) {
         x.endpoints = static_cast<const ioasid_virtio_iommu_endpoint*>(a);
         x.endpoint_count = 1;
       },
       &ep_bad_subtype},
      {"resv reserved0",
       [](ioasid_virtio_iommu_config& x, const void* a) {
         x.endpoints = static_cast<const ioasid_virtio_iommu_endpoint*>(a);
         x.endpoint_count = 1;
       },
       &ep_bad_reserved},
      {"resv inverted",
       [](ioasid_virtio_iommu_config& x, const void* a) {
         x.endpoints = static_cast<const ioasid_virtio_iommu_endpoint*>(a);
         x.endpoint_count = 1;
       },
       &ep_inverted},
      {"endpoint declared twice",
       [](ioasid_virtio_iommu_config& x, const void* a) {
         x.endpoints = static_cast<const ioasid_virtio_iommu_endpoint*>(a);
         x.endpoint_count = 2;
       },
       twice},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    c = device_config();
    k.apply(c, k.arg);
    EXPECT_EQ(ioasid_virtio_iommu_create(be_, &c, &d), -EINVAL);
    EXPECT_EQ(d, nullptr);  // out untouched on failure
  }

  // NULL config: every default.
  ASSERT_EQ(ioasid_virtio_iommu_create(be_, nullptr, &d), 0);
  EXPECT_EQ(ioasid_virtio_iommu_features(d), kDefaultFeatures);
  ioasid_virtio_iommu_destroy(d);
  ioasid_virtio_iommu_destroy(nullptr);  // ignored
}

TEST_F(CapiVirtioTest, ConfigFieldsReachTheDevice) {
  ioasid_virtio_iommu_config c = device_config();
  c.features = bit(IOASID_VIRTIO_IOMMU_F_MAP_UNMAP) | bit(IOASID_VIRTIO_IOMMU_F_INPUT_RANGE) |
               bit(IOASID_VIRTIO_IOMMU_F_DOMAIN_RANGE) | bit(IOASID_VIRTIO_IOMMU_F_BYPASS) |
               bit(IOASID_VIRTIO_IOMMU_F_PROBE) | bit(IOASID_VIRTIO_IOMMU_F_PASID_ALLOC);
  c.flags = IOASID_VIRTIO_IOMMU_CFG_BOOT_BYPASS | IOASID_VIRTIO_IOMMU_CFG_ALLOW_UNDECLARED;
  c.page_size_mask = 0x200000;  // 2 MiB only
  c.input_start = 0x1000;
  c.input_end = 0xFFFFFFFF;
  c.domain_start = 1;
  c.domain_end = 100;
  c.probe_size = 64;
  c.max_pasid = 0x1FF;
  c.max_domains = 1;
  ioasid_virtio_iommu* d = nullptr;
  ASSERT_EQ(ioasid_virtio_iommu_create(be_, &c, &d), 0);
  EXPECT_EQ(ioasid_virtio_iommu_features(d), c.features);  // BYPASS kept: no BYPASS_CONFIG

  std::array<std::byte, IOASID_VIRTIO_IOMMU_CONFIG_SIZE + 8> raw;
  raw.fill(std::byte{0xEE});
  ASSERT_EQ(ioasid_virtio_iommu_config_read(d, 0, raw.data(), raw.size()), 0);
  EXPECT_EQ(le64_at(&raw[0]), 0x200000u);       // page_size_mask
  EXPECT_EQ(le64_at(&raw[8]), 0x1000u);         // input_range.start
  EXPECT_EQ(le64_at(&raw[16]), 0xFFFFFFFFu);    // input_range.end
  EXPECT_EQ(le32_at(&raw[24]), 1u);             // domain_range.start
  EXPECT_EQ(le32_at(&raw[28]), 100u);           // domain_range.end
  EXPECT_EQ(le32_at(&raw[32]), 64u);            // probe_size
  EXPECT_EQ(std::to_integer<int>(raw[36]), 1);  // bypass (boot bypass)
  EXPECT_EQ(le32_at(&raw[40]), 0x1FFu);         // max_pasid
  for (size_t i = IOASID_VIRTIO_IOMMU_CONFIG_SIZE; i < raw.size(); ++i) {
    EXPECT_EQ(std::to_integer<int>(raw[i]), 0) << i;  // past the config space
  }
  // A read at an offset, and past the end.
  uint32_t v = 0;
  ASSERT_EQ(ioasid_virtio_iommu_config_read(d, 40, &v, 4), 0);
  EXPECT_EQ(v, 0x1FFu);
  ASSERT_EQ(ioasid_virtio_iommu_config_read(d, 1000, &v, 4), 0);
  EXPECT_EQ(v, 0u);

  // config.bypass reads 1 but acts only with BYPASS_CONFIG offered; legacy BYPASS acts once
  // negotiated.
  ioasid_virtio_translation t;
  EXPECT_EQ(ioasid_virtio_iommu_translate(d, 77, 0x1234, IOASID_VIRTIO_ACCESS_READ, &t), -ENOENT);
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, c.features), 0);
  ASSERT_EQ(ioasid_virtio_iommu_translate(d, 77, 0x1234, IOASID_VIRTIO_ACCESS_READ, &t), 0);
  EXPECT_EQ(t.phys, 0x1234u);
  EXPECT_EQ(t.bypass, 1u);

  // max_domains 1, domain_range [1, 100].
  EXPECT_EQ(send(d, attach_req(0, 5)).status(), vi::to_u8(vi::Status::range));
  EXPECT_EQ(send(d, attach_req(1, 5)).status(), vi::to_u8(vi::Status::ok));
  EXPECT_EQ(send(d, attach_req(2, 6)).status(), vi::to_u8(vi::Status::nomem));
  // The 2 MiB granule.
  EXPECT_EQ(send(d, map_req(1, 0x200000, 0x200FFF, 0, 1)).status(), vi::to_u8(vi::Status::range));
  EXPECT_EQ(send(d, map_req(1, 0x200000, 0x3FFFFF, 0, 1)).status(), vi::to_u8(vi::Status::ok));
  // ALLOC_PASID answers at most max_pasid.
  Reply a = send(d, alloc_pasid_req());
  ASSERT_EQ(a.status(), vi::to_u8(vi::Status::ok));
  EXPECT_LE(le32_at(a.bytes.data()), 0x1FFu);
  ioasid_virtio_iommu_destroy(d);

  // Boot bypass with BYPASS_CONFIG offered: unattached endpoints are the identity before any
  // negotiation.
  c = device_config();
  c.flags = IOASID_VIRTIO_IOMMU_CFG_BOOT_BYPASS;
  ASSERT_EQ(ioasid_virtio_iommu_create(be_, &c, &d), 0);
  ASSERT_EQ(ioasid_virtio_iommu_translate(d, 77, 0x1234, IOASID_VIRTIO_ACCESS_WRITE, &t), 0);
  EXPECT_EQ(t.phys, 0x1234u);
  EXPECT_EQ(t.bypass, 1u);
  ioasid_virtio_iommu_destroy(d);
}

// ---- features and config space
// -------------------------------------------------------------------

TEST_F(CapiVirtioTest, FeatureNegotiationErrors) {
  ioasid_virtio_iommu* d = make_device();
  EXPECT_EQ(ioasid_virtio_iommu_features(d), kDefaultFeatures);
  EXPECT_EQ(ioasid_virtio_iommu_negotiated_features(d), 0u);

  const uint64_t some =
      bit(IOASID_VIRTIO_IOMMU_F_MAP_UNMAP) | bit(IOASID_VIRTIO_IOMMU_F_PASID_ALLOC);
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, some), 0);
  EXPECT_EQ(ioasid_virtio_iommu_negotiated_features(d), some);
  // Not offered: BYPASS (dropped because BYPASS_CONFIG is offered), bit 59, bit 7.
  EXPECT_EQ(ioasid_virtio_iommu_set_driver_features(d, bit(IOASID_VIRTIO_IOMMU_F_BYPASS)),
            -EOPNOTSUPP);
  EXPECT_EQ(ioasid_virtio_iommu_set_driver_features(
                d, bit(IOASID_VIRTIO_IOMMU_F_PASID_ALLOC) | bit(IOASID_VIRTIO_IOMMU_F_PASID_BIND) |
                       bit(IOASID_VIRTIO_IOMMU_F_PASID_PER_ENDPOINT)),
            -EOPNOTSUPP);
  EXPECT_EQ(ioasid_virtio_iommu_set_driver_features(d, bit(7)), -EOPNOTSUPP);
  // Inconsistent: 57 or 58 without 56.
  EXPECT_EQ(ioasid_virtio_iommu_set_driver_features(d, bit(IOASID_VIRTIO_IOMMU_F_PASID_MAX_REQ)),
            -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_set_driver_features(d, bit(IOASID_VIRTIO_IOMMU_F_PASID_BIND)),
            -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_negotiated_features(d), some);  // refusals changed nothing
  // Transport bits (24-49) are ignored.
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, some | bit(IOASID_VIRTIO_F_VERSION_1)), 0);
  EXPECT_EQ(ioasid_virtio_iommu_negotiated_features(d), some);
  EXPECT_EQ(ioasid_virtio_iommu_pasid_scope(d), 0);
  ioasid_virtio_iommu_destroy(d);

  // Per-endpoint scope: bit 59 is offered; it cannot change under live binds (-EBUSY).
  d = make_device(IOASID_VIRTIO_IOMMU_CFG_PER_ENDPOINT);
  const uint64_t pe = ioasid_virtio_iommu_features(d);
  ASSERT_TRUE(pe & bit(IOASID_VIRTIO_IOMMU_F_PASID_PER_ENDPOINT));
  EXPECT_EQ(
      ioasid_virtio_iommu_set_driver_features(d, bit(IOASID_VIRTIO_IOMMU_F_PASID_ALLOC) |
                                                     bit(IOASID_VIRTIO_IOMMU_F_PASID_PER_ENDPOINT)),
      -EINVAL);  // 59 without 58
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, pe), 0);
  EXPECT_EQ(ioasid_virtio_iommu_pasid_scope(d), 1);
  ASSERT_EQ(send(d, bind_req(vi::ReqType::bind_pasid, 8, 5), 4).status(),
            vi::to_u8(vi::Status::ok));
  EXPECT_EQ(ioasid_virtio_iommu_set_driver_features(
                d, pe & ~bit(IOASID_VIRTIO_IOMMU_F_PASID_PER_ENDPOINT)),
            -EBUSY);
  EXPECT_EQ(ioasid_virtio_iommu_pasid_scope(d), 1);
  ioasid_virtio_iommu_reset(d);  // drops the binds: now it may change
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(
                d, pe & ~bit(IOASID_VIRTIO_IOMMU_F_PASID_PER_ENDPOINT)),
            0);
  EXPECT_EQ(ioasid_virtio_iommu_pasid_scope(d), 0);
  ioasid_virtio_iommu_destroy(d);

  EXPECT_EQ(ioasid_virtio_iommu_set_driver_features(nullptr, some), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_features(nullptr), 0u);
  EXPECT_EQ(ioasid_virtio_iommu_negotiated_features(nullptr), 0u);
  EXPECT_EQ(ioasid_virtio_iommu_pasid_scope(nullptr), 0);
}

TEST_F(CapiVirtioTest, ConfigReadAndWrite) {
  ioasid_virtio_iommu* d = make_device();
  uint8_t b = 0xEE;
  ASSERT_EQ(ioasid_virtio_iommu_config_read(d, IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET, &b, 1), 0);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(ioasid_virtio_iommu_config_read(d, 0, nullptr, 4), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_config_read(d, 0, nullptr, 0), 0);
  EXPECT_EQ(ioasid_virtio_iommu_config_read(nullptr, 0, &b, 1), -EINVAL);

  // bypass is writable only with BYPASS_CONFIG negotiated.
  const uint8_t one = 1, two = 2;
  EXPECT_EQ(ioasid_virtio_iommu_config_write(d, IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET, &one, 1),
            -EOPNOTSUPP);
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, bit(IOASID_VIRTIO_IOMMU_F_BYPASS_CONFIG)),
            0);
  ASSERT_EQ(ioasid_virtio_iommu_config_write(d, IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET, &one, 1),
            0);
  ASSERT_EQ(ioasid_virtio_iommu_config_read(d, IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET, &b, 1), 0);
  EXPECT_EQ(b, 1);
  // Another value, size or offset.
  EXPECT_EQ(ioasid_virtio_iommu_config_write(d, IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET, &two, 1),
            -EINVAL);
  const uint16_t wide = 1;
  EXPECT_EQ(ioasid_virtio_iommu_config_write(d, IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET, &wide, 2),
            -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_config_write(d, 0, &one, 1), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_config_write(d, 40, &one, 1), -EINVAL);  // max_pasid: read-only
  EXPECT_EQ(
      ioasid_virtio_iommu_config_write(d, IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET, nullptr, 1),
      -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_config_write(nullptr, 36, &one, 1), -EINVAL);
  ASSERT_EQ(ioasid_virtio_iommu_config_read(d, IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET, &b, 1), 0);
  EXPECT_EQ(b, 1);  // refused writes changed nothing
  ioasid_virtio_iommu_counters st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ASSERT_EQ(ioasid_virtio_iommu_stats(d, &st), 0);
  EXPECT_EQ(st.config_writes_refused, 5u);  // the NULL ones never reached the device
  // bypass survives a reset (spec).
  ioasid_virtio_iommu_reset(d);
  ASSERT_EQ(ioasid_virtio_iommu_config_read(d, IOASID_VIRTIO_IOMMU_CONFIG_BYPASS_OFFSET, &b, 1), 0);
  EXPECT_EQ(b, 1);
  ioasid_virtio_iommu_destroy(d);
}

// ---- requests through handle_request
// -------------------------------------------------------------

TEST_F(CapiVirtioTest, FullSequenceThroughHandleRequest) {
  ioasid_virtio_iommu* d = make_device();
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, ioasid_virtio_iommu_features(d)), 0);

  // ALLOC_PASID: a PASID of the VM's set.
  Reply a = send(d, alloc_pasid_req());
  ASSERT_EQ(a.rc, 0);
  ASSERT_EQ(a.used, 8u);
  ASSERT_EQ(a.status(), vi::to_u8(vi::Status::ok));
  const uint32_t pasid = le32_at(a.bytes.data());
  EXPECT_GE(pasid, 1u);
  EXPECT_TRUE(held(pasid));

  // BIND_PASID(8, pasid): a host reference.
  Reply b = send(d, bind_req(vi::ReqType::bind_pasid, 8, pasid), 4);
  ASSERT_EQ(b.used, 4u);
  ASSERT_EQ(b.status(), vi::to_u8(vi::Status::ok));
  ioasid_id_info info;
  ASSERT_EQ(ioasid_backend_query(be_, pasid, &info), 0);
  EXPECT_EQ(info.refs, 2u);
  ioasid_t host = 0;
  ASSERT_EQ(ioasid_virtio_iommu_host_pasid(d, 8, pasid, &host), 0);
  EXPECT_EQ(host, pasid);  // global scope: the same value

  // ATTACH endpoint 8 to domain 3, MAP [0x10000, 0x1FFFF] -> 0x800000 read/write.
  ASSERT_EQ(send(d, attach_req(3, 8), 4).status(), vi::to_u8(vi::Status::ok));
  ASSERT_EQ(
      send(d, map_req(3, 0x10000, 0x1FFFF, 0x800000, vi::kMapFRead | vi::kMapFWrite), 4).status(),
      vi::to_u8(vi::Status::ok));
  ioasid_virtio_translation t;
  ASSERT_EQ(ioasid_virtio_iommu_translate(d, 8, 0x10800, IOASID_VIRTIO_ACCESS_WRITE, &t), 0);
  EXPECT_EQ(t.phys, 0x800800u);
  EXPECT_EQ(t.iova_last, 0x1FFFFu);
  EXPECT_EQ(t.flags, IOASID_VIRTIO_IOMMU_MAP_F_READ | IOASID_VIRTIO_IOMMU_MAP_F_WRITE);
  EXPECT_EQ(t.bypass, 0u);
  // The MSI doorbell passes through.
  ASSERT_EQ(ioasid_virtio_iommu_translate(d, 8, 0xFEE00004, IOASID_VIRTIO_ACCESS_WRITE, &t), 0);
  EXPECT_EQ(t.phys, 0xFEE00004u);
  EXPECT_EQ(t.bypass, 1u);
  // MAP over the RESERVED region of an attached endpoint: S_INVAL.
  EXPECT_EQ(send(d, map_req(3, 0x10000000, 0x10000FFF, 0, vi::kMapFRead), 4).status(),
            vi::to_u8(vi::Status::inval));

  // UNMAP: the translation faults (R_MAPPING) and the fault is queued.
  ASSERT_EQ(send(d, unmap_req(3, 0x10000, 0x1FFFF), 4).status(), vi::to_u8(vi::Status::ok));
  std::memset(&t, 0x77, sizeof(t));
  const ioasid_virtio_translation untouched = t;
  EXPECT_EQ(ioasid_virtio_iommu_translate(d, 8, 0x10800, IOASID_VIRTIO_ACCESS_READ, &t), -ERANGE);
  EXPECT_EQ(std::memcmp(&t, &untouched, sizeof(t)), 0);
  ioasid_virtio_iommu_fault f;
  ASSERT_EQ(ioasid_virtio_iommu_pop_fault(d, &f), 0);
  EXPECT_EQ(f.reason, uint32_t{IOASID_VIRTIO_IOMMU_FAULT_R_MAPPING});
  EXPECT_EQ(f.flags, IOASID_VIRTIO_IOMMU_FAULT_F_READ | IOASID_VIRTIO_IOMMU_FAULT_F_ADDRESS);
  EXPECT_EQ(f.endpoint, 8u);
  EXPECT_EQ(f.address, 0x10800u);

  // DETACH: the endpoint has no domain (R_DOMAIN).
  ASSERT_EQ(send(d, detach_req(3, 8), 4).status(), vi::to_u8(vi::Status::ok));
  EXPECT_EQ(ioasid_virtio_iommu_translate(d, 8, 0x10800, IOASID_VIRTIO_ACCESS_READ, &t), -ENOENT);
  ASSERT_EQ(ioasid_virtio_iommu_pop_fault(d, &f), 0);
  EXPECT_EQ(f.reason, uint32_t{IOASID_VIRTIO_IOMMU_FAULT_R_DOMAIN});
  EXPECT_EQ(ioasid_virtio_iommu_pop_fault(d, &f), -ENOENT);  // empty
  EXPECT_EQ(faults_notified_, 2);

  // UNBIND_PASID and FREE_PASID: the PASID leaves the VM's set.
  ASSERT_EQ(send(d, bind_req(vi::ReqType::unbind_pasid, 8, pasid), 4).status(),
            vi::to_u8(vi::Status::ok));
  EXPECT_EQ(ioasid_virtio_iommu_host_pasid(d, 8, pasid, &host), -ENOENT);
  ASSERT_EQ(send(d, free_pasid_req(pasid), 4).status(), vi::to_u8(vi::Status::ok));
  EXPECT_FALSE(held(pasid));
  EXPECT_EQ(send(d, free_pasid_req(pasid), 4).status(), vi::to_u8(vi::Status::noent));

  ioasid_virtio_iommu_counters st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ASSERT_EQ(ioasid_virtio_iommu_stats(d, &st), 0);
  EXPECT_EQ(st.requests, 10u);
  EXPECT_EQ(st.ok, 8u);
  EXPECT_EQ(st.failed, 2u);
  EXPECT_EQ(st.pasid_allocs, 1u);
  EXPECT_EQ(st.pasid_frees, 1u);
  EXPECT_EQ(st.pasid_free_fails, 1u);
  EXPECT_EQ(st.pasid_binds, 1u);
  EXPECT_EQ(st.pasid_unbinds, 1u);
  EXPECT_EQ(st.attaches, 1u);
  EXPECT_EQ(st.detaches, 1u);
  EXPECT_EQ(st.maps, 1u);
  EXPECT_EQ(st.unmaps, 1u);
  EXPECT_EQ(st.translations, 4u);
  EXPECT_EQ(st.faults, 2u);
  EXPECT_EQ(st.domains, 0u);
  EXPECT_EQ(st.mappings, 0u);
  EXPECT_EQ(st.binds, 0u);
  ioasid_virtio_iommu_destroy(d);
}

TEST_F(CapiVirtioTest, MalformedAndUnnegotiatedRequests) {
  ioasid_virtio_iommu* d = make_device();
  // Nothing negotiated: the extension is S_UNSUPP, MAP too.
  Reply r = send(d, alloc_pasid_req());
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(r.used, 8u);
  EXPECT_EQ(r.status(), vi::to_u8(vi::Status::unsupp));
  EXPECT_EQ(le32_at(r.bytes.data()), vi::kPasidInvalid);
  EXPECT_EQ(send(d, map_req(1, 0, 0xFFF, 0, 1), 4).status(), vi::to_u8(vi::Status::unsupp));
  EXPECT_EQ(set_count(), 0u);
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, ioasid_virtio_iommu_features(d)), 0);

  // Fewer than 4 readable bytes, an unknown type: returned unwritten (used 0).
  const uint8_t head[2] = {0x80, 0};
  r.bytes.assign(8, std::byte{0xEE});
  ASSERT_EQ(ioasid_virtio_iommu_handle_request(d, head, 2, r.bytes.data(), 8, &r.used), 0);
  EXPECT_EQ(r.used, 0u);
  EXPECT_EQ(std::to_integer<int>(r.bytes[0]), 0xEE);
  vi::ReqAllocPasid unknown = alloc_pasid_req();
  unknown.head.type = 0x7F;
  EXPECT_EQ(send(d, unknown).used, 0u);
  // Too short (used 0) and too long (S_INVAL).
  EXPECT_EQ(send(d, alloc_pasid_req(), 8, 6).used, 0u);
  struct {
    vi::ReqAllocPasid req;
    uint8_t extra[4];
  } longer{alloc_pasid_req(), {}};
  EXPECT_EQ(send(d, longer, 8, readable_size<vi::ReqAllocPasid>() + 4).status(),
            vi::to_u8(vi::Status::inval));
  // A reserved field: S_INVAL; an inverted range: S_INVAL.
  vi::ReqFreePasid fr = free_pasid_req(1);
  fr.reserved.store(1);
  EXPECT_EQ(send(d, fr, 4).status(), vi::to_u8(vi::Status::inval));
  EXPECT_EQ(send(d, unmap_req(1, 0x2000, 0x1000), 4).status(), vi::to_u8(vi::Status::inval));
  // A writable buffer too small for the reply: used 0, nothing allocated.
  EXPECT_EQ(send(d, alloc_pasid_req(), 4).used, 0u);
  EXPECT_EQ(set_count(), 0u);

  ioasid_virtio_iommu_counters st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ASSERT_EQ(ioasid_virtio_iommu_stats(d, &st), 0);
  EXPECT_EQ(st.malformed[IOASID_VIRTIO_PARSE_NOT_NEGOTIATED], 2u);
  EXPECT_EQ(st.malformed[IOASID_VIRTIO_PARSE_NO_HEAD], 1u);
  EXPECT_EQ(st.malformed[IOASID_VIRTIO_PARSE_UNKNOWN_TYPE], 1u);
  EXPECT_EQ(st.malformed[IOASID_VIRTIO_PARSE_TOO_SHORT], 1u);
  EXPECT_EQ(st.malformed[IOASID_VIRTIO_PARSE_TOO_LONG], 1u);
  EXPECT_EQ(st.malformed[IOASID_VIRTIO_PARSE_RESERVED_NONZERO], 1u);
  EXPECT_EQ(st.malformed[IOASID_VIRTIO_PARSE_INVERTED_RANGE], 1u);
  EXPECT_EQ(st.reply_small, 1u);
  EXPECT_EQ(st.used_zero, 4u);

  // Argument checks.
  size_t used = 99;
  uint8_t out[8];
  EXPECT_EQ(ioasid_virtio_iommu_handle_request(nullptr, head, 2, out, 8, &used), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_handle_request(d, head, 2, out, 8, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_handle_request(d, nullptr, 2, out, 8, &used), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_handle_request(d, head, 2, nullptr, 8, &used), -EINVAL);
  EXPECT_EQ(used, 99u);
  // Empty buffers are a request like any other: returned unwritten.
  ASSERT_EQ(ioasid_virtio_iommu_handle_request(d, nullptr, 0, nullptr, 0, &used), 0);
  EXPECT_EQ(used, 0u);
  ioasid_virtio_iommu_destroy(d);
}

TEST_F(CapiVirtioTest, TranslateErrorsAndFaultQueue) {
  ioasid_virtio_iommu_config c = device_config();
  c.endpoints = endpoints_;
  c.endpoint_count = 2;
  c.fault_queue_depth = 2;
  ioasid_virtio_iommu* d = nullptr;
  ASSERT_EQ(ioasid_virtio_iommu_create(be_, &c, &d), 0);
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, ioasid_virtio_iommu_features(d)), 0);
  ASSERT_EQ(send(d, attach_req(1, 9), 4).status(), vi::to_u8(vi::Status::ok));
  ASSERT_EQ(send(d, map_req(1, 0, 0xFFF, 0x5000, vi::kMapFRead), 4).status(),
            vi::to_u8(vi::Status::ok));
  ioasid_virtio_translation t;
  ASSERT_EQ(ioasid_virtio_iommu_translate(d, 9, 0x10, IOASID_VIRTIO_ACCESS_READ, &t), 0);
  EXPECT_EQ(t.phys, 0x5010u);
  ASSERT_EQ(ioasid_virtio_iommu_translate(d, 9, 0x10, IOASID_VIRTIO_ACCESS_EXEC, &t), 0);
  EXPECT_EQ(ioasid_virtio_iommu_translate(d, 9, 0x10, IOASID_VIRTIO_ACCESS_WRITE, &t), -EPERM);
  // A RESERVED region of endpoint 8 faults even unattached; an unknown endpoint has no domain.
  EXPECT_EQ(ioasid_virtio_iommu_translate(d, 8, 0x10000010, IOASID_VIRTIO_ACCESS_READ, &t),
            -ERANGE);
  EXPECT_EQ(ioasid_virtio_iommu_translate(d, 1234, 0, IOASID_VIRTIO_ACCESS_READ, &t), -ENOENT);
  // Argument checks (no fault queued for them).
  EXPECT_EQ(ioasid_virtio_iommu_translate(d, 9, 0x10, 0, &t), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_translate(d, 9, 0x10, 3, &t), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_translate(d, 9, 0x10, IOASID_VIRTIO_ACCESS_READ, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_translate(nullptr, 9, 0x10, IOASID_VIRTIO_ACCESS_READ, &t),
            -EINVAL);

  // Depth 2: the third fault was dropped; the first two come out in order.
  ioasid_virtio_iommu_fault f;
  ASSERT_EQ(ioasid_virtio_iommu_pop_fault(d, &f), 0);
  EXPECT_EQ(f.flags, IOASID_VIRTIO_IOMMU_FAULT_F_WRITE | IOASID_VIRTIO_IOMMU_FAULT_F_ADDRESS);
  EXPECT_EQ(f.endpoint, 9u);
  EXPECT_EQ(f.reason, uint32_t{IOASID_VIRTIO_IOMMU_FAULT_R_MAPPING});
  ASSERT_EQ(ioasid_virtio_iommu_pop_fault(d, &f), 0);
  EXPECT_EQ(f.endpoint, 8u);
  std::memset(&f, 0x33, sizeof(f));
  const ioasid_virtio_iommu_fault untouched = f;
  EXPECT_EQ(ioasid_virtio_iommu_pop_fault(d, &f), -ENOENT);
  EXPECT_EQ(std::memcmp(&f, &untouched, sizeof(f)), 0);
  EXPECT_EQ(ioasid_virtio_iommu_pop_fault(d, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_pop_fault(nullptr, &f), -EINVAL);
  ioasid_virtio_iommu_counters st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ASSERT_EQ(ioasid_virtio_iommu_stats(d, &st), 0);
  EXPECT_EQ(st.faults, 3u);
  EXPECT_EQ(st.faults_dropped, 1u);
  EXPECT_EQ(st.translations, 5u);
  ioasid_virtio_iommu_destroy(d);
}

TEST_F(CapiVirtioTest, PerEndpointHostPasidsAndReset) {
  ioasid_virtio_iommu* d = make_device(IOASID_VIRTIO_IOMMU_CFG_PER_ENDPOINT);
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, ioasid_virtio_iommu_features(d)), 0);
  // Both endpoints use PASID 5: two host PASIDs of the VM's set.
  ASSERT_EQ(send(d, bind_req(vi::ReqType::bind_pasid, 8, 5), 4).status(),
            vi::to_u8(vi::Status::ok));
  ASSERT_EQ(send(d, bind_req(vi::ReqType::bind_pasid, 9, 5), 4).status(),
            vi::to_u8(vi::Status::ok));
  ioasid_t h8 = 0, h9 = 0;
  ASSERT_EQ(ioasid_virtio_iommu_host_pasid(d, 8, 5, &h8), 0);
  ASSERT_EQ(ioasid_virtio_iommu_host_pasid(d, 9, 5, &h9), 0);
  EXPECT_NE(h8, h9);
  EXPECT_TRUE(held(h8));
  EXPECT_TRUE(held(h9));
  EXPECT_EQ(set_count(), 2u);
  // No VM-wide PASID to ALLOC or FREE in this scope.
  EXPECT_EQ(send(d, alloc_pasid_req()).status(), vi::to_u8(vi::Status::unsupp));
  // Lookups of pairs that are not bound.
  ioasid_t out = 12345;
  EXPECT_EQ(ioasid_virtio_iommu_host_pasid(d, 8, 6, &out), -ENOENT);
  EXPECT_EQ(ioasid_virtio_iommu_host_pasid(d, 10, 5, &out), -ENOENT);
  EXPECT_EQ(out, 12345u);
  EXPECT_EQ(ioasid_virtio_iommu_host_pasid(d, 8, 5, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_host_pasid(nullptr, 8, 5, &out), -EINVAL);

  // Reset frees the host PASIDs it allocated and forgets the features.
  ASSERT_EQ(send(d, attach_req(1, 9), 4).status(), vi::to_u8(vi::Status::ok));
  ioasid_virtio_iommu_reset(d);
  EXPECT_EQ(set_count(), 0u);
  EXPECT_EQ(ioasid_virtio_iommu_negotiated_features(d), 0u);
  EXPECT_EQ(ioasid_virtio_iommu_host_pasid(d, 8, 5, &out), -ENOENT);
  ioasid_virtio_iommu_counters st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ASSERT_EQ(ioasid_virtio_iommu_stats(d, &st), 0);
  EXPECT_EQ(st.domains, 0u);
  EXPECT_EQ(st.endpoints_attached, 0u);
  EXPECT_EQ(st.binds, 0u);
  ioasid_virtio_iommu_reset(nullptr);  // ignored

  // Destroying the device drops binds made through it.
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, ioasid_virtio_iommu_features(d)), 0);
  ASSERT_EQ(send(d, bind_req(vi::ReqType::bind_pasid, 8, 7), 4).status(),
            vi::to_u8(vi::Status::ok));
  EXPECT_EQ(set_count(), 1u);
  ioasid_virtio_iommu_destroy(d);
  EXPECT_EQ(set_count(), 0u);
}

TEST_F(CapiVirtioTest, StatsSizeRules) {
  ioasid_virtio_iommu* d = make_device();
  ioasid_virtio_iommu_counters st;
  std::memset(&st, 0x5A, sizeof(st));
  st.size = sizeof(st) - 8;
  EXPECT_EQ(ioasid_virtio_iommu_stats(d, &st), -EINVAL);
  EXPECT_EQ(st.requests, 0x5A5A5A5A5A5A5A5Aull);
  struct Longer {
    ioasid_virtio_iommu_counters st;
    uint64_t future;
  } big;
  std::memset(&big, 0x5A, sizeof(big));
  big.st.size = sizeof(big);
  ASSERT_EQ(ioasid_virtio_iommu_stats(d, &big.st), 0);
  EXPECT_EQ(big.st.size, sizeof(big));
  EXPECT_EQ(big.st.requests, 0u);
  EXPECT_EQ(big.st.malformed[0], 0u);
  EXPECT_EQ(big.future, 0u);
  EXPECT_EQ(ioasid_virtio_iommu_stats(d, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_virtio_iommu_stats(nullptr, &big.st), -EINVAL);
  ioasid_virtio_iommu_destroy(d);
}

// ---- guest memory
// --------------------------------------------------------------------------------

TEST_F(CapiVirtioTest, GuestMemoryErrors) {
  EXPECT_EQ(ioasid_guest_memory_create(nullptr), -EINVAL);
  ioasid_guest_memory* m = nullptr;
  ASSERT_EQ(ioasid_guest_memory_create(&m), 0);
  std::vector<std::byte> buf(0x10000);
  EXPECT_EQ(ioasid_guest_memory_add(m, 0x1000, 0x1000, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_guest_memory_add(m, 0x1000, 0, buf.data()), -EINVAL);
  EXPECT_EQ(ioasid_guest_memory_add(m, UINT64_MAX - 0xFFF + 1, 0x1001, buf.data()), -EINVAL);
  EXPECT_EQ(ioasid_guest_memory_add(nullptr, 0x1000, 0x1000, buf.data()), -EINVAL);
  ASSERT_EQ(ioasid_guest_memory_add(m, UINT64_MAX - 0xFFF, 0x1000, buf.data()), 0);  // the top
  ASSERT_EQ(ioasid_guest_memory_add(m, 0x10000, 0x1000, buf.data()), 0);
  EXPECT_EQ(ioasid_guest_memory_add(m, 0x10800, 0x1000, buf.data() + 0x1000), -EINVAL);  // overlap
  for (uint64_t i = 2; i < 16; ++i) {
    ASSERT_EQ(ioasid_guest_memory_add(m, i << 20, 0x100, buf.data() + 0x100 * i), 0) << i;
  }
  EXPECT_EQ(ioasid_guest_memory_add(m, 17ull << 20, 0x100, buf.data()), -ENOSPC);
  ioasid_guest_memory_destroy(m);
  ioasid_guest_memory_destroy(nullptr);

  // memfd regions: a new one, and one mapped from a descriptor.
  ASSERT_EQ(ioasid_guest_memory_create(&m), 0);
  int fd = -1;
  void* host = nullptr;
  ASSERT_EQ(ioasid_guest_memory_add_memfd(m, 0x100000, 0x3000, &fd, &host), 0);
  ASSERT_GE(fd, 0);
  ASSERT_NE(host, nullptr);
  std::memcpy(host, "guest", 6);
  void* host2 = nullptr;
  ASSERT_EQ(ioasid_guest_memory_add_fd(m, 0x200000, 0x3000, fd, &host2), 0);
  EXPECT_NE(host2, host);
  EXPECT_STREQ(static_cast<const char*>(host2), "guest");  // the same file, shared
  EXPECT_EQ(ioasid_guest_memory_add_fd(m, 0x300000, 0x100000, fd, nullptr), -EINVAL);  // short
  EXPECT_EQ(ioasid_guest_memory_add_fd(m, 0x300000, 0x1000, -1, nullptr), -EBADF);
  EXPECT_EQ(ioasid_guest_memory_add_fd(m, 0x200800, 0x1000, fd, nullptr), -EINVAL);  // overlap
  EXPECT_EQ(ioasid_guest_memory_add_memfd(m, 0x100000, 0x1000, nullptr, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_guest_memory_add_memfd(m, 0x400000, 0, nullptr, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_guest_memory_add_memfd(nullptr, 0x400000, 0x1000, nullptr, nullptr), -EINVAL);

  // Frozen while a transport uses it.
  ioasid_virtio_iommu* d = make_device();
  ioasid_virtio_transport* t = nullptr;
  ASSERT_EQ(ioasid_virtio_transport_create(d, m, nullptr, &t), 0);
  EXPECT_EQ(ioasid_guest_memory_add(m, 0x500000, 0x100, buf.data()), -EBUSY);
  EXPECT_EQ(ioasid_guest_memory_add_memfd(m, 0x500000, 0x1000, nullptr, nullptr), -EBUSY);
  EXPECT_EQ(ioasid_guest_memory_add_fd(m, 0x500000, 0x1000, fd, nullptr), -EBUSY);
  ioasid_virtio_transport_destroy(t);
  EXPECT_EQ(ioasid_guest_memory_add(m, 0x500000, 0x100, buf.data()), 0);
  ioasid_virtio_iommu_destroy(d);
  ioasid_guest_memory_destroy(m);  // unmaps and closes the memfds (LSan / fd checks)
}

// ---- transport ---------------------------------------------------------------------------------

constexpr uint64_t kGpa = 0x4000'0000;
constexpr uint64_t kMem = 0x10000;
constexpr uint8_t kDrv = IOASID_VIRTIO_STATUS_ACKNOWLEDGE | IOASID_VIRTIO_STATUS_DRIVER;

struct Interrupts {
  std::vector<uint32_t> queues;
};
void record_interrupt(void* opaque, uint32_t queue) {
  static_cast<Interrupts*>(opaque)->queues.push_back(queue);
}

// A VM whose virtio-iommu runs over the C transport, and a guest driving it with the C++
// DriverQueue (the driver side of the rings, in the same guest memory).
class CapiVirtioTransportTest : public CapiVirtioTest {
 protected:
  void SetUp() override {
    CapiVirtioTest::SetUp();
    dev_ = make_device();
    buf_.assign(kMem, std::byte{0});
    ASSERT_EQ(ioasid_guest_memory_create(&mem_), 0);
    ASSERT_EQ(ioasid_guest_memory_add(mem_, kGpa, kMem, buf_.data()), 0);
    ASSERT_TRUE(guest_mem_.add_region({kGpa, kMem, buf_.data()}));
  }
  void TearDown() override {
    ioasid_virtio_transport_destroy(t_);
    ioasid_guest_memory_destroy(mem_);
    ioasid_virtio_iommu_destroy(dev_);
    CapiVirtioTest::TearDown();
  }
  void create(uint32_t flags = 0) {
    ioasid_virtio_transport_config c;
    std::memset(&c, 0, sizeof(c));
    c.size = sizeof(c);
    c.flags = flags;
    c.interrupt_fn = record_interrupt;
    c.interrupt_opaque = &irq_;
    c.kick_fn = record_interrupt;
    c.kick_opaque = &kicks_;
    ASSERT_EQ(ioasid_virtio_transport_create(dev_, mem_, &c, &t_), 0);
  }
  std::byte* at(uint64_t gpa) { return buf_.data() + (gpa - kGpa); }
  // The initialization sequence, then both queues: request queue at kGpa, event queue at +0x1000.
  void bring_up(uint64_t features = 0) {
    ASSERT_EQ(ioasid_virtio_transport_set_status(t_, 0), 0);
    ASSERT_EQ(ioasid_virtio_transport_set_status(t_, IOASID_VIRTIO_STATUS_ACKNOWLEDGE), 0);
    ASSERT_EQ(ioasid_virtio_transport_set_status(t_, kDrv), 0);
    if (features == 0) {
      features = ioasid_virtio_transport_device_features(t_) & ~bit(IOASID_VIRTIO_F_EVENT_IDX);
    }
    ASSERT_EQ(ioasid_virtio_transport_set_driver_features(t_, features), 0);
    ASSERT_EQ(ioasid_virtio_transport_set_status(t_, kDrv | IOASID_VIRTIO_STATUS_FEATURES_OK), 0);
    ASSERT_TRUE(ioasid_virtio_transport_get_status(t_) & IOASID_VIRTIO_STATUS_FEATURES_OK);
    req_layout_ = vio::contiguous_layout(kGpa, 64);
    evt_layout_ = vio::contiguous_layout(kGpa + 0x1000, 8);
    ASSERT_TRUE(reqq_.setup(guest_mem_, req_layout_, false));
    ASSERT_TRUE(evtq_.setup(guest_mem_, evt_layout_, false));
    ASSERT_EQ(ioasid_virtio_transport_set_queue(t_, 0, req_layout_.size, req_layout_.desc,
                                                req_layout_.avail, req_layout_.used),
              0);
    ASSERT_EQ(ioasid_virtio_transport_set_queue(t_, 1, evt_layout_.size, evt_layout_.desc,
                                                evt_layout_.avail, evt_layout_.used),
              0);
    ASSERT_EQ(ioasid_virtio_transport_set_status(
                  t_, kDrv | IOASID_VIRTIO_STATUS_FEATURES_OK | IOASID_VIRTIO_STATUS_DRIVER_OK),
              0);
    ASSERT_TRUE(ioasid_virtio_transport_get_status(t_) & IOASID_VIRTIO_STATUS_DRIVER_OK);
  }
  // One request chain in slot i: readable at kGpa + 0x4000 + 0x80 i, writable 0x40 after it.
  template <class T>
  uint16_t add(const T& req, uint32_t i, uint32_t wlen = 8) {
    const uint64_t r = kGpa + 0x4000 + 0x80ull * i;
    std::memcpy(at(r), &req, readable_size<T>());
    const std::array<vio::DriverQueue::Buffer, 2> chain{
        {{r, static_cast<uint32_t>(readable_size<T>()), false}, {r + 0x40, wlen, true}}};
    return reqq_.add(chain).value();
  }
  std::byte* reply(uint32_t i) { return at(kGpa + 0x4000 + 0x80ull * i + 0x40); }
  void kick() {
    if (reqq_.publish()) {
      ASSERT_EQ(ioasid_virtio_transport_notify(t_, 0), 0);
    }
  }

  ioasid_virtio_iommu* dev_ = nullptr;
  ioasid_guest_memory* mem_ = nullptr;
  ioasid_virtio_transport* t_ = nullptr;
  std::vector<std::byte> buf_;
  vio::GuestMemory guest_mem_;  // the guest's own view of the same memory
  vio::VirtqueueLayout req_layout_, evt_layout_;
  vio::DriverQueue reqq_, evtq_;
  Interrupts irq_, kicks_;
};

TEST_F(CapiVirtioTransportTest, CreateErrors) {
  ioasid_virtio_transport_config c;
  std::memset(&c, 0, sizeof(c));
  c.size = sizeof(c);
  ioasid_virtio_transport* t = nullptr;
  EXPECT_EQ(ioasid_virtio_transport_create(nullptr, mem_, &c, &t), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_create(dev_, nullptr, &c, &t), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_create(dev_, mem_, &c, nullptr), -EINVAL);
  c.size = 8;
  EXPECT_EQ(ioasid_virtio_transport_create(dev_, mem_, &c, &t), -EINVAL);
  struct Longer {
    ioasid_virtio_transport_config c;
    uint32_t future[2];
  } big;
  std::memset(&big, 0, sizeof(big));
  big.c.size = sizeof(big);
  big.future[0] = 1;
  EXPECT_EQ(ioasid_virtio_transport_create(dev_, mem_, &big.c, &t), -E2BIG);
  c.size = sizeof(c);
  c.flags = 1u << 3;
  EXPECT_EQ(ioasid_virtio_transport_create(dev_, mem_, &c, &t), -EINVAL);
  c.flags = 0;
  c.reserved0 = 1;
  EXPECT_EQ(ioasid_virtio_transport_create(dev_, mem_, &c, &t), -EINVAL);
  c.reserved0 = 0;
  for (uint32_t bad : {3u, 65536u, 48u}) {
    c.max_queue_size = bad;
    EXPECT_EQ(ioasid_virtio_transport_create(dev_, mem_, &c, &t), -EINVAL) << bad;
  }
  EXPECT_EQ(t, nullptr);
  c.max_queue_size = 32768;
  ASSERT_EQ(ioasid_virtio_transport_create(dev_, mem_, &c, &t), 0);
  EXPECT_EQ(ioasid_virtio_transport_queue_max_size(t, 0), 32768u);
  EXPECT_EQ(ioasid_virtio_transport_queue_max_size(t, 2), 0u);
  // One transport per device.
  ioasid_virtio_transport* t2 = nullptr;
  EXPECT_EQ(ioasid_virtio_transport_create(dev_, mem_, nullptr, &t2), -EBUSY);
  ioasid_virtio_transport_destroy(t);
  ASSERT_EQ(ioasid_virtio_transport_create(dev_, mem_, nullptr, &t2), 0);
  EXPECT_EQ(ioasid_virtio_transport_queue_max_size(t2, 1), 256u);  // the default
  // The defaults offer VERSION_1, INDIRECT_DESC and EVENT_IDX; the flags take the last two away.
  const uint64_t f = ioasid_virtio_transport_device_features(t2);
  EXPECT_EQ(f & ~bit(IOASID_VIRTIO_F_VERSION_1) & ~bit(IOASID_VIRTIO_F_INDIRECT_DESC) &
                ~bit(IOASID_VIRTIO_F_EVENT_IDX),
            ioasid_virtio_iommu_features(dev_));
  EXPECT_TRUE(f & bit(IOASID_VIRTIO_F_VERSION_1));
  ioasid_virtio_transport_destroy(t2);
  c.max_queue_size = 0;
  c.flags = IOASID_VIRTIO_TRANSPORT_NO_INDIRECT | IOASID_VIRTIO_TRANSPORT_NO_EVENT_IDX;
  ASSERT_EQ(ioasid_virtio_transport_create(dev_, mem_, &c, &t_), 0);
  EXPECT_EQ(ioasid_virtio_transport_device_features(t_),
            ioasid_virtio_iommu_features(dev_) | bit(IOASID_VIRTIO_F_VERSION_1));
  ioasid_virtio_transport_destroy(nullptr);

  // NULL transports.
  size_t done = 0;
  uint32_t fault = 0;
  EXPECT_EQ(ioasid_virtio_transport_get_status(nullptr), 0u);
  EXPECT_EQ(ioasid_virtio_transport_set_status(nullptr, 1), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_device_features(nullptr), 0u);
  EXPECT_EQ(ioasid_virtio_transport_set_driver_features(nullptr, 1), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_negotiated_features(nullptr), 0u);
  EXPECT_EQ(ioasid_virtio_transport_queue_max_size(nullptr, 0), 0u);
  EXPECT_EQ(ioasid_virtio_transport_set_queue(nullptr, 0, 8, kGpa, kGpa + 0x80, kGpa + 0x100),
            -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_notify(nullptr, 0), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_process(nullptr, 0, &done), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_process_pending(nullptr, &done), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_queue_fault(nullptr, 0, &fault), -EINVAL);
}

TEST_F(CapiVirtioTransportTest, StatusFeaturesAndQueueSetupRules) {
  create();
  const uint64_t all = ioasid_virtio_transport_device_features(t_);
  // Features before DRIVER: refused.
  EXPECT_EQ(ioasid_virtio_transport_set_driver_features(t_, all), -EBUSY);
  ASSERT_EQ(ioasid_virtio_transport_set_status(t_, IOASID_VIRTIO_STATUS_ACKNOWLEDGE), 0);
  ASSERT_EQ(ioasid_virtio_transport_set_status(t_, kDrv), 0);
  // The driver cannot set NEEDS_RESET, nor DRIVER_OK without FEATURES_OK.
  ASSERT_EQ(ioasid_virtio_transport_set_status(t_, kDrv | IOASID_VIRTIO_STATUS_NEEDS_RESET), 0);
  ASSERT_EQ(ioasid_virtio_transport_set_status(t_, kDrv | IOASID_VIRTIO_STATUS_DRIVER_OK), 0);
  EXPECT_EQ(ioasid_virtio_transport_get_status(t_), kDrv);
  // A queue before FEATURES_OK: -EBUSY.
  EXPECT_EQ(ioasid_virtio_transport_set_queue(t_, 0, 8, kGpa, kGpa + 0x80, kGpa + 0x100), -EBUSY);
  // FEATURES_OK without VERSION_1, or with what the device refuses, reads back clear.
  ASSERT_EQ(ioasid_virtio_transport_set_driver_features(t_, all & ~bit(IOASID_VIRTIO_F_VERSION_1)),
            0);
  ASSERT_EQ(ioasid_virtio_transport_set_status(t_, kDrv | IOASID_VIRTIO_STATUS_FEATURES_OK), 0);
  EXPECT_EQ(ioasid_virtio_transport_get_status(t_), kDrv);
  ASSERT_EQ(ioasid_virtio_transport_set_driver_features(
                t_, bit(IOASID_VIRTIO_F_VERSION_1) | bit(IOASID_VIRTIO_IOMMU_F_PASID_MAX_REQ)),
            0);
  ASSERT_EQ(ioasid_virtio_transport_set_status(t_, kDrv | IOASID_VIRTIO_STATUS_FEATURES_OK), 0);
  EXPECT_EQ(ioasid_virtio_transport_get_status(t_), kDrv);
  EXPECT_EQ(ioasid_virtio_transport_negotiated_features(t_), 0u);
  ASSERT_EQ(ioasid_virtio_transport_set_driver_features(t_, all), 0);
  ASSERT_EQ(ioasid_virtio_transport_set_status(t_, kDrv | IOASID_VIRTIO_STATUS_FEATURES_OK), 0);
  EXPECT_EQ(ioasid_virtio_transport_get_status(t_), kDrv | IOASID_VIRTIO_STATUS_FEATURES_OK);
  EXPECT_EQ(ioasid_virtio_transport_negotiated_features(t_), all);
  EXPECT_EQ(ioasid_virtio_iommu_negotiated_features(dev_), ioasid_virtio_iommu_features(dev_));
  // Features after FEATURES_OK: refused.
  EXPECT_EQ(ioasid_virtio_transport_set_driver_features(t_, 0), -EBUSY);
  // Queue layouts.
  EXPECT_EQ(ioasid_virtio_transport_set_queue(t_, 2, 8, kGpa, kGpa + 0x80, kGpa + 0x100), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_set_queue(t_, 0, 6, kGpa, kGpa + 0x80, kGpa + 0x100), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_set_queue(t_, 0, 512, kGpa, kGpa + 0x2000, kGpa + 0x3000),
            -EINVAL);  // above the maximum (256)
  EXPECT_EQ(ioasid_virtio_transport_set_queue(t_, 0, 8, kGpa + 8, kGpa + 0x80, kGpa + 0x100),
            -EINVAL);  // misaligned descriptor table
  EXPECT_EQ(ioasid_virtio_transport_set_queue(t_, 0, 8, kGpa + kMem, kGpa + 0x80, kGpa + 0x100),
            -EINVAL);  // outside guest memory
  uint32_t fault = 99;
  ASSERT_EQ(ioasid_virtio_transport_queue_fault(t_, 0, &fault), 0);
  EXPECT_EQ(fault, uint32_t{IOASID_VIRTQUEUE_BAD_LAYOUT});
  EXPECT_STREQ(ioasid_virtqueue_fault_name(fault), "bad_layout");
  EXPECT_EQ(ioasid_virtio_transport_queue_fault(t_, 2, &fault), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_queue_fault(t_, 0, nullptr), -EINVAL);
  ASSERT_EQ(ioasid_virtio_transport_set_queue(t_, 0, 8, kGpa, kGpa + 0x80, kGpa + 0x100), 0);
  ASSERT_EQ(ioasid_virtio_transport_queue_fault(t_, 0, &fault), 0);
  EXPECT_EQ(fault, uint32_t{IOASID_VIRTQUEUE_OK});
  ASSERT_EQ(ioasid_virtio_transport_set_status(
                t_, kDrv | IOASID_VIRTIO_STATUS_FEATURES_OK | IOASID_VIRTIO_STATUS_DRIVER_OK),
            0);
  // After DRIVER_OK: -EBUSY.
  EXPECT_EQ(ioasid_virtio_transport_set_queue(t_, 1, 8, kGpa, kGpa + 0x80, kGpa + 0x100), -EBUSY);
  // Other queue numbers.
  EXPECT_EQ(ioasid_virtio_transport_notify(t_, 2), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_process(t_, 2, nullptr), -EINVAL);

  ioasid_virtio_transport_counters st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ASSERT_EQ(ioasid_virtio_transport_stats(t_, &st), 0);
  EXPECT_EQ(st.features_refused, 2u);
  EXPECT_GE(st.status_refused, 5u);
  st.size = 8;
  EXPECT_EQ(ioasid_virtio_transport_stats(t_, &st), -EINVAL);
  EXPECT_EQ(ioasid_virtio_transport_stats(t_, nullptr), -EINVAL);
  EXPECT_STREQ(ioasid_virtqueue_fault_name(IOASID_VIRTQUEUE_DESC_ADDRESS), "desc_address");
  EXPECT_STREQ(ioasid_virtqueue_fault_name(12), "unknown");
}

TEST_F(CapiVirtioTransportTest, RequestsAndFaultEventsOverRealVirtqueues) {
  create();
  bring_up();
  // An event buffer for the driver's event queue.
  const std::array<vio::DriverQueue::Buffer, 1> ev{{{kGpa + 0x3000, 64, true}}};
  ASSERT_TRUE(evtq_.add(ev));
  evtq_.publish();
  ASSERT_EQ(ioasid_virtio_transport_notify(t_, 1), 0);  // nothing to report yet

  // ALLOC_PASID, then ATTACH + MAP in one kick.
  const uint16_t h0 = add(alloc_pasid_req(), 0);
  kick();
  auto u = reqq_.pop_used();
  ASSERT_TRUE(u);
  EXPECT_EQ(u->id, h0);
  ASSERT_EQ(u->len, 8u);
  EXPECT_EQ(std::to_integer<int>(reply(0)[4]), vi::to_u8(vi::Status::ok));
  const uint32_t pasid = le32_at(reply(0));
  EXPECT_TRUE(held(pasid));
  add(attach_req(2, 9), 1, 4);
  add(map_req(2, 0x1000, 0x1FFF, 0x9000, vi::kMapFRead), 2, 4);
  kick();
  for (int i = 0; i < 2; ++i) {
    u = reqq_.pop_used();
    ASSERT_TRUE(u);
    EXPECT_EQ(u->len, 4u);
  }
  EXPECT_EQ(std::to_integer<int>(reply(1)[0]), vi::to_u8(vi::Status::ok));
  EXPECT_EQ(std::to_integer<int>(reply(2)[0]), vi::to_u8(vi::Status::ok));
  ioasid_virtio_translation t;
  ASSERT_EQ(ioasid_virtio_iommu_translate(dev_, 9, 0x1004, IOASID_VIRTIO_ACCESS_READ, &t), 0);
  EXPECT_EQ(t.phys, 0x9004u);

  // A write fault goes to the event queue (interrupt on queue 1), and the C callback runs too.
  irq_.queues.clear();
  EXPECT_EQ(ioasid_virtio_iommu_translate(dev_, 9, 0x1004, IOASID_VIRTIO_ACCESS_WRITE, &t), -EPERM);
  EXPECT_EQ(faults_notified_, 1);
  auto e = evtq_.pop_used();
  ASSERT_TRUE(e);
  ASSERT_EQ(e->len, sizeof(vi::Fault));
  vi::Fault f;
  std::memcpy(&f, at(kGpa + 0x3000), sizeof(f));
  EXPECT_EQ(f.reason, vi::kFaultRMapping);
  EXPECT_EQ(f.flags.load(), vi::kFaultFWrite | vi::kFaultFAddress);
  EXPECT_EQ(f.endpoint.load(), 9u);
  EXPECT_EQ(f.address.load(), 0x1004u);
  ASSERT_FALSE(irq_.queues.empty());
  EXPECT_EQ(irq_.queues.back(), IOASID_VIRTIO_EVENT_QUEUE);
  ioasid_virtio_iommu_fault pf;
  EXPECT_EQ(ioasid_virtio_iommu_pop_fault(dev_, &pf), -ENOENT);  // the transport took it

  // FREE_PASID over the queue.
  add(free_pasid_req(pasid), 3, 4);
  kick();
  u = reqq_.pop_used();
  ASSERT_TRUE(u);
  EXPECT_EQ(std::to_integer<int>(reply(3)[0]), vi::to_u8(vi::Status::ok));
  EXPECT_FALSE(held(pasid));

  ioasid_virtio_transport_counters st;
  std::memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  ASSERT_EQ(ioasid_virtio_transport_stats(t_, &st), 0);
  EXPECT_EQ(st.requests, 4u);
  EXPECT_EQ(st.events, 1u);
  EXPECT_EQ(st.kicks, 4u);
  ioasid_virtqueue_counters qs;
  std::memset(&qs, 0, sizeof(qs));
  qs.size = sizeof(qs);
  ASSERT_EQ(ioasid_virtio_transport_queue_stats(t_, 0, &qs), 0);
  EXPECT_EQ(qs.chains, 4u);
  EXPECT_EQ(qs.used, 4u);
  ASSERT_EQ(ioasid_virtio_transport_queue_stats(t_, 1, &qs), 0);
  EXPECT_EQ(qs.used, 1u);
  EXPECT_EQ(ioasid_virtio_transport_queue_stats(t_, 2, &qs), -EINVAL);
  qs.size = 4;
  EXPECT_EQ(ioasid_virtio_transport_queue_stats(t_, 0, &qs), -EINVAL);

  // The driver's reset (status 0) resets the device too.
  ASSERT_EQ(ioasid_virtio_transport_set_status(t_, 0), 0);
  EXPECT_EQ(ioasid_virtio_transport_get_status(t_), 0u);
  EXPECT_EQ(ioasid_virtio_iommu_negotiated_features(dev_), 0u);
  EXPECT_EQ(ioasid_virtio_iommu_translate(dev_, 9, 0x1004, IOASID_VIRTIO_ACCESS_READ, &t), -ENOENT);
}

TEST_F(CapiVirtioTransportTest, BrokenQueueSetsNeedsReset) {
  create();
  bring_up();
  add(alloc_pasid_req(), 0);
  reqq_.publish();
  // The guest corrupts its avail idx: a jump of more than the queue size.
  const uint16_t bad = 5000;
  std::memcpy(at(req_layout_.avail + 2), &bad, 2);
  irq_.queues.clear();
  ASSERT_EQ(ioasid_virtio_transport_notify(t_, 0), 0);
  EXPECT_TRUE(ioasid_virtio_transport_get_status(t_) & IOASID_VIRTIO_STATUS_NEEDS_RESET);
  ASSERT_FALSE(irq_.queues.empty());
  EXPECT_EQ(irq_.queues.back(), IOASID_VIRTIO_CONFIG_INTERRUPT);
  uint32_t fault = 0;
  ASSERT_EQ(ioasid_virtio_transport_queue_fault(t_, 0, &fault), 0);
  EXPECT_EQ(fault, uint32_t{IOASID_VIRTQUEUE_AVAIL_IDX_JUMP});
  EXPECT_STREQ(ioasid_virtqueue_fault_name(fault), "avail_idx_jump");
  EXPECT_EQ(set_count(), 0u);  // nothing ran
  // The queue stays stopped until the driver resets.
  size_t done = 99;
  ASSERT_EQ(ioasid_virtio_transport_process(t_, 0, &done), 0);
  EXPECT_EQ(done, 0u);
  // Reset and bring up again: it works.
  bring_up();  // DriverQueue::setup zeroes the rings again
  EXPECT_FALSE(ioasid_virtio_transport_get_status(t_) & IOASID_VIRTIO_STATUS_NEEDS_RESET);
  ASSERT_EQ(ioasid_virtio_transport_queue_fault(t_, 0, &fault), 0);
  EXPECT_EQ(fault, uint32_t{IOASID_VIRTQUEUE_OK});
  add(alloc_pasid_req(), 0);
  kick();
  ASSERT_TRUE(reqq_.pop_used());
  EXPECT_EQ(set_count(), 1u);
}

TEST_F(CapiVirtioTransportTest, DeferredModeRunsOnProcessPending) {
  create(IOASID_VIRTIO_TRANSPORT_DEFERRED);
  bring_up();
  add(alloc_pasid_req(), 0);
  kicks_.queues.clear();
  kick();
  ASSERT_EQ(kicks_.queues.size(), 1u);  // recorded, and the kick callback told us
  EXPECT_EQ(kicks_.queues[0], IOASID_VIRTIO_REQUEST_QUEUE);
  EXPECT_FALSE(reqq_.pop_used());  // not processed yet
  size_t done = 0;
  ASSERT_EQ(ioasid_virtio_transport_process_pending(t_, &done), 0);
  EXPECT_EQ(done, 1u);
  ASSERT_TRUE(reqq_.pop_used());
  EXPECT_EQ(set_count(), 1u);
  ASSERT_EQ(ioasid_virtio_transport_process_pending(t_, nullptr), 0);  // nothing left
  // process() runs a queue directly.
  add(alloc_pasid_req(), 1);
  reqq_.publish();
  ASSERT_EQ(ioasid_virtio_transport_process(t_, 0, &done), 0);
  EXPECT_EQ(done, 1u);
  EXPECT_EQ(set_count(), 2u);
  // A remote device needs immediate mode.
  ioasid_virtio_remote* r = nullptr;
  EXPECT_EQ(ioasid_virtio_remote_create(t_, &r), -EINVAL);
}

// ---- remote device
// -------------------------------------------------------------------------------

// The guest process: maps the memfd, probes the device through the remote port, allocates five
// PASIDs and frees two through its own space, writes them to out_fd. Returns the failing step.
int remote_guest_main(int memfd, const ioasid_virtio_remote_fds& c, int out_fd) {
  auto region = vio::MemfdRegion::map(memfd, kMem);
  if (!region) return 10;
  vio::GuestMemory mem;
  if (!mem.add_region(region->at(kGpa))) return 11;
  vio::VirtioRemoteFds fds;
  fds.control = c.control;
  fds.interrupt = c.interrupt;
  fds.num_queues = c.num_queues;
  for (unsigned q = 0; q < vio::VirtioTransport::kMaxQueues; ++q) fds.kick[q] = c.kick[q];
  vio::VirtioRemotePort port(fds);
  auto guest = ioasid::Space::create({}).value();
  const ioasid::SetId gs = guest->create_set(1, 100).value();
  vio::VirtioIommuGuestDriver drv(port, mem, kGpa, {});
  if (!drv.register_allocator(*guest)) return 12;
  std::vector<ioasid::Id> ids;
  for (int i = 0; i < 5; ++i) {
    auto id = guest->alloc(gs, 1, 0xFFFFF, nullptr);
    if (!id) return 13;
    ids.push_back(*id);
  }
  for (int i = 0; i < 2; ++i) {
    if (!guest->free(gs, ids.back())) return 14;
    ids.pop_back();
  }
  const uint32_t n = static_cast<uint32_t>(ids.size());
  if (write(out_fd, &n, sizeof(n)) != sizeof(n)) return 15;
  if (write(out_fd, ids.data(), n * sizeof(ioasid::Id)) != static_cast<ssize_t>(n * 4)) return 16;
  drv.unregister_allocator();
  return 0;
}

TEST_F(CapiVirtioTest, RemoteGuestProcessOverMemfdAndEventfds) {
  ioasid_virtio_iommu* d = make_device();
  ioasid_guest_memory* m = nullptr;
  ASSERT_EQ(ioasid_guest_memory_create(&m), 0);
  int memfd = -1;
  void* host = nullptr;
  ASSERT_EQ(ioasid_guest_memory_add_memfd(m, kGpa, kMem, &memfd, &host), 0);
  ioasid_virtio_transport_config tc;
  std::memset(&tc, 0, sizeof(tc));
  tc.size = sizeof(tc);
  Interrupts irq;
  tc.interrupt_fn = record_interrupt;  // replaced by the eventfd while the remote device lives
  tc.interrupt_opaque = &irq;
  ioasid_virtio_transport* t = nullptr;
  ASSERT_EQ(ioasid_virtio_transport_create(d, m, &tc, &t), 0);

  EXPECT_EQ(ioasid_virtio_remote_create(nullptr, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_virtio_remote_create(t, nullptr), -EINVAL);
  ioasid_virtio_remote* r = nullptr;
  ASSERT_EQ(ioasid_virtio_remote_create(t, &r), 0);
  ioasid_virtio_remote* r2 = nullptr;
  EXPECT_EQ(ioasid_virtio_remote_create(t, &r2), -EBUSY);
  ioasid_virtio_remote_fds fds;
  ASSERT_EQ(ioasid_virtio_remote_guest_fds(r, &fds), 0);
  EXPECT_EQ(fds.num_queues, 2u);
  EXPECT_GE(fds.control, 0);
  EXPECT_GE(fds.interrupt, 0);
  EXPECT_GE(fds.kick[0], 0);
  EXPECT_GE(fds.kick[1], 0);
  EXPECT_EQ(fds.kick[2], -1);
  EXPECT_EQ(ioasid_virtio_remote_guest_fds(r, nullptr), -EINVAL);
  EXPECT_EQ(ioasid_virtio_remote_guest_fds(nullptr, &fds), -EINVAL);
  // Nobody talks: the idle timeout.
  EXPECT_EQ(ioasid_virtio_remote_run(r, 20), -ETIMEDOUT);
  EXPECT_EQ(ioasid_virtio_remote_run(nullptr, 20), -EINVAL);

  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipefd[0]);
    _exit(remote_guest_main(memfd, fds, pipefd[1]));
  }
  close(pipefd[1]);
  ioasid_virtio_remote_close_guest_control(r);
  EXPECT_EQ(ioasid_virtio_remote_run(r, 60'000), 0);  // until the guest exits
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  uint32_t n = 0;
  ASSERT_EQ(read(pipefd[0], &n, sizeof(n)), static_cast<ssize_t>(sizeof(n)));
  ASSERT_EQ(n, 3u);
  std::vector<ioasid_t> ids(n);
  ASSERT_EQ(read(pipefd[0], ids.data(), n * sizeof(ioasid_t)),
            static_cast<ssize_t>(n * sizeof(ioasid_t)));
  close(pipefd[0]);
  // Exactly the guest's PASIDs are in the VM's set on the host.
  EXPECT_EQ(set_count(), 3u);
  for (ioasid_t id : ids) EXPECT_TRUE(held(id)) << id;
  EXPECT_TRUE(irq.queues.empty());  // interrupts went to the eventfd

  // stop() makes run() return at once (even before it runs).
  ioasid_virtio_remote_stop(r);
  EXPECT_EQ(ioasid_virtio_remote_run(r, 60'000), 0);
  ioasid_virtio_remote_stop(nullptr);
  ioasid_virtio_remote_close_guest_control(nullptr);
  ioasid_virtio_remote_destroy(r);
  ioasid_virtio_remote_destroy(nullptr);
  // The transport has its C interrupt callback back: a broken queue raises it.
  ASSERT_EQ(ioasid_virtio_transport_set_status(t, 0), 0);
  ASSERT_EQ(ioasid_virtio_transport_set_status(t, kDrv), 0);
  ASSERT_EQ(
      ioasid_virtio_transport_set_driver_features(t, ioasid_virtio_transport_device_features(t)),
      0);
  ASSERT_EQ(ioasid_virtio_transport_set_status(t, kDrv | IOASID_VIRTIO_STATUS_FEATURES_OK), 0);
  ASSERT_EQ(ioasid_virtio_transport_set_queue(t, 0, 8, kGpa, kGpa + 0x80, kGpa + 0x100), 0);
  ASSERT_EQ(ioasid_virtio_transport_set_status(
                t, kDrv | IOASID_VIRTIO_STATUS_FEATURES_OK | IOASID_VIRTIO_STATUS_DRIVER_OK),
            0);
  ASSERT_EQ(ioasid_virtio_remote_create(t, &r), 0);  // one again, then gone again
  ioasid_virtio_remote_destroy(r);
  const uint16_t bad = 5000;  // avail idx jumps
  std::memcpy(static_cast<std::byte*>(host) + 0x80 + 2, &bad, 2);
  ASSERT_EQ(ioasid_virtio_transport_notify(t, 0), 0);
  EXPECT_TRUE(ioasid_virtio_transport_get_status(t) & IOASID_VIRTIO_STATUS_NEEDS_RESET);
  ASSERT_EQ(irq.queues.size(), 1u);
  EXPECT_EQ(irq.queues[0], IOASID_VIRTIO_CONFIG_INTERRUPT);
  ioasid_virtio_transport_destroy(t);
  ioasid_guest_memory_destroy(m);
  ioasid_virtio_iommu_destroy(d);
}

}  // namespace
