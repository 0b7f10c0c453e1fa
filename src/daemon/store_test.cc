// SPDX-License-Identifier: Apache-2.0
// store_test.cc: ioasidd's SQLite store on real files: stored replies in append order with their
// positions (a reply appended again keeps its first one), pruning from the oldest end, a state of
// schema version 1 upgraded at open (its stored replies in each session's unsigned request-id
// order), and a state of an unknown version refused.
#include "daemon/store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

namespace ioasid::daemon {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ioasid-store-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/ioasidd.sqlite3";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes path_ as a daemon of schema version 1 left it, running sql after its schema.
  void write_v1(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    const std::string all = R"sql(
PRAGMA journal_mode=WAL;
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE sessions(vm_token INTEGER PRIMARY KEY, quota INTEGER NOT NULL,
  resume_token BLOB NOT NULL, resumable INTEGER NOT NULL, owner_uid INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL);
CREATE TABLE ids(id INTEGER PRIMARY KEY, vm_token INTEGER NOT NULL REFERENCES sessions(vm_token),
  state INTEGER NOT NULL, refs INTEGER NOT NULL, binds INTEGER NOT NULL, spid INTEGER NOT NULL);
CREATE TABLE replies(vm_token INTEGER NOT NULL, request_id INTEGER NOT NULL,
  frame BLOB NOT NULL, PRIMARY KEY(vm_token, request_id)) WITHOUT ROWID;
INSERT INTO meta VALUES('schema_version', 1);
)sql" + sql;
    char* msg = nullptr;
    ASSERT_EQ(sqlite3_exec(db, all.c_str(), nullptr, nullptr, &msg), SQLITE_OK) << msg;
    sqlite3_close(db);
  }

  static std::vector<std::byte> bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v) out.push_back(static_cast<std::byte>(b));
    return out;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(StoreTest, RepliesAreAppendedAndPrunedFromTheOldestEnd) {
  std::string error;
  auto store = Store::open(path_, Durability::flush_in_commit, &error);
  ASSERT_TRUE(store) << error;
  ASSERT_TRUE(store->begin());
  std::vector<std::int64_t> seqs;
  for (std::uint64_t i = 0; i < 6; ++i) {
    std::int64_t seq = 0;
    ASSERT_TRUE(store->put_reply(i % 2 == 0 ? 7 : 8, 100 + i, bytes({int(i)}), 0, &seq));
    if (!seqs.empty()) {
      EXPECT_GT(seq, seqs.back());
    }
    seqs.push_back(seq);
  }
  // The third appended again (as pruning does with a live row): it keeps its first seq.
  std::int64_t again = 0;
  ASSERT_TRUE(store->put_reply(7, 102, bytes({2}), seqs[2], &again));
  EXPECT_GT(again, seqs.back());
  ASSERT_TRUE(store->delete_replies_through(seqs[2]));  // the three oldest
  ASSERT_TRUE(store->delete_reply(seqs[4]));
  ASSERT_TRUE(store->commit());
  store.reset();
  store = Store::open(path_, Durability::flush_in_commit, &error);
  ASSERT_TRUE(store) << error;
  std::vector<StoredReply> replies;
  ASSERT_TRUE(store->load_replies(&replies));
  ASSERT_EQ(replies.size(), 3u);
  const std::vector<std::uint64_t> want_rid = {103, 105, 102};
  const std::vector<std::uint64_t> want_vm = {8, 8, 7};
  const std::vector<std::int64_t> want_first = {seqs[3], seqs[5], seqs[2]};
  for (std::size_t i = 0; i < replies.size(); ++i) {
    EXPECT_EQ(replies[i].request_id, want_rid[i]);
    EXPECT_EQ(replies[i].vm_token, want_vm[i]);
    EXPECT_EQ(replies[i].first_seq, want_first[i]);
    EXPECT_EQ(replies[i].frame, bytes({int(want_rid[i] - 100)}));
    if (i > 0) {
      EXPECT_GT(replies[i].seq, replies[i - 1].seq);
    }
  }
  // New replies are numbered after the newest row, across a reopen.
  ASSERT_TRUE(store->begin());
  std::int64_t next = 0;
  ASSERT_TRUE(store->put_reply(8, 106, bytes({6}), 0, &next));
  EXPECT_GT(next, again);
  ASSERT_TRUE(store->commit());
}

TEST_F(StoreTest, AVersion1StateIsUpgradedAtOpen) {
  // Two sessions' stored replies, inserted out of order; request ids as signed integers, one
  // of them past 2^63 (negative), as version 1 stored them.
  write_v1(R"sql(
INSERT INTO sessions VALUES(5, 4, x'00112233445566778899aabbccddeeff', 1, 1000, 0);
INSERT INTO sessions VALUES(6, 4, x'ffeeddccbbaa99887766554433221100', 1, 1000, 0);
INSERT INTO ids VALUES(33, 5, 1, 1, 0, 4294967295);
INSERT INTO replies VALUES(6, 20, x'06');
INSERT INTO replies VALUES(5, 11, x'0b');
INSERT INTO replies VALUES(5, 10, x'0a');
INSERT INTO replies VALUES(5, -9223372036854775808, x'80');
)sql");
  std::string error;
  auto store = Store::open(path_, Durability::flush_in_commit, &error);
  ASSERT_TRUE(store) << error;
  std::int64_t version = 0;
  ASSERT_TRUE(store->get_meta("schema_version", &version));
  EXPECT_EQ(version, 2);
  std::vector<StoredSession> sessions;
  std::vector<StoredId> ids;
  std::vector<StoredReply> replies;
  ASSERT_TRUE(store->load_sessions(&sessions));
  ASSERT_TRUE(store->load_ids(&ids));
  ASSERT_TRUE(store->load_replies(&replies));
  EXPECT_EQ(sessions.size(), 2u);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(ids[0].info.id, 33u);
  // Append order: each session's in the order version 1 kept (request ids unsigned: 2^63 is
  // the newest), VM by VM; each row first stored where it is.
  ASSERT_EQ(replies.size(), 4u);
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> want = {
      {5, 10}, {5, 11}, {5, std::uint64_t{1} << 63}, {6, 20}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(replies[i].vm_token, want[i].first) << i;
    EXPECT_EQ(replies[i].request_id, want[i].second) << i;
    EXPECT_EQ(replies[i].first_seq, replies[i].seq) << i;
  }
  EXPECT_EQ(replies[0].frame, bytes({0x0a}));
  // The upgraded state takes new replies after the old ones, and opens as version 2 again.
  ASSERT_TRUE(store->begin());
  std::int64_t seq = 0;
  ASSERT_TRUE(store->put_reply(6, 21, bytes({0x15}), 0, &seq));
  EXPECT_GT(seq, replies.back().seq);
  ASSERT_TRUE(store->commit());
  store.reset();
  store = Store::open(path_, Durability::flush_in_commit, &error);
  ASSERT_TRUE(store) << error;
  replies.clear();
  ASSERT_TRUE(store->load_replies(&replies));
  EXPECT_EQ(replies.size(), 5u);
}

TEST_F(StoreTest, AStateOfAnUnknownVersionIsRefused) {
  write_v1("UPDATE meta SET value = 99 WHERE key = 'schema_version';");
  std::string error;
  EXPECT_FALSE(Store::open(path_, Durability::flush_in_commit, &error));
  EXPECT_NE(error.find("schema version 99, this daemon reads 2 (and upgrades 1)"),
            std::string::npos)
      << error;
}

}  // namespace
}  // namespace ioasid::daemon
