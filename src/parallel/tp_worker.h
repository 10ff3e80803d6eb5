// A tensor-parallel rank other than 0: it holds its shard of the model (Model::load with the
// communicator) and, until rank 0 says stop, runs each decoder call rank 0 announces
// (parallel/step_message.h) on its shard, joining the same collectives. It keeps one decoder per
// chunk size rank 0 uses and one mirror KV pool per pool of rank 0 (the same blocks, its KV heads),
// so the engine, `tern run` and `tern eval ppl` all work without knowing about ranks.
//
// This file is above model/ in the layers (it drives a Decoder); communicator.h, tp_layout.h and
// step_message.h are below it (core only).
#pragma once

#include "core/exec_context.h"
#include "core/status.h"
#include "model/model.h"
#include "parallel/communicator.h"

namespace tern {

// Returns ok when rank 0 sends stop; an error when a message or a collective fails.
Status run_tp_worker(const Model& model, ExecContext& ctx, Communicator& comm);

}  // namespace tern
