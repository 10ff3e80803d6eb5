// tern sparsify: a pruned dense checkpoint (zeros in its decoder linears) rewritten in the
// compressed-tensors sparse layouts the sparse kernels stream (compress/sparse_checkpoint.h).
#include <fmt/format.h>

#include "cli_common.h"
#include "compress/sparse_checkpoint.h"

namespace tern::cli {

void register_sparsify(CLI::App& app) {
  auto o = std::make_shared<SparsifyOptions>();
  auto pattern = std::make_shared<std::string>("auto");
  CLI::App* cmd = app.add_subcommand(
      "sparsify", "store a pruned checkpoint's linears sparse (compressed-tensors sparse-bitmask / sparse-24-bitmask)");
  cmd->add_option("-m,--model", o->in_dir, "dense checkpoint directory whose linears hold zeros")->required();
  cmd->add_option("-o,--out", o->out_dir, "output directory")->required();
  cmd->add_option("--pattern", *pattern, "auto (2:4 when every linear is 2:4), unstructured or 2:4")
      ->check(CLI::IsMember({"auto", "unstructured", "2:4"}));
  cmd->add_flag("--sparse-lm-head", o->lm_head,
                "store the LM head sparse too (it needs its own lm_head.weight with zeros: tern prune --prune-lm-head)");
  cmd->add_flag("--int8", o->int8, "int8 values with one scale per output channel (W8A16) instead of bf16");
  cmd->callback([o, pattern] {
    o->structure = *pattern == "2:4"            ? SparseStructure::TwoFour
                   : *pattern == "unstructured" ? SparseStructure::Unstructured
                                                : SparseStructure::Auto;
    const SparsifyReport rep = unwrap(write_sparse_checkpoint(*o));
    fmt::print(stderr, "[tern] wrote {}: {} linears {} {}, {:.1f}% zeros, {:.1f} MiB -> {:.1f} MiB ({:.3f} of dense)\n",
               o->out_dir, rep.linears, rep.structure == SparseStructure::TwoFour ? "2:4" : "unstructured",
               o->int8 ? "int8" : "bf16", 100.0 * rep.sparsity, double(rep.dense_bytes) / (1 << 20),
               double(rep.sparse_bytes) / (1 << 20), double(rep.sparse_bytes) / double(rep.dense_bytes));
  });
}

}  // namespace tern::cli
