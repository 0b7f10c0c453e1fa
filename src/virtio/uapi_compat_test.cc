// SPDX-License-Identifier: Apache-2.0
// uapi_compat_test.cc: ioasid/wire/virtio_iommu.hpp against the kernel's <linux/virtio_iommu.h>
// (UAPI "v0.12", the virtio 1.2/1.3 §5.13 layouts; on Debian 12 from linux-libc-dev 6.1): every
// struct size, every field offset and size, and every constant. A mismatch fails to compile
// (static_assert) and is also reported by the tests, so the cloud-hypervisor 355cbad09 class of bug
// (a 44-byte config) cannot come back. The PASID extension has no kernel counterpart; its numbers
// are checked against the kernel's to prove they do not collide.
#include <gtest/gtest.h>
#include <linux/virtio_iommu.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "ioasid/wire/virtio_iommu.hpp"

namespace ioasid::wire::virtio_iommu {
namespace {

template <class T>
constexpr bool same_size(std::size_t n) {
  return sizeof(T) == n;
}

// Same offset and same size of a field in our struct and the kernel's.
#define EXPECT_FIELD(Ours, Theirs, ours_field, theirs_field)                                       \
  static_assert(offsetof(Ours, ours_field) == offsetof(Theirs, theirs_field),                      \
                #Ours "::" #ours_field " offset");                                                 \
  static_assert(                                                                                   \
      sizeof(std::declval<Ours&>().ours_field) == sizeof(std::declval<Theirs&>().theirs_field),    \
      #Ours "::" #ours_field " size");                                                             \
  EXPECT_EQ(offsetof(Ours, ours_field), offsetof(Theirs, theirs_field)) << #Ours "::" #ours_field; \
  EXPECT_EQ(sizeof(std::declval<Ours&>().ours_field), sizeof(std::declval<Theirs&>().theirs_field))

#define EXPECT_STRUCT(Ours, Theirs)                             \
  static_assert(sizeof(Ours) == sizeof(Theirs), #Ours " size"); \
  EXPECT_EQ(sizeof(Ours), sizeof(Theirs)) << #Ours

TEST(VirtioIommuUapi, FeatureBits) {
  static_assert(kFInputRange == VIRTIO_IOMMU_F_INPUT_RANGE);
  static_assert(kFDomainRange == VIRTIO_IOMMU_F_DOMAIN_RANGE);
  static_assert(kFMapUnmap == VIRTIO_IOMMU_F_MAP_UNMAP);
  static_assert(kFBypass == VIRTIO_IOMMU_F_BYPASS);
  static_assert(kFProbe == VIRTIO_IOMMU_F_PROBE);
  static_assert(kFMmio == VIRTIO_IOMMU_F_MMIO);
  static_assert(kFBypassConfig == VIRTIO_IOMMU_F_BYPASS_CONFIG);
  EXPECT_EQ(kFInputRange, 0u);
  EXPECT_EQ(kFBypassConfig, 6u);
  EXPECT_EQ(kStandardFeatures, 0x7Fu);
}

TEST(VirtioIommuUapi, RequestTypes) {
  static_assert(to_u8(ReqType::attach) == VIRTIO_IOMMU_T_ATTACH);
  static_assert(to_u8(ReqType::detach) == VIRTIO_IOMMU_T_DETACH);
  static_assert(to_u8(ReqType::map) == VIRTIO_IOMMU_T_MAP);
  static_assert(to_u8(ReqType::unmap) == VIRTIO_IOMMU_T_UNMAP);
  static_assert(to_u8(ReqType::probe) == VIRTIO_IOMMU_T_PROBE);
  EXPECT_EQ(to_u8(ReqType::attach), 1);
  EXPECT_EQ(to_u8(ReqType::probe), 5);
}

TEST(VirtioIommuUapi, StatusCodes) {
  static_assert(to_u8(Status::ok) == VIRTIO_IOMMU_S_OK);
  static_assert(to_u8(Status::ioerr) == VIRTIO_IOMMU_S_IOERR);
  static_assert(to_u8(Status::unsupp) == VIRTIO_IOMMU_S_UNSUPP);
  static_assert(to_u8(Status::deverr) == VIRTIO_IOMMU_S_DEVERR);
  static_assert(to_u8(Status::inval) == VIRTIO_IOMMU_S_INVAL);
  static_assert(to_u8(Status::range) == VIRTIO_IOMMU_S_RANGE);
  static_assert(to_u8(Status::noent) == VIRTIO_IOMMU_S_NOENT);
  static_assert(to_u8(Status::fault) == VIRTIO_IOMMU_S_FAULT);
  static_assert(to_u8(Status::nomem) == VIRTIO_IOMMU_S_NOMEM);
  EXPECT_EQ(to_u8(Status::nomem), 8);
}

TEST(VirtioIommuUapi, FlagsAndCodes) {
  static_assert(kAttachFBypass == VIRTIO_IOMMU_ATTACH_F_BYPASS);
  static_assert(kMapFRead == VIRTIO_IOMMU_MAP_F_READ);
  static_assert(kMapFWrite == VIRTIO_IOMMU_MAP_F_WRITE);
  static_assert(kMapFMmio == VIRTIO_IOMMU_MAP_F_MMIO);
  static_assert(kMapFMask == VIRTIO_IOMMU_MAP_F_MASK);
  static_assert(kProbeTNone == VIRTIO_IOMMU_PROBE_T_NONE);
  static_assert(kProbeTResvMem == VIRTIO_IOMMU_PROBE_T_RESV_MEM);
  static_assert(kProbeTMask == VIRTIO_IOMMU_PROBE_T_MASK);
  static_assert(kResvMemTReserved == VIRTIO_IOMMU_RESV_MEM_T_RESERVED);
  static_assert(kResvMemTMsi == VIRTIO_IOMMU_RESV_MEM_T_MSI);
  static_assert(kFaultRUnknown == VIRTIO_IOMMU_FAULT_R_UNKNOWN);
  static_assert(kFaultRDomain == VIRTIO_IOMMU_FAULT_R_DOMAIN);
  static_assert(kFaultRMapping == VIRTIO_IOMMU_FAULT_R_MAPPING);
  static_assert(kFaultFRead == VIRTIO_IOMMU_FAULT_F_READ);
  static_assert(kFaultFWrite == VIRTIO_IOMMU_FAULT_F_WRITE);
  static_assert(kFaultFExec == VIRTIO_IOMMU_FAULT_F_EXEC);
  static_assert(kFaultFAddress == VIRTIO_IOMMU_FAULT_F_ADDRESS);
  EXPECT_EQ(kMapFMask, 7u);
  EXPECT_EQ(kFaultFAddress, 0x100u);
}

TEST(VirtioIommuUapi, Ranges) {
  EXPECT_STRUCT(Range64, virtio_iommu_range_64);
  EXPECT_FIELD(Range64, virtio_iommu_range_64, start, start);
  EXPECT_FIELD(Range64, virtio_iommu_range_64, end, end);
  EXPECT_STRUCT(Range32, virtio_iommu_range_32);
  EXPECT_FIELD(Range32, virtio_iommu_range_32, start, start);
  EXPECT_FIELD(Range32, virtio_iommu_range_32, end, end);
}

TEST(VirtioIommuUapi, Config) {
  EXPECT_STRUCT(Config, virtio_iommu_config);
  EXPECT_EQ(sizeof(Config), 40u);
  EXPECT_FIELD(Config, virtio_iommu_config, page_size_mask, page_size_mask);
  EXPECT_FIELD(Config, virtio_iommu_config, input_range, input_range);
  EXPECT_FIELD(Config, virtio_iommu_config, domain_range, domain_range);
  EXPECT_FIELD(Config, virtio_iommu_config, probe_size, probe_size);
  EXPECT_FIELD(Config, virtio_iommu_config, bypass, bypass);
  EXPECT_FIELD(Config, virtio_iommu_config, reserved, reserved);
  // The extension starts exactly where the standard config ends.
  EXPECT_EQ(offsetof(ConfigPasid, max_pasid), sizeof(virtio_iommu_config));
}

TEST(VirtioIommuUapi, HeadAndTail) {
  EXPECT_STRUCT(ReqHead, virtio_iommu_req_head);
  EXPECT_FIELD(ReqHead, virtio_iommu_req_head, type, type);
  EXPECT_FIELD(ReqHead, virtio_iommu_req_head, reserved, reserved);
  EXPECT_STRUCT(ReqTail, virtio_iommu_req_tail);
  EXPECT_FIELD(ReqTail, virtio_iommu_req_tail, status, status);
  EXPECT_FIELD(ReqTail, virtio_iommu_req_tail, reserved, reserved);
}

TEST(VirtioIommuUapi, Attach) {
  EXPECT_STRUCT(ReqAttach, virtio_iommu_req_attach);
  EXPECT_FIELD(ReqAttach, virtio_iommu_req_attach, head, head);
  EXPECT_FIELD(ReqAttach, virtio_iommu_req_attach, domain, domain);
  EXPECT_FIELD(ReqAttach, virtio_iommu_req_attach, endpoint, endpoint);
  EXPECT_FIELD(ReqAttach, virtio_iommu_req_attach, flags, flags);
  EXPECT_FIELD(ReqAttach, virtio_iommu_req_attach, reserved, reserved);
  EXPECT_FIELD(ReqAttach, virtio_iommu_req_attach, tail, tail);
}

TEST(VirtioIommuUapi, Detach) {
  EXPECT_STRUCT(ReqDetach, virtio_iommu_req_detach);
  EXPECT_FIELD(ReqDetach, virtio_iommu_req_detach, head, head);
  EXPECT_FIELD(ReqDetach, virtio_iommu_req_detach, domain, domain);
  EXPECT_FIELD(ReqDetach, virtio_iommu_req_detach, endpoint, endpoint);
  EXPECT_FIELD(ReqDetach, virtio_iommu_req_detach, reserved, reserved);
  EXPECT_FIELD(ReqDetach, virtio_iommu_req_detach, tail, tail);
}

TEST(VirtioIommuUapi, Map) {
  EXPECT_STRUCT(ReqMap, virtio_iommu_req_map);
  EXPECT_FIELD(ReqMap, virtio_iommu_req_map, head, head);
  EXPECT_FIELD(ReqMap, virtio_iommu_req_map, domain, domain);
  EXPECT_FIELD(ReqMap, virtio_iommu_req_map, virt_start, virt_start);
  EXPECT_FIELD(ReqMap, virtio_iommu_req_map, virt_end, virt_end);
  EXPECT_FIELD(ReqMap, virtio_iommu_req_map, phys_start, phys_start);
  EXPECT_FIELD(ReqMap, virtio_iommu_req_map, flags, flags);
  EXPECT_FIELD(ReqMap, virtio_iommu_req_map, tail, tail);
}

TEST(VirtioIommuUapi, Unmap) {
  EXPECT_STRUCT(ReqUnmap, virtio_iommu_req_unmap);
  EXPECT_FIELD(ReqUnmap, virtio_iommu_req_unmap, head, head);
  EXPECT_FIELD(ReqUnmap, virtio_iommu_req_unmap, domain, domain);
  EXPECT_FIELD(ReqUnmap, virtio_iommu_req_unmap, virt_start, virt_start);
  EXPECT_FIELD(ReqUnmap, virtio_iommu_req_unmap, virt_end, virt_end);
  EXPECT_FIELD(ReqUnmap, virtio_iommu_req_unmap, reserved, reserved);
  EXPECT_FIELD(ReqUnmap, virtio_iommu_req_unmap, tail, tail);
}

TEST(VirtioIommuUapi, Probe) {
  // The kernel's struct ends in a flexible properties[] array: its sizeof is the readable part.
  EXPECT_STRUCT(ReqProbe, virtio_iommu_req_probe);
  EXPECT_FIELD(ReqProbe, virtio_iommu_req_probe, head, head);
  EXPECT_FIELD(ReqProbe, virtio_iommu_req_probe, endpoint, endpoint);
  EXPECT_FIELD(ReqProbe, virtio_iommu_req_probe, reserved, reserved);
  EXPECT_EQ(offsetof(virtio_iommu_req_probe, properties), sizeof(ReqProbe));
}

TEST(VirtioIommuUapi, ProbeProperties) {
  EXPECT_STRUCT(ProbeProperty, virtio_iommu_probe_property);
  EXPECT_FIELD(ProbeProperty, virtio_iommu_probe_property, type, type);
  EXPECT_FIELD(ProbeProperty, virtio_iommu_probe_property, length, length);
  EXPECT_STRUCT(ProbeResvMem, virtio_iommu_probe_resv_mem);
  EXPECT_FIELD(ProbeResvMem, virtio_iommu_probe_resv_mem, head, head);
  EXPECT_FIELD(ProbeResvMem, virtio_iommu_probe_resv_mem, subtype, subtype);
  EXPECT_FIELD(ProbeResvMem, virtio_iommu_probe_resv_mem, reserved, reserved);
  EXPECT_FIELD(ProbeResvMem, virtio_iommu_probe_resv_mem, start, start);
  EXPECT_FIELD(ProbeResvMem, virtio_iommu_probe_resv_mem, end, end);
}

TEST(VirtioIommuUapi, Fault) {
  EXPECT_STRUCT(Fault, virtio_iommu_fault);
  EXPECT_FIELD(Fault, virtio_iommu_fault, reason, reason);
  EXPECT_FIELD(Fault, virtio_iommu_fault, reserved, reserved);
  EXPECT_FIELD(Fault, virtio_iommu_fault, flags, flags);
  EXPECT_FIELD(Fault, virtio_iommu_fault, endpoint, endpoint);
  EXPECT_FIELD(Fault, virtio_iommu_fault, reserved1, reserved2);  // spec: reserved1
  EXPECT_FIELD(Fault, virtio_iommu_fault, address, address);
}

// The extension's numbers cannot collide with anything the kernel header (or the drafts listed in
// DOMAIN.md §5.2) defines.
TEST(VirtioIommuUapi, ExtensionDoesNotCollide) {
  for (unsigned bit : {kFPasidAlloc, kFPasidMaxReq, kFPasidBind, kFPasidPerEndpoint}) {
    EXPECT_GT(bit, 9u) << "drafts used feature bits up to 9";
    EXPECT_TRUE(bit <= 23 || (bit >= 50 && bit <= 63)) << "not a device-type feature bit: " << bit;
    EXPECT_EQ(feature_bit(bit) & kStandardFeatures, 0u);
  }
  for (ReqType t :
       {ReqType::alloc_pasid, ReqType::free_pasid, ReqType::bind_pasid, ReqType::unbind_pasid}) {
    EXPECT_GE(to_u8(t), 0x80) << "drafts used request types up to 8";
    EXPECT_NE(to_u8(t), VIRTIO_IOMMU_T_ATTACH);
    EXPECT_NE(to_u8(t), VIRTIO_IOMMU_T_PROBE);
  }
  EXPECT_TRUE(same_size<ReqAllocPasid>(16));  // the 2019 proposal's size
  EXPECT_TRUE(same_size<ReqFreePasid>(16));
  EXPECT_EQ(sizeof(ReqAllocPasid), sizeof(ReqAllocPasidMax));
}

}  // namespace
}  // namespace ioasid::wire::virtio_iommu
