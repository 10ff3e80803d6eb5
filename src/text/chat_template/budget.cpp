#include "text/chat_template/budget.h"

#include <cstdio>

namespace tern::jinja {

std::string human_bytes(size_t n) {
  char buf[64];
  if (n >= (size_t(1) << 20) && n % (size_t(1) << 20) == 0) {
    std::snprintf(buf, sizeof buf, "%zu MiB", n >> 20);
  } else if (n >= 1024 && n % 1024 == 0) {
    std::snprintf(buf, sizeof buf, "%zu KiB", n >> 10);
  } else {
    std::snprintf(buf, sizeof buf, "%zu bytes", n);
  }
  return buf;
}

Budget::Budget(const ChatTemplateLimits& limits) : lim_(limits) {
  if (lim_.max_seconds > 0) {
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(lim_.max_seconds));
  }
}

Budget::~Budget() {
  for (auto& ns : namespaces_) ns->clear();
}

void Budget::loop_iteration() {
  if (++loops_ > lim_.max_loop_iterations) {
    throw LimitError("more than " + std::to_string(lim_.max_loop_iterations) + " loop iterations");
  }
  step();
}

void Budget::check_clock() {
  clock_mark_ = steps_ >> 12;
  if (lim_.max_seconds > 0 && std::chrono::steady_clock::now() > deadline_) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", lim_.max_seconds);
    throw LimitError(std::string("rendering took longer than ") + buf + " s");
  }
}

void Budget::fail_steps() const {
  throw LimitError("more than " + std::to_string(lim_.max_steps) + " evaluation steps");
}

void Budget::fail_built() const {
  throw LimitError("the render built more than " + human_bytes(lim_.max_built_bytes) + " of strings and lists");
}

void Budget::fail_string(size_t n) const {
  throw LimitError("a string of " + std::to_string(n) + " bytes exceeds " + human_bytes(lim_.max_string_bytes));
}

void Budget::fail_list(size_t n) const {
  throw LimitError("a list of " + std::to_string(n) + " items exceeds " + std::to_string(lim_.max_list_items));
}

void Budget::fail_value_depth() const {
  throw LimitError("lists / dicts nested deeper than " + std::to_string(lim_.max_value_depth));
}

void Budget::fail_depth() {
  --depth_;
  throw LimitError("evaluation nested deeper than " + std::to_string(lim_.max_eval_depth) + " frames");
}

void Budget::fail_calls() {
  --calls_;
  throw LimitError("macro calls nested deeper than " + std::to_string(lim_.max_call_depth) +
                   " (a recursive macro?)");
}

}  // namespace tern::jinja
