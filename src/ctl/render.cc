// SPDX-License-Identifier: Apache-2.0
// render.cc: ioasidctl's human tables and JSON documents (render.hpp).
#include "ctl/render.hpp"

#include <fmt/core.h>
#include <time.h>

#include <algorithm>
#include <utility>

#include "ioasid/wire/broker_proto.hpp"

namespace ioasid::ctl {

namespace bw = ioasid::wire::broker;
using json = Json;

namespace {

// A table whose numeric columns are right-aligned: one header row, then the rows, columns
// separated by two spaces.
class Table {
 public:
  // right[i]: column i is right-aligned (numbers).
  Table(std::vector<std::string> header, std::vector<bool> right)
      : header_(std::move(header)), right_(std::move(right)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  [[nodiscard]] std::string str() const {
    std::vector<std::size_t> width(header_.size());
    for (std::size_t i = 0; i < header_.size(); ++i) width[i] = header_[i].size();
    for (const auto& r : rows_) {
      for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    }
    std::string out;
    auto line = [&](const std::vector<std::string>& r) {
      std::string l;
      for (std::size_t i = 0; i < r.size(); ++i) {
        if (i > 0) l += "  ";
        const std::string pad(width[i] - r[i].size(), ' ');
        l += right_[i] ? pad + r[i] : r[i] + (i + 1 < r.size() ? pad : "");
      }
      out += l + "\n";
    };
    line(header_);
    for (const auto& r : rows_) line(r);
    return out;
  }

 private:
  std::vector<std::string> header_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// "key   value" lines, the keys padded to one width.
std::string key_values(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::size_t w = 0;
  for (const auto& [k, v] : kv) w = std::max(w, k.size());
  std::string out;
  for (const auto& [k, v] : kv) out += fmt::format("{:<{}}  {}\n", k, w, v);
  return out;
}

std::string spid_text(Id spid) { return spid == kInvalidId ? "-" : std::to_string(spid); }
json spid_json(Id spid) { return spid == kInvalidId ? json(nullptr) : json(spid); }

std::string iso_utc(std::uint64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t);
  return buf;
}

std::string duration_text(std::uint64_t seconds) {
  const std::uint64_t d = seconds / 86400;
  const std::uint64_t h = seconds / 3600 % 24;
  const std::uint64_t m = seconds / 60 % 60;
  const std::uint64_t s = seconds % 60;
  if (d > 0) return fmt::format("{}d {:02}h{:02}m{:02}s", d, h, m, s);
  if (h > 0) return fmt::format("{}h{:02}m{:02}s", h, m, s);
  if (m > 0) return fmt::format("{}m{:02}s", m, s);
  return fmt::format("{}s", s);
}

std::uint64_t uptime_seconds(const StatusView& v) {
  const auto started = static_cast<std::int64_t>(v.status.started_ms);
  return v.now_ms > started ? static_cast<std::uint64_t>(v.now_ms - started) / 1000 : 0;
}

double mean_commit_ms(const DaemonStats& s) {
  return s.journal_commits == 0 ? 0.0
                                : static_cast<double>(s.journal_commit_ns) /
                                      static_cast<double>(s.journal_commits) / 1e6;
}

json id_json(const IdInfo& i) {
  return json{{"pasid", i.id},
              {"state", state_name(i.state)},
              {"refs", i.refs},
              {"binds", i.binds},
              {"spid", spid_json(i.spid)}};
}

json set_json(const SetInfo& s) {
  return json{{"vm", s.owner_token},
              {"state", state_name(s.state)},
              {"quota", s.quota},
              {"count", s.count},
              {"free", s.quota > s.count ? s.quota - s.count : 0},
              {"bound", s.bound},
              {"peak", s.peak},
              {"quota_refusals", s.quota_refusals}};
}

// The STATS counters under their wire names (docs/protocol.md STATS), in wire order.
std::vector<std::pair<const char*, std::uint64_t>> counters(const DaemonStats& s) {
  return {{"live_ids", s.space.live_ids},
          {"free_pending_ids", s.space.free_pending_ids},
          {"reserved_ids", s.space.reserved_ids},
          {"capacity", s.space.capacity},
          {"quota_reserved", s.space.quota_reserved},
          {"sets", s.space.sets},
          {"dying_sets", s.space.dying_sets},
          {"allocs", s.space.allocs},
          {"releases", s.space.releases},
          {"quota_refusals", s.space.quota_refusals},
          {"exhausted_refusals", s.space.exhausted_refusals},
          {"clients", s.clients},
          {"sessions", s.sessions},
          {"detached_sessions", s.detached_sessions},
          {"requests", s.requests},
          {"error_replies", s.error_replies},
          {"protocol_errors", s.protocol_errors},
          {"journal_commits", s.journal_commits},
          {"journal_commit_ns", s.journal_commit_ns},
          {"journal_flushes", s.journal_flushes}};
}

}  // namespace

const char* state_name(IdState s) noexcept {
  switch (s) {
    case IdState::free:
      return "free";
    case IdState::active:
      return "active";
    case IdState::free_pending:
      return "free_pending";
    case IdState::reserved:
      return "reserved";
  }
  return "unknown";
}

const char* state_name(SetState s) noexcept {
  switch (s) {
    case SetState::alive:
      return "alive";
    case SetState::dying:
      return "dying";
  }
  return "unknown";
}

std::vector<std::string> feature_names(std::uint64_t features) {
  std::vector<std::string> out;
  for (unsigned bit = 0; bit < 64; ++bit) {
    if ((features & bw::feature_bit(bit)) == 0) continue;
    switch (bit) {
      case bw::kFSpid:
        out.emplace_back("spid");
        break;
      case bw::kFResume:
        out.emplace_back("resume");
        break;
      case bw::kFAdmin:
        out.emplace_back("admin");
        break;
      default:
        out.push_back(fmt::format("bit{}", bit));
    }
  }
  return out;
}

std::string version_string(std::uint32_t v) {
  return fmt::format("{}.{}.{}", v >> 16, (v >> 8) & 0xFF, v & 0xFF);
}

json status_json(const StatusView& v) {
  const DaemonStatus& st = v.status;
  const DaemonStats& s = v.stats;
  return json{{"socket", v.socket},
              {"version", version_string(st.daemon_version)},
              {"pid", st.pid},
              {"started_ms", st.started_ms},
              {"started", iso_utc(st.started_ms)},
              {"uptime_seconds", uptime_seconds(v)},
              {"protocol_version", st.protocol_version},
              {"features", feature_names(st.features)},
              {"max_in_flight", st.max_in_flight},
              {"max_payload", st.max_payload},
              {"durable", st.durable},
              {"id_bits", st.id_bits},
              {"capacity", s.space.capacity},
              {"quota_reserved", s.space.quota_reserved},
              {"grace_seconds", st.grace_seconds},
              {"max_sessions_per_client", st.max_sessions_per_client},
              {"max_clients", st.max_clients},
              {"max_output", st.max_output},
              {"sessions", s.sessions},
              {"detached_sessions", s.detached_sessions},
              {"clients", s.clients},
              {"live_ids", s.space.live_ids},
              {"free_pending_ids", s.space.free_pending_ids},
              {"journal_commits", s.journal_commits},
              {"journal_commit_mean_ms", mean_commit_ms(s)},
              {"journal_flushes", s.journal_flushes}};
}

std::string status_text(const StatusView& v) {
  const DaemonStatus& st = v.status;
  const DaemonStats& s = v.stats;
  std::string features;
  for (const auto& f : feature_names(st.features)) features += (features.empty() ? "" : " ") + f;
  return key_values({
      {"socket", v.socket},
      {"daemon", fmt::format("ioasidd {}, pid {}", version_string(st.daemon_version), st.pid)},
      {"started",
       fmt::format("{} (up {})", iso_utc(st.started_ms), duration_text(uptime_seconds(v)))},
      {"protocol", fmt::format("version {}, features {}, {} requests in flight",
                               st.protocol_version, features, st.max_in_flight)},
      {"durability", st.durable ? "durable (SQLite WAL flushed before each reply, group commit)"
                                : "NOT DURABLE (--no-sync)"},
      {"space", fmt::format("{}-bit, capacity {}, {} reserved by quotas", st.id_bits,
                            s.space.capacity, s.space.quota_reserved)},
      {"sessions", fmt::format("{} ({} detached, grace {} s)", s.sessions, s.detached_sessions,
                               st.grace_seconds)},
      {"clients", std::to_string(s.clients)},
      {"pasids",
       fmt::format("{} live ({} free pending)", s.space.live_ids, s.space.free_pending_ids)},
      {"journal", fmt::format("{} commits, {:.3f} ms mean, {} flushes", s.journal_commits,
                              mean_commit_ms(s), s.journal_flushes)},
  });
}

json vms_json(const std::vector<SetInfo>& sets) {
  json list = json::array();
  for (const SetInfo& s : sets) list.push_back(set_json(s));
  return json{{"vms", std::move(list)}};
}

std::string vms_text(const std::vector<SetInfo>& sets) {
  Table t({"VM", "STATE", "QUOTA", "COUNT", "FREE", "BOUND", "PEAK", "QUOTA_REFUSALS"},
          {true, false, true, true, true, true, true, true});
  for (const SetInfo& s : sets) {
    t.add({std::to_string(s.owner_token), state_name(s.state), std::to_string(s.quota),
           std::to_string(s.count), std::to_string(s.quota > s.count ? s.quota - s.count : 0),
           std::to_string(s.bound), std::to_string(s.peak), std::to_string(s.quota_refusals)});
  }
  return t.str();
}

json pasids_json(std::uint64_t vm, const std::vector<IdInfo>& ids) {
  json list = json::array();
  for (const IdInfo& i : ids) list.push_back(id_json(i));
  return json{{"vm", vm}, {"pasids", std::move(list)}};
}

std::string pasids_text(const std::vector<IdInfo>& ids) {
  Table t({"PASID", "STATE", "REFS", "BINDS", "SPID"}, {true, false, true, true, true});
  for (const IdInfo& i : ids) {
    t.add({std::to_string(i.id), state_name(i.state), std::to_string(i.refs),
           std::to_string(i.binds), spid_text(i.spid)});
  }
  return t.str();
}

json vm_json(const SetInfo& set, const std::vector<IdInfo>& ids) {
  json j = set_json(set);
  j["pasids"] = pasids_json(set.owner_token, ids)["pasids"];
  return j;
}

std::string vm_text(const SetInfo& s, const std::vector<IdInfo>& ids) {
  std::string out = key_values({
      {"vm", std::to_string(s.owner_token)},
      {"state", state_name(s.state)},
      {"quota", fmt::format("{} ({} free)", s.quota, s.quota > s.count ? s.quota - s.count : 0)},
      {"count", fmt::format("{} (peak {})", s.count, s.peak)},
      {"bound", std::to_string(s.bound)},
      {"quota refusals", std::to_string(s.quota_refusals)},
  });
  out += "\n";
  out += ids.empty() ? "no PASIDs\n" : pasids_text(ids);
  return out;
}

json pasid_json(const DaemonIdInfo& id) {
  json j = id_json(id.info);
  j["vm"] = id.vm_token;
  return j;
}

std::string pasid_text(const DaemonIdInfo& id) {
  return key_values({{"pasid", std::to_string(id.info.id)},
                     {"vm", std::to_string(id.vm_token)},
                     {"state", state_name(id.info.state)},
                     {"refs", std::to_string(id.info.refs)},
                     {"binds", std::to_string(id.info.binds)},
                     {"spid", spid_text(id.info.spid)}});
}

json stats_json(const DaemonStats& s) {
  json j = json::object();
  for (const auto& [name, value] : counters(s)) j[name] = value;
  return j;
}

std::string stats_text(const DaemonStats& s) {
  Table t({"COUNTER", "VALUE"}, {false, true});
  for (const auto& [name, value] : counters(s)) t.add({name, std::to_string(value)});
  return t.str();
}

}  // namespace ioasid::ctl
