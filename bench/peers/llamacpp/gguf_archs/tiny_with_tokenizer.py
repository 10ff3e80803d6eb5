# A tiny-archs checkpoint (no tokenizer of its own) as a directory llama.cpp can load once exported:
# config.json and model.safetensors linked, plus a synthetic byte-level BPE tokenizer.json of the
# model's vocabulary size (256 byte symbols, then "tok<i>"), so the GGUF gets tokenizer.ggml.* keys.
# Prints the ids of the reference's first sequence. usage: tiny_with_tokenizer.py TINY_ARCH_DIR OUT_DIR
# (OUT_DIR's name becomes general.name: llama.cpp special-cases names containing e.g. "phi3").
import json, os, sys
src, dst = os.path.abspath(sys.argv[1]), sys.argv[2]
os.makedirs(dst, exist_ok=True)
for f in ["config.json", "model.safetensors"]:
    if not os.path.exists(f"{dst}/{f}"): os.symlink(f"{src}/{f}", f"{dst}/{f}")
n = json.load(open(f"{src}/config.json"))["vocab_size"]
# byte-level alphabet (GPT-2 bytes_to_unicode)
bs = list(range(ord("!"), ord("~")+1)) + list(range(ord("¡"), ord("¬")+1)) + list(range(ord("®"), ord("ÿ")+1))
cs = bs[:]; k = 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + k); k += 1
vocab = {}
for c in cs: vocab[chr(c)] = len(vocab)
i = 0
while len(vocab) < n: vocab[f"tok{i}"] = len(vocab); i += 1
tok = {"version": "1.0", "added_tokens": [], "normalizer": None,
       "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "post_processor": None, "decoder": {"type": "ByteLevel"},
       "model": {"type": "BPE", "vocab": vocab, "merges": []}}
json.dump(tok, open(f"{dst}/tokenizer.json", "w"))
r = json.load(open(f"{src}/reference.json"))
print(" ".join(map(str, r["sequences"][0]["ids"])))
