"""Benchmark 6, threads: the OpenMP settings the `hubcard` command chooses, against torch's defaults,
on the machine alone and beside another busy process (a CI runner, a laptop's other work).

torch's CPU threads wait for work by spinning (libgomp's default: 300,000 spins). Beside another busy
process, a spinning thread holds a core the other process needs, and each parallel region waits for
the thread that lost its core: steps slow down severalfold. hubcard's settings
(`hubcard.environment.set_thread_defaults`: a short spin) must win there and must not lose on an idle
machine. A passive policy (OMP_WAIT_POLICY=PASSIVE: no spinning at all) is measured beside them, for
reference.

Each measurement is a fresh process that trains MiniLM + LoRA on SST-2 (the training benchmark's
setup, in hubcard's precision for this machine) for STEPS steps with a plain loop (forward, backward,
optimizer step) and reports the median step time after a first step. Settings and conditions are
interleaved in ROUNDS rounds; the figures are the medians over the rounds. "Beside a busy process":
one more Python process spins on one core (`while True: pass`) during the measurement.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from typing import Any

from bench.common import Outcome, ratio_figure, serve, spawn
from bench.setups import SEED, minilm_sst2

MODULE = "bench.threads"
STEPS = 24
ROUNDS = 3
SETTINGS = ("torch", "passive", "hubcard")
CONDITIONS = ("alone", "beside a busy process")
TARGETS = {"alone": 0.97, "beside a busy process": 1.5}
"""hubcard's speed over torch's defaults: not lower than 3 % below on an idle machine; well above beside a busy one."""


def benchmark(quick: bool) -> Outcome:
    rounds = 1 if quick else ROUNDS
    seconds: dict[tuple[str, str], list[float]] = {(setting, condition): [] for setting in SETTINGS for condition in CONDITIONS}
    variables: dict[str, dict[str, str | None]] = {}
    for _ in range(rounds):
        for condition in CONDITIONS:
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition != "alone" else None
            try:
                for setting in SETTINGS:
                    measured = spawn(MODULE, f"step:{setting}", quick=quick)
                    seconds[setting, condition].append(measured["seconds"])
                    variables[setting] = measured["variables"]
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    median = {key: statistics.median(values) for key, values in seconds.items()}
    figures = [
        ratio_figure(
            f"MiniLM + LoRA training step, {condition}: {'hubcard' if setting == 'hubcard' else 'OMP_WAIT_POLICY=PASSIVE'} vs torch's defaults",
            median[setting, condition],
            median["torch", condition],
            "s/step",
            higher_is_better=False,
            at_least=TARGETS[condition] if setting == "hubcard" else None,
        )
        for setting in ("hubcard", "passive")
        for condition in CONDITIONS
    ]
    return Outcome(
        figures=figures,
        details={
            "steps": 2 if quick else STEPS,
            "rounds": rounds,
            "variables": variables,
            "seconds": {f"{setting}, {condition}": values for (setting, condition), values in seconds.items()},
        },
    )


def step(setting: str, quick: bool) -> dict[str, Any]:
    """The median seconds of a training step in this process, with hubcard's thread settings, a passive
    OpenMP policy, or torch's defaults."""
    from hubcard import environment

    if setting == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    set_here = environment.set_thread_defaults() if setting == "hubcard" else {}
    import time

    import torch
    from transformers import DataCollatorWithPadding

    from hubcard.data import load_data
    from hubcard.models import attach_adapter, load_base_model
    from hubcard.training import encode_training_data, precision_choice

    setup = minilm_sst2(quick)
    config = setup.hubcard_config()
    data = load_data(config.data, seed=SEED)
    loaded = load_base_model(config.model, config.task.type, data.label_names, seed=SEED)
    rows = encode_training_data(config, loaded, data)
    model = attach_adapter(loaded.model, config.peft, config.task.type).train()
    collate = DataCollatorWithPadding(loaded.tokenizer)
    steps = 2 if quick else STEPS
    batches = [collate([rows[i] for i in range(start, start + setup.batch_size)]) for start in range(0, (steps + 1) * setup.batch_size, setup.batch_size)]
    optimizer = torch.optim.AdamW([parameter for parameter in model.parameters() if parameter.requires_grad], lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision_choice(config.training).precision)
    times = []
    for batch in batches:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    threads = {name: os.environ.get(name) for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    return {"seconds": statistics.median(times[1:]), "variables": {**threads, **set_here}, "threads": torch.get_num_threads()}


BENCHMARKS = {"threads": benchmark}

if __name__ == "__main__":
    serve({**BENCHMARKS, **{f"step:{setting}": (lambda quick, setting=setting: step(setting, quick)) for setting in SETTINGS}})
