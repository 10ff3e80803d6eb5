// Loads a GGUF in llama.cpp (libllama of a llama.cpp build), decodes the token ids given on argv in one
// batch and prints the last position's logits, one per line. usage: llama_logits FILE.gguf ID...
#include <stdio.h>
#include <stdlib.h>
#include "llama.h"
int main(int argc, char** argv) {
  if (argc < 3) return 2;
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  struct llama_model* m = llama_model_load_from_file(argv[1], mp);
  if (!m) { fprintf(stderr, "LOAD FAILED\n"); return 1; }
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 1024; cp.n_batch = 1024; cp.n_ubatch = 1024; cp.n_threads = 2; cp.n_threads_batch = 2;
  struct llama_context* ctx = llama_init_from_model(m, cp);
  if (!ctx) { fprintf(stderr, "CTX FAILED\n"); return 1; }
  int n = argc - 2;
  llama_token* ids = malloc(sizeof(llama_token) * n);
  for (int i = 0; i < n; ++i) ids[i] = atoi(argv[i + 2]);
  if (llama_decode(ctx, llama_batch_get_one(ids, n)) != 0) { fprintf(stderr, "DECODE FAILED\n"); return 1; }
  const float* l = llama_get_logits_ith(ctx, -1);
  int nv = llama_vocab_n_tokens(llama_model_get_vocab(m));
  for (int i = 0; i < nv; ++i) printf("%.6f\n", l[i]);
  return 0;
}
