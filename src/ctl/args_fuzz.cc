// SPDX-License-Identifier: Apache-2.0
// args_fuzz.cc: libFuzzer target for ioasidctl's value parsers (ctl/args.hpp). Any bytes are
// either refused with a reason or accepted; an accepted number is within its type's bounds and
// prints back to a string that parses to the same value (decimal), and a hexadecimal input means
// what its decimal form means; an accepted duration is in (0, 86400] seconds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ctl/args.hpp"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "ctl_args_fuzz: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ioasid::ctl;  // NOLINT(build/namespaces)
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string why;
  if (auto vm = parse_vm(text, &why)) {
    std::string again;
    check(parse_vm(std::to_string(*vm), &again) == vm, "VM token does not round-trip");
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(*vm));
    check(parse_vm(hex, &again) == vm, "hexadecimal form differs");
  } else {
    check(!why.empty(), "a refused VM token without a reason");
  }
  why.clear();
  if (auto p = parse_pasid(text, &why)) {
    check(parse_vm(text, &why) == std::uint64_t{*p}, "PASID and VM parsers disagree");
  } else {
    check(!why.empty(), "a refused PASID without a reason");
  }
  why.clear();
  if (auto q = parse_quota(text, &why)) {
    check(*q >= 1, "quota 0 accepted");
  } else {
    check(!why.empty(), "a refused quota without a reason");
  }
  why.clear();
  if (auto s = parse_seconds(text, &why)) {
    check(s->count() > 0 && s->count() <= 86'400'000, "duration out of bounds");
  } else {
    check(!why.empty(), "a refused duration without a reason");
  }
  return 0;
}
