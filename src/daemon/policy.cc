// SPDX-License-Identifier: Apache-2.0
// policy.cc: parsing and evaluation of ioasidd's access policy (policy.hpp).
#include "daemon/policy.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

namespace ioasid::daemon {
namespace {

using json = nlohmann::json;

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '*' || c == '?' || c == '[' || c == ']' || c == '!' ||
           c == '-';
  });
}

bool parse_ids(const json& v, const std::string& where, std::vector<std::uint32_t>* out,
               std::string* error) {
  if (!v.is_array()) {
    *error = where + ": expected an array of unsigned 32-bit integers";
    return false;
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    const json& e = v[i];
    if (!e.is_number_unsigned() ||
        e.get<std::uint64_t>() >= std::numeric_limits<std::uint32_t>::max()) {
      *error = where + "[" + std::to_string(i) + "]: expected an unsigned 32-bit integer";
      return false;
    }
    out->push_back(static_cast<std::uint32_t>(e.get<std::uint64_t>()));
  }
  return true;
}

bool parse_rule(const json& r, const std::string& where, PolicyRule* rule, std::string* error) {
  if (!r.is_object()) {
    *error = where + ": expected an object";
    return false;
  }
  for (auto it = r.begin(); it != r.end(); ++it) {
    const std::string& key = it.key();
    const std::string at = where + "." + key;
    if (key == "uids") {
      if (!parse_ids(it.value(), at, &rule->uids, error)) return false;
    } else if (key == "gids") {
      if (!parse_ids(it.value(), at, &rule->gids, error)) return false;
    } else if (key == "admin") {
      if (!it.value().is_boolean()) {
        *error = at + ": expected true or false";
        return false;
      }
      rule->admin = it.value().get<bool>();
    } else if (key == "vms") {
      const json& v = it.value();
      if (!v.is_array()) {
        *error = at + ": expected an array of VM names or patterns";
        return false;
      }
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string ei = at + "[" + std::to_string(i) + "]";
        if (v[i].is_number_unsigned()) {
          rule->vms.push_back(std::to_string(v[i].get<std::uint64_t>()));
        } else if (v[i].is_string() && valid_name(v[i].get<std::string>())) {
          rule->vms.push_back(v[i].get<std::string>());
        } else {
          *error = ei +
                   ": expected a VM token (unsigned integer) or a pattern over its decimal name "
                   "(digits and * ? [ ] ! -)";
          return false;
        }
      }
    } else {
      *error = at + ": unknown key (expected uids, gids, vms, admin)";
      return false;
    }
  }
  if (rule->uids.empty() && rule->gids.empty()) {
    *error = where + ": a rule needs a nonempty \"uids\" or \"gids\"";
    return false;
  }
  return true;
}

bool applies(const PolicyRule& r, const PeerCred& p) {
  return std::find(r.uids.begin(), r.uids.end(), p.uid) != r.uids.end() ||
         std::find(r.gids.begin(), r.gids.end(), p.gid) != r.gids.end();
}

}  // namespace

Policy Policy::allow_uid(std::uint32_t self) {
  Policy p;
  PolicyRule r;
  r.uids = {self};
  if (self != 0) r.uids.push_back(0);
  r.vms = {"*"};
  r.admin = true;
  p.rules_.push_back(std::move(r));
  return p;
}

bool Policy::may_open(const PeerCred& peer, std::uint64_t vm_token) const {
  const std::string name = std::to_string(vm_token);
  for (const PolicyRule& r : rules_) {
    if (!applies(r, peer)) continue;
    for (const std::string& pattern : r.vms) {
      if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
    }
  }
  return false;
}

bool Policy::is_admin(const PeerCred& peer) const {
  return std::any_of(rules_.begin(), rules_.end(),
                     [&](const PolicyRule& r) { return r.admin && applies(r, peer); });
}

std::optional<Policy> parse_policy(std::string_view text, std::string* error) {
  const json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    *error = "not valid JSON";
    return std::nullopt;
  }
  if (!root.is_object()) {
    *error = "the top level must be an object with a \"rules\" array";
    return std::nullopt;
  }
  Policy policy;
  bool have_rules = false;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "rules") {
      const json& rules = it.value();
      if (!rules.is_array()) {
        *error = "rules: expected an array";
        return std::nullopt;
      }
      for (std::size_t i = 0; i < rules.size(); ++i) {
        PolicyRule rule;
        if (!parse_rule(rules[i], "rules[" + std::to_string(i) + "]", &rule, error)) {
          return std::nullopt;
        }
        policy.rules_.push_back(std::move(rule));
      }
      have_rules = true;
    } else {
      *error = it.key() + ": unknown key (expected rules)";
      return std::nullopt;
    }
  }
  if (!have_rules) {
    *error = "missing \"rules\"";
    return std::nullopt;
  }
  return policy;
}

}  // namespace ioasid::daemon
