"""Benchmark 5, GPU (only where a CUDA GPU is lent, so never in CI): LoRA training of SmolLM2-135M
with bf16 against fp32 on the same GPU.

Both sides are hubcard's training stage (`hubcard.training.train`) on the SmolLM2 TweetEval setup with
a LoRA adapter, one with `training.bf16: true`, the other with `bf16: false` (hubcard leaves the
precision to the user's key), each in a process of its own. Measured:

- tokens/s: the tokens of the training slice (no padding; every row is seen once) over the Trainer's
  train_runtime;
- model-FLOPs utilisation: tokens/s × model FLOPs per token / the GPU's peak for the precision. Model
  FLOPs per token, for an adapter (after PaLM's appendix B): 2N forward and 2N backward to the inputs
  for the N frozen weights (the tied LM head included), 6 per trainable weight, and 12 · layers ·
  width · T for attention, T the rows' mean length. Peaks are NVIDIA's dense datasheet figures; fp32
  is without TF32, PyTorch's default.
"""

from __future__ import annotations

import dataclasses
from functools import partial

from bench.common import Figure, Outcome, ratio_figure, serve, spawn
from bench.setups import SEED, Setup, smollm2_tweets

MODULE = "bench.gpu"
PRECISIONS = ("bf16", "fp32")
PEAK_TFLOPS = (  # (part of the device name, bf16, fp32), the first match wins
    ("H100 PCIe", 756.0, 51.0),
    ("H100 NVL", 835.0, 60.0),
    ("H100", 989.0, 67.0),
    ("H200", 989.0, 67.0),
    ("A100", 312.0, 19.5),
    ("L4", 121.0, 30.3),
)


@dataclasses.dataclass(frozen=True)
class Training:
    tokens: int
    seconds: float
    flops_per_token: float


def gpu_setup(precision: str, quick: bool) -> Setup:
    """The SmolLM2 TweetEval setup with LoRA, more steps (a GPU step is short) and the precision set."""
    base = smollm2_tweets(quick)
    steps, batch_size = (10, 16) if quick else (300, 16)
    config = {
        **base.config,
        "data": {**base.config["data"], "max_train_samples": steps * batch_size},
        "peft": {**base.config["peft"], "method": "lora"},
        "training": {
            **base.config["training"],
            "max_steps": steps,
            "per_device_train_batch_size": batch_size,
            "bf16": precision == "bf16",
        },
    }
    return dataclasses.replace(base, name=f"smollm2-tweets-gpu-{precision}", title="SmolLM2-135M + LoRA", config=config)


def benchmark(quick: bool) -> Outcome:
    import torch

    if not torch.cuda.is_available():
        return Outcome(skipped="no CUDA GPU on this machine: this benchmark runs only where one is lent")
    device = torch.cuda.get_device_name(0)
    runs = {precision: Training(**spawn(MODULE, f"gpu:{precision}", quick=quick)) for precision in PRECISIONS}
    tokens_per_second = {precision: run.tokens / run.seconds for precision, run in runs.items()}
    peaks = peak_tflops(device)
    utilisation = {
        precision: tokens_per_second[precision] * runs[precision].flops_per_token / (peaks[precision] * 1e12) if peaks else None
        for precision in PRECISIONS
    }
    title = gpu_setup("bf16", quick).title
    return Outcome(
        figures=[
            ratio_figure(
                f"{title} on {device}: tokens/s, bf16 (baseline: fp32)",
                tokens_per_second["bf16"],
                tokens_per_second["fp32"],
                "tokens/s",
                higher_is_better=True,
                at_least=None,
            ),
            Figure(
                f"{title} on {device}: model-FLOPs utilisation, bf16 (baseline: fp32)",
                utilisation["bf16"] if utilisation["bf16"] is not None else "unknown peak",
                utilisation["fp32"],
            ),
        ],
        details={
            "device": device,
            "peak_tflops": peaks,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "runs": {precision: dataclasses.asdict(run) for precision, run in runs.items()},
            "setup": gpu_setup("bf16", quick).config,
        },
    )


def peak_tflops(device: str) -> dict[str, float] | None:
    """The device's dense peak TFLOPS per precision, if PEAK_TFLOPS knows it."""
    return next(({"bf16": bf16, "fp32": fp32} for name, bf16, fp32 in PEAK_TFLOPS if name in device), None)


def measure(precision: str, quick: bool) -> Training:
    """Train one precision's side in this process; its tokens, seconds and model FLOPs per token."""
    from hubcard import training
    from hubcard.data import load_data
    from hubcard.models import load_base_model

    config = gpu_setup(precision, quick).hubcard_config()
    record = training.train(config, overwrite=True).read()
    assert record.training is not None and record.model is not None
    data = load_data(config.data, seed=SEED)
    loaded = load_base_model(config.model, config.task.type, data.label_names, seed=SEED)
    lengths = [len(ids) for ids in training.encode_training_data(config, loaded, data)["input_ids"]]
    shape = loaded.model.config
    attention = 12 * shape.num_hidden_layers * shape.hidden_size * sum(lengths) / len(lengths)
    flops_per_token = 4 * record.model.num_parameters + 6 * record.model.trainable_parameters + attention
    return Training(sum(lengths), record.training.runtime_seconds, flops_per_token)


BENCHMARKS = {"gpu": benchmark}
SIDE_TASKS = {f"gpu:{precision}": partial(measure, precision) for precision in PRECISIONS}

if __name__ == "__main__":
    serve({**BENCHMARKS, **SIDE_TASKS})
