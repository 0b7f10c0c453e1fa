// SPDX-License-Identifier: Apache-2.0
// wal_write_buffer.cc: the write-merging VFS of ioasidd's WAL (wal_write_buffer.hpp).
#include "daemon/wal_write_buffer.hpp"

#include <atomic>
#include <cstddef>
#include <cstring>
#include <mutex>

namespace ioasid::daemon {
namespace {

constexpr const char* kVfsName = "ioasid-wal-write-buffer";
// At most this many bytes are buffered (and so written in one call): the default VFS's write
// takes fewer than 128 KiB per call (its unix write path keeps only the count's low 17 bits;
// a 1 MiB write failed as SQLITE_FULL). 64 KiB is ~60 frames of 1 KiB pages.
constexpr std::size_t kMaxBuffered = std::size_t{64} << 10;

std::atomic<std::uint64_t> g_sqlite_writes{0};
std::atomic<std::uint64_t> g_file_writes{0};

// A buffered WAL file. SQLite allocates szOsFile bytes for it: this header, then the default
// VFS's own file object (`real`), which does the I/O.
struct BufferedFile {
  sqlite3_file base;  // pMethods = &kBufferedMethods
  sqlite3_file* real;
  unsigned char* data;  // sqlite3_malloc64'd, capacity bytes
  std::size_t capacity;
  std::size_t size;  // buffered bytes, meant for [offset, offset + size)
  sqlite3_int64 offset;
  int failed;  // the SQLite code of the first write out that failed; SQLITE_OK: none
};

constexpr std::size_t kRealOffset = (sizeof(BufferedFile) + alignof(std::max_align_t) - 1) /
                                    alignof(std::max_align_t) * alignof(std::max_align_t);

BufferedFile* as_buffered(sqlite3_file* f) { return reinterpret_cast<BufferedFile*>(f); }
sqlite3_vfs* real_vfs(sqlite3_vfs* vfs) { return static_cast<sqlite3_vfs*>(vfs->pAppData); }

// A failed write out is sticky: every later call on the file fails with it, flush_wal_writes()
// too. The caller that triggered it may not be the one whose data was lost, and SQLite ignores
// some errors (a checkpoint run by COMMIT reports nothing): without this, a COMMIT whose frames
// never reached the file could be acknowledged, and later frames written past the hole. The
// daemon stops at a failed commit; a restart recovers the WAL up to the first broken frame.
int write_out(BufferedFile* f) {
  if (f->failed != SQLITE_OK) return f->failed;
  if (f->size == 0) return SQLITE_OK;
  const int rc = f->real->pMethods->xWrite(f->real, f->data, static_cast<int>(f->size), f->offset);
  g_file_writes.fetch_add(1, std::memory_order_relaxed);
  f->size = 0;
  f->failed = rc;
  return rc;
}

bool reserve(BufferedFile* f, std::size_t needed) {
  if (needed <= f->capacity) return true;
  std::size_t cap = f->capacity == 0 ? 16 * 1024 : f->capacity;
  while (cap < needed) cap *= 2;
  void* p = sqlite3_realloc64(f->data, cap);
  if (p == nullptr) return false;
  f->data = static_cast<unsigned char*>(p);
  f->capacity = cap;
  return true;
}

int buffered_close(sqlite3_file* file) {
  BufferedFile* f = as_buffered(file);
  const int flushed = write_out(f);
  const int closed = f->real->pMethods->xClose(f->real);
  sqlite3_free(f->data);
  f->data = nullptr;
  f->capacity = 0;
  return flushed != SQLITE_OK ? flushed : closed;
}

int buffered_write(sqlite3_file* file, const void* src, int amount, sqlite3_int64 offset) {
  BufferedFile* f = as_buffered(file);
  if (f->failed != SQLITE_OK) return f->failed;
  g_sqlite_writes.fetch_add(1, std::memory_order_relaxed);
  const auto n = static_cast<std::size_t>(amount);
  const bool continues = f->size == 0 || offset == f->offset + static_cast<sqlite3_int64>(f->size);
  if (!continues || f->size + n > kMaxBuffered) {
    if (const int rc = write_out(f); rc != SQLITE_OK) return rc;
  }
  if (n > kMaxBuffered || !reserve(f, f->size + n)) {
    // Written through, after what is buffered (the order stays SQLite's).
    if (const int rc = write_out(f); rc != SQLITE_OK) return rc;
    g_file_writes.fetch_add(1, std::memory_order_relaxed);
    const int rc = f->real->pMethods->xWrite(f->real, src, amount, offset);
    f->failed = rc;
    return rc;
  }
  if (f->size == 0) f->offset = offset;
  std::memcpy(f->data + f->size, src, n);
  f->size += n;
  return SQLITE_OK;
}

// The calls that look at or change the file as a whole: the buffer goes out first.
int buffered_read(sqlite3_file* file, void* dst, int amount, sqlite3_int64 offset) {
  BufferedFile* f = as_buffered(file);
  if (const int rc = write_out(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xRead(f->real, dst, amount, offset);
}
int buffered_truncate(sqlite3_file* file, sqlite3_int64 size) {
  BufferedFile* f = as_buffered(file);
  if (const int rc = write_out(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xTruncate(f->real, size);
}
int buffered_sync(sqlite3_file* file, int flags) {
  BufferedFile* f = as_buffered(file);
  if (const int rc = write_out(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xSync(f->real, flags);
}
int buffered_file_size(sqlite3_file* file, sqlite3_int64* size) {
  BufferedFile* f = as_buffered(file);
  if (const int rc = write_out(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFileSize(f->real, size);
}
int buffered_file_control(sqlite3_file* file, int op, void* arg) {
  BufferedFile* f = as_buffered(file);
  if (const int rc = write_out(f); rc != SQLITE_OK) return rc;
  return f->real->pMethods->xFileControl(f->real, op, arg);
}
int buffered_fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  BufferedFile* f = as_buffered(file);
  if (const int rc = write_out(f); rc != SQLITE_OK) return rc;
  *out = nullptr;  // no mapping: SQLite reads instead
  if (f->real->pMethods->iVersion < 3) return SQLITE_OK;
  return f->real->pMethods->xFetch(f->real, offset, amount, out);
}

// The rest is the default VFS's file as it is. (A WAL has no shared memory of its own: SQLite
// maps the WAL index through the database file; the shm methods are forwarded for completeness,
// and fail as unsupported if the default VFS's file lacks them.)
int buffered_lock(sqlite3_file* f, int level) {
  return as_buffered(f)->real->pMethods->xLock(as_buffered(f)->real, level);
}
int buffered_unlock(sqlite3_file* f, int level) {
  return as_buffered(f)->real->pMethods->xUnlock(as_buffered(f)->real, level);
}
int buffered_check_reserved_lock(sqlite3_file* f, int* out) {
  return as_buffered(f)->real->pMethods->xCheckReservedLock(as_buffered(f)->real, out);
}
int buffered_sector_size(sqlite3_file* f) {
  return as_buffered(f)->real->pMethods->xSectorSize(as_buffered(f)->real);
}
int buffered_device_characteristics(sqlite3_file* f) {
  return as_buffered(f)->real->pMethods->xDeviceCharacteristics(as_buffered(f)->real);
}
int buffered_shm_map(sqlite3_file* f, int page, int page_size, int extend, void volatile** out) {
  if (as_buffered(f)->real->pMethods->iVersion < 2) return SQLITE_IOERR_SHMMAP;
  return as_buffered(f)->real->pMethods->xShmMap(as_buffered(f)->real, page, page_size, extend,
                                                 out);
}
int buffered_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  if (as_buffered(f)->real->pMethods->iVersion < 2) return SQLITE_IOERR_SHMLOCK;
  return as_buffered(f)->real->pMethods->xShmLock(as_buffered(f)->real, offset, n, flags);
}
void buffered_shm_barrier(sqlite3_file* f) {
  if (as_buffered(f)->real->pMethods->iVersion < 2) return;
  as_buffered(f)->real->pMethods->xShmBarrier(as_buffered(f)->real);
}
int buffered_shm_unmap(sqlite3_file* f, int delete_flag) {
  if (as_buffered(f)->real->pMethods->iVersion < 2) return SQLITE_OK;
  return as_buffered(f)->real->pMethods->xShmUnmap(as_buffered(f)->real, delete_flag);
}
int buffered_unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  if (as_buffered(f)->real->pMethods->iVersion < 3) return SQLITE_OK;
  return as_buffered(f)->real->pMethods->xUnfetch(as_buffered(f)->real, offset, p);
}

const sqlite3_io_methods kBufferedMethods = {
    3,
    buffered_close,
    buffered_read,
    buffered_write,
    buffered_truncate,
    buffered_sync,
    buffered_file_size,
    buffered_lock,
    buffered_unlock,
    buffered_check_reserved_lock,
    buffered_file_control,
    buffered_sector_size,
    buffered_device_characteristics,
    buffered_shm_map,
    buffered_shm_lock,
    buffered_shm_barrier,
    buffered_shm_unmap,
    buffered_fetch,
    buffered_unfetch,
};

// A WAL is wrapped; any other file is the default VFS's object itself, opened in place.
int vfs_open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  sqlite3_vfs* real = real_vfs(vfs);
  if ((flags & SQLITE_OPEN_WAL) == 0) return real->xOpen(real, name, file, flags, out_flags);
  BufferedFile* f = as_buffered(file);
  f->base.pMethods = nullptr;
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<unsigned char*>(file) + kRealOffset);
  f->data = nullptr;
  f->capacity = 0;
  f->size = 0;
  f->offset = 0;
  f->failed = SQLITE_OK;
  const int rc = real->xOpen(real, name, f->real, flags, out_flags);
  // With methods set, SQLite closes the file even when the open failed: ours close the real one.
  if (f->real->pMethods != nullptr) f->base.pMethods = &kBufferedMethods;
  return rc;
}

int vfs_delete(sqlite3_vfs* v, const char* name, int sync_dir) {
  return real_vfs(v)->xDelete(real_vfs(v), name, sync_dir);
}
int vfs_access(sqlite3_vfs* v, const char* name, int flags, int* out) {
  return real_vfs(v)->xAccess(real_vfs(v), name, flags, out);
}
int vfs_full_pathname(sqlite3_vfs* v, const char* name, int n, char* out) {
  return real_vfs(v)->xFullPathname(real_vfs(v), name, n, out);
}
void* vfs_dl_open(sqlite3_vfs* v, const char* name) {
  return real_vfs(v)->xDlOpen(real_vfs(v), name);
}
void vfs_dl_error(sqlite3_vfs* v, int n, char* out) { real_vfs(v)->xDlError(real_vfs(v), n, out); }
void (*vfs_dl_sym(sqlite3_vfs* v, void* handle, const char* sym))(void) {
  return real_vfs(v)->xDlSym(real_vfs(v), handle, sym);
}
void vfs_dl_close(sqlite3_vfs* v, void* handle) { real_vfs(v)->xDlClose(real_vfs(v), handle); }
int vfs_randomness(sqlite3_vfs* v, int n, char* out) {
  return real_vfs(v)->xRandomness(real_vfs(v), n, out);
}
int vfs_sleep(sqlite3_vfs* v, int us) { return real_vfs(v)->xSleep(real_vfs(v), us); }
int vfs_current_time(sqlite3_vfs* v, double* out) {
  return real_vfs(v)->xCurrentTime(real_vfs(v), out);
}
int vfs_get_last_error(sqlite3_vfs* v, int n, char* out) {
  return real_vfs(v)->xGetLastError(real_vfs(v), n, out);
}
int vfs_current_time_int64(sqlite3_vfs* v, sqlite3_int64* out) {
  return real_vfs(v)->xCurrentTimeInt64(real_vfs(v), out);
}
int vfs_set_system_call(sqlite3_vfs* v, const char* name, sqlite3_syscall_ptr p) {
  return real_vfs(v)->xSetSystemCall(real_vfs(v), name, p);
}
sqlite3_syscall_ptr vfs_get_system_call(sqlite3_vfs* v, const char* name) {
  return real_vfs(v)->xGetSystemCall(real_vfs(v), name);
}
const char* vfs_next_system_call(sqlite3_vfs* v, const char* name) {
  return real_vfs(v)->xNextSystemCall(real_vfs(v), name);
}

sqlite3_vfs g_vfs{};

}  // namespace

const char* wal_write_buffer_vfs() {
  static std::once_flag once;
  static bool registered = false;
  std::call_once(once, [] {
    sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
    // The wrapper forwards the version-3 VFS methods: without them the default VFS is used.
    if (real == nullptr || real->iVersion < 3) return;
    g_vfs.iVersion = 3;
    g_vfs.szOsFile = static_cast<int>(kRealOffset) + real->szOsFile;
    g_vfs.mxPathname = real->mxPathname;
    g_vfs.zName = kVfsName;
    g_vfs.pAppData = real;
    g_vfs.xOpen = vfs_open;
    g_vfs.xDelete = vfs_delete;
    g_vfs.xAccess = vfs_access;
    g_vfs.xFullPathname = vfs_full_pathname;
    g_vfs.xDlOpen = vfs_dl_open;
    g_vfs.xDlError = vfs_dl_error;
    g_vfs.xDlSym = vfs_dl_sym;
    g_vfs.xDlClose = vfs_dl_close;
    g_vfs.xRandomness = vfs_randomness;
    g_vfs.xSleep = vfs_sleep;
    g_vfs.xCurrentTime = vfs_current_time;
    g_vfs.xGetLastError = vfs_get_last_error;
    g_vfs.xCurrentTimeInt64 = vfs_current_time_int64;
    g_vfs.xSetSystemCall = vfs_set_system_call;
    g_vfs.xGetSystemCall = vfs_get_system_call;
    g_vfs.xNextSystemCall = vfs_next_system_call;
    registered = sqlite3_vfs_register(&g_vfs, 0) == SQLITE_OK;
  });
  return registered ? kVfsName : nullptr;
}

int flush_wal_writes(sqlite3* db) {
  sqlite3_file* journal = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &journal) != SQLITE_OK ||
      journal == nullptr || journal->pMethods != &kBufferedMethods) {
    return SQLITE_OK;
  }
  return write_out(as_buffered(journal));
}

WalWriteCounts wal_write_counts() noexcept {
  return {g_sqlite_writes.load(std::memory_order_relaxed),
          g_file_writes.load(std::memory_order_relaxed)};
}

}  // namespace ioasid::daemon
