/* SPDX-License-Identifier: Apache-2.0 */
/* capi_smoke.c: a pure C11 client of ioasid.h, linked against the shared library: proves the
 * header compiles as C and the exported symbols are visible. Exits non-zero on any surprise. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ioasid/ioasid.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                                \
    }                                                                          \
  } while (0)

struct host {
  ioasid_t next;
  int allocs, frees;
};

static int host_alloc(void* pdata, ioasid_t min, ioasid_t max, ioasid_t* out) {
  struct host* h = pdata;
  if (h->next < min) h->next = min;
  if (h->next > max) return -ENOSPC;
  *out = h->next++;
  h->allocs++;
  return 0;
}

static void host_free(void* pdata, ioasid_t id) {
  struct host* h = pdata;
  (void)id;
  h->frees++;
}

static int events;
static void count_event(void* opaque, const struct ioasid_event* ev) {
  (void)opaque;
  if (ev->type >= IOASID_EVENT_ALLOC && ev->type <= IOASID_EVENT_UNBIND) events++;
}

int main(void) {
  struct ioasid_space* space = NULL;
  struct ioasid_space_config config;
  memset(&config, 0, sizeof(config));
  config.size = sizeof(config);
  config.width_bits = 16;

  CHECK(ioasid_version() == IOASID_VERSION);
  CHECK(strcmp(ioasid_strerror(-ENOENT), "unknown error") != 0);
  CHECK(ioasid_space_create(&config, &space) == 0 && space != NULL);

  ioasid_set_t vm = 0, found = 0;
  CHECK(ioasid_set_create(space, 42, 8, &vm) == 0);
  CHECK(ioasid_set_find(space, 42, &found) == 0 && found == vm);

  uint64_t notifier = 0;
  CHECK(ioasid_notifier_register(space, IOASID_EVENT_MASK_ALL, count_event, NULL, &notifier) == 0);

  int data = 1;
  ioasid_t id = IOASID_INVALID;
  void* priv = NULL;
  CHECK(ioasid_alloc(space, vm, 1, 0xFFFF, &data, &id) == 0 && id == 1);
  CHECK(ioasid_find(space, vm, id, NULL, NULL, &priv) == 0 && priv == &data);
  CHECK(ioasid_find(space, IOASID_SET_ANY, id, NULL, NULL, &priv) == 0);
  CHECK(ioasid_free(space, vm, id) == 0);
  CHECK(ioasid_find(space, vm, id, NULL, NULL, &priv) == -ENOENT);
  CHECK(events == 2);

  /* A custom allocator: the host hands out IDs from 100. */
  struct host h = {100, 0, 0};
  const struct ioasid_allocator_ops ops = {host_alloc, host_free, &h};
  CHECK(ioasid_allocator_register(space, &ops) == 0);
  CHECK(ioasid_allocator_register(space, &ops) == -EEXIST);
  CHECK(ioasid_alloc(space, vm, 1, 0xFFFF, NULL, &id) == 0 && id == 100 && h.allocs == 1);
  CHECK(ioasid_free(space, vm, id) == 0 && h.frees == 1);
  ioasid_allocator_unregister(space, &ops);

  struct ioasid_stats st;
  memset(&st, 0, sizeof(st));
  st.size = sizeof(st);
  CHECK(ioasid_space_stats(space, &st) == 0);
  CHECK(st.live_ids == 0 && st.allocs == 2 && st.custom_allocator_active == 0);

  /* The host backend of the VM. */
  struct ioasid_backend* be = NULL;
  CHECK(ioasid_backend_local_create(space, vm, &be) == 0);
  CHECK(ioasid_backend_alloc(be, 1, 10, &id) == 0);
  CHECK(ioasid_backend_bind(be, id, 7) == 0);
  ioasid_t host_id = IOASID_INVALID;
  CHECK(ioasid_find_by_spid(space, vm, 7, &host_id) == 0 && host_id == id);
  CHECK(ioasid_backend_unbind(be, id) == 0);
  CHECK(ioasid_backend_free(be, id) == 0);

  /* A VT-d vIOMMU over the backend (VT-d 3.3 layout): the guest writes ALLOC to VCMD (0xE00) and
   * reads the PASID from VCRSP (0xE10) bits 35:16, status bits 7:1 zero, IP (bit 0) clear. */
  struct ioasid_vtd_config vc;
  memset(&vc, 0, sizeof(vc));
  vc.size = sizeof(vc);
  vc.layout = IOASID_VTD_LAYOUT_REV3_3;
  vc.completion = IOASID_VTD_COMPLETION_IMMEDIATE;
  vc.pasid_max = 0xFFFF; /* this space is 16 bits wide; the default asks for [1, 0xFFFFF] */
  struct ioasid_vtd_device* vtd = NULL;
  CHECK(ioasid_vtd_device_create(be, &vc, &vtd) == 0 && vtd != NULL);
  CHECK((ioasid_vtd_ecap_bits(vtd) & (UINT64_C(1) << 44)) != 0); /* ECAP.VCS */
  ioasid_vtd_mmio_write(vtd, 0xE00, 8, 1);
  const uint64_t rsp = ioasid_vtd_mmio_read(vtd, 0xE10, 8);
  CHECK((rsp & 0xFF) == 0);
  id = (ioasid_t)((rsp >> 16) & 0xFFFFF);
  CHECK(ioasid_find(space, vm, id, NULL, NULL, &priv) == 0);
  ioasid_vtd_device_destroy(vtd); /* frees nothing: the PASID stays in the VM's set */
  CHECK(ioasid_backend_free(be, id) == 0);

  /* Every backend call, and what the set knows. */
  struct ioasid_id_info info;
  struct ioasid_set_info si;
  bool released = true;
  CHECK(ioasid_backend_alloc(be, 1, 10, &id) == 0);
  CHECK(ioasid_backend_get(be, id) == 0);
  CHECK(ioasid_backend_query(be, id, &info) == 0 && info.state == IOASID_ID_ACTIVE &&
        info.refs == 2);
  CHECK(ioasid_backend_put(be, id, &released) == 0 && !released);
  CHECK(ioasid_backend_set_info(be, &si) == 0 && si.owner_token == 42 && si.count == 1);
  CHECK(ioasid_backend_find_by_spid(be, 7, &host_id) == -ENOENT);
  CHECK(ioasid_backend_free(be, id) == 0);

  /* A virtio-iommu over the same backend, driven the way a VMM with its own virtqueues does:
   * ALLOC_PASID (type 0x80; readable: head + le32 reserved; writable: le32 pasid + tail). */
  struct ioasid_virtio_iommu_config ic;
  memset(&ic, 0, sizeof(ic));
  ic.size = sizeof(ic);
  ic.flags = IOASID_VIRTIO_IOMMU_CFG_ALLOW_UNDECLARED;
  ic.max_pasid = 0xFFFF;
  struct ioasid_virtio_iommu* viommu = NULL;
  CHECK(ioasid_virtio_iommu_create(be, &ic, &viommu) == 0 && viommu != NULL);
  const uint64_t offered = ioasid_virtio_iommu_features(viommu);
  CHECK((offered & IOASID_VIRTIO_FEATURE(IOASID_VIRTIO_IOMMU_F_PASID_ALLOC)) != 0);
  CHECK(ioasid_virtio_iommu_set_driver_features(
            viommu, IOASID_VIRTIO_FEATURE(IOASID_VIRTIO_IOMMU_F_PASID_MAX_REQ)) == -EINVAL);
  CHECK(ioasid_virtio_iommu_set_driver_features(viommu, offered) == 0);
  uint8_t cfg[IOASID_VIRTIO_IOMMU_CONFIG_SIZE];
  CHECK(ioasid_virtio_iommu_config_read(viommu, 0, cfg, sizeof(cfg)) == 0);
  CHECK(cfg[40] == 0xFF && cfg[41] == 0xFF && cfg[42] == 0); /* le32 max_pasid */
  const uint8_t req[8] = {IOASID_VIRTIO_IOMMU_T_ALLOC_PASID, 0, 0, 0, 0, 0, 0, 0};
  uint8_t resp[8];
  size_t used = 0;
  CHECK(ioasid_virtio_iommu_handle_request(viommu, req, sizeof(req), resp, sizeof(resp), &used) ==
        0);
  CHECK(used == 8 && resp[4] == 0); /* S_OK */
  const ioasid_t pasid = (ioasid_t)(resp[0] | (resp[1] << 8) | (resp[2] << 16));
  CHECK(ioasid_backend_query(be, pasid, &info) == 0 && info.state == IOASID_ID_ACTIVE);
  struct ioasid_virtio_translation tr;
  CHECK(ioasid_virtio_iommu_translate(viommu, 3, 0x1000, IOASID_VIRTIO_ACCESS_READ, &tr) ==
        -ENOENT);
  struct ioasid_virtio_iommu_fault fault;
  CHECK(ioasid_virtio_iommu_pop_fault(viommu, &fault) == 0 &&
        fault.reason == IOASID_VIRTIO_IOMMU_FAULT_R_DOMAIN && fault.endpoint == 3);
  struct ioasid_virtio_iommu_counters vst;
  memset(&vst, 0, sizeof(vst));
  vst.size = sizeof(vst);
  CHECK(ioasid_virtio_iommu_stats(viommu, &vst) == 0 && vst.pasid_allocs == 1 && vst.faults == 1);

  /* ... and over the library's own transport, in guest memory the VMM owns. */
  static uint8_t guest_ram[0x4000];
  struct ioasid_guest_memory* mem = NULL;
  CHECK(ioasid_guest_memory_create(&mem) == 0);
  CHECK(ioasid_guest_memory_add(mem, 0x100000, sizeof(guest_ram), guest_ram) == 0);
  struct ioasid_virtio_transport* vt = NULL;
  CHECK(ioasid_virtio_transport_create(viommu, mem, NULL, &vt) == 0);
  CHECK(ioasid_virtio_transport_set_status(
            vt, IOASID_VIRTIO_STATUS_ACKNOWLEDGE | IOASID_VIRTIO_STATUS_DRIVER) == 0);
  CHECK(ioasid_virtio_transport_set_driver_features(
            vt, ioasid_virtio_transport_device_features(vt)) == 0);
  CHECK(ioasid_virtio_transport_set_status(vt, IOASID_VIRTIO_STATUS_ACKNOWLEDGE |
                                                   IOASID_VIRTIO_STATUS_DRIVER |
                                                   IOASID_VIRTIO_STATUS_FEATURES_OK) == 0);
  CHECK((ioasid_virtio_transport_get_status(vt) & IOASID_VIRTIO_STATUS_FEATURES_OK) != 0);
  CHECK(ioasid_virtio_transport_set_queue(vt, IOASID_VIRTIO_REQUEST_QUEUE, 8, 0x100000, 0x100080,
                                          0x100100) == 0);
  CHECK(ioasid_virtio_transport_set_queue(vt, 2, 8, 0x100000, 0x100080, 0x100100) == -EINVAL);
  uint32_t qfault = 99;
  CHECK(ioasid_virtio_transport_queue_fault(vt, 0, &qfault) == 0 && qfault == IOASID_VIRTQUEUE_OK);
  ioasid_virtio_transport_destroy(vt);
  ioasid_guest_memory_destroy(mem);
  ioasid_virtio_iommu_destroy(viommu); /* drops no PASID: the guest's stays in the set */
  CHECK(ioasid_backend_free(be, pasid) == 0);

  /* VT-d counters and the VCCAP the VMM advertises. */
  CHECK(ioasid_vtd_device_create(be, &vc, &vtd) == 0);
  CHECK(ioasid_vtd_vccap_bits(vtd) == 1);
  ioasid_vtd_mmio_write(vtd, 0xE00, 8, 1);
  CHECK(ioasid_vtd_wait_idle(vtd, 1000000) == 0);
  struct ioasid_vtd_counters vs;
  memset(&vs, 0, sizeof(vs));
  vs.size = sizeof(vs);
  CHECK(ioasid_vtd_stats(vtd, &vs) == 0 && vs.commands == 1 && vs.allocs == 1);
  id = (ioasid_t)((ioasid_vtd_mmio_read(vtd, 0xE10, 8) >> 16) & 0xFFFFF);
  ioasid_vtd_device_destroy(vtd);
  CHECK(ioasid_backend_free(be, id) == 0);
  ioasid_backend_destroy(be); /* after the devices */

  CHECK(ioasid_notifier_unregister(space, notifier) == 0);
  bool gone = false;
  CHECK(ioasid_set_destroy(space, vm, &gone) == 0 && gone);
  ioasid_space_destroy(space);
  printf("capi_smoke: ok\n");
  return 0;
}
