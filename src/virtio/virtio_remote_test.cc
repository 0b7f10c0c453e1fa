// SPDX-License-Identifier: Apache-2.0
// virtio_remote_test.cc: the guest in another process. The test forks a real guest process that
// maps the guest memory memfd itself and runs VirtioIommuGuestDriver (control over the socket
// pair, kicks and interrupts over eventfds, requests in the shared virtqueues) under a guest
// IOASID Space, against the IommuDevice served by VirtioRemoteDevice in the parent. The child
// reports the PASIDs it holds through a pipe; the parent checks them in the host space.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "ioasid/guest_memory.hpp"
#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"
#include "ioasid/virtio_iommu_device.hpp"
#include "ioasid/virtio_iommu_guest_driver.hpp"
#include "ioasid/virtio_iommu_transport.hpp"
#include "ioasid/virtio_remote.hpp"
#include "ioasid/virtqueue.hpp"

namespace ioasid::virtio {
namespace {

constexpr std::uint64_t kGpa = 0x1'0000'0000;
constexpr std::uint64_t kSize = 0x10000;

// The guest process: maps the memfd, probes the device, allocates through its own space, frees
// some, writes {count, ids...} to out_fd. Exit status: 0 on success, the failing step otherwise.
int guest_main(int memfd, const VirtioRemoteFds& fds, int out_fd, bool corrupt) {
  auto region = MemfdRegion::map(memfd, kSize);
  if (!region) return 10;
  GuestMemory mem;
  if (!mem.add_region(region->at(kGpa))) return 11;
  VirtioRemotePort port(fds);
  auto guest = Space::create({}).value();
  const SetId gs = guest->create_set(1, 100).value();
  VirtioIommuGuestDriver drv(port, mem, kGpa, {});
  if (!drv.register_allocator(*guest)) return 12;
  if (drv.max_pasid() != 0x1FFF) return 13;
  std::vector<Id> ids;
  for (int i = 0; i < 10; ++i) {
    auto id = guest->alloc(gs, 1, 0xFFFFF, nullptr);
    if (!id) return 14;
    ids.push_back(*id);
  }
  for (int i = 0; i < 3; ++i) {
    if (!guest->free(gs, ids.back())) return 15;
    ids.pop_back();
  }
  if (corrupt) {
    // A guest bug: the request queue's avail idx jumps. The device sets NEEDS_RESET; the driver
    // sees io_error, re-probes and carries on.
    const VirtqueueLayout l = contiguous_layout(kGpa, 64);
    std::uint16_t bad = 5000;
    std::memcpy(region->data() + (l.avail + 2 - kGpa), &bad, 2);
    port.notify(0);
    // The kick is handled asynchronously: wait (bounded) until the device has seen it.
    for (int i = 0; i < 100'000 && (port.get_status() & kStatusNeedsReset) == 0; ++i) {
    }
    if ((port.get_status() & kStatusNeedsReset) == 0) return 17;
    if (drv.alloc_pasid().error() != Errc::io_error) return 16;
    if (!drv.probe()) return 18;
    auto id = drv.alloc_pasid();
    if (!id) return 19;
    ids.push_back(*id);
  }
  std::uint32_t n = static_cast<std::uint32_t>(ids.size());
  if (write(out_fd, &n, sizeof(n)) != sizeof(n)) return 20;
  for (Id id : ids) {
    if (write(out_fd, &id, sizeof(id)) != sizeof(id)) return 21;
  }
  drv.unregister_allocator();
  return 0;
}

void run_remote(bool corrupt) {
  auto host = Space::create({}).value();
  const SetId set = host->create_set(9, 64).value();
  LocalBackend backend(*host, set);
  IommuDeviceConfig cfg;
  cfg.max_pasid = 0x1FFF;
  IommuDevice dev(backend, cfg);
  auto region = MemfdRegion::create(kSize).value();
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(region.at(kGpa)));
  VirtioIommuTransport t(dev, mem);
  auto remote = VirtioRemoteDevice::create(t.transport()).value();
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipefd[0]);
    _exit(guest_main(region.fd(), remote->guest_fds(), pipefd[1], corrupt));
  }
  close(pipefd[1]);
  remote->close_guest_control();
  EXPECT_TRUE(remote->run(std::chrono::seconds(60)));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::uint32_t n = 0;
  ASSERT_EQ(read(pipefd[0], &n, sizeof(n)), static_cast<ssize_t>(sizeof(n)));
  std::vector<Id> ids(n);
  ASSERT_EQ(read(pipefd[0], ids.data(), n * sizeof(Id)), static_cast<ssize_t>(n * sizeof(Id)));
  close(pipefd[0]);

  // Exactly the guest's PASIDs are held by the VM's set on the host.
  EXPECT_EQ(n, corrupt ? 8u : 7u);
  EXPECT_EQ(std::set<Id>(ids.begin(), ids.end()).size(), n);
  EXPECT_EQ(host->set_info(set).value().count, n);
  for (Id id : ids) {
    EXPECT_EQ(host->query(set, id).value().state, IdState::active) << id;
    EXPECT_LE(id, 0x1FFFu);
  }
  EXPECT_GT(remote->control_messages(), 10u);
  EXPECT_GE(t.transport().stats().requests, corrupt ? 14u : 13u);
  // The guest reset the device on its way out (its driver's destructor).
  EXPECT_EQ(t.transport().get_status(), 0u);
}

TEST(VirtioRemoteTest, GuestProcessAllocatesThroughMemfdAndEventfds) { run_remote(false); }

TEST(VirtioRemoteTest, GuestProcessRecoversFromNeedsReset) { run_remote(true); }

}  // namespace
}  // namespace ioasid::virtio
