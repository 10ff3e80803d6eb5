#!/usr/bin/env python3
# A random-weight Llama checkpoint (safetensors f32, hidden 256, ffn 512, vocab 512, untied) with any layer
# count, for mix_check.sh: synth_llama.py DIR LAYERS HEADS KV_HEADS (e.g. 16 4 1; 80 8 1 is llama.cpp's 70B class)
import json, struct, sys, os, random, array
d, L, H, KV = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
hid, inter, vocab, hd = 256, 512, 512, 256 // H
os.makedirs(d, exist_ok=True)
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hid, "intermediate_size": inter,
       "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": hd, "vocab_size": vocab,
       "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
       "bos_token_id": 0, "eos_token_id": 1, "torch_dtype": "float32"}
json.dump(cfg, open(f"{d}/config.json", "w"))
shapes = {"model.embed_tokens.weight": [vocab, hid], "model.norm.weight": [hid], "lm_head.weight": [vocab, hid]}
for i in range(L):
    p = f"model.layers.{i}."
    shapes.update({p+"self_attn.q_proj.weight": [H*hd, hid], p+"self_attn.k_proj.weight": [KV*hd, hid],
                   p+"self_attn.v_proj.weight": [KV*hd, hid], p+"self_attn.o_proj.weight": [hid, H*hd],
                   p+"mlp.gate_proj.weight": [inter, hid], p+"mlp.up_proj.weight": [inter, hid],
                   p+"mlp.down_proj.weight": [hid, inter], p+"input_layernorm.weight": [hid],
                   p+"post_attention_layernorm.weight": [hid]})
rnd = random.Random(1)
pool = array.array("f", [rnd.gauss(0, 0.02) for _ in range(1 << 16)])
header, blobs, off = {}, [], 0
for name, shp in shapes.items():
    n = 1
    for s in shp: n *= s
    if len(shp) == 1: a = array.array("f", [1.0] * n)
    else:
        a = array.array("f")
        while len(a) < n: a.extend(pool[: min(len(pool), n - len(a))]); pool = pool[7:] + pool[:7]
    b = a.tobytes(); header[name] = {"dtype": "F32", "shape": shp, "data_offsets": [off, off + len(b)]}; blobs.append(b); off += len(b)
h = json.dumps(header).encode(); h += b" " * ((8 - len(h) % 8) % 8)
with open(f"{d}/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h)
    for b in blobs: f.write(b)
