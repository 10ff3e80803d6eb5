#!/usr/bin/env python3
"""Hugging Face Llama checkpoint -> GGUF v3 (llama arch), python3 standard library only.

Usage: hf_to_gguf.py MODEL_DIR OUT.gguf

MODEL_DIR holds config.json, tokenizer.json (+ tokenizer_config.json) and either model.safetensors or
model.safetensors.index.json with shards. 2-D weights are copied byte for byte in their stored dtype
(BF16 -> GGML type 30, F16 -> 1, F32 -> 0); 1-D norm weights are widened to F32. q_proj/k_proj rows are
permuted from Hugging Face's rotate-half layout to the interleaved layout llama.cpp's llama arch expects
(the same permutation llama.cpp's convert_hf_to_gguf.py applies). llama3 rope scaling is written the way
llama.cpp's converter does it: as an F32 tensor rope_freqs.weight of per-frequency divisors.
"""
import json
import math
import os
import struct
import sys

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# GGUF metadata value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)

# GGML tensor types
GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30
SAFETENSORS_TO_GGML = {"F32": (GGML_F32, 4), "F16": (GGML_F16, 2), "BF16": (GGML_BF16, 2)}
# llama_ftype for general.file_type
FTYPE = {GGML_F32: 0, GGML_F16: 1, GGML_BF16: 32}

# llama.cpp token types
TOK_NORMAL, TOK_CONTROL, TOK_USER_DEFINED, TOK_UNUSED = 1, 3, 4, 5

LAYER_NAMES = {
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}
TOP_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


# ---------------------------------------------------------------- GGUF writing helpers
def p_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def p_value(vtype, v):
    if vtype == T_STRING:
        return p_str(v)
    fmt = {T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I", T_INT32: "<i",
           T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d"}[vtype]
    return struct.pack(fmt, v)


class KV:
    def __init__(self):
        self.items = []

    def add(self, key, vtype, value):
        self.items.append(p_str(key) + struct.pack("<I", vtype) + p_value(vtype, value))

    def add_array(self, key, etype, values):
        parts = [p_str(key), struct.pack("<IIQ", T_ARRAY, etype, len(values))]
        if etype == T_STRING:
            parts.extend(p_str(v) for v in values)
        elif etype == T_INT32:
            parts.append(struct.pack("<%di" % len(values), *values))
        elif etype == T_FLOAT32:
            parts.append(struct.pack("<%df" % len(values), *values))
        else:
            parts.extend(p_value(etype, v) for v in values)
        self.items.append(b"".join(parts))


def pad_to(n, a=ALIGNMENT):
    return (a - n % a) % a


# ---------------------------------------------------------------- safetensors reading
class SafeTensors:
    """Index of tensor name -> (file, dtype, shape, absolute byte offset, nbytes) over one or many shards."""

    def __init__(self, model_dir):
        self.entries = {}
        index = os.path.join(model_dir, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        for fn in files:
            path = os.path.join(model_dir, fn)
            with open(path, "rb") as f:
                (hlen,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(hlen))
            base = 8 + hlen
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                b, e = info["data_offsets"]
                self.entries[name] = (path, info["dtype"], info["shape"], base + b, e - b)

    def read(self, name):
        path, _, _, off, n = self.entries[name]
        with open(path, "rb") as f:
            f.seek(off)
            data = f.read(n)
        if len(data) != n:
            raise IOError("short read of %s from %s" % (name, path))
        return data


def to_f32_bytes(data, dtype):
    """1-D tensor bytes -> little-endian f32 bytes."""
    if dtype == "F32":
        return data
    if dtype == "BF16":  # bf16 is the top half of an f32
        out = bytearray(len(data) * 2)
        out[2::4] = data[0::2]
        out[3::4] = data[1::2]
        return bytes(out)
    if dtype == "F16":
        n = len(data) // 2
        return struct.pack("<%df" % n, *struct.unpack("<%de" % n, data))
    raise ValueError("unsupported dtype " + dtype)


def permute_rows(data, n_rows, row_bytes, n_head):
    """HF rotate-half -> interleaved: rows viewed as [n_head, 2, hd/2] become [n_head, hd/2, 2]
    (numpy: w.reshape(n_head, 2, hd//2, cols).swapaxes(1, 2).reshape(w.shape))."""
    hd = n_rows // n_head
    half = hd // 2
    mv = memoryview(data)
    out = bytearray(len(data))
    for h in range(n_head):
        for i in range(half):
            for j in range(2):
                dst = h * hd + i * 2 + j
                src = h * hd + j * half + i
                out[dst * row_bytes:(dst + 1) * row_bytes] = mv[src * row_bytes:(src + 1) * row_bytes]
    return bytes(out)


# ---------------------------------------------------------------- config / tokenizer
def rope_params(cfg):
    rp = cfg.get("rope_parameters") or {}
    if "full_attention" in rp and isinstance(rp["full_attention"], dict):
        rp = rp["full_attention"]
    rs = cfg.get("rope_scaling") or {}
    merged = dict(rs)
    merged.update(rp)
    theta = merged.get("rope_theta", cfg.get("rope_theta", 10000.0))
    rtype = merged.get("rope_type", merged.get("type", "default")) or "default"
    return theta, rtype, merged


def llama3_rope_factors(cfg, head_dim):
    theta, _, p = rope_params(cfg)
    factor = p.get("factor", 8.0)
    lo = p.get("low_freq_factor", 1.0)
    hi = p.get("high_freq_factor", 4.0)
    old_ctx = p.get("original_max_position_embeddings", 8192)
    lo_wl, hi_wl = old_ctx / lo, old_ctx / hi
    out = []
    for k in range(0, head_dim, 2):
        freq = 1.0 / (theta ** (k / head_dim))
        wl = 2 * math.pi / freq
        if wl < hi_wl:
            out.append(1.0)
        elif wl > lo_wl:
            out.append(factor)
        else:
            smooth = (old_ctx / wl - lo) / (hi - lo)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return out


def tokenizer_kv(kv, model_dir, cfg, vocab_size):
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    tcfg = {}
    tcfg_path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.exists(tcfg_path):
        with open(tcfg_path, encoding="utf-8") as f:
            tcfg = json.load(f)
    model = tok["model"]
    if model.get("type") != "BPE":
        raise ValueError("only byte-level BPE tokenizers (Llama-3 style) are supported")
    id_to_tok = {i: t for t, i in model["vocab"].items()}
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    for i, a in added.items():
        id_to_tok[i] = a["content"]
    n = max(vocab_size, max(id_to_tok) + 1)
    tokens, types = [], []
    for i in range(n):
        if i not in id_to_tok:
            tokens.append("[PAD%d]" % i)
            types.append(TOK_UNUSED)
        elif i in added:
            tokens.append(id_to_tok[i])
            types.append(TOK_CONTROL if added[i].get("special", False) else TOK_USER_DEFINED)
        else:
            tokens.append(id_to_tok[i])
            types.append(TOK_NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    kv.add("tokenizer.ggml.model", T_STRING, "gpt2")
    kv.add("tokenizer.ggml.pre", T_STRING, "llama-bpe")
    kv.add_array("tokenizer.ggml.tokens", T_STRING, tokens)
    kv.add_array("tokenizer.ggml.token_type", T_INT32, types)
    kv.add_array("tokenizer.ggml.merges", T_STRING, merges)

    content_to_id = {t: i for i, t in id_to_tok.items()}

    def tok_id(key, cfg_key):
        v = tcfg.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str) and v in content_to_id:
            return content_to_id[v]
        v = cfg.get(cfg_key)
        if isinstance(v, list):
            v = v[0] if v else None
        return v if isinstance(v, int) else None

    bos = tok_id("bos_token", "bos_token_id")
    eos = tok_id("eos_token", "eos_token_id")
    pad = tok_id("pad_token", "pad_token_id")
    if bos is not None:
        kv.add("tokenizer.ggml.bos_token_id", T_UINT32, bos)
    if eos is not None:
        kv.add("tokenizer.ggml.eos_token_id", T_UINT32, eos)
    if pad is not None:
        kv.add("tokenizer.ggml.padding_token_id", T_UINT32, pad)
    # BOS is added when tokenizer_config says so, or when the post-processor template starts with it (Llama 3).
    add_bos = tcfg.get("add_bos_token")
    if add_bos is None:
        pp = tok.get("post_processor") or {}
        procs = pp.get("processors", [pp]) if pp.get("type") == "Sequence" else [pp]
        add_bos = any(p.get("type") == "TemplateProcessing" and p.get("single")
                      and "SpecialToken" in p["single"][0] for p in procs)
    kv.add("tokenizer.ggml.add_bos_token", T_BOOL, bool(add_bos))
    kv.add("tokenizer.ggml.add_eos_token", T_BOOL, bool(tcfg.get("add_eos_token", False)))
    if isinstance(tcfg.get("chat_template"), str):
        kv.add("tokenizer.chat_template", T_STRING, tcfg["chat_template"])


# ---------------------------------------------------------------- conversion
def convert(model_dir, out_path):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("text_config"):
        cfg = {**cfg, **cfg["text_config"]}
    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_head_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or n_embd // n_head
    n_layer = cfg["num_hidden_layers"]
    vocab_size = cfg["vocab_size"]
    tied = cfg.get("tie_word_embeddings", False)
    theta, rope_type, _ = rope_params(cfg)
    st = SafeTensors(model_dir)

    # tensor plan: (gguf name, shape, ggml type, producer)
    plan = []
    for hf_name in sorted(st.entries):
        path, dtype, shape, _, _ = st.entries[hf_name]
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        if hf_name in TOP_NAMES:
            name = TOP_NAMES[hf_name]
            if name == "output.weight" and tied:
                continue
        elif hf_name.startswith("model.layers."):
            rest = hf_name[len("model.layers."):]
            bid, sub = rest.split(".", 1)
            if sub not in LAYER_NAMES:
                raise ValueError("unexpected tensor " + hf_name)
            name = "blk.%s.%s" % (bid, LAYER_NAMES[sub])
        else:
            raise ValueError("unexpected tensor " + hf_name)
        if dtype not in SAFETENSORS_TO_GGML:
            raise ValueError("unsupported dtype %s for %s" % (dtype, hf_name))
        if len(shape) == 1:
            plan.append((name, shape, GGML_F32, (lambda h=hf_name, d=dtype: to_f32_bytes(st.read(h), d))))
            continue
        gtype, esize = SAFETENSORS_TO_GGML[dtype]
        heads = n_head if name.endswith("attn_q.weight") else n_head_kv if name.endswith("attn_k.weight") else None
        if heads:
            prod = (lambda h=hf_name, s=shape, e=esize, nh=heads:
                    permute_rows(st.read(h), s[0], s[1] * e, nh))
        else:
            prod = (lambda h=hf_name: st.read(h))
        plan.append((name, shape, gtype, prod))
    if rope_type == "llama3":
        factors = llama3_rope_factors(cfg, head_dim)
        plan.append(("rope_freqs.weight", [len(factors)], GGML_F32,
                     (lambda f=factors: struct.pack("<%df" % len(f), *f))))
    names = [p[0] for p in plan]
    if "output.weight" not in names and not tied:
        raise ValueError("no lm_head.weight and tie_word_embeddings is false")
    main_type = next(p[2] for p in plan if p[0] == "token_embd.weight")

    kv = KV()
    kv.add("general.architecture", T_STRING, "llama")
    kv.add("general.name", T_STRING, os.path.basename(os.path.normpath(model_dir)))
    kv.add("general.alignment", T_UINT32, ALIGNMENT)
    kv.add("general.file_type", T_UINT32, FTYPE[main_type])
    kv.add("llama.context_length", T_UINT32, cfg.get("max_position_embeddings", 4096))
    kv.add("llama.embedding_length", T_UINT32, n_embd)
    kv.add("llama.block_count", T_UINT32, n_layer)
    kv.add("llama.feed_forward_length", T_UINT32, cfg["intermediate_size"])
    kv.add("llama.attention.head_count", T_UINT32, n_head)
    kv.add("llama.attention.head_count_kv", T_UINT32, n_head_kv)
    kv.add("llama.attention.key_length", T_UINT32, head_dim)
    kv.add("llama.attention.value_length", T_UINT32, head_dim)
    kv.add("llama.rope.freq_base", T_FLOAT32, float(theta))
    kv.add("llama.rope.dimension_count", T_UINT32, head_dim)
    kv.add("llama.attention.layer_norm_rms_epsilon", T_FLOAT32, float(cfg.get("rms_norm_eps", 1e-5)))
    kv.add("llama.vocab_size", T_UINT32, vocab_size)
    if rope_type == "linear":
        kv.add("llama.rope.scaling.type", T_STRING, "linear")
        kv.add("llama.rope.scaling.factor", T_FLOAT32, float(rope_params(cfg)[2].get("factor", 1.0)))
    elif rope_type not in ("default", "llama3"):
        raise ValueError("rope type %s not supported by this converter" % rope_type)
    tokenizer_kv(kv, model_dir, cfg, vocab_size)

    # tensor infos: dims are innermost-first (reverse of the row-major shape)
    def nbytes(shape, gtype):
        n = 1
        for d in shape:
            n *= d
        return n * (4 if gtype == GGML_F32 else 2)

    infos, offsets, off = [], [], 0
    for name, shape, gtype, _ in plan:
        offsets.append(off)
        dims = list(reversed(shape))
        infos.append(p_str(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
                     + struct.pack("<IQ", gtype, off))
        off += nbytes(shape, gtype)
        off += pad_to(off)

    header = GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(plan), len(kv.items))
    header += b"".join(kv.items) + b"".join(infos)
    header += b"\0" * pad_to(len(header))
    tmp = out_path + ".part"
    with open(tmp, "wb") as out:
        out.write(header)
        pos = 0
        for (name, shape, gtype, prod), o in zip(plan, offsets):
            out.write(b"\0" * (o - pos))
            data = prod()
            if len(data) != nbytes(shape, gtype):
                raise ValueError("size mismatch for " + name)
            out.write(data)
            pos = o + len(data)
        out.write(b"\0" * pad_to(pos))
    os.replace(tmp, out_path)
    return len(plan)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: hf_to_gguf.py MODEL_DIR OUT.gguf\n")
        return 2
    n = convert(argv[1], argv[2])
    print("wrote %s (%d tensors, %.1f MB)" % (argv[2], n, os.path.getsize(argv[2]) / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
