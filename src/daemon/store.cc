// SPDX-License-Identifier: Apache-2.0
// store.cc: the SQLite schema and statements of ioasidd's durable state (store.hpp).
#include "daemon/store.hpp"

#include "daemon/wal_write_buffer.hpp"

#include <cstring>

namespace ioasid::daemon {
namespace {

// 2: stored replies in one append-only table (1: one WITHOUT ROWID table keyed by VM and request
// id, upgraded at open).
constexpr std::int64_t kSchemaVersion = 2;

// 64-bit tokens are stored as SQLite's signed INTEGER, bit for bit.
std::int64_t to_db(std::uint64_t v) noexcept { return static_cast<std::int64_t>(v); }
std::uint64_t from_db(std::int64_t v) noexcept { return static_cast<std::uint64_t>(v); }

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions(
  vm_token INTEGER PRIMARY KEY,
  quota INTEGER NOT NULL,
  resume_token BLOB NOT NULL,
  resumable INTEGER NOT NULL,
  owner_uid INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ids(
  id INTEGER PRIMARY KEY,
  vm_token INTEGER NOT NULL REFERENCES sessions(vm_token),
  state INTEGER NOT NULL,
  refs INTEGER NOT NULL,
  binds INTEGER NOT NULL,
  spid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS replies(
  seq INTEGER PRIMARY KEY,
  first_seq INTEGER NOT NULL,
  vm_token INTEGER NOT NULL,
  request_id INTEGER NOT NULL,
  frame BLOB NOT NULL
);
)sql";

// Version 1's stored replies, renamed, copied into version 2's table and dropped: each session's
// in request-id order, unsigned (the ids are stored bit for bit as signed integers), the order
// version 1 kept them in.
constexpr const char* kUpgrade1To2 = R"sql(
ALTER TABLE replies RENAME TO replies_v1;
CREATE TABLE replies(
  seq INTEGER PRIMARY KEY,
  first_seq INTEGER NOT NULL,
  vm_token INTEGER NOT NULL,
  request_id INTEGER NOT NULL,
  frame BLOB NOT NULL
);
INSERT INTO replies(first_seq, vm_token, request_id, frame)
  SELECT 0, vm_token, request_id, frame FROM replies_v1
  ORDER BY vm_token, request_id < 0, request_id;
UPDATE replies SET first_seq = seq;
DROP TABLE replies_v1;
)sql";

}  // namespace

std::unique_ptr<Store> Store::open(const std::string& path, Durability durability,
                                   std::string* error) {
  std::unique_ptr<Store> s(new Store());
  s->path_ = path;
  s->durability_ = durability;
  // The WAL's writes are merged into one call per commit (wal_write_buffer.hpp); where that VFS
  // cannot be registered the default one serves unchanged.
  if (sqlite3_open_v2(path.c_str(), &s->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      wal_write_buffer_vfs()) != SQLITE_OK) {
    *error = std::string("cannot open ") + path + ": " +
             (s->db_ ? sqlite3_errmsg(s->db_) : "out of memory");
    return nullptr;
  }
  // Another process holding the state (exclusive locking, below) is waited for briefly: a
  // predecessor that is still exiting.
  sqlite3_busy_timeout(s->db_, 1000);
  // Settings, each of which took one cost off the round trip (bench/README.md "ioasidd round
  // trips and group commit"):
  // - 1 KiB pages (for a new file; an existing one keeps its size): rows are tens of bytes, and a
  //   transaction writes each page it changed to the WAL whole.
  // - Exclusive locking: the daemon is the state's only user. The lock is taken at the first
  //   access and held, so a transaction costs no file-lock calls and the WAL index lives in
  //   memory (no -shm file); a second daemon on the same state directory is refused instead of
  //   sharing it. Operators read the file with sqlite3 while the daemon is stopped (live:
  //   ioasidctl).
  // - No index on ids(vm_token): a session's teardown deletes its IDs by id (the daemon knows
  //   them), and the index cost one more page in every ALLOC's and FREE's transaction. A state
  //   written before that still has it: dropped (the tables are unchanged).
  // - synchronous=NORMAL unless the commit itself is to flush: the daemon flushes the WAL after
  //   the commit, off the event loop (Durability, WalFlusher). Checkpoints flush either way.
  const char* sync = durability == Durability::flush_in_commit ? "PRAGMA synchronous=FULL"
                     : durability == Durability::none          ? "PRAGMA synchronous=OFF"
                                                               : "PRAGMA synchronous=NORMAL";
  const bool ok = s->exec("PRAGMA page_size=1024") && s->exec("PRAGMA locking_mode=EXCLUSIVE") &&
                  s->exec("PRAGMA journal_mode=WAL") && s->exec(sync) && s->exec(kSchema) &&
                  s->exec("DROP INDEX IF EXISTS ids_by_vm");
  if (!ok) {
    *error = path + ": " + s->error_;
    if (sqlite3_errcode(s->db_) == SQLITE_BUSY) *error += " (another ioasidd uses this state)";
    return nullptr;
  }
  std::int64_t version = 0;
  if (s->get_meta("schema_version", &version)) {
    if (version == 1) {
      if (!s->upgrade(version, error)) return nullptr;
    } else if (version != kSchemaVersion) {
      *error = path + ": schema version " + std::to_string(version) + ", this daemon reads " +
               std::to_string(kSchemaVersion) + " (and upgrades 1)";
      return nullptr;
    }
  } else if (!s->set_meta("schema_version", kSchemaVersion)) {
    *error = path + ": " + s->error_;
    return nullptr;
  }
  s->put_session_ = s->prepare(
      "INSERT OR REPLACE INTO sessions(vm_token, quota, resume_token, resumable, owner_uid, "
      "deadline_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
  s->set_quota_ = s->prepare("UPDATE sessions SET quota = ?2 WHERE vm_token = ?1");
  s->set_deadline_ = s->prepare("UPDATE sessions SET deadline_ms = ?2 WHERE vm_token = ?1");
  s->del_session_ = s->prepare("DELETE FROM sessions WHERE vm_token = ?1");
  s->put_id_ = s->prepare(
      "INSERT OR REPLACE INTO ids(id, vm_token, state, refs, binds, spid) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
  s->del_id_ = s->prepare("DELETE FROM ids WHERE id = ?1");
  s->put_reply_ = s->prepare(
      "INSERT INTO replies(seq, first_seq, vm_token, request_id, frame) "
      "VALUES(?1, ?2, ?3, ?4, ?5)");
  s->prune_ = s->prepare("DELETE FROM replies WHERE seq <= ?1");
  s->del_reply_ = s->prepare("DELETE FROM replies WHERE seq = ?1");
  // BEGIN and COMMIT run once per loop iteration: prepared, not parsed each time.
  s->begin_ = s->prepare("BEGIN IMMEDIATE");
  s->commit_ = s->prepare("COMMIT");
  // Stored replies are numbered on from the newest row, by the store (so that a reply appended
  // again can be given its first seq in the same statement).
  if (!s->load_next_seq()) {
    *error = path + ": " + s->error_;
    return nullptr;
  }
  if (!s->put_session_ || !s->set_quota_ || !s->set_deadline_ || !s->del_session_ || !s->put_id_ ||
      !s->del_id_ || !s->put_reply_ || !s->prune_ || !s->del_reply_ || !s->begin_ || !s->commit_) {
    *error = path + ": " + s->error_;
    return nullptr;
  }
  return s;
}

bool Store::load_next_seq() {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT coalesce(max(seq), 0) FROM replies", -1, &st, nullptr) !=
      SQLITE_OK) {
    return fail("replies");
  }
  const bool ok = sqlite3_step(st) == SQLITE_ROW;
  if (ok) next_seq_ = sqlite3_column_int64(st, 0) + 1;
  sqlite3_finalize(st);
  return ok ? true : fail("replies");
}

bool Store::upgrade(std::int64_t from, std::string* error) {
  const bool ok = from == 1 && exec("BEGIN IMMEDIATE") && exec(kUpgrade1To2) &&
                  set_meta("schema_version", kSchemaVersion) && exec("COMMIT");
  if (!ok) {
    *error = path_ + ": upgrading schema version " + std::to_string(from) + " to " +
             std::to_string(kSchemaVersion) + ": " + error_;
    if (!sqlite3_get_autocommit(db_)) exec("ROLLBACK");
    return false;
  }
  return true;
}

std::string Store::directory() const {
  const auto slash = path_.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path_.substr(0, slash);
}

Store::~Store() {
  for (sqlite3_stmt* st : {put_session_, set_quota_, set_deadline_, del_session_, put_id_, del_id_,
                           put_reply_, prune_, del_reply_, begin_, commit_}) {
    sqlite3_finalize(st);
  }
  if (in_txn_) exec("ROLLBACK");
  sqlite3_close(db_);
}

bool Store::fail(const char* what) {
  error_ = std::string(what) + ": " + sqlite3_errmsg(db_);
  return false;
}

bool Store::exec(const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    error_ = msg ? msg : sqlite3_errmsg(db_);
    sqlite3_free(msg);
    return false;
  }
  return true;
}

sqlite3_stmt* Store::prepare(const char* sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr) != SQLITE_OK) {
    fail("prepare");
    return nullptr;
  }
  return st;
}

bool Store::step_done(sqlite3_stmt* st) {
  const int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return fail("write");
  return true;
}

bool Store::get_meta(const char* key, std::int64_t* value) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE key = ?1", -1, &st, nullptr) !=
      SQLITE_OK) {
    return fail("meta");
  }
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  bool found = false;
  if (sqlite3_step(st) == SQLITE_ROW) {
    *value = sqlite3_column_int64(st, 0);
    found = true;
  }
  sqlite3_finalize(st);
  return found;
}

bool Store::set_meta(const char* key, std::int64_t value) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)", -1, &st,
                         nullptr) != SQLITE_OK) {
    return fail("meta");
  }
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, value);
  const int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? true : fail("meta");
}

bool Store::load_sessions(std::vector<StoredSession>* out) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "SELECT vm_token, quota, resume_token, resumable, owner_uid, deadline_ms "
                         "FROM sessions ORDER BY vm_token",
                         -1, &st, nullptr) != SQLITE_OK) {
    return fail("load sessions");
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    StoredSession s;
    s.vm_token = from_db(sqlite3_column_int64(st, 0));
    s.quota = static_cast<std::uint32_t>(sqlite3_column_int64(st, 1));
    const void* blob = sqlite3_column_blob(st, 2);
    if (blob != nullptr && sqlite3_column_bytes(st, 2) == static_cast<int>(s.resume_token.size())) {
      std::memcpy(s.resume_token.data(), blob, s.resume_token.size());
    }
    s.resumable = sqlite3_column_int64(st, 3) != 0;
    s.owner_uid = static_cast<std::uint32_t>(sqlite3_column_int64(st, 4));
    s.deadline_ms = sqlite3_column_int64(st, 5);
    out->push_back(s);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? true : fail("load sessions");
}

bool Store::load_ids(std::vector<StoredId>* out) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT id, vm_token, state, refs, binds, spid FROM ids ORDER BY id",
                         -1, &st, nullptr) != SQLITE_OK) {
    return fail("load ids");
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    StoredId s;
    s.info.id = static_cast<Id>(sqlite3_column_int64(st, 0));
    s.vm_token = from_db(sqlite3_column_int64(st, 1));
    s.info.state = static_cast<IdState>(sqlite3_column_int64(st, 2));
    s.info.refs = static_cast<std::uint32_t>(sqlite3_column_int64(st, 3));
    s.info.binds = static_cast<std::uint32_t>(sqlite3_column_int64(st, 4));
    s.info.spid = static_cast<Id>(sqlite3_column_int64(st, 5));
    out->push_back(s);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? true : fail("load ids");
}

bool Store::load_replies(std::vector<StoredReply>* out) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "SELECT seq, first_seq, vm_token, request_id, frame FROM replies "
                         "ORDER BY seq",
                         -1, &st, nullptr) != SQLITE_OK) {
    return fail("load replies");
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    StoredReply r;
    r.seq = sqlite3_column_int64(st, 0);
    r.first_seq = sqlite3_column_int64(st, 1);
    r.vm_token = from_db(sqlite3_column_int64(st, 2));
    r.request_id = from_db(sqlite3_column_int64(st, 3));
    const auto* p = static_cast<const std::byte*>(sqlite3_column_blob(st, 4));
    const int n = sqlite3_column_bytes(st, 4);
    if (p != nullptr && n > 0) r.frame.assign(p, p + n);
    out->push_back(std::move(r));
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? true : fail("load replies");
}

bool Store::begin() {
  if (in_txn_) return true;
  const int rc = sqlite3_step(begin_);
  sqlite3_reset(begin_);
  if (rc != SQLITE_DONE) return fail("begin");
  in_txn_ = true;
  return true;
}

bool Store::commit() {
  if (!in_txn_) return true;
  in_txn_ = false;
  const int rc = sqlite3_step(commit_);
  sqlite3_reset(commit_);
  if (rc != SQLITE_DONE) {
    fail("commit");
    const std::string why = error_;
    if (!sqlite3_get_autocommit(db_)) exec("ROLLBACK");
    error_ = why;
    return false;
  }
  // Unless the COMMIT synced the WAL, its last frames may still be in the write buffer.
  if (const int flushed = flush_wal_writes(db_); flushed != SQLITE_OK) {
    error_ = std::string("commit: writing the WAL: ") + sqlite3_errstr(flushed);
    return false;
  }
  return true;
}

bool Store::put_session(const StoredSession& s) {
  sqlite3_bind_int64(put_session_, 1, to_db(s.vm_token));
  sqlite3_bind_int64(put_session_, 2, s.quota);
  sqlite3_bind_blob(put_session_, 3, s.resume_token.data(), static_cast<int>(s.resume_token.size()),
                    SQLITE_STATIC);
  sqlite3_bind_int64(put_session_, 4, s.resumable ? 1 : 0);
  sqlite3_bind_int64(put_session_, 5, s.owner_uid);
  sqlite3_bind_int64(put_session_, 6, s.deadline_ms);
  return step_done(put_session_);
}

bool Store::set_session_quota(std::uint64_t vm, std::uint32_t quota) {
  sqlite3_bind_int64(set_quota_, 1, to_db(vm));
  sqlite3_bind_int64(set_quota_, 2, quota);
  return step_done(set_quota_);
}

bool Store::set_session_deadline(std::uint64_t vm, std::int64_t deadline_ms) {
  sqlite3_bind_int64(set_deadline_, 1, to_db(vm));
  sqlite3_bind_int64(set_deadline_, 2, deadline_ms);
  return step_done(set_deadline_);
}

bool Store::delete_session(std::uint64_t vm, std::span<const Id> ids) {
  for (const Id id : ids) {
    if (!delete_id(id)) return false;
  }
  sqlite3_bind_int64(del_session_, 1, to_db(vm));
  return step_done(del_session_);
}

bool Store::put_id(std::uint64_t vm, const IdInfo& info) {
  sqlite3_bind_int64(put_id_, 1, info.id);
  sqlite3_bind_int64(put_id_, 2, to_db(vm));
  sqlite3_bind_int64(put_id_, 3, static_cast<std::int64_t>(info.state));
  sqlite3_bind_int64(put_id_, 4, info.refs);
  sqlite3_bind_int64(put_id_, 5, info.binds);
  sqlite3_bind_int64(put_id_, 6, info.spid);
  return step_done(put_id_);
}

bool Store::delete_id(Id id) {
  sqlite3_bind_int64(del_id_, 1, id);
  return step_done(del_id_);
}

bool Store::put_reply(std::uint64_t vm, std::uint64_t request_id,
                      const std::vector<std::byte>& frame, std::int64_t first_seq,
                      std::int64_t* seq) {
  const std::int64_t at = next_seq_;
  sqlite3_bind_int64(put_reply_, 1, at);
  sqlite3_bind_int64(put_reply_, 2, first_seq != 0 ? first_seq : at);
  sqlite3_bind_int64(put_reply_, 3, to_db(vm));
  sqlite3_bind_int64(put_reply_, 4, to_db(request_id));
  sqlite3_bind_blob(put_reply_, 5, frame.data(), static_cast<int>(frame.size()), SQLITE_STATIC);
  if (!step_done(put_reply_)) return false;
  ++next_seq_;
  *seq = at;
  return true;
}

bool Store::delete_replies_through(std::int64_t last) {
  sqlite3_bind_int64(prune_, 1, last);
  return step_done(prune_);
}

bool Store::delete_reply(std::int64_t seq) {
  sqlite3_bind_int64(del_reply_, 1, seq);
  return step_done(del_reply_);
}

}  // namespace ioasid::daemon
