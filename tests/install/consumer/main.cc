// SPDX-License-Identifier: Apache-2.0
// main.cc: the C++ side of the install consumer test: uses ioasid::Space and LocalBackend from the
// installed headers and shared library. Exits non-zero on any unexpected result.
#include <cstdio>

#include "ioasid/local_backend.hpp"
#include "ioasid/space.hpp"

namespace {
int failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "consumer_cxx: %s failed\n", what);
    ++failures;
  }
}
}  // namespace

int main() {
  auto space = ioasid::Space::create({});
  if (!space) {
    std::fprintf(stderr, "consumer_cxx: Space::create: %s\n", ioasid::to_string(space.error()));
    return 1;
  }
  ioasid::Space& s = **space;
  auto set = s.create_set(7, 4);
  check(set.has_value(), "create_set");
  if (!set) return 1;
  int data = 0;
  auto id = s.alloc(*set, 1, 100, &data);
  check(id.has_value() && *id == 1, "alloc");
  auto found = s.find(*set, 1);
  check(found.has_value() && *found == &data, "find");
  check(s.free(*set, 1).has_value(), "free");
  check(!s.find(*set, 1) && ioasid::to_errno(s.find(*set, 1).error()) != 0, "find after free");

  ioasid::LocalBackend backend(s, *set);
  auto bid = backend.alloc(1, 100);
  check(bid.has_value(), "backend alloc");
  if (bid) check(backend.free(*bid).has_value(), "backend free");
  check(s.destroy_set(*set).value_or(false), "destroy_set");
  if (failures == 0) std::puts("consumer_cxx: ok");
  return failures == 0 ? 0 : 1;
}
