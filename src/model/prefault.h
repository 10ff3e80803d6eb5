// Start-up (issue 20 item 5): the pages the first forward reads, mapped into the process ahead of it.
#pragma once

#include "model/model.h"

namespace tern {

// Maps every page the first forward will read (each layer's matrices and the LM head; not the embedding
// table, of which a forward gathers a few rows, nor MoE experts or MLA layers) into this process now
// (madvise(MADV_POPULATE_READ); touching a byte per page on older kernels), on the calling thread: the
// CLI does it while the tokenizer builds on its own thread, so the first forward does not fault them in
// one by one. Changes no result and no resident set the forward would not reach anyway; pages of a warm
// page cache cost no I/O.
void prefault_weights(const Model& model);

}  // namespace tern
