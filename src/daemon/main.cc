// SPDX-License-Identifier: Apache-2.0
// main.cc: the ioasidd program: command line (CLI11), policy file, state directory, listening
// socket (a path, or one inherited through systemd socket activation), signals, readiness
// notification, then the server's event loop (server.hpp). docs/daemon.md is its manual.
//
// Exit status: 0 after SIGTERM/SIGINT; 1 on a runtime failure (the store, the socket); 2 on a bad
// command line or policy file.
#include <fcntl.h>
#include <fmt/core.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "daemon/policy.hpp"
#include "daemon/server.hpp"
#include "daemon/store.hpp"
#include "ioasid/ioasid.h"

namespace {

using ioasid::daemon::Durability;
using ioasid::daemon::Policy;
using ioasid::daemon::Server;
using ioasid::daemon::ServerConfig;
using ioasid::daemon::Store;
namespace bw = ioasid::wire::broker;

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

template <class... Args>
int die(int code, fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "<3>ioasidd: {}\n", fmt::format(f, std::forward<Args>(args)...));
  return code;
}

std::string capabilities(const ServerConfig& c) {
  nlohmann::json j;
  j["name"] = "ioasidd";
  j["version"] =
      fmt::format("{}.{}.{}", IOASID_VERSION_MAJOR, IOASID_VERSION_MINOR, IOASID_VERSION_PATCH);
  j["protocol_version"] = bw::kProtocolVersion;
  j["features"] = {"spid", "resume", "admin"};
  j["feature_bits"] = bw::kAllFeatures;
  j["max_payload"] = bw::kMaxPayload;
  j["max_in_flight"] = c.max_inflight;
  j["id_bits"] = c.id_bits;
  j["capacity"] = c.capacity;
  j["grace_seconds"] = c.grace_seconds;
  j["max_sessions_per_client"] = c.max_sessions_per_client;
  j["durability"] = c.no_sync ? "none" : "sqlite-wal";
  return j.dump(2);
}

// A listening socket at path, mode 0660. A stale socket file (nobody listening) is replaced; a
// live one is an error.
int listen_at(const std::string& path, std::string* error) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) {
    *error = "socket path too long: " + path;
    return -1;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = path + " exists and is not a socket";
      close(fd);
      return -1;
    }
    const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool live = connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    close(probe);
    if (live) {
      *error = "another daemon listens on " + path;
      close(fd);
      return -1;
    }
    unlink(path.c_str());
  }
  const mode_t old = umask(0117);
  const int rc = bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc != 0 || chmod(path.c_str(), 0660) != 0 || listen(fd, 128) != 0) {
    *error = path + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ioasidd: the host's system-wide IOASID (PASID) broker"};
  ServerConfig config;
  std::string socket_path;
  std::string state_dir = "/var/lib/ioasid";
  std::string policy_file;
  bool no_sync = false;
  std::string commit_flush = "inline";
  bool print_caps = false;
  app.add_option("--socket,--socket-path", socket_path,
                 "Unix socket to listen on (unless a socket is passed by systemd)");
  app.add_option("--state-dir", state_dir, "Directory of the SQLite state (ioasidd.sqlite3)")
      ->capture_default_str();
  app.add_option("--policy", policy_file, "JSON policy file (default: own uid and root only)");
  app.add_option("--grace", config.grace_seconds,
                 "Seconds a disconnected VM session keeps its PASIDs")
      ->capture_default_str();
  app.add_option("--max-sessions-per-client", config.max_sessions_per_client,
                 "Sessions (attached or detached) one uid may hold")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-inflight", config.max_inflight,
                 "Requests per connection executed per loop iteration")
      ->capture_default_str()
      ->check(CLI::Range(1u, 4096u));
  app.add_option("--max-output", config.max_output,
                 "Unsent reply bytes after which a client is not read until it drains them")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 30));
  app.add_option("--id-bits", config.id_bits, "PASID width")
      ->capture_default_str()
      ->check(CLI::Range(1u, 32u));
  app.add_option("--capacity", config.capacity, "IDs the quotas may reserve in total; 0: all")
      ->capture_default_str();
  app.add_flag("--no-sync", no_sync, "synchronous=OFF (benchmark comparison only: not durable)");
  app.add_option("--commit-flush", commit_flush,
                 "Who flushes a commit to disk: the commit itself (the loop waits), or a flusher "
                 "thread while the loop serves the next requests")
      ->capture_default_str()
      ->check(CLI::IsMember({"thread", "inline"}));
  app.add_flag("--print-capabilities", print_caps, "Print capabilities as JSON and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  config.no_sync = no_sync;
  config.daemon_version = IOASID_VERSION;
  if (print_caps) {
    fmt::print("{}\n", capabilities(config));
    return 0;
  }

  if (policy_file.empty()) {
    config.policy = Policy::allow_uid(static_cast<std::uint32_t>(geteuid()));
  } else {
    std::ifstream in(policy_file, std::ios::binary);
    if (!in)
      return die(kExitUsage, "policy {}: cannot read: {}", policy_file, std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    std::string error;
    auto policy = ioasid::daemon::parse_policy(text.str(), &error);
    if (!policy) return die(kExitUsage, "policy {}: {}", policy_file, error);
    config.policy = std::move(*policy);
  }

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  config.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (config.signal_fd < 0) return die(kExitRuntime, "signalfd: {}", std::strerror(errno));

  if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return die(kExitRuntime, "state directory {}: {}", state_dir, std::strerror(errno));
  }
  std::string error;
  const Durability durability = no_sync                    ? Durability::none
                                : commit_flush == "inline" ? Durability::flush_in_commit
                                                           : Durability::flush_after_commit;
  auto store = Store::open(state_dir + "/ioasidd.sqlite3", durability, &error);
  if (!store) return die(kExitRuntime, "store: {}", error);

  const int inherited = sd_listen_fds(1);
  if (inherited > 1)
    return die(kExitUsage, "socket activation passed {} sockets, want 1", inherited);
  if (inherited == 1) {
    config.listen_fd = SD_LISTEN_FDS_START;
    if (sd_is_socket_unix(config.listen_fd, SOCK_STREAM, 1, nullptr, 0) <= 0) {
      return die(kExitUsage, "the inherited fd is not a listening Unix stream socket");
    }
    fcntl(config.listen_fd, F_SETFL, fcntl(config.listen_fd, F_GETFL) | O_NONBLOCK);
  } else {
    if (socket_path.empty()) return die(kExitUsage, "--socket is required (or socket activation)");
    config.listen_fd = listen_at(socket_path, &error);
    if (config.listen_fd < 0) return die(kExitRuntime, "{}", error);
  }

  // WatchdogSec=: systemd sets WATCHDOG_USEC; beat at half the interval, as sd_watchdog_enabled(3)
  // advises, with the STATUS= line refreshed on each beat.
  std::uint64_t watchdog_usec = 0;
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
    config.heartbeat_ms =
        static_cast<std::uint32_t>(std::clamp<std::uint64_t>(watchdog_usec / 2000, 1, 3'600'000));
    config.heartbeat = [](std::size_t sessions, std::size_t connections) {
      sd_notifyf(0, "WATCHDOG=1\nSTATUS=serving %zu sessions, %zu connections", sessions,
                 connections);
    };
  }
  auto server = Server::create(config, store.get(), &error);
  if (!server) return die(kExitRuntime, "{}", error);
  sd_notifyf(0, "READY=1\nSTATUS=serving %zu sessions", server->sessions());
  const int rc = server->run();
  sd_notify(0, "STOPPING=1");
  server.reset();
  store.reset();
  if (inherited == 0) {
    close(config.listen_fd);
    unlink(socket_path.c_str());
  }
  return rc;
}
