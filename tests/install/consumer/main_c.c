/* SPDX-License-Identifier: Apache-2.0 */
/* main_c.c: the C side of the install consumer test, built by CMake (ioasid::c) and by plain cc
 * with pkg-config. Uses only ioasid.h (the space and a virtio-iommu device model over it); exits
 * non-zero on any unexpected result. */
#include <errno.h>
#include <stdio.h>

#include "ioasid/ioasid.h"

int main(void) {
  struct ioasid_space* space = NULL;
  ioasid_set_t set = 0;
  ioasid_t id = IOASID_INVALID;
  void* priv = NULL;
  int data = 0;
  if (ioasid_version() != IOASID_VERSION) return 1;
  if (ioasid_space_create(NULL, &space) != 0) return 2;
  if (ioasid_set_create(space, 7, 4, &set) != 0) return 3;
  if (ioasid_alloc(space, set, 1, 100, &data, &id) != 0 || id != 1) return 4;
  if (ioasid_find(space, set, id, NULL, NULL, &priv) != 0 || priv != &data) return 5;
  if (ioasid_free(space, set, id) != 0) return 6;
  if (ioasid_free(space, set, id) != -ENOENT) return 7;
  /* The device models are exported too: a virtio-iommu over the set's backend. */
  struct ioasid_backend* be = NULL;
  struct ioasid_virtio_iommu* viommu = NULL;
  struct ioasid_guest_memory* mem = NULL;
  struct ioasid_virtio_transport* vt = NULL;
  if (ioasid_backend_local_create(space, set, &be) != 0) return 8;
  if (ioasid_virtio_iommu_create(be, NULL, &viommu) != 0) return 9;
  if (ioasid_guest_memory_create(&mem) != 0) return 10;
  if (ioasid_virtio_transport_create(viommu, mem, NULL, &vt) != 0) return 11;
  if (ioasid_virtio_transport_get_status(vt) != 0) return 12;
  ioasid_virtio_transport_destroy(vt);
  ioasid_guest_memory_destroy(mem);
  ioasid_virtio_iommu_destroy(viommu);
  ioasid_backend_destroy(be);
  ioasid_space_destroy(space);
  printf("consumer_c: ok (%s)\n", ioasid_strerror(-ENOENT));
  return 0;
}
