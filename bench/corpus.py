"""Corpus-curation benchmarks: the prefilter's throughput per core, and the projected GPU cost of labelling.

    python bench/corpus.py prefilter [--documents 400 --rounds 5]
    python bench/corpus.py project [--corpus-tokens 1e9 --doc-tokens 1500 --judge-params 32e9 ...]

prefilter: documents per second on one core (one process; wall clock and CPU time) of the corpus prefilter
(`cogrl.corpus.prefilter`: math density, then the prose pattern set through the regex tagger), side by side,
interleaved round by round, with two named baselines: the math-density pass alone (the cheapest filter that
could stand in) and the lab's Countdown tagger (pattern set v2) on the same texts. Inputs: the sample corpus's
documents as they are (about 400 characters), and documents of about 8,000 characters (a 2,048-token cut of an
OpenWebMath page) stitched from them.

project: the GPU-hours of labelling a corpus with the LLM judge (`cogrl.corpus.label`: one request per
document), from the assumptions given as flags and printed with the result. Cost model: a dense transformer
of P parameters spends 2P FLOPs per token (prefill and decode alike; attention over 2k-token contexts adds
under 10% at 32B and is left out), and vLLM reaches a stated share (MFU) of the GPU's dense bf16 peak in
prefill and a lower one in batched decode. Also the cost of rewriting both selected arms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from cogrl.behaviors.regex_tagger import RegexTagger
from cogrl.config import CorpusPrefilterConfig
from cogrl.corpus.label import SYSTEM_PROMPT, label_prompt
from cogrl.corpus.prefilter import Prefilter

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "corpus_sample.jsonl"

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}
"""Dense bf16 peak (NVIDIA's H100/H200 SXM datasheets; the H200 has the H100's compute, more and faster memory)."""


def documents(n: int, chars: int) -> list[str]:
    """``n`` documents of at least ``chars`` characters, stitched in order from the sample corpus (0: its
    documents one by one)."""
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text().splitlines()]
    out, i = [], 0
    while len(out) < n:
        parts = []
        while not parts or sum(map(len, parts)) < chars:
            parts.append(texts[i % len(texts)])
            i += 1
        out.append("\n\n".join(parts))
    return out


def bench_prefilter(args: argparse.Namespace) -> None:
    prefilter = Prefilter(CorpusPrefilterConfig())
    countdown = RegexTagger()
    contenders = {
        "math density only (baseline)": lambda text: prefilter.math_density(text),
        "countdown tagger v2 (baseline)": lambda text: countdown.tag(text),
        "corpus prefilter": lambda text: prefilter("id", text),
    }
    for chars in (0, 8000):  # 0: the sample's documents one by one
        docs = documents(args.documents, chars)
        mean_chars = statistics.fmean(map(len, docs))
        wall: dict[str, list[float]] = {name: [] for name in contenders}
        cpu: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):  # interleaved, so load swings hit every contender alike
            for name, run in contenders.items():
                w, c = time.perf_counter(), time.process_time()
                for text in docs:
                    run(text)
                wall[name].append(len(docs) / (time.perf_counter() - w))
                cpu[name].append(len(docs) / (time.process_time() - c))
        print(
            f"\n{len(docs)} documents of {mean_chars:,.0f} characters, median of {args.rounds} rounds, one core:"
        )
        print("| pass | docs/s (wall) | docs/s (CPU) | MB/s (CPU) |\n|---|---:|---:|---:|")
        for name in contenders:
            rate = statistics.median(cpu[name])
            print(
                f"| {name} | {statistics.median(wall[name]):,.0f} | {rate:,.0f} | {rate * mean_chars / 1e6:.2f} |"
            )
    buckets: dict[str, int] = {}
    for text in documents(105, 0):
        bucket = prefilter("id", text).bucket
        buckets[bucket] = buckets.get(bucket, 0) + 1
    print(f"\nsample corpus buckets: {buckets}")


def bench_project(args: argparse.Namespace) -> None:
    overhead = round(len(SYSTEM_PROMPT + label_prompt("", 1)) / args.chars_per_token)
    docs = args.corpus_tokens / args.doc_tokens
    judged = docs * args.judged_share
    prompt = judged * (args.doc_tokens + overhead)
    output = judged * args.output_tokens
    peak = PEAK_BF16_TFLOPS[args.gpu] * 1e12
    flops = 2 * args.judge_params

    def hours(prefill_tokens: float, decode_tokens: float) -> tuple[float, float]:
        return (prefill_tokens * flops / (peak * args.prefill_mfu) / 3600,
                decode_tokens * flops / (peak * args.decode_mfu) / 3600)  # fmt: skip

    print("assumptions:")
    print(f"  corpus                {args.corpus_tokens:,.0f} tokens, {args.doc_tokens:,} tokens per document "
          f"(after the 2,048-token cut) -> {docs:,.0f} documents")  # fmt: skip
    print(f"  judged share          {args.judged_share:.0%} of documents pass the prefilter to the judge")
    print(f"  prompt per document   document + {overhead} tokens of instructions (measured: "
          f"{len(SYSTEM_PROMPT + label_prompt('', 1)):,} characters at {args.chars_per_token:g} per token)")  # fmt: skip
    print(f"  output per document   {args.output_tokens} tokens (a short reasoning and six answer lines)")
    print(f"  judge                 {args.judge_params / 1e9:g}B dense parameters, 2P FLOPs per token")
    print(f"  GPU                   {args.gpu}, {PEAK_BF16_TFLOPS[args.gpu]:g} TFLOP/s dense bf16 peak; vLLM at "
          f"{args.prefill_mfu:.0%} of it in prefill, {args.decode_mfu:.0%} in batched decode")  # fmt: skip
    pre, dec = hours(prompt, output)
    print("\nlabelling:")
    print("| judged documents | prompt tokens | output tokens | prefill GPU-h | decode GPU-h | total GPU-h |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {judged:,.0f} | {prompt:,.0f} | {output:,.0f} | {pre:,.1f} | {dec:,.1f} | {pre + dec:,.1f} |")
    all_pre, all_dec = hours(docs * (args.doc_tokens + overhead), docs * args.output_tokens)
    print(f"without the prefilter (every document judged): {all_pre + all_dec:,.1f} GPU-h")
    arm_tokens = 2 * args.arm_tokens
    rw_pre, rw_dec = hours(arm_tokens * 1.05, arm_tokens * args.rewrite_ratio)
    print(f"\nrewriting both arms ({args.arm_tokens:,.0f} tokens each, rewrite {args.rewrite_ratio:g}x the document): "
          f"prefill {rw_pre:,.1f} + decode {rw_dec:,.1f} = {rw_pre + rw_dec:,.1f} GPU-h")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prefilter")
    p.add_argument("--documents", type=int, default=400)
    p.add_argument("--rounds", type=int, default=5)
    q = sub.add_parser("project")
    q.add_argument("--corpus-tokens", type=float, default=1e9)
    q.add_argument("--doc-tokens", type=int, default=1500,
                   help="mean tokens per document after the 2,048-token cut (OpenWebMath averages about 2,300 "
                        "before it: 14.7B tokens in 6.3M documents)")  # fmt: skip
    q.add_argument("--judged-share", type=float, default=0.5)
    q.add_argument("--output-tokens", type=int, default=120)
    q.add_argument("--chars-per-token", type=float, default=4.0)
    q.add_argument("--judge-params", type=float, default=32e9)
    q.add_argument("--gpu", choices=sorted(PEAK_BF16_TFLOPS), default="H100")
    q.add_argument("--prefill-mfu", type=float, default=0.5)
    q.add_argument("--decode-mfu", type=float, default=0.2)
    q.add_argument("--arm-tokens", type=float, default=83e6)
    q.add_argument("--rewrite-ratio", type=float, default=1.1)
    args = parser.parse_args()
    {"prefilter": bench_prefilter, "project": bench_project}[args.command](args)


if __name__ == "__main__":
    main()
