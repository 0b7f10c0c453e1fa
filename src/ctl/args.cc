// SPDX-License-Identifier: Apache-2.0
// args.cc: ioasidctl's value parsers (args.hpp).
#include "ctl/args.hpp"

#include <charconv>
#include <limits>

namespace ioasid::ctl {

std::optional<std::uint64_t> parse_unsigned(std::string_view text, std::uint64_t max,
                                            std::string* why) {
  int base = 10;
  std::string_view digits = text;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  std::uint64_t value = 0;
  const char* end = digits.data() + digits.size();
  // from_chars accepts neither a sign nor blanks nor a prefix: exactly the digits of one base.
  const auto [ptr, ec] = std::from_chars(digits.data(), end, value, base);
  if (digits.empty() || ptr != end || ec == std::errc::invalid_argument) {
    *why = "expected an unsigned integer (decimal, or hexadecimal with 0x)";
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range || value > max) {
    *why = "above " + std::to_string(max);
    return std::nullopt;
  }
  return value;
}

std::optional<std::uint64_t> parse_vm(std::string_view text, std::string* why) {
  return parse_unsigned(text, std::numeric_limits<std::uint64_t>::max(), why);
}

std::optional<std::uint32_t> parse_pasid(std::string_view text, std::string* why) {
  auto v = parse_unsigned(text, std::numeric_limits<std::uint32_t>::max(), why);
  if (!v) return std::nullopt;
  return static_cast<std::uint32_t>(*v);
}

std::optional<std::uint32_t> parse_quota(std::string_view text, std::string* why) {
  auto v = parse_unsigned(text, std::numeric_limits<std::uint32_t>::max(), why);
  if (!v) return std::nullopt;
  if (*v == 0) {
    *why = "a quota is at least 1";
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(*v);
}

std::optional<std::chrono::milliseconds> parse_seconds(std::string_view text, std::string* why) {
  // Whole seconds, then at most three fractional digits (milliseconds).
  const std::size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  auto bad = [&](const char* reason) {
    *why = reason;
    return std::nullopt;
  };
  if (whole.empty() && frac.empty()) return bad("expected seconds (e.g. 5 or 0.5)");
  std::uint64_t s = 0;
  if (!whole.empty()) {
    const auto [p, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), s);
    if (ec != std::errc{} || p != whole.data() + whole.size()) {
      return bad("expected seconds (e.g. 5 or 0.5)");
    }
  }
  if (dot != std::string_view::npos && (frac.empty() || frac.size() > 3)) {
    return bad("expected seconds with at most three decimals (e.g. 0.25)");
  }
  std::uint64_t ms = 0;
  if (!frac.empty()) {
    const auto [p, ec] = std::from_chars(frac.data(), frac.data() + frac.size(), ms);
    if (ec != std::errc{} || p != frac.data() + frac.size()) {
      return bad("expected seconds (e.g. 5 or 0.5)");
    }
    for (std::size_t i = frac.size(); i < 3; ++i) ms *= 10;
  }
  if (s > 86400 || (s == 86400 && ms > 0)) return bad("at most 86400 seconds");
  const std::uint64_t total = s * 1000 + ms;
  if (total == 0) return bad("must be more than 0");
  return std::chrono::milliseconds(static_cast<std::int64_t>(total));
}

}  // namespace ioasid::ctl
