// SPDX-License-Identifier: Apache-2.0
// capi_daemon_test.cc: the ioasid.h backend calls and device models over a struct ioasid_backend
// whose PASIDs live in a real ioasidd (a child process, ioasid/client.h): query, references, SPID
// lookup and set info answer as for a local backend, and a virtio-iommu device allocates from the
// daemon through handle_request.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "daemon/test_daemon.hpp"
#include "ioasid/client.h"
#include "ioasid/ioasid.h"

namespace {

using ioasid::testing::DaemonProcess;

class CapiDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(d_.start());
    ioasid_daemon_config c{};
    c.size = sizeof c;
    path_ = d_.socket();
    c.socket_path = path_.c_str();
    c.vm_token = 90;
    c.quota = 8;
    c.timeout_ms = 20000;  // a hung daemon fails the test instead of hanging it
    ASSERT_EQ(ioasid_backend_daemon_create(&c, &be_), 0);
  }
  void TearDown() override { ioasid_backend_destroy(be_); }

  DaemonProcess d_;
  std::string path_;
  ioasid_backend* be_ = nullptr;
};

TEST_F(CapiDaemonTest, EveryBackendCall) {
  ioasid_t id = 0;
  ASSERT_EQ(ioasid_backend_alloc(be_, 1, 0xFFFFF, &id), 0);
  ioasid_id_info info;
  ASSERT_EQ(ioasid_backend_query(be_, id, &info), 0);
  EXPECT_EQ(info.id, id);
  EXPECT_EQ(info.state, uint32_t{IOASID_ID_ACTIVE});
  EXPECT_EQ(info.refs, 1u);
  EXPECT_EQ(info.spid, IOASID_INVALID);
  ASSERT_EQ(ioasid_backend_bind(be_, id, 33), 0);
  ASSERT_EQ(ioasid_backend_get(be_, id), 0);
  ASSERT_EQ(ioasid_backend_query(be_, id, &info), 0);
  EXPECT_EQ(info.refs, 3u);
  EXPECT_EQ(info.binds, 1u);
  EXPECT_EQ(info.spid, 33u);
  ioasid_t found = 0;
  ASSERT_EQ(ioasid_backend_find_by_spid(be_, 33, &found), 0);
  EXPECT_EQ(found, id);
  bool released = true;
  ASSERT_EQ(ioasid_backend_put(be_, id, &released), 0);
  EXPECT_FALSE(released);
  ioasid_set_info si;
  ASSERT_EQ(ioasid_backend_set_info(be_, &si), 0);
  EXPECT_EQ(si.owner_token, 90u);
  EXPECT_EQ(si.quota, 8u);
  EXPECT_EQ(si.count, 1u);
  EXPECT_EQ(si.bound, 1u);
  EXPECT_EQ(si.dying, 0u);
  // Errors cross the wire unchanged.
  EXPECT_EQ(ioasid_backend_query(be_, id + 1, &info), -ENOENT);
  EXPECT_EQ(ioasid_backend_query(be_, 0x100000, &info), -ERANGE);
  EXPECT_EQ(ioasid_backend_find_by_spid(be_, 34, &found), -ENOENT);
  EXPECT_EQ(ioasid_backend_get(be_, id + 1), -ENOENT);
  ASSERT_EQ(ioasid_backend_free(be_, id), 0);
  EXPECT_EQ(ioasid_backend_get(be_, id), -EBUSY);  // FREE_PENDING: the bind holds it
  ASSERT_EQ(ioasid_backend_unbind(be_, id), 0);
  EXPECT_EQ(ioasid_backend_query(be_, id, &info), -ENOENT);

  // The session ends: every call answers -ENOENT.
  ASSERT_EQ(ioasid_backend_daemon_close_session(be_), 0);
  EXPECT_EQ(ioasid_backend_set_info(be_, &si), -ENOENT);
  EXPECT_EQ(ioasid_backend_query(be_, id, &info), -ENOENT);
}

TEST_F(CapiDaemonTest, VirtioIommuAllocatesFromTheDaemon) {
  ioasid_virtio_iommu* d = nullptr;
  ASSERT_EQ(ioasid_virtio_iommu_create(be_, nullptr, &d), 0);
  ASSERT_EQ(ioasid_virtio_iommu_set_driver_features(d, ioasid_virtio_iommu_features(d)), 0);
  const uint8_t alloc_req[8] = {IOASID_VIRTIO_IOMMU_T_ALLOC_PASID, 0, 0, 0, 0, 0, 0, 0};
  uint8_t resp[8];
  size_t used = 0;
  ASSERT_EQ(ioasid_virtio_iommu_handle_request(d, alloc_req, 8, resp, 8, &used), 0);
  ASSERT_EQ(used, 8u);
  ASSERT_EQ(resp[4], 0);  // S_OK
  ioasid_t pasid = 0;
  std::memcpy(&pasid, resp, 4);
  ioasid_id_info info;
  ASSERT_EQ(ioasid_backend_query(be_, pasid, &info), 0);
  EXPECT_EQ(info.state, uint32_t{IOASID_ID_ACTIVE});
  // FREE_PASID (type 0x81: head, le32 reserved, le32 pasid).
  uint8_t free_req[12] = {IOASID_VIRTIO_IOMMU_T_FREE_PASID};
  std::memcpy(free_req + 8, &pasid, 4);
  ASSERT_EQ(ioasid_virtio_iommu_handle_request(d, free_req, 12, resp, 4, &used), 0);
  ASSERT_EQ(used, 4u);
  EXPECT_EQ(resp[0], 0);
  EXPECT_EQ(ioasid_backend_query(be_, pasid, &info), -ENOENT);
  ioasid_virtio_iommu_destroy(d);
}

}  // namespace
