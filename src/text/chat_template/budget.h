// The running cost of one render, checked against ChatTemplateLimits (limits.h). The evaluator, the builtins and
// the value walkers (printing, tojson, comparison) charge it as they work, so every way a template can loop, recurse
// or build ends at a bound with a LimitError naming it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "text/chat_template/limits.h"
#include "text/chat_template/value.h"

namespace tern::jinja {

// A bound was hit; travels like any other TemplateError and ends the render.
struct LimitError : TemplateError {
  explicit LimitError(const std::string& what) : TemplateError("template limit: " + what) {}
};

class Budget {
 public:
  explicit Budget(const ChatTemplateLimits& limits);
  // Empties the namespaces the render created: a namespace can hold itself (`set ns.x = [ns]`), and clearing them
  // breaks such cycles so they do not leak.
  ~Budget();
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  const ChatTemplateLimits& limits() const { return lim_; }

  // n units of work; every 4096 units the clock is read too.
  void step(uint64_t n = 1) {
    steps_ += n;
    if (steps_ > uint64_t(lim_.max_steps)) fail_steps();
    if ((steps_ >> 12) != clock_mark_) check_clock();
  }
  // Work proportional to n bytes copied or scanned.
  void bytes(size_t n) { step(1 + n / 1024); }
  // n bytes of strings (or list items) were built or copied: counted against the render's total.
  void built(size_t n) {
    built_ += n;
    if (built_ > lim_.max_built_bytes) fail_built();
    step(1 + n / 1024);
  }
  // The items were copied into a new list.
  void copied(const ValueList& items) {
    size_t n = items.size() * sizeof(Value);
    for (const Value& v : items) n += v.s.size();
    built(n);
  }
  // out += piece, within the string bound.
  void append(std::string& out, const std::string& piece) {
    string_size(out.size() + piece.size());
    bytes(piece.size());
    out += piece;
  }
  // A string of n bytes is about to be built (checked before allocating).
  void string_size(size_t n) const {
    if (n > lim_.max_string_bytes) fail_string(n);
  }
  // A list of n items is about to be built.
  void list_size(size_t n) const {
    if (n > uint64_t(lim_.max_list_items)) fail_list(n);
  }
  void loop_iteration();
  // A value `depth` levels inside another one is being walked or built.
  void value_depth(int depth) const {
    if (depth > lim_.max_value_depth) fail_value_depth();
  }
  void track_namespace(const std::shared_ptr<Dict>& ns) { namespaces_.push_back(ns); }

  // One interpreter frame (an expression or a statement) for as long as it lives.
  class Frame {
   public:
    explicit Frame(Budget& b) : b_(b) {
      if (++b_.depth_ > b_.lim_.max_eval_depth) b_.fail_depth();
    }
    ~Frame() { --b_.depth_; }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;

   private:
    Budget& b_;
  };
  // One macro (or caller()) call for as long as it runs.
  class Call {
   public:
    explicit Call(Budget& b) : b_(b) {
      if (++b_.calls_ > b_.lim_.max_call_depth) b_.fail_calls();
    }
    ~Call() { --b_.calls_; }
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

   private:
    Budget& b_;
  };

 private:
  [[noreturn]] void fail_steps() const;
  [[noreturn]] void fail_built() const;
  [[noreturn]] void fail_string(size_t n) const;
  [[noreturn]] void fail_list(size_t n) const;
  [[noreturn]] void fail_value_depth() const;
  [[noreturn]] void fail_depth();
  [[noreturn]] void fail_calls();
  void check_clock();

  const ChatTemplateLimits lim_;
  uint64_t steps_ = 0, clock_mark_ = 0;
  size_t built_ = 0;
  int64_t loops_ = 0;
  int depth_ = 0, calls_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<std::shared_ptr<Dict>> namespaces_;
};

// "32 MiB", "100 KiB", "12 bytes": limits in messages.
std::string human_bytes(size_t n);

}  // namespace tern::jinja
