// The user's lines for `tern chat`: with line editing and history (libedit, BSD-licensed) when stdin is
// a terminal; plain std::getline otherwise, so pipes and files drive tern chat as before.
#pragma once

#include <optional>
#include <string>

struct editline;
struct history;

namespace tern::cli {

class LineReader {
 public:
  explicit LineReader(bool interactive);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  bool interactive() const { return el_ != nullptr; }
  // The next line without its line ending; nothing at end of input (EOF, Ctrl-D on an empty line).
  std::optional<std::string> read();
  // Adds a line to the history (arrow keys bring it back); no-op without a terminal.
  void remember(const std::string& line);

 private:
  struct editline* el_ = nullptr;
  struct history* hist_ = nullptr;  // elaborated: histedit.h also has a function history()
};

}  // namespace tern::cli
