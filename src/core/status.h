// Status / Result<T>: the error path for everything user input can reach (DESIGN.md principle 10).
// A Status is either ok or carries a one-line, human-readable message naming what was wrong and where.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace tern {

class Status {
 public:
  Status() = default;  // ok
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message), true); }

  bool is_ok() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return message_; }

  // Prefix the message with context, e.g. the file a tensor came from.
  Status with_context(const std::string& context) const {
    return failed_ ? Status(context + ": " + message_, true) : *this;
  }

 private:
  Status(std::string message, bool failed) : message_(std::move(message)), failed_(failed) {}
  std::string message_;
  bool failed_ = false;
};

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}             // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {       // NOLINT
    assert(!std::get<Status>(v_).is_ok() && "Result built from an ok Status");
  }

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tern

#define TERN_CONCAT_INNER(a, b) a##b
#define TERN_CONCAT(a, b) TERN_CONCAT_INNER(a, b)

// Return early from a function returning Status or Result<U> when `expr` (a Status) failed.
#define TERN_RETURN_IF_ERROR(expr)                   \
  do {                                               \
    ::tern::Status tern_status_ = (expr);            \
    if (!tern_status_.is_ok()) return tern_status_;  \
  } while (0)

// `TERN_ASSIGN_OR_RETURN(auto x, make_result());`
#define TERN_ASSIGN_OR_RETURN(decl, expr) TERN_ASSIGN_OR_RETURN_IMPL(TERN_CONCAT(tern_result_, __LINE__), decl, expr)
#define TERN_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                                \
  if (!tmp.is_ok()) return tmp.status();            \
  decl = std::move(tmp).value()
