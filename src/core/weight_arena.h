// Memory a model owns besides its mmapped checkpoint: weights repacked at load time into the layout
// a kernel reads (quantized formats). Blocks are 64-byte aligned and live as long as the arena.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

namespace tern {

class WeightArena {
 public:
  // Uninitialised, 64-byte aligned, valid until the arena is destroyed. Throws std::bad_alloc.
  void* allocate(size_t bytes) {
    const size_t rounded = (bytes + 63) & ~size_t(63);
    void* p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p) throw std::bad_alloc();
    blocks_.emplace_back(static_cast<char*>(p));
    sizes_.push_back(rounded);
    bytes_ += rounded;
    return p;
  }
  template <typename T>
  T* allocate_array(size_t n) {
    return static_cast<T*>(allocate(n * sizeof(T)));
  }
  size_t bytes() const { return bytes_; }
  // Whether p points into a block of this arena (tensor parallelism copies what must outlive it).
  bool owns(const void* p) const {
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const char* b = blocks_[i].get();
      if (static_cast<const char*>(p) >= b && static_cast<const char*>(p) < b + sizes_[i]) return true;
    }
    return false;
  }

 private:
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<char, FreeDeleter>> blocks_;
  std::vector<size_t> sizes_;  // [blocks_.size()] rounded bytes of each block
  size_t bytes_ = 0;
};

}  // namespace tern
