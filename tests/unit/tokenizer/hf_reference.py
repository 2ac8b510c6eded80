# Reference oracle for the tokenizer tests: builds a Hugging Face `tokenizers` BPE from the vocab and
# merges of a GGUF checkpoint (read with the `gguf` package) and answers the C++ tests through JSON
# files. Test-only; never needed to build or run Vortex.
#
#   hf_reference.py dump-spec  GGUF OUT.json             vocab/merges/types/ids/template as JSON
#   hf_reference.py encode     GGUF IN.json OUT.json     {"texts": [...]} -> {"ids": [[...]], "decoded": [...]}
#   hf_reference.py tokenizer-json GGUF OUT.json         the same tokenizer saved as tokenizer.json
#   hf_reference.py pretokenize IN.json OUT.json         {"texts": [...], "names": [...]} -> pieces per name
#   hf_reference.py render     IN.json OUT.json          Jinja2 renders of chat templates (see render)
#   hf_reference.py bundle     GGUF IN.json OUT_DIR      all of dump-spec, encode, tokenizer-json and
#                                                        pretokenize in one process (spec.json,
#                                                        encoded.json, tokenizer.json, pieces.json)
import functools
import json
import sys

# The pre-tokenizer regexes as they appear in the checkpoints' tokenizer.json files.
GPT2_RE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"""
LLAMA3_RE = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
             r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_RE = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
            r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=True)


@functools.lru_cache(maxsize=None)
def gguf_fields(path):
    import gguf

    reader = gguf.GGUFReader(path)

    def get(key, default=None):
        field = reader.fields.get(key)
        return default if field is None else field.contents()

    return get


def dump_spec(gguf_path, out_path):
    get = gguf_fields(gguf_path)
    write_json(out_path, {
        "model": get("tokenizer.ggml.model"),
        "pre": get("tokenizer.ggml.pre", ""),
        "tokens": get("tokenizer.ggml.tokens"),
        "merges": get("tokenizer.ggml.merges"),
        "token_types": [int(t) for t in get("tokenizer.ggml.token_type")],
        "bos_id": int(get("tokenizer.ggml.bos_token_id", -1)),
        "eos_id": int(get("tokenizer.ggml.eos_token_id", -1)),
        "unk_id": int(get("tokenizer.ggml.unknown_token_id", -1)),
        "pad_id": int(get("tokenizer.ggml.padding_token_id", -1)),
        "add_bos": bool(get("tokenizer.ggml.add_bos_token", False)),
        "chat_template": get("tokenizer.chat_template", ""),
    })


def pre_tokenizer_for(name):
    from tokenizers import Regex, pre_tokenizers as pt

    def split(pattern):
        return pt.Split(Regex(pattern), behavior="isolated", invert=False)

    if name == "gpt2":
        return pt.ByteLevel(add_prefix_space=False, use_regex=True)
    if name == "smollm":
        return pt.Sequence([pt.Digits(individual_digits=True),
                            pt.ByteLevel(add_prefix_space=False, use_regex=True)])
    if name == "llama3":
        return pt.Sequence([split(LLAMA3_RE), pt.ByteLevel(add_prefix_space=False, use_regex=False)])
    if name == "qwen2":
        return pt.Sequence([split(QWEN2_RE), pt.ByteLevel(add_prefix_space=False, use_regex=False)])
    raise SystemExit(f"unknown pre-tokenizer name {name}")


@functools.lru_cache(maxsize=None)
def build_tokenizer(gguf_path):
    from tokenizers import AddedToken, Tokenizer, decoders, models

    get = gguf_fields(gguf_path)
    tokens = get("tokenizer.ggml.tokens")
    types = get("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in get("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizer_for(get("tokenizer.ggml.pre", "gpt2"))
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False)
                for t, ty in zip(tokens, types) if int(ty) in (3, 4)]
    tok.add_special_tokens(specials)
    return tok


def encode(gguf_path, in_path, out_path):
    tok = build_tokenizer(gguf_path)
    texts = read_json(in_path)["texts"]
    ids = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    decoded = [tok.decode(i, skip_special_tokens=False) for i in ids]
    write_json(out_path, {"ids": ids, "decoded": decoded})


def tokenizer_json(gguf_path, out_path):
    build_tokenizer(gguf_path).save(out_path)


def pretokenize(in_path, out_path):
    req = read_json(in_path)
    result = {}
    for name in req["names"]:
        pre = pre_tokenizer_for(name)
        # ByteLevel pieces come back byte-encoded; map them back to raw text for comparison.
        from tokenizers import decoders

        dec = decoders.ByteLevel()
        result[name] = [[dec.decode([piece]) for piece, _ in pre.pre_tokenize_str(t)]
                        for t in req["texts"]]
    write_json(out_path, result)


def render(in_path, out_path):
    """{"templates": [{"name", "text" | "gguf", "bos_token"}], "cases": [...]} ->
    {name: {"text": template, "rendered": [...]}} rendered as transformers' apply_chat_template does."""
    import jinja2

    req = read_json(in_path)
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg):
        raise jinja2.TemplateError(msg)

    result = {}
    for spec in req["templates"]:
        text = spec["text"] if "text" in spec else gguf_fields(spec["gguf"])("tokenizer.chat_template")
        template = env.from_string(text)
        outs = []
        for case in req["cases"]:
            kwargs = dict(messages=case["messages"],
                          add_generation_prompt=case["add_generation_prompt"],
                          bos_token=spec.get("bos_token", ""), raise_exception=raise_exception)
            if "enable_thinking" in case:
                kwargs["enable_thinking"] = case["enable_thinking"]
            outs.append(template.render(**kwargs))
        result[spec["name"]] = {"text": text, "rendered": outs}
    write_json(out_path, result)


def bundle(gguf_path, in_path, out_dir):
    import os

    dump_spec(gguf_path, os.path.join(out_dir, "spec.json"))
    encode(gguf_path, in_path, os.path.join(out_dir, "encoded.json"))
    tokenizer_json(gguf_path, os.path.join(out_dir, "tokenizer.json"))
    pretokenize(in_path, os.path.join(out_dir, "pieces.json"))


def main(argv):
    if len(argv) < 2:
        raise SystemExit("usage: hf_reference.py dump-spec|encode|tokenizer-json|pretokenize|render ...")
    cmd, args = argv[1], argv[2:]
    {"dump-spec": dump_spec, "encode": encode, "tokenizer-json": tokenizer_json,
     "pretokenize": pretokenize, "render": render, "bundle": bundle}[cmd](*args)


if __name__ == "__main__":
    main(sys.argv)
