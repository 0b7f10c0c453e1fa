// SPDX-License-Identifier: Apache-2.0
// virtqueue_test.cc: the split virtqueue on its own (no device type): round trips between
// DriverQueue and DeviceQueue, gather / scatter over several descriptors, indirect tables, the
// used length, ring wrap-around, notification suppression (flags and EVENT_IDX), and one test per
// broken-transport case (the queue faults, stops, and never touches memory outside the guest's).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include <array>
#include <cstring>
#include <vector>

#include "ioasid/guest_memory.hpp"
#include "ioasid/virtqueue.hpp"

namespace ioasid::virtio {
namespace {

constexpr std::uint64_t kBase = 0x10000;  // guest-physical base of the test memory
constexpr std::uint64_t kMemSize = 0x10000;
constexpr std::uint16_t kSize = 8;
constexpr std::uint64_t kBufs = kBase + 0x1000;   // request buffers
constexpr std::uint64_t kTable = kBase + 0x8000;  // indirect tables

std::span<const std::byte> bytes(const char* s) {
  return {reinterpret_cast<const std::byte*>(s), std::strlen(s)};
}

class VirtqueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    buf_.assign(kMemSize, std::byte{0});
    ASSERT_TRUE(mem_.add_region({kBase, kMemSize, buf_.data()}));
    layout_ = contiguous_layout(kBase, kSize);
    ASSERT_LE(contiguous_bytes(kSize), 0x1000u);
    ASSERT_TRUE(drv_.setup(mem_, layout_, event_idx_));
    ASSERT_TRUE(dev_.setup(mem_, layout_, {.indirect = true, .event_idx = event_idx_}));
  }
  std::byte* at(std::uint64_t gpa) { return buf_.data() + (gpa - kBase); }
  void put(std::uint64_t gpa, std::span<const std::byte> b) {
    std::memcpy(at(gpa), b.data(), b.size());
  }
  // Writes descriptor i of the ring's table directly (to build broken chains).
  void desc(std::uint64_t table, std::uint32_t i, std::uint64_t addr, std::uint32_t len,
            std::uint16_t flags, std::uint16_t next) {
    VirtqDesc d;
    d.addr.store(addr);
    d.len.store(len);
    d.flags.store(flags);
    d.next.store(next);
    std::memcpy(at(table + 16u * i), &d, sizeof(d));
  }
  // Makes head available by hand (avail ring slot idx, then idx + 1).
  void make_available(std::uint16_t head) {
    wire::le16 h{head};
    const std::uint16_t idx = avail_idx();
    std::memcpy(at(layout_.avail + 4 + 2u * (idx % kSize)), &h, 2);
    set_avail_idx(static_cast<std::uint16_t>(idx + 1));
  }
  std::uint16_t avail_idx() {
    wire::le16 v;
    std::memcpy(&v, at(layout_.avail + 2), 2);
    return v.load();
  }
  void set_avail_idx(std::uint16_t v) {
    wire::le16 w{v};
    std::memcpy(at(layout_.avail + 2), &w, 2);
  }
  std::uint16_t used_idx() {
    wire::le16 v;
    std::memcpy(&v, at(layout_.used + 2), 2);
    return v.load();
  }
  // The queue faulted with f and stays stopped; nothing was used.
  void expect_broken(QueueFault f) {
    DeviceQueue::Chain c;
    EXPECT_EQ(dev_.pop(c), DeviceQueue::Pop::broken);
    EXPECT_EQ(dev_.fault(), f) << to_string(dev_.fault());
    EXPECT_FALSE(dev_.ready());
    EXPECT_EQ(dev_.pop(c), DeviceQueue::Pop::broken);
    EXPECT_FALSE(dev_.push(c, 0));
    EXPECT_FALSE(dev_.publish());
    EXPECT_EQ(used_idx(), 0u);
  }

  bool event_idx_ = false;
  std::vector<std::byte> buf_;
  GuestMemory mem_;
  VirtqueueLayout layout_;
  DriverQueue drv_;
  DeviceQueue dev_;
};

TEST(GuestMemoryTest, BoundsAndOverflow) {
  std::vector<std::byte> a(256), b(256);
  GuestMemory m;
  ASSERT_TRUE(m.add_region({0x1000, 256, a.data()}));
  ASSERT_TRUE(m.add_region({0x2000, 256, b.data()}));
  EXPECT_EQ(m.add_region({0x10ff, 16, b.data()}).error(), Errc::invalid_argument);  // overlap
  EXPECT_EQ(m.add_region({0, 0, a.data()}).error(), Errc::invalid_argument);
  EXPECT_EQ(m.add_region({~0ull - 4, 16, a.data()}).error(), Errc::invalid_argument);
  EXPECT_EQ(m.translate(0x1000, 256), a.data());
  EXPECT_EQ(m.translate(0x10ff, 1), a.data() + 255);
  EXPECT_EQ(m.translate(0x10ff, 2), nullptr);  // crosses the end
  EXPECT_EQ(m.translate(0x1100, 0), nullptr);  // one past the end
  EXPECT_EQ(m.translate(0xfff, 2), nullptr);
  EXPECT_EQ(m.translate(0x1010, ~0ull), nullptr);
  EXPECT_EQ(m.translate(~0ull, ~0ull), nullptr);
  EXPECT_EQ(m.translate(0x2080, 16), b.data() + 0x80);
  std::array<std::byte, 4> out{};
  EXPECT_FALSE(m.read(0x20fe, out));
  EXPECT_TRUE(m.write(0x20fc, out));
}

// A memfd region cannot be shrunk under its mappings (sealed), and mapping a file shorter than the
// mapping is refused rather than left to raise SIGBUS on the first access past its end.
TEST(MemfdRegionTest, SealedAgainstShrinkingAndMapChecksTheSize) {
  auto r = MemfdRegion::create(8192);
  ASSERT_TRUE(r);
  EXPECT_NE(ftruncate(r->fd(), 4096), 0);
  EXPECT_EQ(errno, EPERM);
  auto same = MemfdRegion::map(r->fd(), 8192);
  ASSERT_TRUE(same);
  same->data()[100] = std::byte{7};
  EXPECT_EQ(r->data()[100], std::byte{7});  // one memory, two mappings
  EXPECT_EQ(MemfdRegion::map(r->fd(), 8193).error(), Errc::invalid_argument);
  EXPECT_EQ(MemfdRegion::map(r->fd(), 0).error(), Errc::invalid_argument);
  EXPECT_EQ(MemfdRegion::map(-1, 4096).error(), Errc::io_error);
  const int unsealed = memfd_create("short", MFD_CLOEXEC);
  ASSERT_GE(unsealed, 0);
  ASSERT_EQ(ftruncate(unsealed, 4096), 0);
  EXPECT_EQ(MemfdRegion::map(unsealed, 8192).error(), Errc::invalid_argument);
  close(unsealed);
}

TEST(VirtqueueLayoutTest, Validity) {
  EXPECT_TRUE(layout_valid(contiguous_layout(0, 1)));
  EXPECT_TRUE(layout_valid(contiguous_layout(0x1000, 32768)));
  EXPECT_FALSE(layout_valid(contiguous_layout(0, 0)));
  EXPECT_FALSE(layout_valid(contiguous_layout(0, 3)));        // not a power of 2
  EXPECT_FALSE(layout_valid(contiguous_layout(0x8, 8)));      // desc not 16-aligned
  EXPECT_FALSE(layout_valid({8, 0, 0x101, 0x200}));           // avail not 2-aligned
  EXPECT_FALSE(layout_valid({8, 0, 0x100, 0x202}));           // used not 4-aligned
  EXPECT_FALSE(layout_valid({8, ~0ull - 15, 0x100, 0x200}));  // wraps
  DeviceQueue q;
  std::vector<std::byte> b(64);
  GuestMemory m;
  ASSERT_TRUE(m.add_region({0, 64, b.data()}));
  EXPECT_EQ(q.setup(m, contiguous_layout(0, 8), {}).error(), Errc::invalid_argument);
  EXPECT_EQ(q.fault(), QueueFault::bad_layout);
}

TEST_F(VirtqueueTest, RoundTripGatherScatterAndUsedLength) {
  put(kBufs, bytes("hello, "));
  put(kBufs + 0x100, bytes("virt"));
  put(kBufs + 0x200, bytes("queue"));
  std::memset(at(kBufs + 0x300), 0xEE, 0x200);
  const std::array<DriverQueue::Buffer, 5> chain{{{kBufs, 7, false},
                                                  {kBufs + 0x100, 4, false},
                                                  {kBufs + 0x200, 5, false},
                                                  {kBufs + 0x300, 3, true},
                                                  {kBufs + 0x400, 10, true}}};
  const std::uint16_t head = drv_.add(chain).value();
  EXPECT_EQ(drv_.free_descriptors(), kSize - 5u);
  EXPECT_TRUE(drv_.publish());  // nobody asked for NO_NOTIFY

  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  EXPECT_EQ(c.head, head);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(c.readable.data()), c.readable.size()),
            "hello, virtqueue");
  EXPECT_EQ(c.writable.size(), 13u);
  EXPECT_EQ(c.writable_total, 13u);
  for (std::size_t i = 0; i < 5; ++i) c.writable[i] = std::byte{static_cast<unsigned char>(i + 1)};
  EXPECT_EQ(dev_.pop(c), DeviceQueue::Pop::broken);  // a second pop before push is a device bug
  EXPECT_EQ(dev_.fault(), QueueFault::used_overflow);
}

TEST_F(VirtqueueTest, ScatterSplitsAcrossWritableBuffers) {
  std::memset(at(kBufs + 0x300), 0xEE, 0x200);
  const std::array<DriverQueue::Buffer, 3> chain{
      {{kBufs, 4, false}, {kBufs + 0x300, 3, true}, {kBufs + 0x400, 10, true}}};
  const std::uint16_t head = drv_.add(chain).value();
  drv_.publish();
  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  for (std::size_t i = 0; i < c.writable.size(); ++i) {
    c.writable[i] = std::byte{static_cast<unsigned char>(i + 1)};
  }
  ASSERT_TRUE(dev_.push(c, 5));  // 3 bytes in the first buffer, 2 in the second
  EXPECT_EQ(used_idx(), 0u);     // not visible before publish
  EXPECT_TRUE(dev_.publish());
  const auto u = drv_.pop_used();
  ASSERT_TRUE(u);
  EXPECT_EQ(u->id, head);
  EXPECT_EQ(u->len, 5u);
  EXPECT_EQ(at(kBufs + 0x300)[0], std::byte{1});
  EXPECT_EQ(at(kBufs + 0x300)[2], std::byte{3});
  EXPECT_EQ(at(kBufs + 0x300)[3], std::byte{0xEE});  // outside the buffer: untouched
  EXPECT_EQ(at(kBufs + 0x400)[0], std::byte{4});
  EXPECT_EQ(at(kBufs + 0x400)[1], std::byte{5});
  EXPECT_EQ(at(kBufs + 0x400)[2], std::byte{0xEE});  // beyond the used length: untouched
  EXPECT_EQ(drv_.free_descriptors(), kSize);
  EXPECT_FALSE(drv_.pop_used());
}

TEST_F(VirtqueueTest, UsedLengthIsClampedToTheWritableBytes) {
  const std::array<DriverQueue::Buffer, 2> chain{{{kBufs, 4, false}, {kBufs + 0x300, 8, true}}};
  drv_.add(chain).value();
  drv_.publish();
  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  ASSERT_TRUE(dev_.push(c, 1000));
  dev_.publish();
  EXPECT_EQ(drv_.pop_used()->len, 8u);
}

TEST_F(VirtqueueTest, ZeroUsedLengthAndReadOnlyChain) {
  const std::array<DriverQueue::Buffer, 1> chain{{{kBufs, 4, false}}};
  drv_.add(chain).value();
  drv_.publish();
  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  EXPECT_TRUE(c.writable.empty());
  ASSERT_TRUE(dev_.push(c, 16));
  dev_.publish();
  EXPECT_EQ(drv_.pop_used()->len, 0u);
}

TEST_F(VirtqueueTest, WrapsAroundManyTimes) {
  for (std::uint32_t i = 0; i < 70'000; ++i) {  // used/avail idx wrap past 65535
    put(kBufs, std::as_bytes(std::span(&i, 1)));
    const std::array<DriverQueue::Buffer, 2> chain{{{kBufs, 4, false}, {kBufs + 0x10, 4, true}}};
    ASSERT_TRUE(drv_.add(chain));
    drv_.publish();
    DeviceQueue::Chain c;
    ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
    std::uint32_t v;
    std::memcpy(&v, c.readable.data(), 4);
    ASSERT_EQ(v, i);
    v = ~v;
    std::memcpy(c.writable.data(), &v, 4);
    ASSERT_TRUE(dev_.push(c, 4));
    dev_.publish();
    const auto u = drv_.pop_used();
    ASSERT_TRUE(u && u->len == 4);
    std::uint32_t back;
    std::memcpy(&back, at(kBufs + 0x10), 4);
    ASSERT_EQ(back, ~i);
  }
  EXPECT_EQ(dev_.stats().chains, 70'000u);
  EXPECT_EQ(drv_.free_descriptors(), kSize);
}

TEST_F(VirtqueueTest, BatchFillsTheRingAndDriverRunsOutOfDescriptors) {
  const std::array<DriverQueue::Buffer, 2> chain{{{kBufs, 4, false}, {kBufs + 0x10, 4, true}}};
  for (int i = 0; i < kSize / 2; ++i) ASSERT_TRUE(drv_.add(chain));
  EXPECT_EQ(drv_.add(chain).error(), Errc::exhausted);
  drv_.publish();
  DeviceQueue::Chain c;
  int n = 0;
  while (dev_.pop(c) == DeviceQueue::Pop::chain) {
    ASSERT_TRUE(dev_.push(c, 4));
    ++n;
  }
  EXPECT_EQ(n, kSize / 2);
  EXPECT_EQ(dev_.fault(), QueueFault::none);
  dev_.publish();
  int reaped = 0;
  while (drv_.pop_used()) ++reaped;
  EXPECT_EQ(reaped, kSize / 2);
  EXPECT_EQ(drv_.free_descriptors(), kSize);
}

TEST_F(VirtqueueTest, DriverRejectsReadableAfterWritable) {
  const std::array<DriverQueue::Buffer, 2> chain{{{kBufs, 4, true}, {kBufs + 0x10, 4, false}}};
  EXPECT_EQ(drv_.add(chain).error(), Errc::invalid_argument);
  EXPECT_EQ(drv_.free_descriptors(), kSize);
}

TEST_F(VirtqueueTest, IndirectTable) {
  put(kBufs, bytes("abcd"));
  desc(kTable, 0, kBufs, 2, kDescFNext, 1);
  desc(kTable, 1, kBufs + 2, 2, kDescFNext, 2);
  desc(kTable, 2, kBufs + 0x300, 6, kDescFWrite, 0);
  desc(layout_.desc, 5, kTable, 48, kDescFIndirect, 0);
  make_available(5);
  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  EXPECT_EQ(c.head, 5);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(c.readable.data()), c.readable.size()),
            "abcd");
  EXPECT_EQ(c.writable.size(), 6u);
  c.writable[5] = std::byte{0x42};
  ASSERT_TRUE(dev_.push(c, 6));
  dev_.publish();
  EXPECT_EQ(at(kBufs + 0x305)[0], std::byte{0x42});
  EXPECT_EQ(used_idx(), 1u);
}

TEST_F(VirtqueueTest, OversizedReadablePartIsFlaggedNotFatal) {
  ASSERT_TRUE(dev_.setup(mem_, layout_, {.max_readable = 16, .max_writable = 4}));
  const std::array<DriverQueue::Buffer, 3> chain{
      {{kBufs, 12, false}, {kBufs + 12, 12, false}, {kBufs + 0x300, 64, true}}};
  drv_.add(chain).value();
  drv_.publish();
  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  EXPECT_TRUE(c.oversized);
  EXPECT_TRUE(c.readable.empty());
  EXPECT_EQ(c.writable.size(), 4u);  // the scratch, not the chain's 64 bytes
  EXPECT_EQ(c.writable_total, 64u);
  ASSERT_TRUE(dev_.push(c, 0));
  EXPECT_TRUE(dev_.ready());
  EXPECT_EQ(dev_.stats().oversized, 1u);
}

TEST_F(VirtqueueTest, UnpopGivesTheChainBack) {
  const std::array<DriverQueue::Buffer, 1> chain{{{kBufs + 0x300, 24, true}}};
  const std::uint16_t head = drv_.add(chain).value();
  drv_.publish();
  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  dev_.unpop();
  EXPECT_TRUE(dev_.pending());
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  EXPECT_EQ(c.head, head);
  EXPECT_EQ(dev_.pop(c), DeviceQueue::Pop::broken);  // not pushed yet
}

// ---- broken transport ---------------------------------------------------------------------------

TEST_F(VirtqueueTest, BrokenLoop) {
  desc(layout_.desc, 0, kBufs, 4, kDescFNext, 1);
  desc(layout_.desc, 1, kBufs, 4, kDescFNext, 0);
  make_available(0);
  expect_broken(QueueFault::chain_too_long);
}

TEST_F(VirtqueueTest, BrokenSelfLoop) {
  desc(layout_.desc, 3, kBufs, 4, kDescFNext | kDescFWrite, 3);
  make_available(3);
  expect_broken(QueueFault::chain_too_long);
}

TEST_F(VirtqueueTest, BrokenLoopInsideIndirectTable) {
  desc(kTable, 0, kBufs, 4, kDescFNext, 1);
  desc(kTable, 1, kBufs, 4, kDescFNext, 0);
  desc(layout_.desc, 0, kTable, 32, kDescFIndirect, 0);
  make_available(0);
  expect_broken(QueueFault::chain_too_long);
}

TEST_F(VirtqueueTest, BrokenHeadIndexOutOfRange) {
  make_available(kSize);
  expect_broken(QueueFault::desc_index);
}

TEST_F(VirtqueueTest, BrokenNextIndexOutOfRange) {
  desc(layout_.desc, 0, kBufs, 4, kDescFNext, 0xFFFF);
  make_available(0);
  expect_broken(QueueFault::desc_index);
}

TEST_F(VirtqueueTest, BrokenNextIndexOutsideIndirectTable) {
  desc(kTable, 0, kBufs, 4, kDescFNext, 2);  // the table has 2 entries
  desc(kTable, 1, kBufs, 4, 0, 0);
  desc(layout_.desc, 0, kTable, 32, kDescFIndirect, 0);
  make_available(0);
  expect_broken(QueueFault::desc_index);
}

TEST_F(VirtqueueTest, BrokenAddressOutsideGuestMemory) {
  desc(layout_.desc, 0, kBase + kMemSize - 2, 4, 0, 0);  // straddles the end
  make_available(0);
  expect_broken(QueueFault::desc_address);
}

TEST_F(VirtqueueTest, BrokenAddressOverflow) {
  desc(layout_.desc, 0, ~0ull - 1, 0x10, kDescFWrite, 0);
  make_available(0);
  expect_broken(QueueFault::desc_address);
}

TEST_F(VirtqueueTest, BrokenIndirectTableOutsideGuestMemory) {
  desc(layout_.desc, 0, 0x100, 32, kDescFIndirect, 0);
  make_available(0);
  expect_broken(QueueFault::desc_address);
}

TEST_F(VirtqueueTest, BrokenWritableBeforeReadable) {
  desc(layout_.desc, 0, kBufs, 4, kDescFNext | kDescFWrite, 1);
  desc(layout_.desc, 1, kBufs + 0x10, 4, 0, 0);
  make_available(0);
  expect_broken(QueueFault::write_before_read);
}

TEST_F(VirtqueueTest, BrokenZeroLength) {
  desc(layout_.desc, 0, kBufs, 4, kDescFNext, 1);
  desc(layout_.desc, 1, kBufs + 0x10, 0, kDescFWrite, 0);
  make_available(0);
  expect_broken(QueueFault::zero_length);
}

TEST_F(VirtqueueTest, BrokenIndirectInIndirect) {
  desc(kTable + 0x100, 0, kBufs, 4, 0, 0);
  desc(kTable, 0, kTable + 0x100, 16, kDescFIndirect, 0);
  desc(layout_.desc, 0, kTable, 16, kDescFIndirect, 0);
  make_available(0);
  expect_broken(QueueFault::indirect_nested);
}

TEST_F(VirtqueueTest, BrokenIndirectWithNext) {
  desc(kTable, 0, kBufs, 4, 0, 0);
  desc(layout_.desc, 0, kTable, 16, kDescFIndirect | kDescFNext, 1);
  make_available(0);
  expect_broken(QueueFault::indirect_bad);
}

TEST_F(VirtqueueTest, BrokenIndirectBadLength) {
  desc(layout_.desc, 0, kTable, 24, kDescFIndirect, 0);
  make_available(0);
  expect_broken(QueueFault::indirect_bad);
}

TEST_F(VirtqueueTest, BrokenIndirectLargerThanTheQueue) {
  desc(layout_.desc, 0, kTable, 16u * (kSize + 1), kDescFIndirect, 0);
  make_available(0);
  expect_broken(QueueFault::indirect_bad);
}

TEST_F(VirtqueueTest, BrokenIndirectNotNegotiated) {
  ASSERT_TRUE(dev_.setup(mem_, layout_, {.indirect = false}));
  desc(kTable, 0, kBufs, 4, 0, 0);
  desc(layout_.desc, 0, kTable, 16, kDescFIndirect, 0);
  make_available(0);
  expect_broken(QueueFault::indirect_bad);
}

TEST_F(VirtqueueTest, BrokenAvailIdxJump) {
  set_avail_idx(kSize + 1);
  expect_broken(QueueFault::avail_idx_jump);
}

TEST_F(VirtqueueTest, ChainTooLongWithoutLoop) {
  // A queue of 8 cannot hold 9 distinct descriptors; an indirect table can hold at most 8.
  for (std::uint16_t i = 0; i < kSize; ++i) {
    desc(kTable, i, kBufs + 4u * i, 4, i + 1 < kSize ? kDescFNext : 0, i + 1);
  }
  desc(layout_.desc, 0, kTable, 16u * kSize, kDescFIndirect, 0);
  make_available(0);
  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);  // 8 entries: the limit, fine
  EXPECT_EQ(c.readable.size(), 32u);
  ASSERT_TRUE(dev_.push(c, 0));
  EXPECT_TRUE(dev_.publish());
  desc(kTable, kSize - 1, kBufs, 4, kDescFNext, 0);  // the last now links back: 9+
  make_available(0);
  EXPECT_EQ(dev_.pop(c), DeviceQueue::Pop::broken);
  EXPECT_EQ(dev_.fault(), QueueFault::chain_too_long);
  EXPECT_EQ(used_idx(), 1u);
}

TEST_F(VirtqueueTest, BrokenChainOver4GiB) {
  // Two writable buffers of 2 GiB each in a sparse 5 GiB region (never touched).
  constexpr std::uint64_t kHuge = 5ull << 30;
  void* p = mmap(nullptr, kHuge, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) GTEST_SKIP() << "no 5 GiB of address space";
  ASSERT_TRUE(mem_.add_region({1ull << 40, kHuge, static_cast<std::byte*>(p)}));
  desc(layout_.desc, 0, 1ull << 40, 0x8000'0000u, kDescFWrite | kDescFNext, 1);
  desc(layout_.desc, 1, (1ull << 40) + 0x8000'0000u, 0x8000'0000u, kDescFWrite, 0);
  make_available(0);
  expect_broken(QueueFault::chain_bytes);
  munmap(p, kHuge);
}

// The common shape (one readable, one writable descriptor: the fast path of the walk) over 4 GiB.
TEST_F(VirtqueueTest, BrokenRequestAndReplyOver4GiB) {
  constexpr std::uint64_t kHuge = 5ull << 30;
  void* p = mmap(nullptr, kHuge, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) GTEST_SKIP() << "no 5 GiB of address space";
  ASSERT_TRUE(mem_.add_region({1ull << 40, kHuge, static_cast<std::byte*>(p)}));
  desc(layout_.desc, 0, kBufs, 8, kDescFNext, 1);
  desc(layout_.desc, 1, 1ull << 40, 0xFFFF'FFF8u, kDescFWrite, 0);  // 8 + that = 2^32
  make_available(0);
  expect_broken(QueueFault::chain_bytes);
  munmap(p, kHuge);
}

// ---- notification suppression
// --------------------------------------------------------------------

TEST_F(VirtqueueTest, FlagsSuppressKicksAndInterrupts) {
  const std::array<DriverQueue::Buffer, 2> chain{{{kBufs, 4, false}, {kBufs + 0x10, 4, true}}};
  dev_.enable_kicks(false);
  drv_.add(chain).value();
  EXPECT_FALSE(drv_.publish());          // NO_NOTIFY set
  EXPECT_TRUE(dev_.enable_kicks(true));  // re-enabling reports the pending chain
  drv_.add(chain).value();
  EXPECT_TRUE(drv_.publish());

  EXPECT_FALSE(drv_.enable_interrupts(false));
  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  dev_.push(c, 4);
  EXPECT_FALSE(dev_.publish());               // NO_INTERRUPT set
  EXPECT_TRUE(drv_.enable_interrupts(true));  // and the entry is already there
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  dev_.push(c, 4);
  EXPECT_TRUE(dev_.publish());
  EXPECT_EQ(dev_.stats().interrupts_suppressed, 1u);
}

class VirtqueueEventIdxTest : public VirtqueueTest {
 protected:
  VirtqueueEventIdxTest() { event_idx_ = true; }
};

TEST_F(VirtqueueEventIdxTest, EventIndexesDecideKicksAndInterrupts) {
  const std::array<DriverQueue::Buffer, 2> chain{{{kBufs, 4, false}, {kBufs + 0x10, 4, true}}};
  // avail_event starts at 0: the first publish (0 -> 1) crosses it.
  drv_.add(chain).value();
  EXPECT_TRUE(drv_.publish());
  // The device has not asked again (avail_event still 0): 1 -> 2 does not cross it.
  drv_.add(chain).value();
  EXPECT_FALSE(drv_.publish());
  DeviceQueue::Chain c;
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  dev_.push(c, 4);
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  dev_.push(c, 4);
  EXPECT_FALSE(dev_.enable_kicks(true));  // avail_event = 2, nothing pending
  drv_.add(chain).value();
  EXPECT_TRUE(drv_.publish());  // 2 -> 3 crosses avail_event 2

  // used_event starts at 0: publishing 0 -> 2 crosses it.
  EXPECT_TRUE(dev_.publish());
  ASSERT_TRUE(drv_.pop_used());  // used_event = 1
  ASSERT_TRUE(drv_.pop_used());  // used_event = 2
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  dev_.push(c, 4);
  EXPECT_TRUE(dev_.publish());  // 2 -> 3 crosses used_event 2
  drv_.add(chain).value();
  drv_.publish();
  ASSERT_EQ(dev_.pop(c), DeviceQueue::Pop::chain);
  dev_.push(c, 4);
  EXPECT_FALSE(dev_.publish());  // the driver has not reaped: used_event still 2
}

TEST_F(VirtqueueTest, DriverIgnoresUsedEntriesNotInFlight) {
  VirtqUsedElem e;
  e.id.store(3);  // never added
  e.len.store(4);
  std::memcpy(at(layout_.used + 4), &e, sizeof(e));
  wire::le16 one{1};
  std::memcpy(at(layout_.used + 2), &one, 2);
  EXPECT_FALSE(drv_.pop_used());
  EXPECT_EQ(drv_.bad_used(), 1u);
  EXPECT_EQ(drv_.free_descriptors(), kSize);
}

}  // namespace
}  // namespace ioasid::virtio
