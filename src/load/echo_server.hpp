// SPDX-License-Identifier: Apache-2.0
// echo_server.hpp: the floor ioasid-load compares the daemon with: a server thread in the load
// generator's own process that answers every request frame at once with a reply of the same
// size as the daemon's, over the same kind of socket (AF_UNIX stream, non-blocking, one epoll
// loop, level-triggered, read until EAGAIN) and nothing else: no decoding, no state, no store.
//
// Each request is request_size bytes and is answered with reply_size bytes: the request's bytes,
// zero-padded (or cut) to reply_size.
//
// Thread-safety: start() and stop() from one thread; the server runs on its own.
#pragma once

#include <cstddef>
#include <string>
#include <thread>

namespace ioasid::load {

class EchoServer {
 public:
  EchoServer(std::string socket_path, std::size_t request_size, std::size_t reply_size);
  ~EchoServer();
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  // The server thread runs on this CPU (before start(); default: anywhere).
  void pin_to(int cpu) { cpu_ = cpu; }
  // Listens and starts the thread. Returns false with *error set on failure.
  bool start(std::string* error);
  void stop();

 private:
  void run();

  std::string path_;
  std::size_t request_size_;
  std::size_t reply_size_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;  // eventfd
  int cpu_ = -1;
  std::thread thread_;
};

}  // namespace ioasid::load
