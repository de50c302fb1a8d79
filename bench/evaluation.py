"""Benchmark 2, evaluation: the before/after evaluation (base model, then adapter, on the same rows)
with hubcard's predictors, against the ways a notebook evaluates.

- batching: MiniLM + LoRA on the whole SST-2 validation split (872 rows). hubcard's
  ClassificationPredictor (batches of examples sorted by length, inference mode) against the notebook
  loop: the same model and adapter, one example per forward pass under torch.no_grad.
- scoring: SmolLM2-135M + LoRA on TweetEval. hubcard's ScoringPredictor (the label words'
  likelihood after the prompt) against its GeneratingPredictor (a greedy answer, then the first label
  word in it): the same adapter, rows, batch size and prompt.

The adapters are hubcard's runs of the training benchmark's setups (trained here when that benchmark
has not left them). Seconds are the predictors' own stopwatch (tokenizing included); the accuracy rows
check that the faster way predicts as well. The batching benchmark also reports hubcard's model-FLOPs
utilisation: the forward passes' FLOPs (bench/flops.py) per second over the GEMM probe at the
evaluation's precision (fp32 by default) and thread count, measured in the same process.
"""

from __future__ import annotations

import time

from bench.common import Figure, Outcome, accuracy, accuracy_figure, ratio_figure, serve
from bench.setups import SEED, evaluation_slice, minilm_sst2, predictor, smollm2_tweets, trained_run

BATCHING_TARGET = 5.0
SCORING_TARGET = 5.0
MFU_TARGET = 0.75


def batching(quick: bool) -> Outcome:
    from hubcard import environment

    environment.set_thread_defaults()  # as the `hubcard` command does, before torch is imported
    from bench.flops import forward_flops, gemm_probe
    from hubcard.models import load_adapter, load_base_model
    from hubcard.tasks import encode_for_classification

    setup = minilm_sst2(quick)
    config, run = trained_run(setup)
    texts, references, label_names = evaluation_slice(config)
    loaded = load_base_model(config.model, config.task.type, label_names, seed=SEED)
    batched = predictor(config, loaded.tokenizer, label_names)
    max_length = config.data.max_length
    one_at_a_time(loaded.model, loaded.tokenizer, texts[:1], max_length)  # first-call costs, paid by neither side
    base = batched.predict(loaded.model, texts, "base model")
    base_loop = one_at_a_time(loaded.model, loaded.tokenizer, texts, max_length)
    lengths = [len(encode_for_classification(loaded.tokenizer, text, max_length)["input_ids"]) for text in texts]
    flops = forward_flops(loaded.model, lengths)
    model = load_adapter(loaded.model, run.adapter)
    adapter = batched.predict(model, texts, "adapter")
    adapter_loop = one_at_a_time(model, loaded.tokenizer, texts, max_length)
    flops += forward_flops(model, lengths)
    probe = gemm_probe(batched.precision)

    hubcard_seconds, loop_seconds = base.seconds + adapter.seconds, base_loop[1] + adapter_loop[1]
    mfu = flops / hubcard_seconds / probe["flops_per_second"]
    return Outcome(
        figures=[
            ratio_figure(
                f"{setup.title}: before/after evaluation of {len(texts)} rows",
                hubcard_seconds,
                loop_seconds,
                "s",
                higher_is_better=False,
                at_least=BATCHING_TARGET,
            ),
            accuracy_figure(
                f"{setup.title}: adapter accuracy, batched vs loop", references, adapter.labels, adapter_loop[0], len(label_names)
            ),
            Figure(
                f"{setup.title}: evaluation MFU ({batched.precision}, {probe['threads']} threads; probe "
                f"{probe['flops_per_second'] / 1e9:.0f} GFLOP/s)",
                mfu,
                unit="of probe",
                target=f"≥ {MFU_TARGET:g}",
                passed=mfu >= MFU_TARGET,
            ),
        ],
        details={
            "rows": len(texts),
            "model_flops": flops,
            "probe": probe,
            "mfu": mfu,
            "batch_size": config.evaluation.batch_size,
            "seconds": {
                "hubcard": {"base": base.seconds, "adapter": adapter.seconds},
                "loop": {"base": base_loop[1], "adapter": adapter_loop[1]},
            },
            "accuracy": {
                "hubcard": {"base": accuracy(base.labels, references), "adapter": accuracy(adapter.labels, references)},
                "loop": {"base": accuracy(base_loop[0], references), "adapter": accuracy(adapter_loop[0], references)},
            },
        },
    )


def one_at_a_time(model, tokenizer, texts: list[str], max_length: int) -> tuple[list[int], float]:
    """The notebook loop: tokenize one example, one forward pass, argmax; the labels and the seconds."""
    import torch

    model.eval()
    started = time.perf_counter()
    with torch.no_grad():
        labels = [
            int(model(**tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")).logits.argmax(-1))
            for text in texts
        ]
    return labels, time.perf_counter() - started


def scoring(quick: bool) -> Outcome:
    from hubcard.models import load_adapter, load_base_model

    setup = smollm2_tweets(quick)
    config, run = trained_run(setup)
    texts, references, label_names = evaluation_slice(config)
    loaded = load_base_model(config.model, config.task.type, label_names, seed=SEED)
    predictors = {kind: predictor(config, loaded.tokenizer, label_names, kind) for kind in ("score", "generate")}
    base = {kind: each.predict(loaded.model, texts, "base model") for kind, each in predictors.items()}
    model = load_adapter(loaded.model, run.adapter)
    adapter = {kind: each.predict(model, texts, "adapter") for kind, each in predictors.items()}

    seconds = {kind: base[kind].seconds + adapter[kind].seconds for kind in predictors}
    return Outcome(
        figures=[
            ratio_figure(
                f"{setup.title}: before/after evaluation of {len(texts)} tweets, score (baseline: generate)",
                seconds["score"],
                seconds["generate"],
                "s",
                higher_is_better=False,
                at_least=SCORING_TARGET,
            ),
            accuracy_figure(
                f"{setup.title}: adapter accuracy, score (baseline: generate)",
                references,
                adapter["score"].labels,
                adapter["generate"].labels,
                len(label_names),
            ),
        ],
        details={
            "rows": len(texts),
            "batch_size": config.evaluation.batch_size,
            "max_new_tokens": config.task.max_new_tokens,
            "seconds": {kind: {"base": base[kind].seconds, "adapter": adapter[kind].seconds} for kind in predictors},
            "accuracy": {
                kind: {"base": accuracy(base[kind].labels, references), "adapter": accuracy(adapter[kind].labels, references)}
                for kind in predictors
            },
            "answers": {"base": base["generate"].answers, "adapter": adapter["generate"].answers},
        },
    )


BENCHMARKS = {"evaluation-batching": batching, "evaluation-scoring": scoring}

if __name__ == "__main__":
    serve(BENCHMARKS)
