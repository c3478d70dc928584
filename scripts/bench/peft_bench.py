#!/usr/bin/env python3
"""The PyTorch + PEFT side of the performance comparison (docs/PERFORMANCE.md).

Reads what `mose bench --json` measured (OURS), makes the same measurements
with PyTorch, transformers and PEFT on the same model folder, text windows,
batch, steps and prompt, and prints both side by side with the ratios
(MoSE Lab over PyTorch: above 1 means MoSE Lab is faster).

  training   a LoRA of rank 8 (alpha 16, no dropout) at q, k, v and o of every
             layer, as MoSE Lab's plain-LoRA baseline (seq-lora) is; AdamW at
             the same settings, gradients clipped at norm 1; causal-LM loss
             over every token of the same windows of `seq_len` ids.
  generation greedy decoding of the same prompt ids with the KV cache: the
             base model, the LoRA model, and the LoRA merged into the weights
             (PEFT's merge_and_unload), as MoSE Lab's routed generation with
             and without merging.

Run it through scripts/bench.sh, which builds the pinned environment
(requirements.txt beside this file) and runs `mose bench` first.

Usage: peft_bench.py OURS.json [--device cpu|cuda] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM

# The plain-LoRA baseline of MoSE Lab: rank new_experts_per_task x rank =
# 2 x 4, scale alpha / r = 2 (MoseConfig defaults, Method::effective_config).
LORA_RANK = 8
LORA_ALPHA = 16
LORA_SITES = ["q_proj", "k_proj", "v_proj", "o_proj"]
# TrainConfig defaults.
LEARNING_RATE = 3e-3
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8
CLIP_NORM = 1.0


def windows(tokenizer: Tokenizer, text: str, seq_len: int, count: int) -> list[list[int]]:
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    cut = [ids[i * seq_len : (i + 1) * seq_len] for i in range(len(ids) // seq_len)]
    if len(cut) < count:
        sys.exit(f"the text gives {len(cut)} windows, fewer than the {count} `mose bench` used")
    return cut[:count]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_training(model_dir: str, batches: list[torch.Tensor], warmup: int, device: str) -> list[float]:
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    lora = LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=LORA_SITES)
    model = get_peft_model(model, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=LEARNING_RATE, betas=ADAM_BETAS, eps=ADAM_EPSILON, weight_decay=0.0
    )
    seconds = []
    for batch in batches:
        batch = batch.to(device)
        sync(device)
        started = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, CLIP_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the step is done when its loss is on the host
        sync(device)
        seconds.append(time.perf_counter() - started)
    return seconds[warmup:]


def time_generation(model, prompt: torch.Tensor, new_tokens: int, runs: int, device: str) -> dict:
    """Prefill and decode tokens per second, as MoSE Lab counts them: the
    prompt's pass (with the first new token), then the other new tokens."""

    def generate(n: int) -> tuple[float, torch.Tensor]:
        sync(device)
        started = time.perf_counter()
        out = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
        )
        sync(device)
        return time.perf_counter() - started, out[0, prompt.shape[1] :]

    prefill, decode, ids = [], [], None
    with torch.inference_mode():
        for run in range(runs):
            first, _ = generate(1)
            whole, ids = generate(new_tokens)
            if run > 0:
                prefill.append(prompt.shape[1] / first)
                decode.append((new_tokens - 1) / max(whole - first, 1e-9))
    return {
        "prefill_tokens_per_second": statistics.median(prefill),
        "decode_tokens_per_second": statistics.median(decode),
        "ids": ids.tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ours", help="what `mose bench --json` printed")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", help="also write the PyTorch figures here")
    args = parser.parse_args()

    ours = json.load(open(args.ours))
    data, settings = ours["data"], ours["settings"]
    model_dir = ours["model"]["path"]
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    text = open(data["text"], encoding="utf-8").read()
    cut = windows(tokenizer, text, data["seq_len"], data["windows"])
    if cut[0][: len(data["first_ids"])] != data["first_ids"]:
        sys.exit(f"the windows differ from mose bench's: {cut[0][:8]} against {data['first_ids']}")
    b = data["batch_size"]
    batches = [torch.tensor(cut[i : i + b]) for i in range(0, len(cut), b)]

    torch.manual_seed(0)
    step_seconds = time_training(model_dir, batches, settings["warmup_steps"], args.device)
    per_step = statistics.median(step_seconds)
    flops = next((t["flops_per_step"] for t in ours["train"] if t["method"] == "seq-lora"), None)
    theirs = {
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "train_lora": {
            "steps": len(step_seconds),
            "seconds_per_step": per_step,
            "tokens_per_second": b * data["seq_len"] / per_step,
            "gflops_per_second": flops / per_step / 1e9 if flops else None,
        },
    }

    all_ids = tokenizer.encode(text, add_special_tokens=False).ids
    prompt_text = tokenizer.decode(all_ids[: settings["prompt_tokens"]], skip_special_tokens=False)
    prompt = torch.tensor([tokenizer.encode(prompt_text, add_special_tokens=False).ids]).to(args.device)
    base = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(args.device).eval()
    theirs["generate"] = {"base model": time_generation(base, prompt, settings["new_tokens"], settings["runs"], args.device)}
    lora = get_peft_model(
        base, LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=LORA_SITES)
    ).eval()
    # A trained LoRA is not zero: give B the scale of a trained one, so that
    # nothing is skipped as a no-op.
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.01)
    theirs["generate"]["LoRA, unmerged"] = time_generation(lora, prompt, settings["new_tokens"], settings["runs"], args.device)
    merged = lora.merge_and_unload().eval()
    theirs["generate"]["LoRA, merged"] = time_generation(merged, prompt, settings["new_tokens"], settings["runs"], args.device)

    if args.json:
        json.dump(theirs, open(args.json, "w"), indent=2)
    print_comparison(ours, theirs)


def print_comparison(ours: dict, theirs: dict) -> None:
    data = ours["data"]
    print(
        f"\n{ours['model']['path']} ({ours['model']['parameters']:,} parameters), batch {data['batch_size']} x "
        f"{data['seq_len']} tokens. MoSE Lab: {ours['device']}. PyTorch {theirs['torch']} + PEFT: "
        f"{theirs['device']} ({theirs['threads']} threads).\n"
    )
    print("| measurement | MoSE Lab | PyTorch + PEFT | ratio |")
    print("|---|---|---|---|")
    peft_train = theirs["train_lora"]["tokens_per_second"]
    for t in ours["train"]:
        name = {"seq-lora": "plain LoRA r8", "mose": "MoSE"}.get(t["method"], t["method"])
        print(
            f"| training tokens/s: MoSE Lab {name} vs PEFT LoRA r8 | {t['tokens_per_second']:.0f} | "
            f"{peft_train:.0f} | {t['tokens_per_second'] / peft_train:.2f} |"
        )
    gen = ours.get("generate") or {"rows": []}
    pairs = {
        "base model": "base model",
        "routed MoSE, merged": "LoRA, merged",
        "routed MoSE, unmerged": "LoRA, unmerged",
    }
    for row in gen["rows"]:
        other = theirs["generate"][pairs[row["mode"]]]
        label = f"{row['mode']} vs {pairs[row['mode']]}" if row["mode"] != "base model" else "base model"
        for key, what in [("decode_tokens_per_second", "decode"), ("prefill_tokens_per_second", "prefill")]:
            print(
                f"| {what} tokens/s: {label} | {row[key]:.1f} | {other[key]:.1f} | {row[key] / other[key]:.2f} |"
            )
    gflops = theirs["train_lora"]["gflops_per_second"]
    if gflops:
        print(f"\nPyTorch + PEFT LoRA training: {gflops:.1f} GFLOP/s (MoSE Lab's count of a step's work).")


if __name__ == "__main__":
    main()
