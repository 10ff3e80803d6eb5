// Helpers shared by the test suites: where the test data is, temporary directories, running the CLI.
#pragma once

#include <string>

namespace tern::test {

// ../shared beside the checkout (TERN_SHARED_DIR at configure time).
std::string shared_dir();
std::string model_dir(const std::string& name);  // shared/models/<name>
std::string tiny_arch_dir(const std::string& arch);  // shared/models/tiny-archs/<arch>

// A fresh directory under /tmp, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& bytes);

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the tern binary with the given shell-quoted arguments, optional stdin text.
CommandResult run_tern(const std::string& args, const std::string& stdin_text = "");

}  // namespace tern::test
