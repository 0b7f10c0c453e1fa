// SPDX-License-Identifier: Apache-2.0
// virtio_transport_test.cc: VirtioIommuTransport and VirtioIommuGuestDriver over a real IommuDevice
// and LocalBackend: the device status state machine and feature negotiation, queue setup rules,
// requests over the request queue (one per kick and batched), used lengths of bad requests, a
// broken transport setting NEEDS_RESET (and recovery by reset), fault events on the event queue,
// and the guest driver: max_pasid clipping, F_PASID_MAX_REQ, timeouts with late completions,
// NEEDS_RESET, hot-unplug.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "ioasid/guest_memory.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "ioasid/virtio_iommu_guest_driver.hpp"
#include "ioasid/virtio_iommu_transport.hpp"
#include "ioasid/virtqueue.hpp"
#include "virtio/request_parser.hpp"

namespace ioasid::virtio {
namespace {

constexpr std::uint64_t kGpa = 0x4000'0000;
constexpr std::uint64_t kMem = 0x10000;
constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }
constexpr std::uint8_t kDrv = kStatusAcknowledge | kStatusDriver;

IommuDeviceConfig device_config(std::uint32_t max_pasid = vi::kPasidMaxLimit) {
  IommuDeviceConfig c;
  c.endpoints = {{.id = 8, .resv = {}}, {.id = 9, .resv = {}}};
  c.max_pasid = max_pasid;
  return c;
}

// One VM: host set + backend, a virtio-iommu device over a transport, guest memory.
struct Rig {
  explicit Rig(IommuDeviceConfig cfg = device_config(), VirtioTransportOptions to = {}) {
    host = Space::create({}).value();
    set = host->create_set(7, 64).value();
    backend = std::make_unique<LocalBackend>(*host, set);
    dev = std::make_unique<IommuDevice>(*backend, std::move(cfg));
    buf.assign(kMem, std::byte{0});
    EXPECT_TRUE(mem.add_region({kGpa, kMem, buf.data()}));
    t = std::make_unique<VirtioIommuTransport>(*dev, mem, to);
  }
  std::byte* at(std::uint64_t gpa) { return buf.data() + (gpa - kGpa); }
  VirtioTransport& tr() { return t->transport(); }

  std::unique_ptr<Space> host;
  SetId set;
  std::unique_ptr<LocalBackend> backend;
  std::unique_ptr<IommuDevice> dev;
  std::vector<std::byte> buf;
  GuestMemory mem;
  std::unique_ptr<VirtioIommuTransport> t;
};

// A hand-driven guest on a Rig: negotiates, sets up the request queue with a DriverQueue and
// sends raw chains.
struct RawGuest {
  explicit RawGuest(Rig& r, std::uint64_t features = 0) : rig(r) {
    VirtioTransport& t = r.tr();
    t.set_status(0);
    t.set_status(kStatusAcknowledge);
    t.set_status(kDrv);
    if (features == 0) features = t.get_device_features() & ~bit(kFEventIdx);
    t.set_driver_features(features);
    t.set_status(kDrv | kStatusFeaturesOk);
    EXPECT_TRUE(t.get_status() & kStatusFeaturesOk);
    layout = contiguous_layout(kGpa, 128);
    EXPECT_TRUE(q.setup(r.mem, layout, false));
    EXPECT_TRUE(t.set_queue(0, layout));
    t.set_status(kDrv | kStatusFeaturesOk | kStatusDriverOk);
    EXPECT_TRUE(t.get_status() & kStatusDriverOk);
  }
  // Request i uses readable buffer at kGpa + 0x4000 + 0x80 * i and writable 0x40 later.
  std::uint16_t add(const Request& req, std::uint32_t i = 0, std::uint32_t wlen = 8) {
    const EncodedRequest e = encode_request(req);
    const std::uint64_t r = kGpa + 0x4000 + 0x80ull * i;
    std::memcpy(rig.at(r), e.bytes.data(), e.size);
    const std::array<DriverQueue::Buffer, 2> chain{
        {{r, static_cast<std::uint32_t>(e.size), false}, {r + 0x40, wlen, true}}};
    return q.add(chain).value();
  }
  std::byte* reply(std::uint32_t i = 0) { return rig.at(kGpa + 0x4000 + 0x80ull * i + 0x40); }
  void kick() {
    if (q.publish()) rig.tr().notify(0);
  }

  Rig& rig;
  VirtqueueLayout layout;
  DriverQueue q;
};

std::uint32_t le32_at(const std::byte* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- transport: status and features ------------------------------------------------------------

TEST(VirtioTransportTest, OffersVersion1AndTheDeviceFeatures) {
  Rig r;
  const std::uint64_t f = r.tr().get_device_features();
  EXPECT_TRUE(f & bit(kFVersion1));
  EXPECT_TRUE(f & bit(kFIndirectDesc));
  EXPECT_TRUE(f & bit(kFEventIdx));
  EXPECT_EQ(f & ~kTransportFeatureMask, r.dev->device_features());
}

TEST(VirtioTransportTest, StatusStateMachine) {
  Rig r;
  VirtioTransport& t = r.tr();
  const std::uint64_t all = t.get_device_features();
  t.set_driver_features(all);  // before DRIVER: ignored
  t.set_status(kStatusAcknowledge);
  t.set_status(kDrv | kStatusDriverOk);  // DRIVER_OK without FEATURES_OK: refused
  EXPECT_EQ(t.get_status(), kDrv);
  t.set_status(kStatusNeedsReset | kDrv);  // the driver cannot set NEEDS_RESET
  EXPECT_EQ(t.get_status(), kDrv);

  // Without VIRTIO_F_VERSION_1: FEATURES_OK reads back clear.
  t.set_driver_features(all & ~bit(kFVersion1));
  t.set_status(kDrv | kStatusFeaturesOk);
  EXPECT_EQ(t.get_status(), kDrv);
  // Not a subset of the offer.
  t.set_driver_features(all | bit(20));
  t.set_status(kDrv | kStatusFeaturesOk);
  EXPECT_EQ(t.get_status(), kDrv);
  // The device refuses F_PASID_MAX_REQ without F_PASID_ALLOC.
  t.set_driver_features(bit(kFVersion1) | vi::feature_bit(vi::kFPasidMaxReq));
  t.set_status(kDrv | kStatusFeaturesOk);
  EXPECT_EQ(t.get_status(), kDrv);
  EXPECT_EQ(t.stats().features_refused, 3u);

  t.set_driver_features(all);
  t.set_status(kDrv | kStatusFeaturesOk);
  EXPECT_EQ(t.get_status(), kDrv | kStatusFeaturesOk);
  EXPECT_EQ(t.negotiated_features(), all);
  EXPECT_EQ(r.dev->negotiated_features(), all & ~kTransportFeatureMask);
  t.set_driver_features(bit(kFVersion1));  // after FEATURES_OK: ignored
  EXPECT_EQ(t.negotiated_features(), all);
  t.set_status(kDrv);  // clearing FEATURES_OK: ignored
  EXPECT_EQ(t.get_status(), kDrv | kStatusFeaturesOk);

  t.set_status(0);  // reset
  EXPECT_EQ(t.get_status(), 0u);
  EXPECT_EQ(t.negotiated_features(), 0u);
  EXPECT_EQ(r.dev->negotiated_features(), 0u);
}

TEST(VirtioTransportTest, QueueSetupRules) {
  Rig r;
  VirtioTransport& t = r.tr();
  const VirtqueueLayout l = contiguous_layout(kGpa, 64);
  t.set_status(kDrv);
  EXPECT_FALSE(t.set_queue(0, l));  // before FEATURES_OK
  t.set_driver_features(t.get_device_features());
  t.set_status(kDrv | kStatusFeaturesOk);
  EXPECT_FALSE(t.set_queue(2, l));                                           // no such queue
  EXPECT_FALSE(t.set_queue(0, contiguous_layout(kGpa, 512)));                // above max_queue_size
  EXPECT_FALSE(t.set_queue(0, contiguous_layout(kGpa + kMem, 64)));          // outside guest memory
  EXPECT_FALSE(t.set_queue(0, {64, kGpa + 8, kGpa + 0x400, kGpa + 0x800}));  // misaligned
  EXPECT_TRUE(t.set_queue(0, l));
  t.set_status(kDrv | kStatusFeaturesOk | kStatusDriverOk);
  EXPECT_FALSE(t.set_queue(1, contiguous_layout(kGpa + 0x1000, 8)));  // after DRIVER_OK
}

// ---- transport: requests
// -------------------------------------------------------------------------

TEST(VirtioTransportTest, AllocAndFreeOverTheRequestQueue) {
  Rig r;
  RawGuest g(r);
  g.add(AllocPasidRequest{});
  g.kick();
  auto u = g.q.pop_used();
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, 8u);
  EXPECT_EQ(static_cast<std::uint8_t>(g.reply()[4]), vi::to_u8(vi::Status::ok));
  const Id pasid = le32_at(g.reply());
  EXPECT_EQ(r.host->query(r.set, pasid).value().state, IdState::active);

  g.add(FreePasidRequest{pasid}, 0, 4);
  g.kick();
  u = g.q.pop_used();
  ASSERT_TRUE(u);
  EXPECT_EQ(u->len, 4u);
  EXPECT_EQ(static_cast<std::uint8_t>(g.reply()[0]), vi::to_u8(vi::Status::ok));
  EXPECT_FALSE(r.host->query(r.set, pasid));
  EXPECT_EQ(r.tr().stats().requests, 2u);
}

TEST(VirtioTransportTest, SixtyFourRequestsInOneKick) {
  Rig r;
  std::atomic<int> irqs{0};
  r.tr().set_interrupt_handler([&](unsigned q) {
    if (q == 0) irqs.fetch_add(1);
  });
  RawGuest g(r);
  for (std::uint32_t i = 0; i < 64; ++i) g.add(AllocPasidRequest{}, i);
  g.kick();
  EXPECT_EQ(r.tr().stats().kicks, 1u);
  EXPECT_EQ(irqs.load(), 1);  // one publish for the whole batch
  std::vector<Id> ids;
  while (auto u = g.q.pop_used()) {
    EXPECT_EQ(u->len, 8u);
    ids.push_back(le32_at(g.reply(static_cast<std::uint32_t>(ids.size()))));
  }
  ASSERT_EQ(ids.size(), 64u);  // the set's quota is 64
  EXPECT_EQ(r.host->set_info(r.set).value().count, 64u);
  // The 65th is refused by the quota: S_NOMEM, device still running.
  g.add(AllocPasidRequest{});
  g.kick();
  ASSERT_TRUE(g.q.pop_used());
  EXPECT_EQ(static_cast<std::uint8_t>(g.reply()[4]), vi::to_u8(vi::Status::nomem));
  EXPECT_EQ(le32_at(g.reply()), vi::kPasidInvalid);
  EXPECT_FALSE(r.tr().get_status() & kStatusNeedsReset);
}

TEST(VirtioTransportTest, BadRequestsAreAnsweredNotFatal) {
  Rig r({}, {.max_readable = 64});
  RawGuest g(r);
  // Unknown type: used length 0.
  const std::uint64_t rb = kGpa + 0x4000;
  std::memset(r.at(rb), 0, 8);
  r.at(rb)[0] = std::byte{0x7f};
  std::array<DriverQueue::Buffer, 2> chain{{{rb, 8, false}, {rb + 0x40, 8, true}}};
  g.q.add(chain).value();
  // A readable part larger than the transport gathers: used length 0 without the model.
  chain[0].len = 200;
  g.q.add(chain).value();
  // A writable part too small for the reply: the device answers used length 0.
  g.add(AllocPasidRequest{}, 2, 4);
  g.kick();
  for (int i = 0; i < 3; ++i) {
    auto u = g.q.pop_used();
    ASSERT_TRUE(u);
    EXPECT_EQ(u->len, 0u) << i;
  }
  EXPECT_EQ(r.tr().stats().oversized, 1u);
  EXPECT_EQ(r.tr().get_status() & kStatusNeedsReset, 0);
  EXPECT_EQ(r.host->set_info(r.set).value().count, 0u);
}

TEST(VirtioTransportTest, BrokenTransportSetsNeedsResetUntilReset) {
  Rig r;
  std::atomic<int> config_irqs{0};
  r.tr().set_interrupt_handler([&](unsigned q) {
    if (q == kConfigInterrupt) config_irqs.fetch_add(1);
  });
  RawGuest g(r);
  g.add(AllocPasidRequest{}, 0);
  // A second chain whose descriptor loops onto itself.
  const std::uint16_t h = g.add(AllocPasidRequest{}, 1);
  VirtqDesc d;
  std::memcpy(&d, r.at(g.layout.desc + 16u * h), 16);
  d.flags.store(kDescFNext);
  d.next.store(h);
  std::memcpy(r.at(g.layout.desc + 16u * h), &d, 16);
  g.add(AllocPasidRequest{}, 2);
  g.kick();
  EXPECT_TRUE(r.tr().get_status() & kStatusNeedsReset);
  EXPECT_EQ(r.tr().queue_fault(0), QueueFault::chain_too_long);
  EXPECT_EQ(config_irqs.load(), 1);
  // The chain before the broken one was answered; nothing after it.
  ASSERT_TRUE(g.q.pop_used());
  EXPECT_FALSE(g.q.pop_used());
  EXPECT_EQ(r.host->set_info(r.set).value().count, 1u);
  // More kicks do nothing.
  g.add(AllocPasidRequest{}, 3);
  g.kick();
  r.tr().notify(0);
  EXPECT_EQ(r.host->set_info(r.set).value().count, 1u);
  // The driver echoing NEEDS_RESET back does not clear it; only a reset does.
  r.tr().set_status(r.tr().get_status());
  EXPECT_TRUE(r.tr().get_status() & kStatusNeedsReset);
  RawGuest again(r);  // reset and re-initialise
  EXPECT_FALSE(r.tr().get_status() & kStatusNeedsReset);
  EXPECT_EQ(r.tr().queue_fault(0), QueueFault::none);
  again.add(AllocPasidRequest{});
  again.kick();
  ASSERT_TRUE(again.q.pop_used());
  EXPECT_EQ(static_cast<std::uint8_t>(again.reply()[4]), vi::to_u8(vi::Status::ok));
}

TEST(VirtioTransportTest, NothingRunsBeforeDriverOkOrAfterFailed) {
  Rig r;
  RawGuest g(r);
  r.tr().set_status(kDrv | kStatusFeaturesOk | kStatusDriverOk | kStatusFailed);
  g.add(AllocPasidRequest{});
  g.kick();
  EXPECT_FALSE(g.q.pop_used());
  EXPECT_EQ(r.tr().process_queue(0), 0u);
}

// ---- guest driver
// ---------------------------------------------------------------------------------

constexpr std::uint64_t kArea = kGpa + 0x8000;

TEST(VirtioIommuGuestDriverTest, ProbeNegotiatesAndReadsMaxPasid) {
  Rig r(device_config(0x3FF));
  VirtioIommuGuestDriver drv(r.t->port(), r.mem, kArea, {});
  ASSERT_LE(VirtioIommuGuestDriver::area_bytes({}), 0x1000u);
  ASSERT_TRUE(drv.probe());
  EXPECT_TRUE(drv.ready());
  EXPECT_TRUE(drv.pasid_capable());
  EXPECT_EQ(drv.max_pasid(), 0x3FFu);
  EXPECT_EQ(drv.config().max_pasid.load(), 0x3FFu);
  const std::uint64_t f = drv.negotiated_features();
  EXPECT_TRUE(f & bit(kFVersion1));
  EXPECT_TRUE(f & bit(kFEventIdx));
  EXPECT_TRUE(f & vi::feature_bit(vi::kFPasidAlloc));
  EXPECT_TRUE(f & vi::feature_bit(vi::kFPasidMaxReq));
  EXPECT_EQ(r.tr().get_status(), kDrv | kStatusFeaturesOk | kStatusDriverOk);
  const Id id = drv.alloc_pasid().value();
  EXPECT_GE(id, 1u);
  EXPECT_LE(id, 0x3FFu);
  EXPECT_TRUE(drv.free_pasid(id));
  EXPECT_EQ(drv.free_pasid(id).error(), Errc::not_found);
  EXPECT_EQ(drv.stats().free_errors, 1u);
}

TEST(VirtioIommuGuestDriverTest, NoPasidExtensionMeansNoAllocator) {
  Rig r(device_config(0));  // max_pasid 0: the device offers no PASID bits
  auto guest = Space::create({}).value();
  VirtioIommuGuestDriver drv(r.t->port(), r.mem, kArea, {});
  EXPECT_EQ(drv.register_allocator(*guest).error(), Errc::unsupported);
  EXPECT_TRUE(drv.ready());  // the device works for everything else
  EXPECT_FALSE(drv.pasid_capable());
  EXPECT_EQ(drv.alloc_pasid().error(), Errc::unsupported);
  EXPECT_TRUE(drv.attach(1, 8));
}

TEST(VirtioIommuGuestDriverTest, AllocatorClipsToMaxPasidAndUsesTheRequestLimit) {
  Rig r(device_config(100));
  auto guest = Space::create({}).value();
  VirtioIommuGuestDriver drv(r.t->port(), r.mem, kArea, {});
  const SetId gs = guest->create_set(1, 1000).value();
  ASSERT_TRUE(drv.register_allocator(*guest));
  // [1, 0xFFFFF] is clipped to [1, 100] by config.max_pasid.
  const Id a = guest->alloc(gs, 1, 0xFFFFF, nullptr).value();
  EXPECT_LE(a, 100u);
  // [1, 3]: the request carries max_pasid 3; the device answers NOMEM once 1..3 are taken.
  std::vector<Id> small;
  for (int i = 0; i < 2; ++i) small.push_back(guest->alloc(gs, 1, 3, nullptr).value());
  for (Id id : small) EXPECT_LE(id, 3u);
  EXPECT_EQ(guest->alloc(gs, 1, 3, nullptr).error(), Errc::exhausted);
  EXPECT_EQ(drv.stats().alloc_nomem, 1u);
  // [200, 300] lies above max_pasid: refused without a request.
  const std::uint64_t before = drv.stats().requests;
  EXPECT_EQ(guest->alloc(gs, 200, 300, nullptr).error(), Errc::exhausted);
  EXPECT_EQ(drv.stats().requests, before);
  EXPECT_EQ(drv.stats().range_refusals, 1u);
  EXPECT_EQ(r.host->set_info(r.set).value().count, 3u);
  ASSERT_TRUE(guest->free(gs, a));
  EXPECT_FALSE(r.host->query(r.set, a));
}

TEST(VirtioIommuGuestDriverTest, WithoutMaxReqTheSpaceRejectsAnswersAboveTheRange) {
  Rig r(device_config(100));
  auto guest = Space::create({}).value();
  VirtioIommuGuestDriverOptions o;
  o.wanted_features &= ~vi::feature_bit(vi::kFPasidMaxReq);
  VirtioIommuGuestDriver drv(r.t->port(), r.mem, kArea, o);
  const SetId gs = guest->create_set(1, 1000).value();
  ASSERT_TRUE(drv.register_allocator(*guest));
  EXPECT_FALSE(drv.negotiated_features() & vi::feature_bit(vi::kFPasidMaxReq));
  EXPECT_EQ(drv.alloc_pasid(5).error(), Errc::unsupported);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(guest->alloc(gs, 1, 3, nullptr));
  // The device answers 4, outside [1, 3]: the guest space hands it back (a FREE_PASID).
  EXPECT_FALSE(guest->alloc(gs, 1, 3, nullptr));
  EXPECT_EQ(drv.stats().frees, 1u);
  EXPECT_EQ(r.host->set_info(r.set).value().count, 3u);
}

TEST(VirtioIommuGuestDriverTest, LateAllocIsFreedNotTakenForTheNextAnswer) {
  Rig r(device_config(), {.deferred_notify = true});
  std::atomic<bool> stalled{true};
  r.tr().set_kick_handler([&](unsigned) {
    if (!stalled.load()) r.tr().process_pending();
  });
  VirtioIommuGuestDriverOptions o;
  o.timeout = std::chrono::milliseconds(1);
  VirtioIommuGuestDriver drv(r.t->port(), r.mem, kArea, o);
  stalled = false;
  ASSERT_TRUE(drv.probe());
  const Id first = drv.alloc_pasid().value();
  stalled = true;
  EXPECT_EQ(drv.alloc_pasid().error(), Errc::timed_out);  // nobody processes the queue
  EXPECT_EQ(drv.stats().timeouts, 1u);
  // The device gets to it later: the host allocated a PASID nobody received.
  r.tr().process_pending();
  const Id late = first + 1;
  EXPECT_TRUE(r.host->query(r.set, late));
  stalled = false;
  // The next request first drains the late answer and frees its PASID.
  const Id next = drv.alloc_pasid().value();
  EXPECT_EQ(drv.stats().late_completions, 1u);
  EXPECT_EQ(drv.stats().late_allocs_freed, 1u);
  EXPECT_EQ(next, late);  // lowest free again, and not the stale answer taken twice
  EXPECT_EQ(r.host->set_info(r.set).value().count, 2u);
}

TEST(VirtioIommuGuestDriverTest, StillOutstandingRequestFailsTheNextOne) {
  Rig r(device_config(), {.deferred_notify = true});
  std::atomic<bool> stalled{false};
  r.tr().set_kick_handler([&](unsigned) {
    if (!stalled.load()) r.tr().process_pending();
  });
  VirtioIommuGuestDriverOptions o;
  o.timeout = std::chrono::milliseconds(1);
  VirtioIommuGuestDriver drv(r.t->port(), r.mem, kArea, o);
  ASSERT_TRUE(drv.probe());
  stalled = true;
  EXPECT_EQ(drv.alloc_pasid().error(), Errc::timed_out);
  EXPECT_EQ(drv.free_pasid(1).error(), Errc::timed_out);  // the first is still out there
  EXPECT_EQ(drv.stats().requests, 1u);                    // and nothing else was sent
  stalled = false;
  r.tr().process_pending();
  EXPECT_TRUE(drv.alloc_pasid());
  EXPECT_EQ(drv.stats().late_allocs_freed, 1u);
}

TEST(VirtioIommuGuestDriverTest, NeedsResetFailsRequestsUntilProbe) {
  Rig r;
  VirtioIommuGuestDriver drv(r.t->port(), r.mem, kArea, {});
  ASSERT_TRUE(drv.probe());
  // Corrupt the request queue's avail idx (a guest bug): the device resets the queue.
  const VirtqueueLayout l = contiguous_layout(kArea, 64);
  wire::le16 bad{1000};
  std::memcpy(r.at(l.avail + 2), &bad, 2);
  r.tr().notify(0);
  EXPECT_TRUE(r.tr().get_status() & kStatusNeedsReset);
  EXPECT_EQ(drv.alloc_pasid().error(), Errc::io_error);
  EXPECT_FALSE(drv.ready());
  ASSERT_TRUE(drv.probe());
  EXPECT_TRUE(drv.alloc_pasid());
}

TEST(VirtioIommuGuestDriverTest, FaultEventsReachTheDriver) {
  Rig r;
  VirtioIommuGuestDriver drv(r.t->port(), r.mem, kArea, {});
  ASSERT_TRUE(drv.probe());
  ASSERT_TRUE(drv.attach(1, 8));
  ASSERT_TRUE(drv.map(1, 0x10000, 0x1ffff, 0x80000, vi::kMapFRead));
  EXPECT_EQ(r.dev->translate(8, 0x10010, Access::read).value().phys, 0x80010u);
  EXPECT_FALSE(drv.pop_event());
  EXPECT_FALSE(r.dev->translate(8, 0x30000, Access::read));  // no mapping: a fault event
  EXPECT_FALSE(r.dev->translate(9, 0x1000, Access::write));  // not attached
  auto e = drv.pop_event();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->reason, vi::kFaultRMapping);
  EXPECT_EQ(e->endpoint, 8u);
  EXPECT_EQ(e->address, 0x30000u);
  e = drv.pop_event();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->reason, vi::kFaultRDomain);
  EXPECT_EQ(e->endpoint, 9u);
  EXPECT_FALSE(drv.pop_event());
  // More faults than event buffers: the rest wait in the device until buffers come back.
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(r.dev->translate(8, 0x40000, Access::read));
  int n = 0;
  while (drv.pop_event()) ++n;
  EXPECT_EQ(n, 20);
  EXPECT_TRUE(drv.unmap(1, 0x10000, 0x1ffff));
  EXPECT_TRUE(drv.detach(1, 8));
}

TEST(VirtioIommuGuestDriverTest, HotUnplugHandsOverToTheNextDevice) {
  Rig r;
  auto guest = Space::create({}).value();
  // A second device of the same VM (same backend) in the same guest memory.
  IommuDevice dev2(*r.backend, device_config());
  VirtioIommuTransport t2(dev2, r.mem);
  VirtioIommuGuestDriver d0(r.t->port(), r.mem, kArea, {});
  VirtioIommuGuestDriver d1(t2.port(), r.mem, kArea + 0x1000, {});
  const SetId gs = guest->create_set(1, 1000).value();
  ASSERT_TRUE(d0.register_allocator(*guest));
  ASSERT_TRUE(d1.register_allocator(*guest));
  EXPECT_EQ(d0.register_allocator(*guest).error(), Errc::exists);
  EXPECT_EQ(guest->stats().allocator_groups, 1u);
  std::vector<Id> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(guest->alloc(gs, 1, 0xFFFFF, nullptr).value());
  EXPECT_EQ(d0.stats().allocs, 3u);
  EXPECT_EQ(d1.stats().requests, 0u);
  d0.unregister_allocator();
  EXPECT_FALSE(d0.registered());
  ASSERT_TRUE(guest->free(gs, ids[0]));  // allocated through d0, freed through d1
  EXPECT_EQ(d1.stats().frees, 1u);
  EXPECT_FALSE(r.host->query(r.set, ids[0]));
  ids.push_back(guest->alloc(gs, 1, 0xFFFFF, nullptr).value());
  EXPECT_EQ(d1.stats().allocs, 1u);
  EXPECT_EQ(guest->stats().orphaned_ids, 0u);
  EXPECT_TRUE(guest->check_invariants());
}

}  // namespace
}  // namespace ioasid::virtio
