// SPDX-License-Identifier: Apache-2.0
// reply_queue.hpp: one connection's outgoing reply bytes in ioasidd, each reply held until the
// commit it depends on is durable (server.hpp, wal_flusher.hpp).
//
// Commits are numbered (epochs). Replies are appended as requests execute; at the end of a loop
// iteration hold(epoch, durable) tags the ones appended since the last call with the newest
// commit epoch (a query's reply too: it may show a change that is not durable yet, and replies
// leave in order), and release(durable) makes sendable every held range whose epoch is durable.
// send_view() is what may go on the wire; consumed(n) records what did.
//
// Thread-safety: none (the event loop's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace ioasid::daemon {

class ReplyQueue {
 public:
  // Appends size bytes and returns them, to be encoded in place.
  std::span<std::byte> append(std::size_t size) {
    const std::size_t old = bytes_.size();
    bytes_.resize(old + size);
    return std::span(bytes_).subspan(old);
  }

  // Tags the bytes appended since the last call as depending on commit epoch; sendable at once if
  // durable (the highest durable epoch) covers it and nothing older is held.
  void hold(std::uint64_t epoch, std::uint64_t durable) {
    if (bytes_.size() == tagged_end()) return;
    if (epoch <= durable && held_.empty()) {
      releasable_ = bytes_.size();
    } else if (!held_.empty() && held_.back().epoch == epoch) {
      held_.back().end = bytes_.size();
    } else {
      held_.push_back({epoch, bytes_.size()});
    }
  }

  // Every epoch up to durable is on stable storage: its replies may go out.
  void release(std::uint64_t durable) {
    std::size_t n = 0;
    while (n < held_.size() && held_[n].epoch <= durable) releasable_ = held_[n++].end;
    if (n > 0) held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(n));
  }

  // The bytes that may be sent now, and the report of how many were.
  [[nodiscard]] std::span<const std::byte> send_view() const noexcept {
    return std::span(bytes_).subspan(sent_, releasable_ - sent_);
  }
  void consumed(std::size_t n) {
    sent_ += n;
    if (sent_ == bytes_.size()) {
      bytes_.clear();
      sent_ = 0;
      releasable_ = 0;
    } else if (sent_ > (std::size_t{1} << 16) && sent_ * 2 > bytes_.size()) {
      bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(sent_));
      releasable_ -= sent_;
      for (Held& h : held_) h.end -= sent_;
      sent_ = 0;
    }
  }

  // Unsent bytes, held or not (the output bound that pauses a client counts them all).
  [[nodiscard]] std::size_t pending() const noexcept { return bytes_.size() - sent_; }
  [[nodiscard]] std::size_t sendable() const noexcept { return releasable_ - sent_; }
  // Replies wait for a flush.
  [[nodiscard]] bool holding() const noexcept { return !held_.empty(); }

 private:
  struct Held {
    std::uint64_t epoch;  // the commit whose flush the range waits for
    std::size_t end;      // the range ends here (it starts where the previous one ends)
  };
  [[nodiscard]] std::size_t tagged_end() const noexcept {
    return held_.empty() ? releasable_ : held_.back().end;
  }

  std::vector<std::byte> bytes_;
  std::size_t sent_ = 0;        // bytes_[0, sent_) are on the wire
  std::size_t releasable_ = 0;  // bytes_[0, releasable_) may be (sent_ <= releasable_)
  std::vector<Held> held_;      // oldest first; ends increase
};

}  // namespace ioasid::daemon
