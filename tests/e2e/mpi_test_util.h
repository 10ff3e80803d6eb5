// Running tern (and bench_tp) under mpirun in the e2e tests (issue 17). CI runs as root: OpenMPI's
// mpirun refuses root unless told, so the command line passes --allow-run-as-root and the two
// OMPI_ALLOW_RUN_AS_ROOT variables explicitly; --oversubscribe lets 2 ranks share fewer cores and
// --bind-to none keeps ranks from being pinned to one core each on a busy 2-core machine.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "test_support.h"

namespace tern::test {

inline bool have_mpirun() { return std::string(TERN_MPIEXEC).size() > 0; }

// The prefix that starts `np` ranks of whatever follows. OpenMPI derives its install prefix from the
// path it was started by: /bin/mpirun (a usrmerge symlink) gives "/" and it refuses to start, so the
// path is resolved to the real file first.
// Each mpirun gets its own session-directory base: two mpiruns started at the same instant (ctest -j2)
// both mkdir /tmp/ompi.HOST.UID, and OpenMPI 4 treats the loser's EEXIST as fatal ("orte_init failed").
inline std::string mpirun_session_base() {
  static std::atomic<int> counter{0};
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "tern-ompi" /
                                    (std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return dir.string();
}

inline std::string mpirun_prefix(int np) {
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::canonical(TERN_MPIEXEC, ec);
  return std::string("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none ") +
         "OMPI_MCA_orte_tmpdir_base='" + mpirun_session_base() + "' '" +
         (ec ? std::string(TERN_MPIEXEC) : real.string()) + "' -np " + std::to_string(np) +
         " --allow-run-as-root --oversubscribe --bind-to none ";
}

inline std::string bench_tp_path() { return std::string(TERN_BUILD_DIR) + "/bench_tp"; }

// Runs a shell command line; stdout and stderr captured.
inline CommandResult run_shell(const std::string& cmdline) {
  TempDir tmp;
  const std::string cmd = cmdline + " </dev/null >'" + tmp.file("out") + "' 2>'" + tmp.file("err") + "'";
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto slurp = [](const std::string& p) {
    std::string s;
    if (FILE* f = std::fopen(p.c_str(), "rb")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
      std::fclose(f);
    }
    return s;
  };
  r.out = slurp(tmp.file("out"));
  r.err = slurp(tmp.file("err"));
  return r;
}

inline CommandResult run_tern_mpi(int np, const std::string& args) {
  return run_shell(mpirun_prefix(np) + "'" + TERN_BINARY + "' " + args);
}

}  // namespace tern::test

#define TERN_SKIP_WITHOUT_MPI()                                                        \
  do {                                                                                 \
    if (!::tern::test::have_mpirun()) GTEST_SKIP() << "built without MPI (TERN_MPI)";  \
  } while (0)
