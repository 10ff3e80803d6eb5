# A small all-zero MoE checkpoint (8 layers, hidden 256, 8 experts of width 512) for comparing tensor
# types, not values: usage synth_moe_zeros.py mixtral|qwen3moe OUT_DIR (then tiny_with_tokenizer.py
# OUT_DIR OUT_DIR adds a tokenizer.json; its missing reference.json error is expected).
import json, struct, sys, os
kind, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
H, L, V, I, E, heads, kv = 256, 8, 512, 512, 8, 8, 2
hd = H // heads
t = {}
def add(n, shape): t[n] = shape
add("model.embed_tokens.weight", [V, H]); add("model.norm.weight", [H]); add("lm_head.weight", [V, H])
for l in range(L):
    p = f"model.layers.{l}."
    add(p+"input_layernorm.weight", [H]); add(p+"post_attention_layernorm.weight", [H])
    add(p+"self_attn.q_proj.weight", [heads*hd, H]); add(p+"self_attn.k_proj.weight", [kv*hd, H])
    add(p+"self_attn.v_proj.weight", [kv*hd, H]); add(p+"self_attn.o_proj.weight", [H, heads*hd])
    if kind == "mixtral":
        m = p+"block_sparse_moe."
        add(m+"gate.weight", [E, H])
        for e in range(E):
            add(m+f"experts.{e}.w1.weight", [I, H]); add(m+f"experts.{e}.w3.weight", [I, H]); add(m+f"experts.{e}.w2.weight", [H, I])
    else:
        m = p+"mlp."
        add(p+"self_attn.q_norm.weight", [hd]); add(p+"self_attn.k_norm.weight", [hd])
        add(m+"gate.weight", [E, H])
        for e in range(E):
            add(m+f"experts.{e}.gate_proj.weight", [I, H]); add(m+f"experts.{e}.up_proj.weight", [I, H]); add(m+f"experts.{e}.down_proj.weight", [H, I])
hdr = {}; off = 0
for n, s in t.items():
    b = 2
    for d in s: b *= d
    hdr[n] = {"dtype": "BF16", "shape": s, "data_offsets": [off, off+b]}; off += b
h = json.dumps(hdr).encode(); h += b" " * ((8 - len(h) % 8) % 8)
with open(f"{out}/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h); f.write(b"\0" * off)
cfg = {"architectures": ["MixtralForCausalLM" if kind == "mixtral" else "Qwen3MoeForCausalLM"],
       "model_type": "mixtral" if kind == "mixtral" else "qwen3_moe", "hidden_size": H, "intermediate_size": I,
       "num_hidden_layers": L, "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": V,
       "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 1e6, "tie_word_embeddings": False,
       "num_experts_per_tok": 2, "torch_dtype": "bfloat16", "hidden_act": "silu"}
if kind == "mixtral": cfg["num_local_experts"] = E; cfg["sliding_window"] = None
else: cfg.update({"num_experts": E, "moe_intermediate_size": I, "norm_topk_prob": True, "head_dim": hd, "decoder_sparse_step": 1, "mlp_only_layers": [], "use_sliding_window": False})
json.dump(cfg, open(f"{out}/config.json", "w"))
