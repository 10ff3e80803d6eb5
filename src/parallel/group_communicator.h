// A communicator over a subset of another's ranks (a tensor-parallel group inside one pipeline
// stage, issue 17): rank i of the group is parent rank members[i]. Every collective is built from
// the parent's send / recv through the group's first member (gather there, combine in rank order,
// send back), which needs nothing of the parent but point-to-point, so it works over MPI, the
// local communicator and the tests' thread communicators alike. Sums run in rank order on the first
// member: for two ranks that is the same a + b MPI_Allreduce computes.
//
// Tags: the group's own traffic uses parent tags >= kGroupTagBase, above the pipeline's (pp_layout.h).
#pragma once

#include <memory>
#include <vector>

#include "core/status.h"
#include "parallel/communicator.h"

namespace tern {

constexpr int kGroupTagBase = 20000;

// `parent` must outlive the result; members are distinct parent ranks, one of them this rank's.
Result<std::unique_ptr<Communicator>> make_group_communicator(Communicator& parent, std::vector<int> members);

}  // namespace tern
