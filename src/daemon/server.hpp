// SPDX-License-Identifier: Apache-2.0
// server.hpp: ioasidd's core: one IOASID Space, its durable store, the sessions of the VMs and
// the epoll event loop that serves every client connection (docs/daemon.md).
//
// One thread does everything but, optionally, flushing. Each loop iteration: accept, read what
// every readable connection sent, decode and execute its complete frames (at most max_inflight per
// connection and per iteration), expire detached sessions whose grace period is over, COMMIT the
// one transaction that recorded every change of the iteration (group commit), and write the
// replies once what they depend on is durable. With Durability::flush_in_commit (the default)
// COMMIT itself flushes. With flush_after_commit (--commit-flush thread) a WalFlusher thread
// flushes the WAL while the loop goes on with the next requests, which gather in one open
// transaction until that flush is back and are committed then (so one flush carries all that
// arrived during the previous one); each connection's replies wait, in order, for the flush that
// covers the newest commit before them (also a query's, whose answer may show a change not yet
// flushed). With no flush in progress and nothing else to do the loop flushes itself.
// A connection whose unsent replies exceed max_output is not read any more (and its buffered
// requests are not executed) until it has drained them; the others are not affected.
//
// Thread-safety: none; run() is the only entry point after create().
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "broker/proto.hpp"
#include "daemon/policy.hpp"
#include "daemon/store.hpp"
#include "daemon/wal_flusher.hpp"
#include "ioasid/space.hpp"

namespace ioasid::daemon {

struct ServerConfig {
  int listen_fd = -1;  // listening, non-blocking Unix stream socket (owned by the caller)
  int signal_fd = -1;  // signalfd for SIGTERM/SIGINT, or -1
  unsigned id_bits = kPasidBits;
  std::uint64_t capacity = 0;  // 0: every non-reserved ID
  std::uint32_t grace_seconds = 30;
  std::uint32_t max_sessions_per_client = 64;  // per peer uid, attached or detached
  std::uint32_t max_inflight = 32;             // per connection and loop iteration
  std::size_t max_output = 1 << 20;            // unsent reply bytes before a client is paused
  std::uint32_t max_clients = 1024;            // connections; more are closed at accept
  std::uint32_t replies_kept = 256;  // newest stored replies kept per session (exactly-once)
  bool no_sync = false;              // the store runs with synchronous=OFF (STATUS says so)
  // When heartbeat_ms > 0, the loop calls heartbeat(sessions, connections) at least that often,
  // each time after the iteration's commit: a loop stuck in a request or in a flush stops beating.
  // main() sends sd_notify WATCHDOG=1 from it when systemd's WatchdogSec= is set.
  std::uint32_t heartbeat_ms = 0;
  std::function<void(std::size_t sessions, std::size_t connections)> heartbeat;
  std::uint32_t daemon_version = 0;  // (major << 16) | (minor << 8) | patch, for STATUS
  Policy policy;
};

struct Conn;
struct Session;
struct StoredFrame;

class Server {
 public:
  // Rebuilds the space from store (which must outlive the server). On failure returns nullptr
  // and sets *error (a store that cannot be replayed, a space shape that differs from the one the
  // state was written with).
  static std::unique_ptr<Server> create(ServerConfig config, Store* store, std::string* error);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until a signal arrives on signal_fd. Returns the exit status (0; 1 on a fatal store
  // error).
  int run();

  [[nodiscard]] std::size_t sessions() const noexcept { return sessions_.size(); }

 private:
  // A row of the store's stored replies (Store::put_reply): live while its session holds it
  // (same request id, same seq), otherwise it waits to be pruned (or was deleted with its
  // session).
  struct LoggedReply {
    std::int64_t seq;
    std::uint64_t vm;
    std::uint64_t request_id;
  };

  Server(ServerConfig config, Store* store);
  bool rebuild(std::string* error);

  void accept_all();
  void read_conn(Conn& c);
  void process_conn(Conn& c);
  void handle_frame(Conn& c, const broker::Header& h, std::span<const std::byte> payload);
  void execute(Conn& c, std::uint64_t rid, const broker::Request& req);
  void send(Conn& c, std::uint64_t rid, const broker::Reply& r, Session* store_for = nullptr);
  void send_raw(Conn& c, const std::vector<std::byte>& frame);
  void flush(Conn& c);
  // COMMITs the open transaction (one more epoch).
  void commit();
  // At exit: commits and flushes what was executed and sends the replies it held.
  void flush_at_exit();
  // Something is ready to be served right now (a buffered frame, a readable descriptor).
  bool work_waiting() const;
  void update_interest(Conn& c);
  void close_conn(Conn& c);
  void detach(Conn& c);
  void teardown(Session& s);
  void expire(std::int64_t now_ms);
  void sync_id(Session& s, Id id);
  int next_timeout(std::int64_t now_ms) const;
  bool has_frame(const Conn& c) const;
  [[noreturn]] void fatal(const std::string& what);
  void need_txn();

  broker::Reply open_session(Conn& c, std::uint64_t rid, const broker::OpenSessionRequest& r);
  broker::Reply resume(Conn& c, std::uint64_t rid, const broker::ResumeRequest& r);
  broker::Reply attach(Conn& c, Session& s, bool resumed);
  broker::SessionReply session_reply(const Session& s, bool resumed) const;
  bool stored_reply(Conn& c, Session& s, std::uint64_t rid, broker::MsgType t);
  // Stores the reply frame of request rid in s (same transaction as its change), dropping the
  // session's oldest beyond replies_kept, and prunes the store's oldest rows now and then.
  void store_reply(Session& s, std::uint64_t rid, std::vector<std::byte> frame);
  // Puts rid's stored reply in s's window, dropping the oldest beyond replies_kept (store_reply,
  // and the rebuild).
  void remember_reply(Session& s, std::uint64_t rid, StoredFrame stored);
  [[nodiscard]] bool reply_is_live(const LoggedReply& r) const;
  void prune_replies();
  // Deletes every stored reply of s from the store (its teardown).
  void drop_replies(Session& s);

  ServerConfig config_;
  Store* store_;
  std::unique_ptr<Space> space_;
  int epoll_fd_ = -1;
  bool stop_ = false;
  std::map<int, std::unique_ptr<Conn>> conns_;
  std::map<std::uint64_t, std::unique_ptr<Session>> sessions_;
  broker::DaemonStats stats_{};
  std::int64_t started_ms_ = 0;          // CLOCK_REALTIME ms when created (STATUS)
  std::vector<std::byte> scratch_;       // recv buffer, appended to the connection's
  std::unique_ptr<WalFlusher> flusher_;  // with Durability::flush_after_commit
  std::uint64_t commit_epoch_ = 0;       // commits since start
  std::uint64_t durable_epoch_ = 0;      // commits known to be on stable storage
  std::deque<LoggedReply> reply_log_;    // every row, oldest first
  std::size_t live_replies_ = 0;         // rows of reply_log_ that are live
};

// CLOCK_REALTIME in milliseconds (deadlines are stored, so they must survive a reboot).
std::int64_t realtime_ms() noexcept;

}  // namespace ioasid::daemon
