// SPDX-License-Identifier: Apache-2.0
// policy.hpp: ioasidd's access policy: which peer credentials (SO_PEERCRED uid / gid) may open
// which VMs' sessions, and who is an administrator. Parsed from a JSON file (docs/daemon.md
// "Policy file"); without a file, the daemon's own uid and root may do everything.
//
// A VM's name is its 64-bit token written in decimal ("42"); a rule lists exact names (a JSON
// integer or a string of digits) or fnmatch(3) patterns over the name ("*", "10??").
//
// Thread-safety: immutable after parsing. parse_policy() is pure (no I/O) and is fuzzed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ioasid::daemon {

struct PeerCred {
  std::int32_t pid = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};

struct PolicyRule {
  std::vector<std::uint32_t> uids;  // the rule applies to a peer whose uid is listed ...
  std::vector<std::uint32_t> gids;  // ... or whose gid is listed
  std::vector<std::string> vms;     // names (decimal tokens) or fnmatch patterns over them
  bool admin = false;
};

class Policy {
 public:
  // The policy used without --policy: uid `self` and root may open every VM and are admins.
  static Policy allow_uid(std::uint32_t self);

  [[nodiscard]] bool may_open(const PeerCred& peer, std::uint64_t vm_token) const;
  [[nodiscard]] bool is_admin(const PeerCred& peer) const;
  [[nodiscard]] const std::vector<PolicyRule>& rules() const noexcept { return rules_; }

  std::vector<PolicyRule> rules_;
};

// Parses a policy file's text. Returns the policy, or nullopt with *error saying where and what
// ("rules[1].uids[0]: expected an unsigned 32-bit integer").
std::optional<Policy> parse_policy(std::string_view text, std::string* error);

}  // namespace ioasid::daemon
