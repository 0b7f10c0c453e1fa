// SPDX-License-Identifier: Apache-2.0
// daemon_test.cc: ioasidd over real sockets, byte-level: every request and its errors, session
// rules, isolation between VMs, administration, durability across restarts, exactly-once replies,
// grace periods, group commit, and what garbage or a client that stops reading does to a live
// daemon. The daemon is the built program, run as a child process with its state in a temporary
// directory (test_daemon.hpp).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <cerrno>
#include <set>
#include <thread>

#include "daemon/test_daemon.hpp"

namespace ioasid::testing {
namespace {

b::OpenSessionRequest open_req(std::uint64_t vm, std::uint32_t quota) {
  b::OpenSessionRequest o;
  o.vm_token = vm;
  o.quota = quota;
  return o;
}

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(d_.start(extra_)); }
  // A connection with HELLO done and VM vm's session open.
  std::unique_ptr<RawConn> session(std::uint64_t vm, std::uint32_t quota = 16,
                                   b::SessionReply* out = nullptr) {
    auto c = std::make_unique<RawConn>(d_.socket());
    EXPECT_TRUE(c->ok());
    EXPECT_EQ(c->hello(), bw::kAllFeatures);
    auto r = c->call(next(), open_req(vm, quota));
    EXPECT_EQ(r.status, 0);
    if (out != nullptr && r.status == 0) *out = std::get<b::SessionReply>(r.body);
    return c;
  }
  std::uint64_t next() { return ++rid_; }
  Id alloc(RawConn& c, Id min = 1, Id max = 0xFFFFF) {
    auto r = c.call(next(), b::AllocRequest{min, max});
    EXPECT_EQ(r.status, 0);
    return r.status == 0 ? std::get<b::AllocReply>(r.body).id : kInvalidId;
  }
  // n ALLOCs sent in one write, their replies read in order: the PASIDs (a failure is reported).
  std::set<Id> alloc_burst(RawConn& c, int n) {
    std::vector<std::byte> burst;
    for (int i = 0; i < n; ++i) {
      auto e = b::encode_request(next(), b::AllocRequest{1, 0xFFFFF});
      burst.insert(burst.end(), e.span().begin(), e.span().end());
    }
    std::set<Id> got;
    if (!c.send_bytes(burst)) {
      ADD_FAILURE() << "send";
      return got;
    }
    for (int i = 0; i < n; ++i) {
      b::Reply r;
      if (!c.recv(&r) || r.status != 0) {
        ADD_FAILURE() << "reply " << i << ": status " << r.status;
        return got;
      }
      got.insert(std::get<b::AllocReply>(r.body).id);
    }
    return got;
  }
  b::StatsReply stats() {
    RawConn a(d_.socket());
    a.hello();
    auto r = a.call(next(), b::StatsRequest{});
    EXPECT_EQ(r.status, 0);
    return std::get<b::StatsReply>(r.body);
  }
  DaemonProcess d_;
  std::vector<std::string> extra_;
  std::uint64_t rid_ = 1000;
};

TEST_F(DaemonTest, HelloNegotiatesAndConnectionStateErrors) {
  RawConn c(d_.socket());
  ASSERT_TRUE(c.ok());
  // Before HELLO: -EOPNOTSUPP.
  EXPECT_EQ(c.call(next(), b::SetInfoRequest{}).status, -EOPNOTSUPP);
  auto r = c.call(next(), b::HelloRequest{7, ~std::uint64_t{0}});
  ASSERT_EQ(r.status, 0);
  const auto& h = std::get<b::HelloReply>(r.body);
  EXPECT_EQ(h.version, 1u);
  EXPECT_EQ(h.features, bw::kAllFeatures);  // the intersection
  EXPECT_EQ(h.max_payload, bw::kMaxPayload);
  EXPECT_GE(h.max_in_flight, 1u);
  // A second HELLO: -EINVAL.
  EXPECT_EQ(c.call(next(), b::HelloRequest{1, 0}).status, -EINVAL);
  // Session requests without a session: -EPERM.
  EXPECT_EQ(c.call(next(), b::AllocRequest{1, 10}).status, -EPERM);
  EXPECT_EQ(c.call(next(), b::CloseSessionRequest{}).status, -EPERM);
  EXPECT_EQ(c.call(next(), b::SetInfoRequest{}).status, -EPERM);
}

TEST_F(DaemonTest, FeaturesNotNegotiatedAreUnsupported) {
  RawConn c(d_.socket());
  EXPECT_EQ(c.hello(0), 0u);
  EXPECT_EQ(c.call(next(), b::StatsRequest{}).status, -EOPNOTSUPP);
  EXPECT_EQ(c.call(next(), b::ResumeRequest{5, {1}}).status, -EOPNOTSUPP);
  auto o = open_req(5, 4);
  o.resume = b::ResumeToken{1};
  EXPECT_EQ(c.call(next(), o).status, -EOPNOTSUPP);
  ASSERT_EQ(c.call(next(), open_req(5, 4)).status, 0);
  EXPECT_EQ(c.call(next(), b::FindRequest{3}).status, -EOPNOTSUPP);
  const Id id = alloc(c);
  EXPECT_EQ(c.call(next(), b::BindRequest{id, 3}).status, -EOPNOTSUPP);
  EXPECT_EQ(c.call(next(), b::BindRequest{id, kInvalidId}).status, 0);
}

TEST_F(DaemonTest, OpenSessionRules) {
  RawConn c(d_.socket());
  c.hello();
  EXPECT_EQ(c.call(next(), open_req(1, 0)).status, -EINVAL);  // quota 0 (the codec)
  // More than the space can reserve: -ENOSPC.
  EXPECT_EQ(c.call(next(), open_req(1, 0xFFFFFFu)).status, -ENOSPC);
  auto r = c.call(next(), open_req(1, 8));
  ASSERT_EQ(r.status, 0);
  const auto& s = std::get<b::SessionReply>(r.body);
  EXPECT_EQ(s.vm_token, 1u);
  EXPECT_EQ(s.quota, 8u);
  EXPECT_EQ(s.count, 0u);
  EXPECT_FALSE(s.resumed);
  EXPECT_NE(s.resume_token, b::ResumeToken{});
  EXPECT_EQ(s.grace_seconds, 30u);
  // A second session on the connection: -EINVAL.
  EXPECT_EQ(c.call(next(), open_req(2, 8)).status, -EINVAL);
  // The same VM from another connection: -EEXIST, also RESUME with the right token (attached).
  RawConn other(d_.socket());
  other.hello();
  EXPECT_EQ(other.call(next(), open_req(1, 8)).status, -EEXIST);
  EXPECT_EQ(other.call(next(), b::ResumeRequest{1, s.resume_token}).status, -EEXIST);
  EXPECT_EQ(other.call(next(), b::ResumeRequest{1, b::ResumeToken{9}}).status, -ENOENT);
  EXPECT_EQ(other.call(next(), b::ResumeRequest{77, b::ResumeToken{9}}).status, -ENOENT);
  // CLOSE_SESSION, then the connection may open another one.
  EXPECT_EQ(c.call(next(), b::CloseSessionRequest{}).status, 0);
  EXPECT_EQ(c.call(next(), b::SetInfoRequest{}).status, -EPERM);
  EXPECT_EQ(c.call(next(), open_req(2, 8)).status, 0);
  EXPECT_EQ(other.call(next(), open_req(1, 8)).status, 0);
}

TEST_F(DaemonTest, EveryIdRequestAndItsErrors) {
  auto c = session(10, 3);
  const Id a = alloc(*c, 100, 200);
  EXPECT_EQ(a, 100u);
  EXPECT_EQ(c->call(next(), b::AllocRequest{5, 0x100000}).status, -ERANGE);  // outside 20 bits
  EXPECT_EQ(c->call(next(), b::AllocRequest{9, 3}).status, -EINVAL);         // inverted
  EXPECT_EQ(c->call(next(), b::AllocRequest{100, 100}).status, -ENOSPC);     // range full
  const Id bb = alloc(*c);
  const Id cc = alloc(*c);
  EXPECT_EQ(c->call(next(), b::AllocRequest{1, 0xFFFFF}).status, -EDQUOT);  // quota 3
  // QUERY
  auto q = c->call(next(), b::QueryRequest{a});
  ASSERT_EQ(q.status, 0);
  EXPECT_EQ(std::get<b::QueryReply>(q.body).info.refs, 1u);
  EXPECT_EQ(std::get<b::QueryReply>(q.body).info.state, IdState::active);
  EXPECT_EQ(c->call(next(), b::QueryRequest{4242}).status, -ENOENT);
  EXPECT_EQ(c->call(next(), b::QueryRequest{0x100000}).status, -ERANGE);
  // GET / PUT
  EXPECT_EQ(c->call(next(), b::GetRequest{a}).status, 0);
  auto p = c->call(next(), b::PutRequest{a});
  ASSERT_EQ(p.status, 0);
  EXPECT_FALSE(std::get<b::PutReply>(p.body).released);
  EXPECT_EQ(c->call(next(), b::GetRequest{4242}).status, -ENOENT);
  EXPECT_EQ(c->call(next(), b::PutRequest{4242}).status, -ENOENT);
  // BIND with a guest PASID, FIND, duplicate spid, UNBIND
  EXPECT_EQ(c->call(next(), b::BindRequest{a, 7}).status, 0);
  auto f = c->call(next(), b::FindRequest{7});
  ASSERT_EQ(f.status, 0);
  EXPECT_EQ(std::get<b::FindReply>(f.body).id, a);
  EXPECT_EQ(c->call(next(), b::FindRequest{8}).status, -ENOENT);
  EXPECT_EQ(c->call(next(), b::BindRequest{bb, 7}).status, -EEXIST);
  EXPECT_EQ(c->call(next(), b::BindRequest{a, 0x100000}).status, -ERANGE);
  EXPECT_EQ(c->call(next(), b::UnbindRequest{bb}).status, -ENOENT);  // not bound
  // SET_INFO
  auto si = c->call(next(), b::SetInfoRequest{});
  ASSERT_EQ(si.status, 0);
  const auto& set = std::get<b::SetInfoReply>(si.body).set;
  EXPECT_EQ(set.vm_token, 10u);
  EXPECT_EQ(set.quota, 3u);
  EXPECT_EQ(set.count, 3u);
  EXPECT_EQ(set.bound, 1u);
  EXPECT_EQ(set.quota_refusals, 1u);
  // FREE while bound: FREE_PENDING; GET and FREE again -EBUSY; the last UNBIND releases it.
  EXPECT_EQ(c->call(next(), b::FreeRequest{a}).status, 0);
  q = c->call(next(), b::QueryRequest{a});
  ASSERT_EQ(q.status, 0);
  EXPECT_EQ(std::get<b::QueryReply>(q.body).info.state, IdState::free_pending);
  EXPECT_EQ(c->call(next(), b::GetRequest{a}).status, -EBUSY);
  EXPECT_EQ(c->call(next(), b::FreeRequest{a}).status, -EBUSY);
  EXPECT_EQ(c->call(next(), b::UnbindRequest{a}).status, 0);
  EXPECT_EQ(c->call(next(), b::QueryRequest{a}).status, -ENOENT);
  // PUT of the allocation's reference releases.
  p = c->call(next(), b::PutRequest{cc});
  ASSERT_EQ(p.status, 0);
  EXPECT_TRUE(std::get<b::PutReply>(p.body).released);
  EXPECT_EQ(c->call(next(), b::FreeRequest{bb}).status, 0);
  EXPECT_EQ(c->call(next(), b::FreeRequest{bb}).status, -ENOENT);
  EXPECT_EQ(c->call(next(), b::FreeRequest{0x100000}).status, -ERANGE);
}

TEST_F(DaemonTest, AnotherVmsPasidIsNotFound) {
  auto a = session(1);
  auto bconn = session(2);
  const Id mine = alloc(*a);
  ASSERT_EQ(a->call(next(), b::BindRequest{mine, 5}).status, 0);
  // Every request on VM 1's PASID from VM 2 reads exactly as a PASID that does not exist.
  for (const b::Request& r :
       {b::Request{b::FreeRequest{mine}}, b::Request{b::GetRequest{mine}},
        b::Request{b::PutRequest{mine}}, b::Request{b::BindRequest{mine, kInvalidId}},
        b::Request{b::UnbindRequest{mine}}, b::Request{b::QueryRequest{mine}},
        b::Request{b::FindRequest{5}}}) {
    EXPECT_EQ(bconn->call(next(), r).status, -ENOENT) << b::to_string(b::request_type(r));
  }
  // Nothing changed for the owner; the namespace is shared (VM 2 gets another PASID).
  auto q = a->call(next(), b::QueryRequest{mine});
  ASSERT_EQ(q.status, 0);
  EXPECT_EQ(std::get<b::QueryReply>(q.body).info.refs, 2u);
  EXPECT_NE(alloc(*bconn), mine);
}

TEST_F(DaemonTest, QuotasAreIsolatedPerVm) {
  auto a = session(1, 2);
  auto bconn = session(2, 2);
  alloc(*a);
  alloc(*a);
  EXPECT_EQ(a->call(next(), b::AllocRequest{1, 0xFFFFF}).status, -EDQUOT);
  alloc(*bconn);  // VM 1's full quota is not VM 2's
  alloc(*bconn);
  EXPECT_EQ(bconn->call(next(), b::AllocRequest{1, 0xFFFFF}).status, -EDQUOT);
}

TEST_F(DaemonTest, CloseSessionFreesEveryPasid) {
  auto a = session(1);
  const Id x = alloc(*a);
  ASSERT_EQ(a->call(next(), b::BindRequest{x, 3}).status, 0);
  ASSERT_EQ(a->call(next(), b::GetRequest{x}).status, 0);
  ASSERT_EQ(a->call(next(), b::CloseSessionRequest{}).status, 0);
  auto bconn = session(2);
  EXPECT_EQ(alloc(*bconn, x, x), x);
  EXPECT_EQ(stats().space.live_ids, 1u);
}

TEST_F(DaemonTest, AdminRequests) {
  auto a = session(5, 4);
  auto bconn = session(6, 4);
  for (int i = 0; i < 3; ++i) alloc(*a);
  alloc(*bconn);
  RawConn adm(d_.socket());
  adm.hello();
  auto l = adm.call(next(), b::ListSetsRequest{0, 1});
  ASSERT_EQ(l.status, 0);
  const auto& page1 = std::get<b::ListSetsReply>(l.body);
  ASSERT_EQ(page1.sets.size(), 1u);
  EXPECT_EQ(page1.sets[0].vm_token, 5u);
  EXPECT_EQ(page1.sets[0].count, 3u);
  const std::uint64_t cursor = page1.next_cursor;
  ASSERT_NE(cursor, 0u);
  l = adm.call(next(), b::ListSetsRequest{cursor, 0});
  ASSERT_EQ(l.status, 0);
  ASSERT_EQ(std::get<b::ListSetsReply>(l.body).sets.size(), 1u);
  EXPECT_EQ(std::get<b::ListSetsReply>(l.body).sets[0].vm_token, 6u);
  EXPECT_EQ(std::get<b::ListSetsReply>(l.body).next_cursor, 0u);
  EXPECT_EQ(adm.call(next(), b::ListSetsRequest{99, 0}).status, -EINVAL);  // stale cursor
  // LIST_IDS, two pages.
  auto ids = adm.call(next(), b::ListIdsRequest{5, 0, 2});
  ASSERT_EQ(ids.status, 0);
  const auto& p1 = std::get<b::ListIdsReply>(ids.body);
  ASSERT_EQ(p1.ids.size(), 2u);
  EXPECT_LT(p1.ids[0].id, p1.ids[1].id);
  const Id next_id = p1.next_id;
  ids = adm.call(next(), b::ListIdsRequest{5, next_id, 0});
  ASSERT_EQ(ids.status, 0);
  EXPECT_EQ(std::get<b::ListIdsReply>(ids.body).ids.size(), 1u);
  EXPECT_EQ(std::get<b::ListIdsReply>(ids.body).next_id, kInvalidId);
  EXPECT_EQ(adm.call(next(), b::ListIdsRequest{404, 0, 0}).status, -ENOENT);
  // SET_QUOTA
  EXPECT_EQ(adm.call(next(), b::SetQuotaRequest{5, 2}).status, -EINVAL);  // below the count
  EXPECT_EQ(adm.call(next(), b::SetQuotaRequest{404, 2}).status, -ENOENT);
  EXPECT_EQ(adm.call(next(), b::SetQuotaRequest{5, 0xFFFFFF}).status, -ENOSPC);
  ASSERT_EQ(adm.call(next(), b::SetQuotaRequest{5, 3}).status, 0);
  EXPECT_EQ(a->call(next(), b::AllocRequest{1, 0xFFFFF}).status, -EDQUOT);
  // STATS
  auto st = adm.call(next(), b::StatsRequest{});
  ASSERT_EQ(st.status, 0);
  const auto& s = std::get<b::StatsReply>(st.body);
  EXPECT_EQ(s.space.live_ids, 4u);
  EXPECT_EQ(s.space.sets, 2u);
  EXPECT_EQ(s.daemon.sessions, 2u);
  EXPECT_EQ(s.daemon.clients, 3u);
  EXPECT_GE(s.daemon.journal_commits, 5u);
  EXPECT_GE(s.daemon.error_replies, 5u);
}

TEST_F(DaemonTest, QueryIdFindsAnyVmsPasidWithItsOwner) {
  auto a = session(21, 4);
  auto bconn = session(22, 4);
  const Id x = alloc(*a);
  const Id y = alloc(*bconn);
  ASSERT_EQ(bconn->call(next(), b::BindRequest{y, 9}).status, 0);
  RawConn adm(d_.socket());
  adm.hello();
  auto r = adm.call(next(), b::QueryIdRequest{x});
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(std::get<b::QueryIdReply>(r.body).vm_token, 21u);
  EXPECT_EQ(std::get<b::QueryIdReply>(r.body).info.state, IdState::active);
  EXPECT_EQ(std::get<b::QueryIdReply>(r.body).info.refs, 1u);
  r = adm.call(next(), b::QueryIdRequest{y});
  ASSERT_EQ(r.status, 0);
  const auto& q = std::get<b::QueryIdReply>(r.body);
  EXPECT_EQ(q.vm_token, 22u);
  EXPECT_EQ(q.info.id, y);
  EXPECT_EQ(q.info.refs, 2u);
  EXPECT_EQ(q.info.binds, 1u);
  EXPECT_EQ(q.info.spid, 9u);
  // FREE while bound: still found, FREE_PENDING.
  ASSERT_EQ(bconn->call(next(), b::FreeRequest{y}).status, 0);
  r = adm.call(next(), b::QueryIdRequest{y});
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(std::get<b::QueryIdReply>(r.body).info.state, IdState::free_pending);
  EXPECT_EQ(adm.call(next(), b::QueryIdRequest{4242}).status, -ENOENT);      // not allocated
  EXPECT_EQ(adm.call(next(), b::QueryIdRequest{0}).status, -ENOENT);         // reserved PASID 0
  EXPECT_EQ(adm.call(next(), b::QueryIdRequest{0x100000}).status, -ERANGE);  // outside 20 bits
  // A session connection without F_ADMIN: the feature is not negotiated.
  RawConn plain(d_.socket());
  plain.hello(bw::feature_bit(bw::kFSpid));
  EXPECT_EQ(plain.call(next(), b::QueryIdRequest{x}).status, -EOPNOTSUPP);
  EXPECT_EQ(plain.call(next(), b::StatusRequest{}).status, -EOPNOTSUPP);
}

TEST_F(DaemonTest, StatusReportsIdentityAndConfiguration) {
  RawConn adm(d_.socket());
  adm.hello();
  auto r = adm.call(next(), b::StatusRequest{});
  ASSERT_EQ(r.status, 0);
  const auto& st = std::get<b::StatusReply>(r.body);
  EXPECT_EQ(st.pid, static_cast<std::uint32_t>(d_.pid()));
  EXPECT_EQ(st.daemon_version, (0u << 16) | (1u << 8) | 0u);
  EXPECT_EQ(st.id_bits, 20u);
  EXPECT_FALSE(st.no_sync);
  EXPECT_EQ(st.grace_seconds, 30u);
  EXPECT_EQ(st.max_sessions_per_client, 64u);
  EXPECT_EQ(st.max_clients, 1024u);
  EXPECT_EQ(st.max_output, std::uint64_t{1} << 20);
  const auto now =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  EXPECT_LE(st.started_ms, now);
  EXPECT_GT(st.started_ms + 60'000, now);
}

class DaemonNoSyncTest : public DaemonTest {
 protected:
  DaemonNoSyncTest() { extra_ = {"--no-sync", "--grace", "5", "--id-bits", "16"}; }
};

TEST_F(DaemonNoSyncTest, StatusSaysNotDurable) {
  RawConn adm(d_.socket());
  adm.hello();
  auto r = adm.call(next(), b::StatusRequest{});
  ASSERT_EQ(r.status, 0);
  EXPECT_TRUE(std::get<b::StatusReply>(r.body).no_sync);
  EXPECT_EQ(std::get<b::StatusReply>(r.body).grace_seconds, 5u);
  EXPECT_EQ(std::get<b::StatusReply>(r.body).id_bits, 16u);
}

TEST_F(DaemonTest, StateSurvivesRestartAndSessionsResume) {
  b::SessionReply s;
  auto c = session(3, 8, &s);
  const Id x = alloc(*c);
  const Id y = alloc(*c);
  ASSERT_EQ(c->call(next(), b::BindRequest{x, 44}).status, 0);
  ASSERT_EQ(c->call(next(), b::BindRequest{x, kInvalidId}).status, 0);
  ASSERT_EQ(c->call(next(), b::GetRequest{x}).status, 0);
  ASSERT_EQ(c->call(next(), b::GetRequest{y}).status, 0);
  ASSERT_EQ(c->call(next(), b::FreeRequest{y}).status, 0);  // FREE_PENDING, one ref
  c.reset();
  d_.kill9();
  ASSERT_TRUE(d_.start());
  RawConn r(d_.socket());
  r.hello();
  auto res = r.call(next(), b::ResumeRequest{3, s.resume_token});
  ASSERT_EQ(res.status, 0);
  EXPECT_TRUE(std::get<b::SessionReply>(res.body).resumed);
  EXPECT_EQ(std::get<b::SessionReply>(res.body).count, 2u);
  auto q = r.call(next(), b::QueryRequest{x});
  ASSERT_EQ(q.status, 0);
  const IdInfo qx = std::get<b::QueryReply>(q.body).info;
  EXPECT_EQ(qx.refs, 4u);
  EXPECT_EQ(qx.binds, 2u);
  EXPECT_EQ(qx.spid, 44u);
  q = r.call(next(), b::QueryRequest{y});
  ASSERT_EQ(q.status, 0);
  EXPECT_EQ(std::get<b::QueryReply>(q.body).info.state, IdState::free_pending);
  EXPECT_EQ(std::get<b::QueryReply>(q.body).info.refs, 1u);
  auto f = r.call(next(), b::FindRequest{44});
  ASSERT_EQ(f.status, 0);
  EXPECT_EQ(std::get<b::FindReply>(f.body).id, x);
  // A restart with another space shape is refused with a clear error.
  r.call(next(), b::CloseSessionRequest{});
  EXPECT_EQ(WEXITSTATUS(d_.stop()), 0);
  EXPECT_FALSE(d_.start({"--id-bits", "16"}));
  EXPECT_EQ(WEXITSTATUS(d_.exit_status()), 1);
}

TEST_F(DaemonTest, RetriedRequestGetsItsOriginalReply) {
  b::SessionReply s;
  auto c = session(4, 8, &s);
  auto r1 = c->call(777, b::AllocRequest{1, 0xFFFFF});
  ASSERT_EQ(r1.status, 0);
  auto r2 = c->call(777, b::AllocRequest{1, 0xFFFFF});
  ASSERT_EQ(r2.status, 0);
  EXPECT_EQ(std::get<b::AllocReply>(r1.body).id, std::get<b::AllocReply>(r2.body).id);
  // The same token for another request type: refused, nothing executed.
  EXPECT_EQ(c->call(777, b::FreeRequest{std::get<b::AllocReply>(r1.body).id}).status, -EINVAL);
  // After a daemon crash, on a resumed session, the stored reply is still the answer.
  c.reset();
  d_.kill9();
  ASSERT_TRUE(d_.start());
  RawConn r(d_.socket());
  r.hello();
  ASSERT_EQ(r.call(next(), b::ResumeRequest{4, s.resume_token}).status, 0);
  auto r3 = r.call(777, b::AllocRequest{1, 0xFFFFF});
  ASSERT_EQ(r3.status, 0);
  EXPECT_EQ(std::get<b::AllocReply>(r3.body).id, std::get<b::AllocReply>(r1.body).id);
  auto si = r.call(next(), b::SetInfoRequest{});
  EXPECT_EQ(std::get<b::SetInfoReply>(si.body).set.count, 1u);
}

TEST_F(DaemonTest, StoredRepliesKeepEverySessionsNewestWhileTheStoreIsPruned) {
  // VM 13 stores a few replies and goes quiet; VM 12 then makes 3000 requests whose ids cross
  // 2^63 (stored as signed integers), enough for the store's table of stored replies to be pruned
  // from its oldest end several times. After a crash: VM 12's newest 256 replies and every one of
  // VM 13's are in the store and answer their retries, VM 12's oldest are gone, and the table
  // stays bounded.
  b::SessionReply quiet_s;
  auto quiet = session(13, 8, &quiet_s);
  std::vector<std::pair<std::uint64_t, Id>> quiet_allocs;
  for (std::uint64_t i = 0; i < 5; ++i) {
    auto r = quiet->call(9000 + i, b::AllocRequest{1, 0xFFFFF});
    ASSERT_EQ(r.status, 0);
    quiet_allocs.emplace_back(9000 + i, std::get<b::AllocReply>(r.body).id);
  }
  b::SessionReply s;
  auto c = session(12, 4, &s);
  constexpr std::uint64_t kRequests = 3000;
  const std::uint64_t base = (std::uint64_t{1} << 63) - 1500;
  std::vector<Id> ids;
  for (std::uint64_t i = 0; i < kRequests; ++i) {
    if (i % 2 == 0) {
      auto r = c->call(base + i, b::AllocRequest{1, 0xFFFFF});
      ASSERT_EQ(r.status, 0) << i;
      ids.push_back(std::get<b::AllocReply>(r.body).id);
    } else {
      ASSERT_EQ(c->call(base + i, b::FreeRequest{ids.back()}).status, 0) << i;
    }
  }
  c.reset();
  quiet.reset();
  d_.kill9();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((d_.state_dir() + "/ioasidd.sqlite3").c_str(), &db,
                              SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    auto request_ids = [&](const char* sql) {
      sqlite3_stmt* st = nullptr;
      EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sql;
      std::set<std::uint64_t> out;
      while (sqlite3_step(st) == SQLITE_ROW) {
        out.insert(static_cast<std::uint64_t>(sqlite3_column_int64(st, 0)));
      }
      sqlite3_finalize(st);
      return out;
    };
    const auto busy = request_ids("SELECT request_id FROM replies WHERE vm_token = 12");
    const auto still = request_ids("SELECT request_id FROM replies WHERE vm_token = 13");
    const auto all = request_ids("SELECT seq FROM replies");
    sqlite3_close(db);
    for (std::uint64_t i = kRequests - 256; i < kRequests; ++i) {
      EXPECT_TRUE(busy.contains(base + i)) << i;
    }
    EXPECT_FALSE(busy.contains(base)) << "the oldest replies were never pruned";
    for (const auto& [rid, id] : quiet_allocs) EXPECT_TRUE(still.contains(rid)) << rid;
    // Twice the live replies plus the slack and one batch (server.cc), at most.
    EXPECT_LE(all.size(), 2 * (256 + 6) + 1024 + 64);
  }
  ASSERT_TRUE(d_.start());
  RawConn r(d_.socket());
  r.hello();
  ASSERT_EQ(r.call(next(), b::ResumeRequest{12, s.resume_token}).status, 0);
  // The last ALLOC's retry gets its original answer, not a new PASID.
  auto again = r.call(base + kRequests - 2, b::AllocRequest{1, 0xFFFFF});
  ASSERT_EQ(again.status, 0);
  EXPECT_EQ(std::get<b::AllocReply>(again.body).id, ids.back());
  EXPECT_EQ(std::get<b::SetInfoReply>(r.call(next(), b::SetInfoRequest{}).body).set.count, 0u);
  RawConn q(d_.socket());
  q.hello();
  ASSERT_EQ(q.call(next(), b::ResumeRequest{13, quiet_s.resume_token}).status, 0);
  for (const auto& [rid, id] : quiet_allocs) {
    auto retry = q.call(rid, b::AllocRequest{1, 0xFFFFF});
    ASSERT_EQ(retry.status, 0);
    EXPECT_EQ(std::get<b::AllocReply>(retry.body).id, id) << rid;
  }
  EXPECT_EQ(std::get<b::SetInfoReply>(q.call(next(), b::SetInfoRequest{}).body).set.count, 5u);
}

TEST_F(DaemonTest, ASlowSessionsWindowSurvivesPruningAndACrash) {
  // VM 14 makes one request for every ten of VM 12's: its replies reach the table's oldest end
  // while still in its window and are appended again, and some of those leave the window later.
  // After a crash the daemon must rebuild VM 14's window as it was (its newest 256 in the order
  // they were stored), not from the rows' positions: every one of the 256 retries gets its
  // original answer and none executes again.
  b::SessionReply slow_s;
  auto slow = session(14, 8, &slow_s);
  auto busy = session(12, 4);
  struct Sent {
    std::uint64_t rid;
    bool alloc;
    Id id;
  };
  std::vector<Sent> sent;
  std::vector<Id> busy_ids;
  Id slow_id = kInvalidId;
  for (std::uint64_t i = 0; i < 6000; ++i) {
    if (i % 2 == 0) {
      auto r = busy->call(next(), b::AllocRequest{1, 0xFFFFF});
      ASSERT_EQ(r.status, 0) << i;
      busy_ids.push_back(std::get<b::AllocReply>(r.body).id);
    } else {
      ASSERT_EQ(busy->call(next(), b::FreeRequest{busy_ids.back()}).status, 0) << i;
    }
    if (i % 10 != 0) continue;
    const std::uint64_t rid = next();
    if (slow_id == kInvalidId) {
      auto r = slow->call(rid, b::AllocRequest{1, 0xFFFFF});
      ASSERT_EQ(r.status, 0) << i;
      slow_id = std::get<b::AllocReply>(r.body).id;
      sent.push_back({rid, true, slow_id});
    } else {
      ASSERT_EQ(slow->call(rid, b::FreeRequest{slow_id}).status, 0) << i;
      sent.push_back({rid, false, slow_id});
      slow_id = kInvalidId;
    }
  }
  ASSERT_GT(sent.size(), 256u + 100u);
  const std::uint32_t count_before = slow_id == kInvalidId ? 0u : 1u;
  busy.reset();
  slow.reset();
  d_.kill9();
  ASSERT_TRUE(d_.start());
  RawConn r(d_.socket());
  r.hello();
  ASSERT_EQ(r.call(next(), b::ResumeRequest{14, slow_s.resume_token}).status, 0);
  for (std::size_t k = sent.size() - 256; k < sent.size(); ++k) {
    const Sent& x = sent[k];
    if (x.alloc) {
      auto again = r.call(x.rid, b::AllocRequest{1, 0xFFFFF});
      ASSERT_EQ(again.status, 0) << k;
      EXPECT_EQ(std::get<b::AllocReply>(again.body).id, x.id) << k;
    } else {
      EXPECT_EQ(r.call(x.rid, b::FreeRequest{x.id}).status, 0) << k << " executed again";
    }
  }
  // A retried ALLOC that executed again would hold one more PASID.
  EXPECT_EQ(std::get<b::SetInfoReply>(r.call(next(), b::SetInfoRequest{}).body).set.count,
            count_before);
}

TEST_F(DaemonTest, RetriedOpenSessionGetsItsOriginalReply) {
  RawConn c(d_.socket());
  c.hello();
  auto first = c.call(555, open_req(8, 4));
  ASSERT_EQ(first.status, 0);
  d_.kill9();  // as if the reply had been lost in the crash
  ASSERT_TRUE(d_.start());
  RawConn again(d_.socket());
  again.hello();
  auto second = again.call(555, open_req(8, 4));
  ASSERT_EQ(second.status, 0);
  EXPECT_EQ(std::get<b::SessionReply>(second.body).resume_token,
            std::get<b::SessionReply>(first.body).resume_token);
  // A fresh OPEN_SESSION (another token) does not take over the session.
  RawConn third(d_.socket());
  third.hello();
  EXPECT_EQ(third.call(556, open_req(8, 4)).status, -EEXIST);
}

TEST_F(DaemonTest, OpenSessionWithResumeTokenTakesOverTheDetachedSession) {
  b::SessionReply s;
  auto c = session(12, 4, &s);
  const Id x = alloc(*c);
  c.reset();  // the VMM dies; the daemon notices and starts the grace period
  RawConn n(d_.socket());
  n.hello();
  auto o = open_req(12, 0);
  o.resume = s.resume_token;
  b::Reply r;
  for (int i = 0; i < 200; ++i) {  // until the daemon has seen the old connection go
    r = n.call(next(), o);
    if (r.status != -EEXIST) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(r.status, 0);
  EXPECT_TRUE(std::get<b::SessionReply>(r.body).resumed);
  EXPECT_EQ(n.call(next(), b::QueryRequest{x}).status, 0);
}

class DaemonGraceTest : public DaemonTest {
 protected:
  DaemonGraceTest() { extra_ = {"--grace", "1"}; }
};

TEST_F(DaemonGraceTest, DetachedSessionIsReclaimedAfterGraceEvenAcrossRestart) {
  b::SessionReply s;
  auto c = session(20, 4, &s);
  const Id x = alloc(*c);
  c.reset();
  d_.kill9();  // the deadline is in the store
  ASSERT_TRUE(d_.start({"--grace", "1"}));
  // Wait (bounded) for the daemon to reclaim the set.
  bool gone = false;
  for (int i = 0; i < 400 && !gone; ++i) {
    gone = stats().space.sets == 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(gone);
  RawConn r(d_.socket());
  r.hello();
  EXPECT_EQ(r.call(next(), b::ResumeRequest{20, s.resume_token}).status, -ENOENT);
  // The PASID went back to the space.
  auto o = session(21);
  EXPECT_EQ(alloc(*o, x, x), x);
}

TEST_F(DaemonTest, SessionWithoutResumeIsReclaimedAtDisconnect) {
  {
    RawConn c(d_.socket());
    c.hello(0);
    ASSERT_EQ(c.call(next(), open_req(30, 4)).status, 0);
    ASSERT_EQ(c.call(next(), b::AllocRequest{1, 10}).status, 0);
  }
  bool gone = false;
  for (int i = 0; i < 400 && !gone; ++i) {
    gone = stats().space.sets == 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone);
}

TEST_F(DaemonTest, RequestsOfOneIterationShareOneCommit) {
  auto c = session(40, 200);
  const std::uint64_t before = stats().daemon.journal_commits;
  // 64 ALLOCs in one write: the daemon reads them in one go and commits them in a few
  // transactions (max_inflight per connection and iteration), not 64.
  EXPECT_EQ(alloc_burst(*c, 64).size(), 64u);
  const std::uint64_t commits = stats().daemon.journal_commits - before;
  EXPECT_LT(commits, 16u);
  EXPECT_GE(commits, 2u);  // 64 > max_inflight (32)
}

// The three ways a commit reaches the disk (--commit-flush, --no-sync): the same requests get the
// same answers, every reply waits for a flush that covers it, and STATS counts the flushes.
enum class FlushMode { thread, inline_commit, none };

class DaemonFlushTest : public DaemonTest, public ::testing::WithParamInterface<FlushMode> {
 protected:
  DaemonFlushTest() {
    switch (GetParam()) {
      case FlushMode::thread:
        extra_ = {"--commit-flush", "thread"};
        break;
      case FlushMode::inline_commit:
        extra_ = {"--commit-flush", "inline"};
        break;
      case FlushMode::none:
        extra_ = {"--no-sync"};
        break;
    }
  }
};

TEST_P(DaemonFlushTest, EveryModeAnswersAndCountsItsFlushes) {
  auto c = session(41, 200);
  auto q = session(42, 8);
  const b::DaemonStats before = stats().daemon;
  // A burst of ALLOCs, then their FREEs one by one with a second VM's ALLOCs in between: every
  // reply arrives, in order, whatever the mode.
  const std::set<Id> got = alloc_burst(*c, 48);
  EXPECT_EQ(got.size(), 48u);
  for (Id id : got) {
    ASSERT_EQ(c->call(next(), b::FreeRequest{id}).status, 0);
    // The second VM's quota (8) runs out after 8: refused ALLOCs are answered too.
    const int st = q->call(next(), b::AllocRequest{1, 0xFFFFF}).status;
    EXPECT_TRUE(st == 0 || st == -EDQUOT) << st;
  }
  const b::DaemonStats after = stats().daemon;
  const std::uint64_t commits = after.journal_commits - before.journal_commits;
  const std::uint64_t flushes = after.journal_flushes - before.journal_flushes;
  EXPECT_GE(commits, 2u + 48u);  // the burst took two or more, each FREE and ALLOC after it one
  switch (GetParam()) {
    case FlushMode::thread:
      // The loop flushes itself when nothing else waits, the thread otherwise; a flush can cover
      // several commits but every commit had one.
      EXPECT_GE(flushes, 1u);
      EXPECT_LE(flushes, commits);
      break;
    case FlushMode::inline_commit:
      EXPECT_EQ(flushes, commits);
      break;
    case FlushMode::none:
      EXPECT_EQ(after.journal_flushes, 0u);
      break;
  }
}

TEST_P(DaemonFlushTest, AcknowledgedStateSurvivesARestart) {
  std::set<Id> kept;
  {
    auto c = session(43, 32);
    for (int i = 0; i < 20; ++i) kept.insert(alloc(*c));
    for (int i = 0; i < 5; ++i) {
      ASSERT_EQ(c->call(next(), b::FreeRequest{*kept.begin()}).status, 0);
      kept.erase(kept.begin());
    }
  }
  d_.kill9();
  ASSERT_TRUE(d_.start(extra_));
  RawConn a(d_.socket());
  a.hello();
  auto r = a.call(next(), b::ListIdsRequest{43, 0, 0});
  ASSERT_EQ(r.status, 0);
  std::set<Id> listed;
  const auto& ids = std::get<b::ListIdsReply>(r.body).ids;
  for (std::size_t i = 0; i < ids.size(); ++i) listed.insert(ids[i].id);
  EXPECT_EQ(listed, kept);
}

INSTANTIATE_TEST_SUITE_P(Modes, DaemonFlushTest,
                         ::testing::Values(FlushMode::thread, FlushMode::inline_commit,
                                           FlushMode::none),
                         [](const ::testing::TestParamInfo<FlushMode>& p) {
                           switch (p.param) {
                             case FlushMode::thread:
                               return std::string("Thread");
                             case FlushMode::inline_commit:
                               return std::string("Inline");
                             case FlushMode::none:
                               return std::string("NoSync");
                           }
                           return std::string("?");
                         });

class DaemonCapTest : public DaemonTest {
 protected:
  DaemonCapTest() { extra_ = {"--max-sessions-per-client", "2", "--capacity", "100"}; }
};

TEST_F(DaemonCapTest, SessionCapAndCapacity) {
  auto a = session(1, 60);
  RawConn c(d_.socket());
  c.hello();
  EXPECT_EQ(c.call(next(), open_req(2, 41)).status, -ENOSPC);  // capacity 100
  ASSERT_EQ(c.call(next(), open_req(2, 40)).status, 0);
  RawConn d(d_.socket());
  d.hello();
  EXPECT_EQ(d.call(next(), open_req(3, 1)).status, -ENOSPC);  // two sessions per uid
}

// ---- garbage and slow clients ----

TEST_F(DaemonTest, MalformedFramesCloseOnlyThatConnection) {
  auto good = session(50);
  const Id x = alloc(*good);
  auto frame = [](std::uint32_t type, std::uint32_t flags, std::uint32_t size,
                  std::uint32_t reserved) {
    std::vector<std::byte> f(b::kHeaderSize);
    bw::Header h{};
    h.type.store(type);
    h.flags.store(flags);
    h.size.store(size);
    h.reserved.store(reserved);
    h.request_id.store(9);
    std::memcpy(f.data(), &h, sizeof h);
    return f;
  };
  const std::vector<std::vector<std::byte>> closing = {
      frame(0x10, 2 | bw::kFlagNeedReply, 8, 0),                    // bad version
      frame(0x10, 1 | bw::kFlagNeedReply | 0x100, 8, 0),            // unknown flag
      frame(0x10, 1 | bw::kFlagReply, 8, 0),                        // a reply sent to the daemon
      frame(0x10, 1, 8, 0),                                         // neither direction
      frame(0x10, 1 | bw::kFlagNeedReply, 8, 1),                    // header reserved
      frame(0x10, 1 | bw::kFlagNeedReply, bw::kMaxPayload + 1, 0),  // oversized
  };
  for (std::size_t i = 0; i < closing.size(); ++i) {
    RawConn bad(d_.socket());
    bad.hello();
    auto f = closing[i];
    if (i + 1 < closing.size()) f.resize(f.size() + 8);  // the payload the header announces
    ASSERT_TRUE(bad.send_bytes(f));
    EXPECT_TRUE(bad.closed_by_peer()) << "frame " << i;
  }
  // Random garbage.
  {
    RawConn bad(d_.socket());
    std::vector<std::byte> junk(1000);
    for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = std::byte(i * 131 + 7);
    ASSERT_TRUE(bad.send_bytes(junk));
    EXPECT_TRUE(bad.closed_by_peer());
  }
  // A truncated frame, then the peer goes away: nothing happens to the others.
  {
    RawConn bad(d_.socket());
    bad.hello();
    auto e = b::encode_request(next(), b::AllocRequest{1, 5});
    ASSERT_TRUE(bad.send_bytes(e.span().first(e.size - 3)));
  }
  // Unknown type and a bad length: an error reply, the connection stays.
  {
    RawConn c(d_.socket());
    c.hello();
    auto u = frame(0x7777, 1 | bw::kFlagNeedReply, 4, 0);
    u.resize(u.size() + 4);
    ASSERT_TRUE(c.send_bytes(u));
    b::Reply r;
    ASSERT_TRUE(c.recv(&r));
    EXPECT_EQ(r.status, -EOPNOTSUPP);
    EXPECT_EQ(r.type, 0x7777u);
    auto l = frame(0x10, 1 | bw::kFlagNeedReply, 4, 0);
    l.resize(l.size() + 4);
    ASSERT_TRUE(c.send_bytes(l));
    ASSERT_TRUE(c.recv(&r));
    EXPECT_EQ(r.status, -EINVAL);
    EXPECT_EQ(c.call(0, b::AllocRequest{1, 2}).status, -EINVAL);  // zero request id
    EXPECT_EQ(c.call(next(), b::StatsRequest{}).status, 0);
  }
  EXPECT_TRUE(d_.alive());
  EXPECT_EQ(good->call(next(), b::QueryRequest{x}).status, 0);
  EXPECT_GE(stats().daemon.protocol_errors, 7u);
}

TEST_F(DaemonTest, HalfClosedClientGetsItsRepliesThenTheConnectionCloses) {
  RawConn c(d_.socket());
  c.hello();
  ASSERT_TRUE(c.send(next(), b::StatsRequest{}));
  ASSERT_EQ(::shutdown(c.fd(), SHUT_WR), 0);
  b::Reply r;
  ASSERT_TRUE(c.recv(&r));
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_TRUE(d_.alive());
}

TEST_F(DaemonTest, ClientThatStopsReadingDoesNotBlockOthers) {
  auto slow = session(60, 4);
  // Flood with requests without ever reading a reply: its replies fill the socket and then the
  // daemon's bounded output buffer; the daemon stops reading it.
  const int fd = slow->fd();
  const int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  std::vector<std::byte> burst;
  for (int i = 0; i < 512; ++i) {
    auto e = b::encode_request(next(), b::ListIdsRequest{60, 0, 0});
    burst.insert(burst.end(), e.span().begin(), e.span().end());
  }
  std::size_t sent = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::size_t stalled = 0;  // consecutive sends the daemon took nothing of
  while (!(stalled >= 200 && sent > (1u << 20)) && std::chrono::steady_clock::now() < until) {
    const ssize_t n = ::send(fd, burst.data(), burst.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      stalled = 0;
    } else {
      ++stalled;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  EXPECT_GE(stalled, 200u);  // the daemon stopped reading this client
  EXPECT_GT(sent, 1u << 20);
  // Others are served meanwhile.
  auto other = session(61);
  const Id x = alloc(*other);
  EXPECT_EQ(other->call(next(), b::QueryRequest{x}).status, 0);
  EXPECT_EQ(stats().daemon.clients, 3u);
}

TEST(DaemonCli, SocketActivation) {
  DaemonProcess d;
  d.use_socket_activation();
  ASSERT_TRUE(d.start());
  RawConn c(d.socket());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.hello(), bw::kAllFeatures);
  b::OpenSessionRequest o;
  o.vm_token = 3;
  o.quota = 2;
  EXPECT_EQ(c.call(2, o).status, 0);
  EXPECT_EQ(WEXITSTATUS(d.stop()), 0);
  EXPECT_TRUE(std::filesystem::exists(d.socket()));  // systemd's socket: not removed
}

// WatchdogSec=: systemd passes WATCHDOG_USEC and expects WATCHDOG=1 at least that often; the daemon
// beats at half the interval, idle or busy, with a STATUS= line of what it serves.
TEST(DaemonCli, WatchdogBeatsWhileIdleAndWhileServing) {
  DaemonProcess d;
  d.set_env("WATCHDOG_USEC", "200000");
  ASSERT_TRUE(d.start());
  for (int i = 0; i < 3; ++i) {
    const std::string beat = d.next_notification("WATCHDOG=1", std::chrono::seconds(5));
    ASSERT_FALSE(beat.empty()) << "beat " << i;
    EXPECT_NE(beat.find("STATUS=serving 0 sessions, 0 connections"), std::string::npos) << beat;
  }
  RawConn c(d.socket());
  ASSERT_EQ(c.hello(), bw::kAllFeatures);
  b::OpenSessionRequest o;
  o.vm_token = 5;
  o.quota = 4;
  ASSERT_EQ(c.call(2, o).status, 0);
  bool saw_session = false;
  for (int i = 0; i < 5 && !saw_session; ++i) {
    const std::string beat = d.next_notification("WATCHDOG=1", std::chrono::seconds(5));
    ASSERT_FALSE(beat.empty());
    saw_session = beat.find("serving 1 sessions, 1 connections") != std::string::npos;
  }
  EXPECT_TRUE(saw_session);
  // A client keeping the loop busy does not starve the beat.
  std::atomic<bool> done{false};
  std::uint64_t pairs = 0;
  std::thread load([&] {
    std::uint64_t rid = 100;
    while (!done.load()) {
      auto r = c.call(++rid, b::AllocRequest{1, 0xFFFFF});
      if (r.status != 0) break;
      if (c.call(++rid, b::FreeRequest{std::get<b::AllocReply>(r.body).id}).status != 0) break;
      ++pairs;
    }
  });
  int beats = 0;
  for (int i = 0; i < 3; ++i) {
    if (!d.next_notification("WATCHDOG=1", std::chrono::seconds(5)).empty()) ++beats;
  }
  done = true;
  load.join();
  EXPECT_EQ(beats, 3);
  EXPECT_GT(pairs, 0u);
  EXPECT_EQ(WEXITSTATUS(d.stop()), 0);
}

TEST(DaemonCli, NoWatchdogBeatsWithoutWatchdogSec) {
  DaemonProcess d;
  ASSERT_TRUE(d.start());
  EXPECT_EQ(d.next_notification("WATCHDOG=1", std::chrono::milliseconds(600)), "");
  EXPECT_EQ(WEXITSTATUS(d.stop()), 0);
}

TEST(DaemonCli, SecondDaemonOnTheSameStateIsRefused) {
  DaemonProcess d;
  ASSERT_TRUE(d.start());
  std::string out;
  const int st =
      run_daemon_to_exit({"--socket", d.dir() + "/other.sock", "--state-dir", d.state_dir()}, &out);
  EXPECT_EQ(WEXITSTATUS(st), 1);
  EXPECT_NE(out.find("another ioasidd uses this state"), std::string::npos) << out;
  // The first one is unaffected, and its successor gets the state once it is gone.
  RawConn c(d.socket());
  EXPECT_EQ(c.hello(), bw::kAllFeatures);
  EXPECT_EQ(WEXITSTATUS(d.stop()), 0);
  ASSERT_TRUE(d.start());
}

TEST(DaemonCli, PrintCapabilitiesAndBadArguments) {
  std::string out;
  int st = run_daemon_to_exit({"--print-capabilities"}, &out);
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_NE(out.find("\"protocol_version\": 1"), std::string::npos) << out;
  EXPECT_NE(out.find("\"resume\""), std::string::npos);
  EXPECT_NE(out.find("\"durability\": \"sqlite-wal\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"version\": \"0.1.0\""), std::string::npos) << out;
  out.clear();
  st = run_daemon_to_exit({"--print-capabilities", "--no-sync"}, &out);
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_NE(out.find("\"durability\": \"none\""), std::string::npos) << out;
  out.clear();
  st = run_daemon_to_exit({"--id-bits", "40"}, &out);
  EXPECT_EQ(WEXITSTATUS(st), 2);
  out.clear();
  st = run_daemon_to_exit({"--state-dir", "/nonexistent/x"}, &out);
  EXPECT_NE(WEXITSTATUS(st), 0);
  out.clear();
  DaemonProcess d;
  ASSERT_TRUE(d.start());
  // A second daemon on the same socket path refuses to start.
  st = run_daemon_to_exit({"--socket", d.socket(), "--state-dir", d.dir() + "/other"}, &out);
  EXPECT_EQ(WEXITSTATUS(st), 1);
  EXPECT_NE(out.find("another daemon"), std::string::npos) << out;
  // SIGTERM: a prompt, clean exit that removes the socket.
  EXPECT_EQ(WEXITSTATUS(d.stop()), 0);
  EXPECT_FALSE(std::filesystem::exists(d.socket()));
}

}  // namespace
}  // namespace ioasid::testing
