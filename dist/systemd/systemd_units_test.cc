// SPDX-License-Identifier: Apache-2.0
// systemd_units_test.cc: the systemd units of dist/systemd as built (ioasidd.service configured by
// CMake): they parse (our own strict reading plus `systemd-analyze verify`, which must print
// nothing), they say what docs/daemon.md promises (socket path and mode, Type=notify, state and
// runtime directories, hardening), the sysusers entry creates the user and group they name
// (`systemd-sysusers --dry-run` on a scratch root), and ioasidd accepts their ExecStart= command
// line: once with --print-capabilities, once for real under `systemd-socket-activate` (systemd's
// own tool: it owns the listening socket, the first connection execs the daemon with LISTEN_FDS),
// with the example policy file, until READY=1, an ioasidctl status over the socket and SIGTERM.
// Needs the Debian package systemd for the two tools; without them those tests skip.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "daemon/test_daemon.hpp"

namespace ioasid::testing {
namespace {

using Section = std::multimap<std::string, std::string>;
using Unit = std::map<std::string, Section>;

// Reads a unit file strictly: comments, blank lines, [Section] headers and Key=Value lines only
// (no continuation lines), every key inside a section. Fails the test otherwise.
Unit read_unit(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  Unit u;
  std::string line;
  std::string section;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      EXPECT_EQ(line.back(), ']') << path << ":" << n;
      section = line.substr(1, line.size() - 2);
      EXPECT_EQ(u.count(section), 0u) << path << ": section twice: " << section;
      u[section];
      continue;
    }
    EXPECT_FALSE(section.empty()) << path << ":" << n << ": a key outside any section";
    EXPECT_NE(line.back(), '\\') << path << ":" << n << ": continuation lines are not used";
    const auto eq = line.find('=');
    EXPECT_NE(eq, std::string::npos) << path << ":" << n << ": " << line;
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq);
    EXPECT_EQ(key.find(' '), std::string::npos) << path << ":" << n;
    u[section].emplace(key, line.substr(eq + 1));
  }
  return u;
}

std::string one(const Unit& u, const std::string& section, const std::string& key) {
  auto s = u.find(section);
  if (s == u.end()) {
    ADD_FAILURE() << "no [" << section << "]";
    return {};
  }
  EXPECT_EQ(s->second.count(key), 1u) << "[" << section << "] " << key;
  auto it = s->second.find(key);
  return it == s->second.end() ? std::string() : it->second;
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> w;
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

const std::string kUnits = UNIT_BUILD_DIR;     // configured units (ioasidd.service)
const std::string kSources = UNIT_SOURCE_DIR;  // dist/systemd

std::string service_path() { return kUnits + "/ioasidd.service"; }
std::string socket_path() { return kSources + "/ioasidd.socket"; }

TEST(SystemdUnits, SocketUnitSaysWhatTheManualSays) {
  const Unit s = read_unit(socket_path());
  EXPECT_EQ(one(s, "Socket", "ListenStream"), "/run/ioasid/broker.sock");
  EXPECT_EQ(one(s, "Socket", "SocketMode"), "0660");
  EXPECT_EQ(one(s, "Socket", "SocketGroup"), "ioasid");
  EXPECT_EQ(one(s, "Install", "WantedBy"), "sockets.target");
  EXPECT_EQ(s.at("Socket").count("Accept"), 0u);  // one daemon for every connection
}

TEST(SystemdUnits, ServiceUnitSaysWhatTheManualSays) {
  const Unit u = read_unit(service_path());
  EXPECT_EQ(one(u, "Unit", "Requires"), "ioasidd.socket");
  EXPECT_EQ(one(u, "Unit", "After"), "ioasidd.socket");
  EXPECT_EQ(one(u, "Service", "Type"), "notify");
  EXPECT_EQ(one(u, "Service", "StateDirectory"), "ioasid");
  EXPECT_EQ(one(u, "Service", "RuntimeDirectory"), "ioasid");
  EXPECT_EQ(one(u, "Service", "RuntimeDirectoryPreserve"), "yes");  // the socket lives there
  EXPECT_EQ(one(u, "Service", "User"), "ioasid");
  EXPECT_EQ(one(u, "Service", "Group"), "ioasid");
  EXPECT_EQ(one(u, "Service", "Restart"), "on-failure");
  EXPECT_EQ(one(u, "Service", "WatchdogSec"), "30s");  // the daemon beats at half of it
  for (const char* yes :
       {"NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateNetwork",
        "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
        "RestrictNamespaces", "RestrictSUIDSGID", "MemoryDenyWriteExecute", "LockPersonality"}) {
    EXPECT_EQ(one(u, "Service", yes), "yes") << yes;
  }
  EXPECT_EQ(one(u, "Service", "ProtectSystem"), "strict");
  EXPECT_EQ(one(u, "Service", "RestrictAddressFamilies"), "AF_UNIX");
  EXPECT_EQ(one(u, "Service", "CapabilityBoundingSet"), "");
  EXPECT_EQ(u.at("Service").count("PrivateUsers"), 0u);  // peers' uids must stay real
  const auto exec = words(one(u, "Service", "ExecStart"));
  ASSERT_GE(exec.size(), 5u);
  EXPECT_EQ(exec[0], std::string(CONFIGURED_SBINDIR) + "/ioasidd");
  EXPECT_EQ(exec[1], "--socket");
  EXPECT_EQ(exec[2], "/run/ioasid/broker.sock");
  EXPECT_EQ(exec[3], "--state-dir");
  EXPECT_EQ(exec[4], "/var/lib/ioasid");  // StateDirectory=ioasid
  EXPECT_EQ(one(u, "Install", "Also"), "ioasidd.socket");
}

TEST(SystemdUnits, MetricsUnitsNameEachOther) {
  const Unit svc = read_unit(kUnits + "/ioasidctl-metrics.service");
  const Unit timer = read_unit(kSources + "/ioasidctl-metrics.timer");
  EXPECT_EQ(one(svc, "Service", "Type"), "oneshot");
  const auto exec = words(one(svc, "Service", "ExecStart"));
  ASSERT_GE(exec.size(), 2u);
  EXPECT_EQ(exec[0], std::string(CONFIGURED_BINDIR) + "/ioasidctl");
  EXPECT_NE(std::find(exec.begin(), exec.end(), "metrics"), exec.end());
  EXPECT_NE(std::find(exec.begin(), exec.end(), "--textfile"), exec.end());
  EXPECT_EQ(one(timer, "Install", "WantedBy"), "timers.target");
}

// The units in a scratch directory with ExecStart= naming the built programs (verify insists that
// they exist).
std::string units_with_built_programs(const std::string& dir) {
  auto rewrite = [&](const std::string& from, const std::string& name) {
    std::ifstream in(from);
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    for (const auto& [installed, built] :
         {std::pair<std::string, std::string>{std::string(CONFIGURED_SBINDIR) + "/ioasidd",
                                              IOASIDD_PATH},
          {std::string(CONFIGURED_BINDIR) + "/ioasidctl", IOASIDCTL_PATH}}) {
      for (auto at = s.find(installed); at != std::string::npos; at = s.find(installed, at)) {
        s.replace(at, installed.size(), built);
        at += built.size();
      }
    }
    std::ofstream(dir + "/" + name) << s;
  };
  rewrite(service_path(), "ioasidd.service");
  rewrite(socket_path(), "ioasidd.socket");
  rewrite(kUnits + "/ioasidctl-metrics.service", "ioasidctl-metrics.service");
  rewrite(kSources + "/ioasidctl-metrics.timer", "ioasidctl-metrics.timer");
  return dir;
}

TEST(SystemdUnits, SystemdAnalyzeVerifyIsSilent) {
  if (std::string(SYSTEMD_ANALYZE).empty()) GTEST_SKIP() << "systemd-analyze not installed";
  const std::string dir = make_temp_dir();
  units_with_built_programs(dir);
  const ProgramResult r = run_program(
      SYSTEMD_ANALYZE, {"verify", dir + "/ioasidd.socket", dir + "/ioasidd.service",
                        dir + "/ioasidctl-metrics.service", dir + "/ioasidctl-metrics.timer"});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  // verify reports unknown keys and bad values as warnings only: there must be none.
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "");
  // And it does see a broken unit (the check is not vacuous).
  { std::ofstream(dir + "/ioasidd.service", std::ios::app) << "[Service]\nType=notifyy\n"; }
  const ProgramResult bad =
      run_program(SYSTEMD_ANALYZE, {"verify", dir + "/ioasidd.socket", dir + "/ioasidd.service"});
  EXPECT_NE(bad.err.find("notifyy"), std::string::npos) << bad.err;
  std::filesystem::remove_all(dir);
}

TEST(SystemdUnits, SysusersEntryCreatesTheUserAndGroupTheUnitsName) {
  if (std::string(SYSTEMD_SYSUSERS).empty()) GTEST_SKIP() << "systemd-sysusers not installed";
  const std::string root = make_temp_dir();
  std::filesystem::create_directories(root + "/etc");
  const ProgramResult r =
      run_program(SYSTEMD_SYSUSERS, {"--dry-run", "--root=" + root, kSources + "/ioasid.sysusers"});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  const std::string all = r.out + r.err;
  EXPECT_NE(all.find("Creating group 'ioasid'"), std::string::npos) << all;
  EXPECT_NE(all.find("Creating user 'ioasid'"), std::string::npos) << all;
  std::filesystem::remove_all(root);
}

// The service's ExecStart= words with the paths of a scratch directory, $IOASIDD_OPTIONS replaced
// by options.
std::vector<std::string> exec_start(const std::string& dir,
                                    const std::vector<std::string>& options) {
  const Unit u = read_unit(service_path());
  std::vector<std::string> out;
  for (const std::string& w : words(one(u, "Service", "ExecStart"))) {
    if (w == "$IOASIDD_OPTIONS") {
      out.insert(out.end(), options.begin(), options.end());
    } else if (w == "/run/ioasid/broker.sock") {
      out.push_back(dir + "/broker.sock");
    } else if (w == "/var/lib/ioasid") {
      out.push_back(dir + "/state");
    } else {
      EXPECT_EQ(w.find('$'), std::string::npos) << "an unexpected variable: " << w;
      out.push_back(w);
    }
  }
  out[0] = IOASIDD_PATH;
  return out;
}

TEST(SystemdUnits, DaemonAcceptsTheExecStartCommandLine) {
  const std::string dir = make_temp_dir();
  std::vector<std::string> cmd = exec_start(dir, {"--policy", POLICY_EXAMPLE});
  cmd.push_back("--print-capabilities");
  const ProgramResult r = run_program(cmd[0], {cmd.begin() + 1, cmd.end()});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  const auto caps = nlohmann::json::parse(r.out);
  EXPECT_EQ(caps["name"], "ioasidd");
  EXPECT_EQ(caps["durability"], "sqlite-wal");
  std::filesystem::remove_all(dir);
}

TEST(SystemdUnits, SocketActivationWithTheUnitsCommandLine) {
  if (std::string(SYSTEMD_SOCKET_ACTIVATE).empty()) {
    GTEST_SKIP() << "systemd-socket-activate not installed";
  }
  const std::string dir = make_temp_dir();
  const std::string sock = dir + "/broker.sock";
  internal::ReadyListener ready;
  ASSERT_EQ(ready.open(), "");

  // systemd-socket-activate -l SOCK -E NOTIFY_SOCKET=... <ExecStart with the example policy>
  std::vector<std::string> args = {SYSTEMD_SOCKET_ACTIVATE, "-l", sock, "-E",
                                   "NOTIFY_SOCKET=" + ready.notify_socket()};
  for (const std::string& w : exec_start(dir, {"--policy", POLICY_EXAMPLE})) args.push_back(w);
  const pid_t pid = internal::spawn(args, [] {
    if (!DaemonProcess::verbose()) {
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 2);
    }
  });
  ASSERT_GT(pid, 0);
  // The socket exists before the daemon runs (systemd's), and the daemon starts only now.
  for (int i = 0; i < 400 && !std::filesystem::exists(sock); ++i) ::usleep(10'000);
  ASSERT_TRUE(std::filesystem::exists(sock));
  const ProgramResult st =
      run_program(IOASIDCTL_PATH, {"--socket", sock, "--timeout", "20", "status", "--json"});
  if (::geteuid() == 0) {
    ASSERT_EQ(st.exit_code(), 0) << st.err;  // the example policy makes root an admin
    const auto j = nlohmann::json::parse(st.out);
    EXPECT_EQ(j["pid"], pid);  // systemd-socket-activate execs the daemon in its own process
    EXPECT_EQ(j["durable"], true);
    EXPECT_EQ(j["sessions"], 0);
  } else {
    EXPECT_EQ(st.exit_code(), 4) << st.err;  // served, but this uid is no admin in the example
  }
  // READY=1 arrived on NOTIFY_SOCKET (before the status request was answered).
  int early_status = 0;
  EXPECT_EQ(ready.wait(pid, std::chrono::seconds(5), &early_status),
            internal::ReadyListener::Outcome::ready);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(std::filesystem::exists(sock));  // the socket is systemd's: not removed
  EXPECT_TRUE(std::filesystem::exists(dir + "/state/ioasidd.sqlite3"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ioasid::testing
