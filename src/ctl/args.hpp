// SPDX-License-Identifier: Apache-2.0
// args.hpp: ioasidctl's parsers for the values an operator types: VM tokens, PASIDs, quotas and
// durations. Pure functions; each refusal comes with a one-line reason for the error message.
//
// Accepted forms: unsigned decimal ("42") or hexadecimal with a 0x / 0X prefix ("0x2a"); no sign,
// no blanks, no other base (a leading zero is decimal, unlike strtoul's octal: "010" is ten).
// Durations are seconds, decimal, optionally with a fraction ("0.25").
//
// Thread-safety: pure. Fuzzed by ctl_args_fuzz (accepted input round-trips, nothing crashes).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ioasid::ctl {

// An unsigned integer of at most max. On failure returns nullopt and sets *why ("expected an
// unsigned integer", "above 4294967295").
[[nodiscard]] std::optional<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t max,
                                                          std::string* why);

// A VM token (64 bits), a PASID (32 bits), a quota ([1, 2^32 - 1]).
[[nodiscard]] std::optional<std::uint64_t> parse_vm(std::string_view text, std::string* why);
[[nodiscard]] std::optional<std::uint32_t> parse_pasid(std::string_view text, std::string* why);
[[nodiscard]] std::optional<std::uint32_t> parse_quota(std::string_view text, std::string* why);

// Seconds in (0, 86400], to the millisecond ("5", "0.5"; at least 0.001).
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_seconds(std::string_view text,
                                                                     std::string* why);

}  // namespace ioasid::ctl
