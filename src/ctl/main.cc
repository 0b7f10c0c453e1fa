// SPDX-License-Identifier: Apache-2.0
// main.cc: ioasidctl, the operator's command line for ioasidd: status, VMs and their PASIDs, one
// PASID, quotas, counters and a Prometheus textfile, over the admin requests of the protocol
// (ioasid::DaemonAdmin, include/ioasid/client.hpp). docs/daemon.md "ioasidctl" is its manual.
//
// Output: a human table on stdout, or JSON with --json (render.hpp); errors: one line on stderr
// ("ioasidctl: ...") and the exit status below. Nothing is retried beyond --timeout: a missing
// daemon is reported at once.
//
// Exit status (kExit*): 0 success; 1 runtime error; 2 usage; 3 not found; 4 permission denied;
// 5 daemon unavailable; 6 refused by the daemon.
#include <fmt/core.h>
#include <sys/stat.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ctl/args.hpp"
#include "ctl/prometheus.hpp"
#include "ctl/render.hpp"
#include "ioasid/client.hpp"

namespace {

using ioasid::DaemonAdmin;
using ioasid::Errc;
using namespace ioasid::ctl;  // NOLINT(build/namespaces)

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;      // an unexpected failure: I/O, a broken reply, memory
constexpr int kExitUsage = 2;        // bad command line
constexpr int kExitNotFound = 3;     // no such VM, PASID not allocated or outside the space
constexpr int kExitPermission = 4;   // not an admin per the policy, or the socket refuses us
constexpr int kExitUnavailable = 5;  // no daemon at the socket, or it did not answer in time
constexpr int kExitRefused = 6;      // the daemon refused a change (quota below count, capacity)

constexpr const char* kDefaultSocket = "/run/ioasid/broker.sock";

// One line on stderr; returns code.
template <class... Args>
int error(int code, fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "ioasidctl: {}\n", fmt::format(f, std::forward<Args>(args)...));
  return code;
}

struct Globals {
  std::string socket = kDefaultSocket;
  std::string timeout = "5";
  bool json = false;
};

std::int64_t realtime_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// Why nothing answers at path, for the message.
std::string unreachable_reason(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return "no such socket (is ioasidd running?)";
  if (!S_ISSOCK(st.st_mode)) return "not a socket";
  return "connection refused (is ioasidd running?)";
}

// The exit status and message of a failed request; what names the object ("VM 42").
int request_error(Errc e, const Globals& g, const std::string& what) {
  switch (e) {
    case Errc::not_found:
      return error(kExitNotFound, "{}: not found", what);
    case Errc::out_of_range:
      return error(kExitNotFound, "{}: outside the daemon's PASID space", what);
    case Errc::permission_denied:
      return error(kExitPermission,
                   "permission denied: the daemon's policy does not make this user an admin");
    case Errc::timed_out:
      return error(kExitUnavailable, "{}: no answer within {} s", g.socket, g.timeout);
    case Errc::invalid_argument:
      return error(kExitRefused,
                   "{}: refused: invalid for the current state (e.g. a quota below "
                   "the PASIDs the VM holds)",
                   what);
    case Errc::exhausted:
      return error(kExitRefused, "{}: refused: the space's capacity cannot cover it", what);
    case Errc::busy:
      return error(kExitRefused, "{}: refused: the VM's set is being torn down", what);
    case Errc::unsupported:
      return error(kExitRuntime, "the daemon does not support this request (an older ioasidd?)");
    default:
      return error(kExitRuntime, "{}: {}", what, ioasid::to_string(e));
  }
}

// Connects. On failure returns nullptr and stores the exit status in *rc (after the message).
std::unique_ptr<DaemonAdmin> connect(const Globals& g, std::chrono::milliseconds timeout, int* rc) {
  ioasid::AdminOptions o;
  o.socket_path = g.socket;
  o.timeout = timeout;
  o.wait_for_daemon = false;
  auto a = DaemonAdmin::open(o);
  if (a) return std::move(*a);
  switch (a.error()) {
    case Errc::io_error:
      *rc = error(kExitUnavailable, "cannot connect to {}: {}", g.socket,
                  unreachable_reason(g.socket));
      break;
    case Errc::permission_denied:
      *rc = error(kExitPermission,
                  "cannot connect to {}: permission denied (the socket is for "
                  "its group; see docs/daemon.md)",
                  g.socket);
      break;
    case Errc::timed_out:
      *rc = error(kExitUnavailable, "{}: no answer within {} s", g.socket, g.timeout);
      break;
    case Errc::invalid_argument:
      *rc = error(kExitUsage, "invalid socket path '{}'", g.socket);
      break;
    default:
      *rc = error(kExitRuntime, "cannot connect to {}: {}", g.socket, ioasid::to_string(a.error()));
  }
  return nullptr;
}

template <class J>
void print_json(const J& j) {
  fmt::print("{}\n", j.dump(2));
}

int run_status(DaemonAdmin& a, const Globals& g) {
  auto st = a.status();
  if (!st) return request_error(st.error(), g, "status");
  auto stats = a.stats();
  if (!stats) return request_error(stats.error(), g, "stats");
  const StatusView v{g.socket, *st, *stats, realtime_ms()};
  if (g.json) {
    print_json(status_json(v));
  } else {
    fmt::print("{}", status_text(v));
  }
  return kExitOk;
}

int run_list(DaemonAdmin& a, const Globals& g) {
  auto sets = a.list_sets();
  if (!sets) return request_error(sets.error(), g, "list");
  if (g.json) {
    print_json(vms_json(*sets));
  } else {
    fmt::print("{}", vms_text(*sets));
  }
  return kExitOk;
}

int run_list_ids(DaemonAdmin& a, const Globals& g, std::uint64_t vm) {
  auto ids = a.list_ids(vm);
  if (!ids) return request_error(ids.error(), g, fmt::format("VM {}", vm));
  if (g.json) {
    print_json(pasids_json(vm, *ids));
  } else {
    fmt::print("{}", pasids_text(*ids));
  }
  return kExitOk;
}

int run_show(DaemonAdmin& a, const Globals& g, std::uint64_t vm) {
  auto sets = a.list_sets();
  if (!sets) return request_error(sets.error(), g, "list");
  const ioasid::SetInfo* set = nullptr;
  for (const auto& s : *sets) {
    if (s.owner_token == vm) set = &s;
  }
  if (set == nullptr) return request_error(Errc::not_found, g, fmt::format("VM {}", vm));
  auto ids = a.list_ids(vm);
  if (!ids) return request_error(ids.error(), g, fmt::format("VM {}", vm));
  if (g.json) {
    print_json(vm_json(*set, *ids));
  } else {
    fmt::print("{}", vm_text(*set, *ids));
  }
  return kExitOk;
}

int run_show_pasid(DaemonAdmin& a, const Globals& g, std::uint32_t pasid) {
  auto q = a.query_id(pasid);
  if (!q) return request_error(q.error(), g, fmt::format("PASID {}", pasid));
  if (g.json) {
    print_json(pasid_json(*q));
  } else {
    fmt::print("{}", pasid_text(*q));
  }
  return kExitOk;
}

int run_set_quota(DaemonAdmin& a, const Globals& g, std::uint64_t vm, std::uint32_t quota) {
  auto r = a.set_quota(vm, quota);
  if (!r) return request_error(r.error(), g, fmt::format("VM {}", vm));
  if (g.json) {
    print_json(Json{{"vm", vm}, {"quota", quota}});
  } else {
    fmt::print("VM {}: quota {}\n", vm, quota);
  }
  return kExitOk;
}

int run_stats(DaemonAdmin& a, const Globals& g) {
  auto s = a.stats();
  if (!s) return request_error(s.error(), g, "stats");
  if (g.json) {
    print_json(stats_json(*s));
  } else {
    fmt::print("{}", stats_text(*s));
  }
  return kExitOk;
}

// Prints (or writes to textfile) the metrics. A daemon that cannot be read gives ioasid_up 0 and
// the error's exit status, so that a scrape never shows stale figures.
int run_metrics(DaemonAdmin* a, int connect_rc, const Globals& g, const std::string& textfile) {
  std::vector<MetricFamily> families;
  int rc = connect_rc;
  if (a != nullptr) {
    auto st = a->status();
    auto stats = st ? a->stats() : ioasid::Result<ioasid::DaemonStats>(ioasid::fail(st.error()));
    auto sets = stats ? a->list_sets()
                      : ioasid::Result<std::vector<ioasid::SetInfo>>(ioasid::fail(stats.error()));
    if (sets) {
      families = daemon_metrics(*st, *stats, *sets);
    } else {
      rc = request_error(sets.error(), g, "metrics");
    }
  }
  if (families.empty()) families = down_metrics();
  if (!textfile.empty()) {
    std::string why;
    if (!write_textfile(textfile, exposition(families), &why)) {
      return error(kExitRuntime, "{}", why);
    }
  } else if (g.json) {
    print_json(metrics_json(families));
  } else {
    fmt::print("{}", exposition(families));
  }
  return rc;
}

// A CLI11 validator from one of the args.hpp parsers, so that a bad value is a usage error
// with the parser's reason.
template <class Parse>
CLI::Validator checked(Parse parse, const std::string& what) {
  return CLI::Validator(
      [parse, what](std::string& v) -> std::string {
        std::string why;
        if (!parse(v, &why)) return fmt::format("invalid {} '{}': {}", what, v, why);
        return {};
      },
      what);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ioasidctl: inspect and administer ioasidd, the host's PASID broker"};
  app.require_subcommand(1);
  app.fallthrough();
  Globals g;
  if (const char* env = std::getenv("IOASID_SOCKET"); env != nullptr && *env != '\0') {
    g.socket = env;
  }
  app.add_option("--socket", g.socket,
                 "The daemon's socket (default $IOASID_SOCKET, else /run/ioasid/broker.sock)");
  app.add_option("--timeout", g.timeout, "Seconds to wait for each answer")
      ->capture_default_str()
      ->check(checked(parse_seconds, "timeout"));
  app.add_flag("--json", g.json, "JSON instead of a table");

  auto* status = app.add_subcommand("status", "The daemon: version, uptime, durability, totals");
  auto* list = app.add_subcommand("list", "Every VM with its quota and PASID counts");
  std::string vm_text;
  std::string pasid_text;
  std::string quota_text;
  auto* list_ids = app.add_subcommand("list-ids", "The PASIDs of one VM");
  list_ids->add_option("VM", vm_text, "VM token")->required()->check(checked(parse_vm, "VM"));
  auto* show = app.add_subcommand("show", "One VM and its PASIDs");
  show->add_option("VM", vm_text, "VM token")->required()->check(checked(parse_vm, "VM"));
  auto* show_pasid = app.add_subcommand("show-pasid", "One PASID: owner VM, state, refs, spid");
  show_pasid->add_option("PASID", pasid_text, "PASID")
      ->required()
      ->check(checked(parse_pasid, "PASID"));
  auto* set_quota = app.add_subcommand("set-quota", "Change a VM's quota");
  set_quota->add_option("VM", vm_text, "VM token")->required()->check(checked(parse_vm, "VM"));
  set_quota->add_option("QUOTA", quota_text, "PASIDs the VM may hold (>= 1)")
      ->required()
      ->check(checked(parse_quota, "quota"));
  auto* stats = app.add_subcommand("stats", "Every daemon counter");
  auto* metrics = app.add_subcommand(
      "metrics", "Prometheus text exposition (stdout, or atomically to a textfile)");
  std::string textfile;
  metrics->add_option("--textfile,--prometheus-textfile", textfile,
                      "Write to this file (node_exporter textfile collector) instead of stdout");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    return error(kExitUsage, "{} (see ioasidctl --help)", e.what());
  }
  std::string why;
  const auto timeout = parse_seconds(g.timeout, &why);  // validated above
  if (!timeout) return error(kExitUsage, "invalid timeout '{}': {}", g.timeout, why);

  int rc = kExitOk;
  auto admin = connect(g, *timeout, &rc);
  if (metrics->parsed()) return run_metrics(admin.get(), rc, g, textfile);
  if (!admin) return rc;
  DaemonAdmin& a = *admin;
  if (status->parsed()) return run_status(a, g);
  if (list->parsed()) return run_list(a, g);
  if (stats->parsed()) return run_stats(a, g);
  if (show_pasid->parsed()) return run_show_pasid(a, g, *parse_pasid(pasid_text, &why));
  const std::uint64_t vm = *parse_vm(vm_text, &why);
  if (list_ids->parsed()) return run_list_ids(a, g, vm);
  if (show->parsed()) return run_show(a, g, vm);
  if (set_quota->parsed()) return run_set_quota(a, g, vm, *parse_quota(quota_text, &why));
  return error(kExitUsage, "no subcommand (see ioasidctl --help)");
}
