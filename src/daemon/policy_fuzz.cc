// SPDX-License-Identifier: Apache-2.0
// policy_fuzz.cc: libFuzzer target for ioasidd's policy file parser (daemon/policy.hpp): any
// bytes either parse into a policy that can be evaluated, or give an error message; never a
// crash, an exception or a leak.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "daemon/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto policy = ioasid::daemon::parse_policy(text, &error);
  if (!policy) {
    if (error.empty()) std::abort();  // every refusal says why
    return 0;
  }
  for (std::uint32_t id : {0u, 1u, 36u, 1000u}) {
    const ioasid::daemon::PeerCred peer{1, id, id};
    (void)policy->is_admin(peer);
    for (std::uint64_t vm : {std::uint64_t{0}, std::uint64_t{42}, ~std::uint64_t{0}}) {
      (void)policy->may_open(peer, vm);
    }
  }
  return 0;
}
