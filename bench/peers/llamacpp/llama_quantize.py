#!/usr/bin/env python3
# llama.cpp's own quantizer (llama_model_quantize in the node-llama-cpp prebuilt libllama, no build):
#   llama_quantize.py IN.gguf OUT.gguf FTYPE      (FTYPE: llama_ftype number, e.g. 15 = Q4_K_M)
# Only nthread and ftype (the first two fields of llama_model_quantize_params) are set; the rest stay
# llama_model_quantize_default_params(), read into a buffer larger than the struct of any version.
import ctypes, os, sys

here = os.path.dirname(os.path.abspath(__file__))
bins = os.path.join(here, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64")
for lib in ["libggml-base.so", "libggml.v0.5.0.so"]:
    ctypes.CDLL(os.path.join(bins, lib), mode=ctypes.RTLD_GLOBAL)
ll = ctypes.CDLL(os.path.join(bins, "libllama.v0.5.0.so"), mode=ctypes.RTLD_GLOBAL)


class Params(ctypes.Structure):  # > 16 bytes: returned through a hidden pointer, so the size may exceed the real one
    _fields_ = [("nthread", ctypes.c_int32), ("ftype", ctypes.c_int32), ("rest", ctypes.c_char * 248)]


ll.llama_model_quantize_default_params.restype = Params
ll.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Params)]
ll.llama_model_quantize.restype = ctypes.c_uint32
ll.llama_backend_init()
p = ll.llama_model_quantize_default_params()
p.nthread = int(os.environ.get("THREADS", "2"))
p.ftype = int(sys.argv[3])
sys.exit(ll.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))
