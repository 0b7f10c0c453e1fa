// SPDX-License-Identifier: Apache-2.0
// store.hpp: ioasidd's durable state, one SQLite database (WAL, exclusive locking) in the state
// directory. It mirrors the daemon's logical state row by row (sessions, live
// IDs, stored replies for exactly-once); the in-memory Space is rebuilt from it at start.
// docs/daemon.md gives the schema and why it is state-based rather than an operation log.
//
// Transactions: the server opens one with begin() at the first change of a loop iteration and
// ends it with commit() before any reply of that iteration is sent (group commit). Whether a
// commit is durable when commit() returns depends on the Durability the store was opened with:
// with flush_after_commit the caller flushes the WAL (wal_path()) before it acknowledges. In every
// mode the transaction's WAL frames are in the file (the kernel's cache at least) when commit()
// returns true: the WAL's writes go through a buffer (wal_write_buffer.hpp) that commit() empties,
// and it returns false if that, or any earlier write out of it, failed. Every
// write method requires an open transaction. A failing statement is fatal for the daemon (the
// caller exits; a restart replays what was committed), so write methods return false and log the
// SQLite message rather than trying to undo the in-memory change.
//
// Thread-safety: none; the daemon's single event-loop thread owns it.
#pragma once

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ioasid/types.hpp"

namespace ioasid::daemon {

using Token16 = std::array<std::uint8_t, 16>;

struct StoredSession {
  std::uint64_t vm_token = 0;
  std::uint32_t quota = 0;
  Token16 resume_token{};
  bool resumable = false;
  std::uint32_t owner_uid = 0;
  std::int64_t deadline_ms = 0;  // CLOCK_REALTIME ms when a detached session expires; 0: attached
};

struct StoredId {
  std::uint64_t vm_token = 0;
  IdInfo info{};
};

struct StoredReply {
  std::int64_t seq = 0;  // position in the append order of every session's stored replies
  // The seq the reply was first stored at: a reply appended again keeps it, so it orders each
  // session's replies as they were stored.
  std::int64_t first_seq = 0;
  std::uint64_t vm_token = 0;
  std::uint64_t request_id = 0;
  std::vector<std::byte> frame;  // the reply frame as sent (header included)
};

// How a committed transaction reaches stable storage.
enum class Durability {
  // synchronous=FULL: COMMIT flushes the WAL before it returns (the loop waits for the disk).
  // The default.
  flush_in_commit,
  // synchronous=NORMAL: COMMIT writes the WAL frames without flushing them; the daemon flushes
  // the WAL on a thread of its own (WalFlusher) and holds the replies until then.
  flush_after_commit,
  // synchronous=OFF: nothing is flushed (benchmark comparison only: not durable).
  none,
};

class Store {
 public:
  // Opens (creating if needed) path. On failure returns nullptr and sets *error.
  static std::unique_ptr<Store> open(const std::string& path, Durability durability,
                                     std::string* error);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // meta: the space's shape the state was written with. Returns false if absent.
  bool get_meta(const char* key, std::int64_t* value);
  bool set_meta(const char* key, std::int64_t value);

  bool load_sessions(std::vector<StoredSession>* out);
  bool load_ids(std::vector<StoredId>* out);         // ascending by id
  bool load_replies(std::vector<StoredReply>* out);  // ascending by seq

  // Transactions. begin() is idempotent within an open transaction.
  bool begin();
  bool commit();
  [[nodiscard]] bool in_transaction() const noexcept { return in_txn_; }

  bool put_session(const StoredSession& s);
  bool set_session_quota(std::uint64_t vm, std::uint32_t quota);
  bool set_session_deadline(std::uint64_t vm, std::int64_t deadline_ms);
  // Deletes the session and its IDs (every ID it held, which the caller knows); its stored
  // replies are the caller's to delete (delete_reply), by seq.
  bool delete_session(std::uint64_t vm, std::span<const Id> ids);
  bool put_id(std::uint64_t vm, const IdInfo& info);
  bool delete_id(Id id);
  // Stored replies are one append-only table for every session (docs/daemon.md "Schema"): a
  // batch's replies share the table's last pages. put_reply appends and sets *seq to the row's
  // position (first_seq: the position it was first stored at, 0 for a new reply: *seq);
  // delete_replies_through deletes every row up to and including position last (the oldest
  // ones); delete_reply deletes one.
  bool put_reply(std::uint64_t vm, std::uint64_t request_id, const std::vector<std::byte>& frame,
                 std::int64_t first_seq, std::int64_t* seq);
  bool delete_replies_through(std::int64_t last);
  bool delete_reply(std::int64_t seq);

  [[nodiscard]] const std::string& last_error() const noexcept { return error_; }
  [[nodiscard]] Durability durability() const noexcept { return durability_; }
  // The WAL file SQLite writes the transactions to, and the directory that holds it.
  [[nodiscard]] std::string wal_path() const { return path_ + "-wal"; }
  [[nodiscard]] std::string directory() const;

 private:
  Store() = default;
  // Brings a state of an earlier schema version to this one (inside a transaction).
  bool upgrade(std::int64_t from, std::string* error);
  bool load_next_seq();
  bool exec(const char* sql);
  sqlite3_stmt* prepare(const char* sql);
  bool step_done(sqlite3_stmt* st);
  bool fail(const char* what);

  sqlite3* db_ = nullptr;
  std::string path_;
  Durability durability_ = Durability::flush_in_commit;
  bool in_txn_ = false;
  std::int64_t next_seq_ = 1;  // the next stored reply's seq
  std::string error_;
  // Prepared statements, finalized in the destructor.
  sqlite3_stmt* put_session_ = nullptr;
  sqlite3_stmt* set_quota_ = nullptr;
  sqlite3_stmt* set_deadline_ = nullptr;
  sqlite3_stmt* del_session_ = nullptr;
  sqlite3_stmt* put_id_ = nullptr;
  sqlite3_stmt* del_id_ = nullptr;
  sqlite3_stmt* put_reply_ = nullptr;
  sqlite3_stmt* prune_ = nullptr;
  sqlite3_stmt* del_reply_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
};

}  // namespace ioasid::daemon
