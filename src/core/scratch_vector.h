// A std::vector for scratch space that resize() does not zero-fill. A forward pass sizes its buffers
// for the longest chunk it may get (e.g. [512, intermediate] f32 = 16 MiB for a 1B model's feed-forward),
// but a decode step writes only its first rows: with value-initialisation every page became resident at
// construction (~54 MiB for Llama-3.2-1B, more than the whole of llama.cpp's overhead on the same file);
// default-initialised, a page becomes resident when a step first writes it. Every user writes a row
// before reading it; the contents after resize() are unspecified.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace tern {

template <class T, class Base = std::allocator<T>>
class DefaultInitAllocator : public Base {
  static_assert(std::is_trivially_default_constructible_v<T>, "scratch of trivial element types only");

 public:
  using Base::Base;
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U, typename std::allocator_traits<Base>::template rebind_alloc<U>>;
  };
  // construct(p) with no arguments default-initialises (leaves the bytes as they are); with arguments it
  // constructs as usual (push_back, resize(n, value)).
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    std::allocator_traits<Base>::construct(static_cast<Base&>(*this), p, std::forward<Args>(args)...);
  }
};

template <class T>
using ScratchVector = std::vector<T, DefaultInitAllocator<T>>;

}  // namespace tern
