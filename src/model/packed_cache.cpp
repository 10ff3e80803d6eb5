#include "model/packed_cache.h"

#define XXH_INLINE_ALL
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>

#include "formats/safetensors.h"

namespace tern {

namespace {

constexpr char kMagic[8] = {'T', 'E', 'R', 'N', 'P', 'K', 'W', '1'};
// Bump when a kernel layout (kernels/cpu/quant_kernels.h) or this file's format changes.
constexpr uint32_t kVersion = 1;
constexpr uint64_t kNone = ~uint64_t(0);
constexpr uint64_t kChunkBytes = uint64_t(64) << 20;
constexpr uint64_t kAlign = 64, kPage = 4096;

uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Bytes of each array of a quantized matrix; false for a format the cache does not hold or a shape
// its format cannot have.
struct Arrays {
  uint64_t data = 0, scales = 0, zeros = 0, perm = 0;
};
bool array_sizes(WeightFormat f, int64_t rows, int64_t cols, int group, bool zeros, bool perm, Arrays* a) {
  constexpr int64_t kMaxDim = int64_t(1) << 31;
  if (rows <= 0 || cols <= 0 || rows > kMaxDim || cols > kMaxDim) return false;
  const uint64_t r = uint64_t(rows), c = uint64_t(cols);
  switch (f) {
    case WeightFormat::Int8Channel:
    case WeightFormat::Fp8E4M3:
      if (zeros || perm) return false;
      *a = {r * c, r * 4, 0, 0};
      return true;
    case WeightFormat::Int4Group:
      if (group <= 0 || group % 32 != 0 || cols % group != 0) return false;
      a->data = r * c / 2;
      a->scales = r * uint64_t(cols / group) * 4;
      a->zeros = zeros ? a->scales : 0;
      a->perm = perm ? c * 4 : 0;
      return true;
    default:
      return false;
  }
}

// Little-endian fields into a byte buffer, and back with bounds checks.
struct Out {
  std::string b;
  template <typename T>
  void put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
};
struct In {
  const uint8_t* p;
  size_t n, at = 0;
  template <typename T>
  bool get(T* v) {
    if (n - at < sizeof(T)) return false;
    std::memcpy(v, p + at, sizeof(T));
    at += sizeof(T);
    return true;
  }
};

// The payload as written: consecutive chunks, each hashed as it is filled.
class PayloadSink {
 public:
  PayloadSink(int fd, uint64_t base) : fd_(fd), base_(base) { state_ = XXH3_createState(); XXH3_64bits_reset(state_); }
  ~PayloadSink() { XXH3_freeState(state_); }
  bool write(const void* src, uint64_t n) {
    const char* p = static_cast<const char*>(src);
    while (n > 0) {
      const uint64_t take = std::min(n, kChunkBytes - at_ % kChunkBytes);
      XXH3_64bits_update(state_, p, take);
      for (uint64_t done = 0; done < take;) {
        const ssize_t w = ::pwrite(fd_, p + done, take - done, off_t(base_ + at_ + done));
        if (w <= 0) {
          if (w < 0 && errno == EINTR) continue;
          return false;
        }
        done += uint64_t(w);
      }
      p += take, n -= take, at_ += take;
      if (at_ % kChunkBytes == 0) roll();
    }
    return true;
  }
  bool pad_to(uint64_t a) {
    static const char zeros[kPage] = {};
    const uint64_t n = round_up(at_, a) - at_;
    return n == 0 || write(zeros, n);
  }
  std::vector<uint64_t> finish() {
    if (at_ % kChunkBytes != 0) roll();
    return hashes_;
  }
  uint64_t size() const { return at_; }

 private:
  void roll() {
    hashes_.push_back(XXH3_64bits_digest(state_));
    XXH3_64bits_reset(state_);
  }
  int fd_;
  uint64_t base_, at_ = 0;
  XXH3_state_t* state_;
  std::vector<uint64_t> hashes_;
};

// The stamp beside a cache whose payload hashes were verified: the cache file's identity then (device,
// inode, size, mtime and ctime in ns) with its key and header hash. Any write to the cache (or a file
// renamed over it) changes its ctime, which nothing can set back, so while the stamp matches the
// payload is the one verified and is not hashed again (hashing 1.2 GB was half a second of start-up).
std::string stamp_line(const struct stat& st, uint64_t key, uint64_t header_hash) {
  return fmt::format("tern packed-weight cache verified | key {:016x} | header {:016x} | dev {} ino {} size {} "
                     "mtime {}.{:09} ctime {}.{:09}\n",
                     key, header_hash, uint64_t(st.st_dev), uint64_t(st.st_ino), int64_t(st.st_size),
                     int64_t(st.st_mtim.tv_sec), int64_t(st.st_mtim.tv_nsec), int64_t(st.st_ctim.tv_sec),
                     int64_t(st.st_ctim.tv_nsec));
}

bool stamp_matches(const std::string& path, const std::string& line) {
  const int fd = ::open((path + kStampSuffix).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  return n == ssize_t(line.size()) && std::memcmp(buf, line.data(), line.size()) == 0;
}

// Written (atomically) only when the cache's ctime is older than `verified_at` (the clock just before
// its stat and hashing) by more than a coarse timestamp tick: a write at or after verified_at then
// gives a later ctime, even on a file system whose timestamps are coarse. A cache changed within the
// tick is hashed again next time instead. Best effort: a directory that cannot be written has none.
void write_stamp(const std::string& path, const struct stat& st, const std::string& line,
                 const struct timespec& verified_at) {
  const double age = double(verified_at.tv_sec - st.st_ctim.tv_sec) + 1e-9 * double(verified_at.tv_nsec - st.st_ctim.tv_nsec);
  if (age < 1.0) return;
  const std::string stamp = path + kStampSuffix, tmp = fmt::format("{}.tmp.{}", stamp, ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size());
  if (::close(fd) != 0 || !ok || ::rename(tmp.c_str(), stamp.c_str()) != 0) ::unlink(tmp.c_str());
}

}  // namespace

Result<uint64_t> packed_cache_key(const std::string& dir, const SafetensorsStore& store, const std::string& options_tag) {
  std::set<std::string> files = {dir + "/config.json"};
  for (const auto& t : store.tensors()) files.insert(t.file);
  Out key;
  key.b = fmt::format("tern packed weights v{} | {} |", kVersion, options_tag);
  for (const auto& f : files) {
    struct stat st;
    if (::stat(f.c_str(), &st) != 0) return Status::error(fmt::format("{}: cannot stat: {}", f, std::strerror(errno)));
    key.b += f.substr(f.rfind('/') + 1) + '|';
    for (uint64_t v : {uint64_t(st.st_size), uint64_t(st.st_ino), uint64_t(st.st_dev), uint64_t(st.st_mtim.tv_sec),
                       uint64_t(st.st_mtim.tv_nsec), uint64_t(st.st_ctim.tv_sec), uint64_t(st.st_ctim.tv_nsec)})
      key.put(v);
  }
  TERN_ASSIGN_OR_RETURN(std::string config, read_text_file(dir + "/config.json"));
  key.b += config;
  return uint64_t(XXH3_64bits(key.b.data(), key.b.size()));
}

Result<PackedCache> PackedCache::open(const std::string& path, uint64_t key, ThreadPool* pool) {
  struct timespec verified_at;
  clock_gettime(CLOCK_REALTIME, &verified_at);
  // The identity of the file mapped: the same before and after mapping it.
  struct stat st, after;
  if (::stat(path.c_str(), &st) != 0) return Status::error(fmt::format("{}: no cache", path));
  TERN_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::open(path));
  if (::stat(path.c_str(), &after) != 0 || after.st_ino != st.st_ino || after.st_dev != st.st_dev ||
      after.st_size != st.st_size || after.st_ctim.tv_sec != st.st_ctim.tv_sec ||
      after.st_ctim.tv_nsec != st.st_ctim.tv_nsec || uint64_t(st.st_size) != mapped.size())
    return Status::error(fmt::format("{}: changed while being opened", path));
  auto bad = [&](const std::string& what) { return Status::error(fmt::format("{}: {}", path, what)); };
  In in{mapped.data(), mapped.size()};
  char magic[8];
  for (char& c : magic)
    if (!in.get(&c)) return bad("truncated header");
  uint32_t version = 0, n_entries = 0;
  uint64_t file_key = 0, payload_offset = 0, payload_bytes = 0, chunk_bytes = 0, n_chunks = 0;
  if (std::memcmp(magic, kMagic, 8) != 0) return bad("not a tern packed-weight cache");
  if (!in.get(&version) || !in.get(&n_entries) || !in.get(&file_key) || !in.get(&payload_offset) ||
      !in.get(&payload_bytes) || !in.get(&chunk_bytes) || !in.get(&n_chunks))
    return bad("truncated header");
  if (version != kVersion) return bad(fmt::format("version {}, not {}", version, kVersion));
  if (file_key != key) return bad("made for other checkpoint files or options");
  if (chunk_bytes != kChunkBytes || payload_offset % kPage != 0 || payload_offset > mapped.size() ||
      payload_bytes != mapped.size() - payload_offset || n_chunks != (payload_bytes + chunk_bytes - 1) / chunk_bytes)
    return bad("sizes do not match the file");
  std::vector<uint64_t> chunk_hash(n_chunks);
  for (auto& h : chunk_hash)
    if (!in.get(&h)) return bad("truncated header");
  PackedCache cache;
  const uint8_t* payload = mapped.data() + payload_offset;
  for (uint32_t e = 0; e < n_entries; ++e) {
    uint16_t name_len = 0;
    if (!in.get(&name_len) || in.n - in.at < name_len) return bad("truncated entry");
    std::string name(reinterpret_cast<const char*>(in.p + in.at), name_len);
    in.at += name_len;
    uint8_t format = 0, int8_act = 0;
    uint32_t group = 0;
    int64_t rows = 0, cols = 0;
    uint64_t quant_bytes = 0, off[4];
    if (!in.get(&format) || !in.get(&int8_act) || !in.get(&group) || !in.get(&rows) || !in.get(&cols) ||
        !in.get(&quant_bytes) || !in.get(&off[0]) || !in.get(&off[1]) || !in.get(&off[2]) || !in.get(&off[3]))
      return bad("truncated entry");
    Arrays a;
    if (group > 4096 || !array_sizes(WeightFormat(format), rows, cols, int(group), off[2] != kNone, off[3] != kNone, &a))
      return bad(fmt::format("entry '{}': not a quantized matrix tern packs", name));
    const uint64_t sizes[4] = {a.data, a.scales, a.zeros, a.perm};
    if (quant_bytes != a.data + a.scales + a.zeros + a.perm) return bad(fmt::format("entry '{}': wrong size", name));
    for (int i = 0; i < 4; ++i) {
      if (off[i] == kNone) continue;
      if (off[i] % kAlign != 0 || off[i] > payload_bytes || sizes[i] > payload_bytes - off[i])
        return bad(fmt::format("entry '{}': outside the payload", name));
    }
    if (off[0] == kNone || off[1] == kNone) return bad(fmt::format("entry '{}': no codes or scales", name));
    WeightMatrix w;
    w.format = WeightFormat(format), w.dtype = DType::F32, w.rows = rows, w.cols = cols, w.group = int(group);
    w.int8_activations = int8_act != 0, w.quant_bytes = size_t(quant_bytes);
    w.data = payload + off[0];
    w.scales = reinterpret_cast<const float*>(payload + off[1]);
    if (off[2] != kNone) w.zeros = reinterpret_cast<const float*>(payload + off[2]);
    if (off[3] != kNone) w.col_perm = reinterpret_cast<const int32_t*>(payload + off[3]);
    if (!cache.entries_.emplace(std::move(name), w).second) return bad("an entry named twice");
  }
  const size_t header_end = in.at;
  uint64_t header_hash = 0;
  if (!in.get(&header_hash) || header_hash != XXH3_64bits(mapped.data(), header_end)) return bad("header hash mismatch");
  // The payload, chunk by chunk on the pool's threads, unless a stamp vouches for this very file.
  const std::string stamp = stamp_line(st, key, header_hash);
  const bool stamped = stamp_matches(path, stamp);
  std::atomic<int64_t> first_bad{-1};
  auto verify = [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const uint64_t begin = uint64_t(c) * kChunkBytes, n = std::min(kChunkBytes, payload_bytes - begin);
      if (XXH3_64bits(payload + begin, n) != chunk_hash[size_t(c)]) first_bad.store(c);
    }
  };
  if (stamped) {
  } else if (pool) {
    pool->parallel_for(int64_t(n_chunks), 1, verify);
  } else {
    verify(0, int64_t(n_chunks));
  }
  if (first_bad.load() >= 0) return bad(fmt::format("payload chunk {} does not match its hash", first_bad.load()));
  if (!stamped) write_stamp(path, st, stamp, verified_at);
  cache.hashed_ = !stamped;
  // Act-order permutations index x: every value must be a column.
  for (const auto& [name, w] : cache.entries_) {
    if (!w.col_perm) continue;
    for (int64_t j = 0; j < w.cols; ++j)
      if (w.col_perm[j] < 0 || w.col_perm[j] >= w.cols) return bad(fmt::format("entry '{}': column order out of range", name));
  }
  cache.payload_bytes_ = size_t(payload_bytes);
  cache.file_ = std::make_shared<MappedFile>(std::move(mapped));
  return cache;
}

const WeightMatrix* PackedCache::find(const std::string& name, int64_t rows, int64_t cols) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.rows != rows || it->second.cols != cols) return nullptr;
  return &it->second;
}

void PackedCacheWriter::add(const std::string& name, const WeightMatrix& w) {
  Arrays a;
  if (name.size() > 65535 || !array_sizes(w.format, w.rows, w.cols, w.group, w.zeros, w.col_perm, &a)) return;
  entries_.emplace_back(name, w);
}

Status PackedCacheWriter::write(const std::string& path, uint64_t key) const {
  // Offsets first: they fix the header's size, which fixes where the payload starts.
  struct Placed {
    Arrays a;
    uint64_t off[4];
  };
  std::vector<Placed> placed(entries_.size());
  uint64_t at = 0;
  for (size_t e = 0; e < entries_.size(); ++e) {
    const WeightMatrix& w = entries_[e].second;
    Placed& p = placed[e];
    array_sizes(w.format, w.rows, w.cols, w.group, w.zeros, w.col_perm, &p.a);
    const uint64_t sizes[4] = {p.a.data, p.a.scales, p.a.zeros, p.a.perm};
    for (int i = 0; i < 4; ++i) {
      if (sizes[i] == 0) {
        p.off[i] = kNone;
        continue;
      }
      p.off[i] = at;
      at = round_up(at + sizes[i], kAlign);
    }
  }
  const uint64_t payload_bytes = at, n_chunks = (payload_bytes + kChunkBytes - 1) / kChunkBytes;
  Out entries;
  for (size_t e = 0; e < entries_.size(); ++e) {
    const auto& [name, w] = entries_[e];
    entries.put(uint16_t(name.size()));
    entries.b += name;
    entries.put(uint8_t(w.format)), entries.put(uint8_t(w.int8_activations)), entries.put(uint32_t(w.group));
    entries.put(int64_t(w.rows)), entries.put(int64_t(w.cols));
    const Arrays& a = placed[e].a;
    entries.put(uint64_t(a.data + a.scales + a.zeros + a.perm));
    for (uint64_t o : placed[e].off) entries.put(o);
  }
  const uint64_t header_bytes = 8 + 4 + 4 + 8 * 5 + 8 * n_chunks + entries.b.size() + 8;
  const uint64_t payload_offset = round_up(header_bytes, kPage);

  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error(fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  auto fail = [&](const char* what) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::error(fmt::format("{}: {}: {}", tmp, what, why));
  };
  PayloadSink sink(fd, payload_offset);
  for (size_t e = 0; e < entries_.size(); ++e) {
    const WeightMatrix& w = entries_[e].second;
    const void* src[4] = {w.data, w.scales, w.zeros, w.col_perm};
    const uint64_t sizes[4] = {placed[e].a.data, placed[e].a.scales, placed[e].a.zeros, placed[e].a.perm};
    for (int i = 0; i < 4; ++i) {
      if (sizes[i] == 0) continue;
      if (!sink.write(src[i], sizes[i]) || !sink.pad_to(kAlign)) return fail("write failed");
    }
  }
  const std::vector<uint64_t> hashes = sink.finish();
  Out h;
  h.b.assign(kMagic, 8);
  h.put(kVersion), h.put(uint32_t(entries_.size())), h.put(key), h.put(payload_offset), h.put(payload_bytes);
  h.put(kChunkBytes), h.put(uint64_t(hashes.size()));
  for (uint64_t x : hashes) h.put(x);
  h.b += entries.b;
  h.put(uint64_t(XXH3_64bits(h.b.data(), h.b.size())));
  h.b.resize(size_t(payload_offset), '\0');
  if (::pwrite(fd, h.b.data(), h.b.size(), 0) != ssize_t(h.b.size())) return fail("write failed");
  if (::ftruncate(fd, off_t(payload_offset + payload_bytes)) != 0) return fail("truncate failed");
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Status::error(fmt::format("{}: close failed", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Status::error(fmt::format("{}: cannot rename over {}: {}", tmp, path, why));
  }
  return Status::ok();
}

}  // namespace tern
