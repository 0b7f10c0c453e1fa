// SPDX-License-Identifier: Apache-2.0
// wal_write_buffer.hpp: a SQLite VFS that merges the write-ahead log's sequential writes, so that
// a commit reaches the kernel as one write call instead of two per changed page.
//
// SQLite appends a transaction to the WAL frame by frame, each frame as two writes (a 24-byte
// header, then the page): a group commit of ~60 requests made ~100 pwrite(2) calls, the largest
// share of the daemon's kernel time (bench/README.md "What limits durable throughput"). This VFS
// wraps the default one. Only files opened as a WAL get a buffer; the database file and any
// other file are the default VFS's own objects, untouched. A WAL file's writes that continue
// where the buffered bytes end are appended to the buffer; everything else keeps SQLite's exact
// order and view of the file: before any read, sync, truncate, size query, memory map, file
// control or close of that file, and before a write anywhere else, the buffer is written out
// first, in one call, at the offset it was meant for. Writes are never reordered, only merged.
//
// A COMMIT with synchronous=FULL ends in a sync of the WAL, which writes the buffer out first.
// With NORMAL or OFF the COMMIT returns with its frames possibly still in the buffer: the caller
// must call flush_wal_writes() before it treats the transaction as written (Store::commit does),
// and before it asks another descriptor to flush the file (WalFlusher). A process killed before
// that loses only a transaction no reply has acknowledged; SQLite's frame checksums drop a WAL's
// partly written tail at recovery, as they would after any torn write. A write out that fails is
// sticky: every later call on the file and flush_wal_writes() fail with it (SQLite ignores the
// result of the checkpoint a COMMIT runs, which may be what wrote the buffer out).
//
// Thread-safety: a buffered file is used by the one connection that opened it, like any SQLite
// file object of a connection opened with SQLITE_OPEN_NOMUTEX; registration is thread-safe.
#pragma once

#include <sqlite3.h>

#include <cstdint>

namespace ioasid::daemon {

// The VFS's name for sqlite3_open_v2(). It is registered (not as the default) at the first call;
// returns nullptr if that failed.
const char* wal_write_buffer_vfs();

// Writes what db's WAL has buffered to the file. Returns an SQLite result code: SQLITE_OK also
// when nothing was buffered, or when db's journal is not a buffered WAL; the code of an earlier
// failed write out of that WAL.
int flush_wal_writes(sqlite3* db);

// Process-wide counts of the WAL writes SQLite made through this VFS and of the write calls they
// became (for tests and benchmarks).
struct WalWriteCounts {
  std::uint64_t sqlite_writes = 0;
  std::uint64_t file_writes = 0;
};
WalWriteCounts wal_write_counts() noexcept;

}  // namespace ioasid::daemon
