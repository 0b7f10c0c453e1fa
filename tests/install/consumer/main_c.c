/* SPDX-License-Identifier: Apache-2.0 */
/* main_c.c: the C side of the install consumer test, built by CMake (ioasid::c) and by plain cc
 * with pkg-config. Uses only ioasid.h; exits non-zero on any unexpected result. */
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
  ioasid_space_destroy(space);
  printf("consumer_c: ok (%s)\n", ioasid_strerror(-ENOENT));
  return 0;
}
