// SPDX-License-Identifier: Apache-2.0
// wal_write_buffer_test.cc: the write-merging VFS of ioasidd's WAL on real SQLite files: a
// commit's frames reach the file in a few calls, transactions larger than the buffer, spilled
// pages read back and rolled back, WAL restarts after checkpoints, and what a process that dies
// after COMMIT leaves on disk with and without the flush (Store::commit flushes).
#include "daemon/wal_write_buffer.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "daemon/store.hpp"

namespace ioasid::daemon {
namespace {

class WalWriteBufferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ioasid-walbuf-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/state.db";
    ASSERT_NE(wal_write_buffer_vfs(), nullptr);
  }
  void TearDown() override {
    for (sqlite3* db : open_) sqlite3_close(db);
    std::filesystem::remove_all(dir_);
  }

  // Opens path_ through the buffering VFS (or the default one) in the daemon's settings.
  sqlite3* open_db(bool buffered) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                              buffered ? wal_write_buffer_vfs() : nullptr),
              SQLITE_OK);
    open_.push_back(db);
    exec(db, "PRAGMA page_size=1024");
    exec(db, "PRAGMA locking_mode=EXCLUSIVE");
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db, "PRAGMA synchronous=FULL");
    exec(db, "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
    return db;
  }
  void close_db(sqlite3* db) {
    std::erase(open_, db);
    ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  }
  static void exec(sqlite3* db, const std::string& sql) {
    char* msg = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg), SQLITE_OK)
        << sql << ": " << (msg ? msg : "");
  }
  static std::int64_t scalar(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    EXPECT_EQ(sqlite3_step(st), SQLITE_ROW) << sql;
    const std::int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
  }
  static std::string integrity(sqlite3* db) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(st), SQLITE_ROW);
    std::string r = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return r;
  }
  // Inserts rows [first, first + n) with `size`-byte values derived from the key.
  static void insert(sqlite3* db, int first, int n, int size) {
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO t(k, v) VALUES(?1, ?2)", -1, &st, nullptr),
              SQLITE_OK);
    std::vector<unsigned char> v(static_cast<std::size_t>(size));
    for (int k = first; k < first + n; ++k) {
      std::mt19937 rng(static_cast<unsigned>(k));
      for (auto& b : v) b = static_cast<unsigned char>(rng());
      sqlite3_bind_int64(st, 1, k);
      sqlite3_bind_blob(st, 2, v.data(), size, SQLITE_STATIC);
      ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
      sqlite3_reset(st);
    }
    sqlite3_finalize(st);
  }
  // Checks that rows [0, n) hold what insert() wrote, byte for byte.
  static void expect_rows(sqlite3* db, int n, int size) {
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM t"), n);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT k, v FROM t ORDER BY k", -1, &st, nullptr), SQLITE_OK);
    int k = 0;
    std::vector<unsigned char> want(static_cast<std::size_t>(size));
    while (sqlite3_step(st) == SQLITE_ROW) {
      ASSERT_EQ(sqlite3_column_int64(st, 0), k);
      std::mt19937 rng(static_cast<unsigned>(k));
      for (auto& b : want) b = static_cast<unsigned char>(rng());
      ASSERT_EQ(sqlite3_column_bytes(st, 1), size);
      ASSERT_EQ(std::memcmp(sqlite3_column_blob(st, 1), want.data(), want.size()), 0) << k;
      ++k;
    }
    sqlite3_finalize(st);
    EXPECT_EQ(k, n);
  }

  std::string dir_;
  std::string path_;
  std::vector<sqlite3*> open_;
};

TEST_F(WalWriteBufferTest, ACommitsFramesReachTheFileInFewWrites) {
  sqlite3* db = open_db(true);
  const WalWriteCounts before = wal_write_counts();
  exec(db, "BEGIN IMMEDIATE");
  insert(db, 0, 200, 100);  // ~25 KiB of rows: ~25 pages of 1 KiB, two SQLite writes each
  exec(db, "COMMIT");
  const WalWriteCounts after = wal_write_counts();
  const std::uint64_t sqlite_writes = after.sqlite_writes - before.sqlite_writes;
  const std::uint64_t file_writes = after.file_writes - before.file_writes;
  EXPECT_GE(sqlite_writes, 40u);
  EXPECT_LE(file_writes, 2u) << sqlite_writes << " WAL writes by SQLite";
  expect_rows(db, 200, 100);
}

TEST_F(WalWriteBufferTest, TransactionsLargerThanTheBufferSurviveReopening) {
  sqlite3* db = open_db(true);
  exec(db, "BEGIN IMMEDIATE");
  insert(db, 0, 1500, 2000);  // ~3 MiB in one transaction: many buffer-fulls, spilled pages
  exec(db, "COMMIT");
  const WalWriteCounts before = wal_write_counts();
  exec(db, "BEGIN IMMEDIATE");
  insert(db, 1500, 100, 2000);
  exec(db, "COMMIT");
  EXPECT_GT(wal_write_counts().file_writes, before.file_writes);
  close_db(db);
  // Read back through SQLite's own VFS: the file is an ordinary database.
  sqlite3* plain = open_db(false);
  EXPECT_EQ(integrity(plain), "ok");
  expect_rows(plain, 1600, 2000);
}

TEST_F(WalWriteBufferTest, SpilledPagesAreReadBackAndRolledBack) {
  sqlite3* db = open_db(true);
  exec(db, "BEGIN IMMEDIATE");
  insert(db, 0, 100, 300);
  exec(db, "COMMIT");
  exec(db, "PRAGMA cache_size=8");  // pages: the transaction below spills to the WAL
  exec(db, "BEGIN IMMEDIATE");
  insert(db, 100, 2000, 300);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM t"), 2100);
  EXPECT_EQ(scalar(db, "SELECT sum(length(v)) FROM t"), 2100 * 300);
  exec(db, "ROLLBACK");
  expect_rows(db, 100, 300);
  exec(db, "BEGIN IMMEDIATE");
  insert(db, 100, 1000, 300);
  exec(db, "COMMIT");
  close_db(db);
  sqlite3* plain = open_db(false);
  EXPECT_EQ(integrity(plain), "ok");
  expect_rows(plain, 1100, 300);
}

TEST_F(WalWriteBufferTest, TheWalRestartsAfterCheckpoints) {
  sqlite3* db = open_db(true);
  exec(db, "PRAGMA wal_autocheckpoint=16");  // a checkpoint every few transactions
  for (int i = 0; i < 300; ++i) {
    exec(db, "BEGIN IMMEDIATE");
    insert(db, i * 5, 5, 200);
    exec(db, "COMMIT");
  }
  exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  exec(db, "BEGIN IMMEDIATE");
  insert(db, 1500, 5, 200);
  exec(db, "COMMIT");
  expect_rows(db, 1505, 200);
  close_db(db);
  sqlite3* plain = open_db(false);
  EXPECT_EQ(integrity(plain), "ok");
  expect_rows(plain, 1505, 200);
}

// Makes the default VFS's write system calls fail with ENOSPC while armed (SQLite's unix VFS
// lets its system calls be replaced: xSetSystemCall).
class FailingWrites {
 public:
  FailingWrites() : unix_(sqlite3_vfs_find("unix")) {
    real_pwrite_ = unix_->xGetSystemCall(unix_, "pwrite");
    real_pwrite64_ = unix_->xGetSystemCall(unix_, "pwrite64");
    real_write_ = unix_->xGetSystemCall(unix_, "write");
    unix_->xSetSystemCall(unix_, "pwrite", reinterpret_cast<sqlite3_syscall_ptr>(&fail_pwrite));
    unix_->xSetSystemCall(unix_, "pwrite64", reinterpret_cast<sqlite3_syscall_ptr>(&fail_pwrite64));
    unix_->xSetSystemCall(unix_, "write", reinterpret_cast<sqlite3_syscall_ptr>(&fail_write));
  }
  ~FailingWrites() { unix_->xSetSystemCall(unix_, nullptr, nullptr); }  // all restored
  FailingWrites(const FailingWrites&) = delete;
  FailingWrites& operator=(const FailingWrites&) = delete;
  static void arm(bool on) { armed_.store(on); }

 private:
  using PwriteFn = ssize_t (*)(int, const void*, size_t, off_t);
  using WriteFn = ssize_t (*)(int, const void*, size_t);
  static ssize_t fail_pwrite(int fd, const void* b, size_t n, off_t off) {
    if (armed_.load()) return errno = ENOSPC, -1;
    return reinterpret_cast<PwriteFn>(real_pwrite_)(fd, b, n, off);
  }
  static ssize_t fail_pwrite64(int fd, const void* b, size_t n, off_t off) {
    if (armed_.load()) return errno = ENOSPC, -1;
    return reinterpret_cast<PwriteFn>(real_pwrite64_)(fd, b, n, off);
  }
  static ssize_t fail_write(int fd, const void* b, size_t n) {
    if (armed_.load()) return errno = ENOSPC, -1;
    return reinterpret_cast<WriteFn>(real_write_)(fd, b, n);
  }
  sqlite3_vfs* unix_;
  static inline sqlite3_syscall_ptr real_pwrite_ = nullptr;
  static inline sqlite3_syscall_ptr real_pwrite64_ = nullptr;
  static inline sqlite3_syscall_ptr real_write_ = nullptr;
  static inline std::atomic<bool> armed_{false};
};

// SQLite ignores the result of the checkpoint a COMMIT runs: with synchronous=NORMAL the
// checkpoint's sync of the WAL is what writes the buffered frames out, and if that fails, COMMIT
// still succeeds. The failure must not vanish with it: flush_wal_writes() reports it (so the
// daemon does not acknowledge the transaction) and so does every later call on the file.
TEST_F(WalWriteBufferTest, AFailedWriteOutIsReportedByTheFlushAndEveryLaterWrite) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            wal_write_buffer_vfs()),
            SQLITE_OK);
  open_.push_back(db);
  exec(db, "PRAGMA page_size=1024");
  exec(db, "PRAGMA locking_mode=EXCLUSIVE");
  exec(db, "PRAGMA journal_mode=WAL");
  exec(db, "PRAGMA synchronous=NORMAL");
  exec(db, "PRAGMA wal_autocheckpoint=1");  // every COMMIT runs a checkpoint
  exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB NOT NULL)");
  ASSERT_EQ(flush_wal_writes(db), SQLITE_OK);
  FailingWrites failing;
  exec(db, "BEGIN IMMEDIATE");
  insert(db, 0, 20, 100);
  FailingWrites::arm(true);
  const int committed = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  FailingWrites::arm(false);
  const int flushed = flush_wal_writes(db);
  EXPECT_TRUE(committed != SQLITE_OK || flushed != SQLITE_OK)
      << "COMMIT " << committed << ", flush " << flushed << ": the lost frames went unreported";
  EXPECT_NE(flushed, SQLITE_OK);
  // The disk has room again, but the WAL has a hole: nothing more is written to it.
  if (sqlite3_get_autocommit(db) == 0) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  const int later =
      sqlite3_exec(db, "INSERT INTO t(k, v) VALUES(100, x'00')", nullptr, nullptr, nullptr);
  EXPECT_TRUE(later != SQLITE_OK || flush_wal_writes(db) != SQLITE_OK);
}

// A child commits two transactions with synchronous=NORMAL, flushes the buffer only after the
// first and dies without closing: the first is in the file, the second never left the process.
// This is why Store::commit flushes, and why nothing is acknowledged before it did.
TEST_F(WalWriteBufferTest, WithoutASyncOnlyFlushedCommitsReachTheFile) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                    wal_write_buffer_vfs());
    const bool ok =
        sqlite3_exec(db,
                     "PRAGMA page_size=1024; PRAGMA locking_mode=EXCLUSIVE; "
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                     "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB NOT NULL); "
                     "INSERT INTO t VALUES(1, x'01')",
                     nullptr, nullptr, nullptr) == SQLITE_OK &&
        flush_wal_writes(db) == SQLITE_OK &&
        sqlite3_exec(db, "INSERT INTO t VALUES(2, x'02')", nullptr, nullptr, nullptr) == SQLITE_OK;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  sqlite3* plain = open_db(false);
  EXPECT_EQ(integrity(plain), "ok");
  EXPECT_EQ(scalar(plain, "SELECT count(*) FROM t WHERE k = 1"), 1);
  EXPECT_EQ(scalar(plain, "SELECT count(*) FROM t WHERE k = 2"), 0);
}

// The store in the daemon's non-FULL modes: what commit() returned for is in the file even when
// the process dies right after it.
TEST_F(WalWriteBufferTest, AStoreCommitIsWrittenBeforeItReturns) {
  for (const Durability d : {Durability::flush_after_commit, Durability::none}) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      std::string error;
      auto store = Store::open(path_, d, &error);
      StoredSession s;
      s.vm_token = 77;
      s.quota = 5;
      const bool ok = store && store->begin() && store->put_session(s) &&
                      store->put_id(77, IdInfo{.id = 9}) && store->commit();
      _exit(ok ? 0 : 1);  // no destructor: the process dies with the store open
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::string error;
    auto store = Store::open(path_, Durability::flush_in_commit, &error);
    ASSERT_TRUE(store) << error;
    std::vector<StoredSession> sessions;
    std::vector<StoredId> ids;
    ASSERT_TRUE(store->load_sessions(&sessions));
    ASSERT_TRUE(store->load_ids(&ids));
    ASSERT_EQ(sessions.size(), 1u);
    EXPECT_EQ(sessions[0].quota, 5u);
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_EQ(ids[0].info.id, 9u);
  }
}

}  // namespace
}  // namespace ioasid::daemon
