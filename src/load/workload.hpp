// SPDX-License-Identifier: Apache-2.0
// workload.hpp: ioasid-load's clients: N threads, each with its own connection (and, against the
// daemon, its own VM session), doing alloc+free round trips for a warm-up and then a measured
// period, every request timed into a latency histogram.
//
// Kinds of client:
//   library    ioasid::DaemonBackend, the client library a VMM uses, called by `threads` threads
//              of the client (alloc, then free of the PASID it got, each): one request in flight
//              per thread, pipelined by the library on the client's one connection
//   pipelined  the protocol directly (src/broker codec) with `depth` requests in flight per
//              connection, as the daemon allows up to HELLO's max_in_flight: each ALLOC reply is
//              followed by the FREE of its PASID, each FREE reply by a new ALLOC
//   echo       the floor: the same frames (an ALLOC request, a reply of the ALLOC reply's size)
//              against the in-process EchoServer, blocking send and recv, one in flight
//
// Thread-safety: run_workload() runs the threads and joins them before it returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ioasid/types.hpp"
#include "load/latency_histogram.hpp"

namespace ioasid::load {

enum class ClientKind { library, pipelined, echo };

struct WorkloadConfig {
  std::string socket;
  ClientKind kind = ClientKind::library;
  unsigned clients = 1;
  unsigned depth = 1;    // requests in flight per client (pipelined only)
  unsigned threads = 1;  // threads sharing each client's DaemonBackend (library only)
  std::chrono::milliseconds warmup{500};
  std::chrono::milliseconds duration{5000};
  std::chrono::milliseconds timeout{10000};  // per request (DaemonOptions::timeout, SO_RCVTIMEO)
  std::uint64_t vm_base = 0;                 // client i opens VM vm_base + i
  Id min = 1;                                // the ALLOC range, [min, max]
  Id max = 0xFFFFF;
  std::vector<int> client_cpus;  // client i runs on client_cpus[i % size]; empty: anywhere
};

struct WorkloadResult {
  double seconds = 0;          // the measured period
  std::uint64_t pairs = 0;     // alloc+free pairs completed in it (echo: pairs of round trips)
  std::uint64_t requests = 0;  // requests answered in it
  LatencyHistogram request;    // every request (echo: every round trip)
  LatencyHistogram alloc;      // ALLOC requests (library, pipelined)
  LatencyHistogram free;       // FREE requests (library, pipelined)
  LatencyHistogram pair;       // alloc then free, back to back (library, echo)
  [[nodiscard]] double pairs_per_second() const { return seconds > 0 ? pairs / seconds : 0; }
  [[nodiscard]] double requests_per_second() const { return seconds > 0 ? requests / seconds : 0; }
};

// Runs the workload. Returns false with *error set when a client could not connect or a request
// failed (the first failure; the other clients are stopped).
bool run_workload(const WorkloadConfig& config, WorkloadResult* out, std::string* error);

// Pins the calling thread to one CPU. Returns false if the kernel refused.
bool pin_current_thread(int cpu);

// Bytes of the echo client's request and reply (an ALLOC request frame and an ALLOC reply frame).
std::size_t echo_request_size();
std::size_t echo_reply_size();

}  // namespace ioasid::load
