// SPDX-License-Identifier: Apache-2.0
// prometheus.cc: ioasidctl's metric families, text exposition and atomic textfile (prometheus.hpp).
#include "ctl/prometheus.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ioasid::ctl {

namespace {

MetricSample integer(std::uint64_t v,
                     std::vector<std::pair<std::string, std::string>> labels = {}) {
  MetricSample s;
  s.labels = std::move(labels);
  s.integer = v;
  return s;
}

MetricSample real(double v) {
  MetricSample s;
  s.is_integer = false;
  s.real = v;
  return s;
}

MetricFamily gauge(std::string name, std::string help, std::vector<MetricSample> samples) {
  return MetricFamily{std::move(name), "gauge", std::move(help), std::move(samples)};
}

MetricFamily counter(std::string name, std::string help, std::vector<MetricSample> samples) {
  return MetricFamily{std::move(name), "counter", std::move(help), std::move(samples)};
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string value_text(const MetricSample& s) {
  if (s.is_integer) return std::to_string(s.integer);
  return fmt::format("{}", s.real);  // shortest round-trip form
}

}  // namespace

std::vector<MetricFamily> daemon_metrics(const DaemonStatus& status, const DaemonStats& st,
                                         const std::vector<SetInfo>& sets) {
  std::vector<MetricFamily> f;
  f.push_back(
      gauge("ioasid_up", "Whether ioasidctl could read the daemon's figures.", {integer(1)}));
  f.push_back(gauge("ioasid_info", "The daemon's version and durability, as labels; always 1.",
                    {integer(1, {{"version", version_string(status.daemon_version)},
                                 {"durable", status.durable ? "true" : "false"}})}));
  f.push_back(gauge("ioasid_start_time_seconds",
                    "When the daemon started, seconds since the epoch.",
                    {real(static_cast<double>(status.started_ms) / 1000.0)}));
  f.push_back(gauge("ioasid_pasids", "Allocated PASIDs (active and free pending).",
                    {integer(st.space.live_ids)}));
  f.push_back(gauge("ioasid_free_pending_pasids", "PASIDs freed by their owner, still referenced.",
                    {integer(st.space.free_pending_ids)}));
  f.push_back(gauge("ioasid_reserved_pasids", "PASIDs never handed out (PASID 0).",
                    {integer(st.space.reserved_ids)}));
  f.push_back(gauge("ioasid_capacity_pasids", "PASIDs the quotas may reserve in total.",
                    {integer(st.space.capacity)}));
  f.push_back(gauge("ioasid_quota_reserved_pasids", "Sum of the VMs' quotas.",
                    {integer(st.space.quota_reserved)}));
  f.push_back(gauge("ioasid_sets", "VM sets (alive and dying).", {integer(st.space.sets)}));
  f.push_back(
      gauge("ioasid_dying_sets", "VM sets being torn down.", {integer(st.space.dying_sets)}));
  f.push_back(
      counter("ioasid_allocs_total", "Successful PASID allocations.", {integer(st.space.allocs)}));
  f.push_back(counter("ioasid_releases_total", "PASIDs returned to the allocator.",
                      {integer(st.space.releases)}));
  f.push_back(counter("ioasid_quota_refusals_total", "Allocations refused by a VM's quota.",
                      {integer(st.space.quota_refusals)}));
  f.push_back(counter("ioasid_exhausted_refusals_total",
                      "Allocations refused: no free PASID in the range.",
                      {integer(st.space.exhausted_refusals)}));
  f.push_back(gauge("ioasid_clients", "Connections to the daemon.", {integer(st.clients)}));
  f.push_back(
      gauge("ioasid_sessions", "VM sessions (attached and detached).", {integer(st.sessions)}));
  f.push_back(gauge("ioasid_detached_sessions", "VM sessions in their grace period.",
                    {integer(st.detached_sessions)}));
  f.push_back(counter("ioasid_requests_total", "Requests answered.", {integer(st.requests)}));
  f.push_back(counter("ioasid_error_replies_total", "Requests answered with an error status.",
                      {integer(st.error_replies)}));
  f.push_back(counter("ioasid_protocol_errors_total", "Connections closed for a malformed frame.",
                      {integer(st.protocol_errors)}));
  f.push_back(counter("ioasid_journal_commits_total", "Durable transactions (group commits).",
                      {integer(st.journal_commits)}));
  f.push_back(counter("ioasid_journal_commit_seconds_total", "Time spent committing them.",
                      {real(static_cast<double>(st.journal_commit_ns) / 1e9)}));
  f.push_back(counter("ioasid_journal_flushes_total",
                      "WAL flushes that replies waited for (one covers every commit before it).",
                      {integer(st.journal_flushes)}));

  MetricFamily pasids = gauge("ioasid_vm_pasids", "PASIDs a VM holds.", {});
  MetricFamily quota = gauge("ioasid_vm_quota_pasids", "A VM's quota.", {});
  MetricFamily bound = gauge("ioasid_vm_bound_pasids", "A VM's PASIDs with at least one bind.", {});
  MetricFamily peak = gauge("ioasid_vm_peak_pasids", "Most PASIDs a VM has held at once.", {});
  MetricFamily refusals =
      counter("ioasid_vm_quota_refusals_total", "A VM's allocations refused by its quota.", {});
  MetricFamily dying = gauge("ioasid_vm_dying", "1 while a VM's set is being torn down.", {});
  for (const SetInfo& s : sets) {
    const std::vector<std::pair<std::string, std::string>> vm = {
        {"vm", std::to_string(s.owner_token)}};
    pasids.samples.push_back(integer(s.count, vm));
    quota.samples.push_back(integer(s.quota, vm));
    bound.samples.push_back(integer(s.bound, vm));
    peak.samples.push_back(integer(s.peak, vm));
    refusals.samples.push_back(integer(s.quota_refusals, vm));
    dying.samples.push_back(integer(s.state == SetState::dying ? 1 : 0, vm));
  }
  for (MetricFamily* m : {&pasids, &quota, &bound, &peak, &refusals, &dying}) {
    f.push_back(std::move(*m));
  }
  return f;
}

std::vector<MetricFamily> down_metrics() {
  return {gauge("ioasid_up", "Whether ioasidctl could read the daemon's figures.", {integer(0)})};
}

std::string exposition(const std::vector<MetricFamily>& families) {
  std::string out;
  for (const MetricFamily& f : families) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, escape_help(f.help), f.name, f.type);
    for (const MetricSample& s : f.samples) {
      out += f.name;
      if (!s.labels.empty()) {
        out += '{';
        for (std::size_t i = 0; i < s.labels.size(); ++i) {
          if (i > 0) out += ',';
          out += fmt::format("{}=\"{}\"", s.labels[i].first, escape_label(s.labels[i].second));
        }
        out += '}';
      }
      out += ' ' + value_text(s) + '\n';
    }
  }
  return out;
}

Json metrics_json(const std::vector<MetricFamily>& families) {
  Json list = Json::array();
  for (const MetricFamily& f : families) {
    Json samples = Json::array();
    for (const MetricSample& s : f.samples) {
      Json labels = Json::object();
      for (const auto& [k, v] : s.labels) labels[k] = v;
      Json value = s.is_integer ? Json(s.integer) : Json(s.real);
      samples.push_back(Json{{"labels", std::move(labels)}, {"value", std::move(value)}});
    }
    list.push_back(Json{
        {"name", f.name}, {"type", f.type}, {"help", f.help}, {"samples", std::move(samples)}});
  }
  return Json{{"metrics", std::move(list)}};
}

bool write_textfile(const std::string& path, const std::string& text, std::string* error) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  auto fail_with = [&](const std::string& what, int err) {
    *error = fmt::format("{}: {}: {}", path, what, std::strerror(err));
    return false;
  };
  if (base.empty()) {
    *error = path + ": not a file name";
    return false;
  }
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    *error = path + ": exists and is not a regular file";
    return false;
  }
  const std::string tmp = fmt::format("{}.{}.{}.tmp", dir, base, getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return fail_with("cannot create " + tmp, errno);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail_with("write", err);
    }
    done += static_cast<std::size_t>(n);
  }
  // The umask may have narrowed the mode; the collector (another user) must be able to read it.
  if (::fchmod(fd, 0644) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail_with("write", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fail_with("rename", err);
  }
  return true;
}

}  // namespace ioasid::ctl
