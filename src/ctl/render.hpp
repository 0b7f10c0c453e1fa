// SPDX-License-Identifier: Apache-2.0
// render.hpp: how ioasidctl shows what the daemon answered: a human table (the default) and a
// JSON document (--json) for each subcommand. Pure functions of the values the client library
// returns (include/ioasid/client.hpp), so the two forms always carry the same facts.
//
// JSON conventions: snake_case keys; VM tokens, PASIDs and counters are JSON integers (64-bit
// exact); a PASID without a guest PASID has "spid": null; states are the lower-case names of
// ioasid::IdState / ioasid::SetState ("active", "free_pending", "alive", "dying").
//
// Thread-safety: pure.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ioasid/client.hpp"
#include "ioasid/types.hpp"

namespace ioasid::ctl {

// Keys in the order they are set (the order of the human form), not sorted.
using Json = nlohmann::ordered_json;

// Everything `ioasidctl status` shows.
struct StatusView {
  std::string socket;
  DaemonStatus status;
  DaemonStats stats;
  std::int64_t now_ms = 0;  // CLOCK_REALTIME, for the uptime
};

[[nodiscard]] const char* state_name(IdState s) noexcept;
[[nodiscard]] const char* state_name(SetState s) noexcept;
// "spid resume admin" names of the protocol's feature bits, unknown bits as "bit<N>".
[[nodiscard]] std::vector<std::string> feature_names(std::uint64_t features);
// "0.1.0" from (major << 16) | (minor << 8) | patch.
[[nodiscard]] std::string version_string(std::uint32_t version);

[[nodiscard]] Json status_json(const StatusView& v);
[[nodiscard]] std::string status_text(const StatusView& v);

// `list`: every VM (set).
[[nodiscard]] Json vms_json(const std::vector<SetInfo>& sets);
[[nodiscard]] std::string vms_text(const std::vector<SetInfo>& sets);

// `list-ids VM`: the VM's PASIDs.
[[nodiscard]] Json pasids_json(std::uint64_t vm, const std::vector<IdInfo>& ids);
[[nodiscard]] std::string pasids_text(const std::vector<IdInfo>& ids);

// `show VM`: the VM and its PASIDs.
[[nodiscard]] Json vm_json(const SetInfo& set, const std::vector<IdInfo>& ids);
[[nodiscard]] std::string vm_text(const SetInfo& set, const std::vector<IdInfo>& ids);

// `show-pasid PASID`.
[[nodiscard]] Json pasid_json(const DaemonIdInfo& id);
[[nodiscard]] std::string pasid_text(const DaemonIdInfo& id);

// `stats`: every STATS counter under its wire name.
[[nodiscard]] Json stats_json(const DaemonStats& s);
[[nodiscard]] std::string stats_text(const DaemonStats& s);

}  // namespace ioasid::ctl
