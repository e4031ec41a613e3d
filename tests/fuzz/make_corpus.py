#!/usr/bin/env python3
"""make_corpus.py - (re)writes the committed seed corpora under tests/fuzz/corpus/.

Usage: tests/fuzz/make_corpus.py BUILD_DIR   (BUILD_DIR holds tests/fuzz/fuzz_make_seeds)
GGUF seeds come from fuzz_make_seeds (our GGUF writer); text seeds from the tokenizer
fixture inputs; request and id seeds are written here. Every file stays small.
"""
import json, os, struct, subprocess, sys, tempfile

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
corpus = os.path.join(root, "tests", "fuzz", "corpus")
fixtures = os.path.join(root, "tests", "fixtures", "tokenizer")


def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture_texts(vocab):
    with open(os.path.join(fixtures, vocab + ".inp"), "rb") as f:
        parts = f.read().split(b"\n__ggml_vocab_test__\n")
    return [p for p in parts if len(p) <= 512]


def fixture_ids(vocab):
    with open(os.path.join(fixtures, vocab + ".out")) as f:
        return [[int(x) for x in line.split()] for line in f if line.strip()]


def main():
    build = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.check_call([os.path.join(build, "tests", "fuzz", "fuzz_make_seeds"), tmp])
        for name in sorted(os.listdir(tmp)):
            data = open(os.path.join(tmp, name), "rb").read()
            put("fuzz_gguf_parse", name, data)
            put("fuzz_gguf_load", name, data)

    spm = fixture_texts("ggml-vocab-llama-spm.gguf")
    for i, t in enumerate(spm[:24]):
        # byte 0: vocab (0 spm, 1 gpt-2, 2 qwen3) | 4 parse_special | 8 add_bos
        put("fuzz_tokenize", "spm-%02d" % i, bytes([0]) + t)
        put("fuzz_tokenize", "bpe-%02d" % i, bytes([1]) + t)
        put("fuzz_tokenize", "qwen3-%02d" % i, bytes([2]) + t)
        put("fuzz_sse_utf8", "bytes-%02d" % i, bytes([0]) + t)
        put("fuzz_sse_utf8", "bpe-%02d" % i, bytes([1]) + t)
    put("fuzz_tokenize", "special-qwen3", bytes([2 | 4 | 8]) + b"<|im_start|>user\nhi<|im_end|>")
    put("fuzz_sse_utf8", "invalid", bytes([0]) + b"a\xe2\x82\xff\xc0\xafz\xf0\x9f\x98")

    for kind, vocab, flag in (("spm", "ggml-vocab-llama-spm.gguf", 0), ("bpe", "ggml-vocab-gpt-2.gguf", 1)):
        for i, ids in enumerate(fixture_ids(vocab)[:16]):
            # byte 0: vocab | 2,4 decode flags | 0x80 raw ids (no folding)
            put("fuzz_detokenize", "%s-%02d" % (kind, i),
                bytes([flag | 0x80]) + b"".join(struct.pack("<i", x) for x in ids))
    put("fuzz_detokenize", "bad-ids", bytes([0x80]) + struct.pack("<iii", 1, -1, 1 << 30))

    reqs = [
        {"model": "tiny", "messages": [{"role": "user", "content": "Hello"}]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": None}, {"role": "developer", "content": "x"}],
         "max_tokens": 16, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
         "seed": 42, "stop": ["\n", "END"], "stream": True, "stream_options": {"include_usage": True}},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                   {"type": "text", "text": "b"}]}],
         "logprobs": True, "top_logprobs": 3, "logit_bias": {"15": -100, "7": 5.5},
         "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1},
        {"prompt": "Once upon a time", "max_completion_tokens": 8, "echo": True, "n": 1},
        {"prompt": ["one"], "user": "u1", "session_id": "s-1:abc", "reasoning_format": "none",
         "max_reasoning_tokens": 4},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        {"messages": [], "n": 2},
    ]
    for i, r in enumerate(reqs):
        put("fuzz_request_json", "req-%02d.json" % i, json.dumps(r).encode())
    put("fuzz_request_json", "not-object.json", b"[1,2,3]")

    ids = [b"sess-1", b"model.gguf", b"a:b_c-d.e", b"../etc", b"a/b", b"..", b".", b"x\x00y",
           b"\x01", b"A" * 129, b"ck_abcdef123456", b"q4_0-tiny"]
    for i, s in enumerate(ids):
        put("fuzz_ids", "id-%02d" % i, bytes([i & 3]) + s)


main()
