// A whole parallel job (tp × pp × ep ranks) as threads of this process over the test-only communicator
// (thread_communicator.h), shared by test_pp_threads.cpp and test_pp_engine.cpp: each rank builds its
// groups as `tern` does under mpirun (parallel/pp_layout.h: world rank r is stage r / (T·E), expert group
// (r % (T·E)) / T, tensor-parallel index r % T), loads its part of the checkpoint, and then rank 0 runs
// the test's driver while the other ranks serve it with run_tp_worker until rank 0 broadcasts stop.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "parallel/group_communicator.h"
#include "parallel/pp_layout.h"
#include "parallel/step_message.h"
#include "parallel/tp_worker.h"
#include "thread_communicator.h"

namespace tern::test {

struct JobLayout {
  int tp = 1, pp = 1, ep = 1;
  int micro_batches = 1;       // --pp-micro-batches
  int steps_in_flight = 0;     // --pp-steps-in-flight (0: one per stage)
  std::vector<int> pp_layers;  // --pp-layers (empty: the split by bytes)
};

// Runs the job on `dir`; rank 0 calls rank0(model, ctx) (its communicators alive meanwhile), then stops
// the others. Every rank fails a load alike, so no rank waits alone.
inline void run_job_as_threads(const std::string& dir, const JobLayout& l,
                               const std::function<void(const Model&, ExecContext&)>& rank0) {
  const int N = l.tp * l.pp * l.ep;
  ThreadGroup g(N);
  std::vector<std::thread> ranks;
  for (int r = 0; r < N; ++r) {
    ranks.emplace_back([&, r] {
      ThreadComm world(g, r);
      const RankGroups rg = rank_groups(r, l.tp, l.ep);
      std::unique_ptr<Communicator> group, stage;
      ModelLoadOptions lo;
      if (l.pp > 1) {
        lo.pp = &world;
        lo.pp_stages = l.pp;
        lo.pp_micro_batches = l.micro_batches;
        lo.pp_steps_in_flight = l.steps_in_flight;
        lo.pp_layers = l.pp_layers;
      }
      if (l.tp > 1 && (l.pp > 1 || l.ep > 1)) {  // a stage's or an expert group's T ranks
        auto gr = make_group_communicator(world, rg.tp);
        ASSERT_TRUE(gr.is_ok()) << gr.status().message();
        group = std::move(gr).value();
        lo.tp = group.get();
      } else if (l.tp > 1) {
        lo.tp = &world;
      }
      if (l.ep > 1 && l.pp > 1) {  // the stage's T·E ranks sum each MoE layer
        auto st = make_group_communicator(world, rg.stage);
        ASSERT_TRUE(st.is_ok()) << st.status().message();
        stage = std::move(st).value();
        lo.ep = stage.get();
      } else if (l.ep > 1) {
        lo.ep = &world;
      }
      ThreadPool pool(1);
      ExecContext ctx(pool, CpuFeatures::detect());
      auto m = Model::load(dir, lo);
      ASSERT_TRUE(m.is_ok()) << m.status().message();
      if (r == 0) {
        rank0(**m, ctx);
        EXPECT_TRUE(broadcast_stop(world).is_ok());
      } else {
        const Status s = run_tp_worker(**m, ctx, world);
        EXPECT_TRUE(s.is_ok()) << s.message();
      }
    });
  }
  for (auto& t : ranks) t.join();
}

}  // namespace tern::test
