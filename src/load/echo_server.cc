// SPDX-License-Identifier: Apache-2.0
// echo_server.cc: ioasid-load's in-process echo server (echo_server.hpp).
#include "load/echo_server.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

namespace ioasid::load {

namespace {

struct EchoConn {
  std::vector<char> in;
  std::vector<char> out;
  std::size_t out_off = 0;
  bool want_out = false;
};

}  // namespace

EchoServer::EchoServer(std::string socket_path, std::size_t request_size, std::size_t reply_size)
    : path_(std::move(socket_path)), request_size_(request_size), reply_size_(reply_size) {}

EchoServer::~EchoServer() {
  stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  if (!path_.empty()) ::unlink(path_.c_str());
}

bool EchoServer::start(std::string* error) {
  sockaddr_un a{};
  if (path_.size() >= sizeof a.sun_path) {
    *error = "socket path too long: " + path_;
    return false;
  }
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path_.c_str(), path_.size() + 1);
  ::unlink(path_.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (listen_fd_ < 0 || epoll_fd_ < 0 || stop_fd_ < 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    *error = "echo server " + path_ + ": " + std::strerror(errno);
    return false;
  }
  for (int fd : {listen_fd_, stop_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      *error = std::string("epoll_ctl: ") + std::strerror(errno);
      return false;
    }
  }
  thread_ = std::thread([this] {
    if (cpu_ >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu_, &set);
      (void)::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
    }
    run();
  });
  return true;
}

void EchoServer::stop() {
  if (!thread_.joinable()) return;
  const std::uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  thread_.join();
}

void EchoServer::run() {
  std::map<int, EchoConn> conns;
  epoll_event events[64];
  std::vector<char> buf(64 * 1024);
  auto close_conn = [&](int fd) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns.erase(fd);
  };
  while (true) {
    const int n = ::epoll_wait(epoll_fd_, events, 64, -1);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_fd_) {
        for (auto& [cfd, c] : conns) ::close(cfd);
        return;
      }
      if (fd == listen_fd_) {
        while (true) {
          const int cfd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.fd = cfd;
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, cfd, &ev);
          conns[cfd];
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      EchoConn& c = it->second;
      bool gone = false;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        while (true) {
          const ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
          if (r > 0) {
            c.in.insert(c.in.end(), buf.data(), buf.data() + r);
            if (static_cast<std::size_t>(r) < buf.size()) break;  // drained (as the daemon does)
            continue;
          }
          if (r < 0 && errno == EINTR) continue;
          if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          gone = true;
          break;
        }
        std::size_t used = 0;
        while (c.in.size() - used >= request_size_) {
          const std::size_t keep = std::min(request_size_, reply_size_);
          c.out.insert(c.out.end(), c.in.begin() + static_cast<std::ptrdiff_t>(used),
                       c.in.begin() + static_cast<std::ptrdiff_t>(used + keep));
          c.out.resize(c.out.size() + (reply_size_ - keep));
          used += request_size_;
        }
        c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(used));
      }
      while (c.out_off < c.out.size()) {
        const ssize_t w =
            ::send(fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
        if (w > 0) {
          c.out_off += static_cast<std::size_t>(w);
          continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        gone = true;
        break;
      }
      if (c.out_off == c.out.size()) {
        c.out.clear();
        c.out_off = 0;
      }
      if (gone) {
        close_conn(fd);
        continue;
      }
      const bool want_out = c.out_off < c.out.size();
      if (want_out != c.want_out) {
        epoll_event ev{};
        ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0u);
        ev.data.fd = fd;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
        c.want_out = want_out;
      }
    }
  }
}

}  // namespace ioasid::load
