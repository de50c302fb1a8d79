"""Model-FLOPs utilisation (MFU): the FLOPs a model needs for the work done, per second, over the
FLOP/s that a plain matrix product reaches on the same machine, in the same process, at the same
precision and thread count (the GEMM probe): how close to the machine's limit the work ran.

Model FLOPs are counted by torch (`torch.utils.flop_counter.FlopCounterMode`: matrix products and
attention) on a copy of the model on the meta device, where no arithmetic is done: each row alone
(no padding), once per distinct shape. Training counts a forward and a backward pass with hubcard's
loss (for a causal LM, the vocabulary projection at the answer positions only: what the task needs);
evaluation a forward pass. So padding, projections nobody reads, and work redone are not model FLOPs.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterable
from functools import partial
from typing import Any

PROBE_SIZE = 2048
"""Square matrices of this size: large enough for the peak rate of this kind of CPU, small enough for a second."""
PROBE_SECONDS = 1.0
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def gemm_probe(precision: str) -> dict[str, Any]:
    """The best FLOP/s of `torch.matmul` on two PROBE_SIZE² matrices in `precision`, over PROBE_SECONDS
    of repeated products, with this process's threads."""
    import torch

    dtype = getattr(torch, DTYPES[precision])
    a, b = (torch.randn(PROBE_SIZE, PROBE_SIZE).to(dtype) for _ in range(2))
    for _ in range(2):  # first-call costs
        torch.matmul(a, b)
    best, started = float("inf"), time.perf_counter()
    while time.perf_counter() - started < PROBE_SECONDS:
        begin = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - begin)
    return {
        "flops_per_second": 2 * PROBE_SIZE**3 / best,
        "precision": precision,
        "size": PROBE_SIZE,
        "threads": torch.get_num_threads(),
    }


def training_flops(model, rows: Iterable[dict[str, Any]], causal: bool) -> float:
    """The FLOPs of training on `rows` (encoded rows with input_ids and labels), each once: a forward
    and backward pass of each row alone, with hubcard's loss."""
    import torch

    from hubcard.tasks import IGNORED_LABEL
    from hubcard.trainer import answer_positions

    shapes = Counter((len(row["input_ids"]), _labelled(row["labels"], IGNORED_LABEL) if causal else 0) for row in rows)
    meta = _on_meta(model, train=True)
    total = 0.0
    for (length, labelled), count in shapes.items():
        input_ids = torch.ones((1, length), dtype=torch.long, device="meta")
        if causal:  # hubcard's loss (hubcard.trainer): the logits of the answer positions only
            labels = torch.full((1, length), IGNORED_LABEL, dtype=torch.long)
            labels[0, length - labelled :] = 1
            positions = answer_positions(labels)  # on the CPU: the meta device cannot tell which are labelled
            targets = labels[:, 1:][:, positions].flatten().to("meta")
            step = partial(_answer_step, meta, input_ids, positions.to("meta"), targets)
        else:
            step = partial(_classification_step, meta, input_ids)
        total += count * _counted(step)
    return total


def _answer_step(model, input_ids, positions, targets) -> None:
    import torch

    logits = model(input_ids=input_ids, logits_to_keep=positions).logits
    torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets).backward()


def _classification_step(model, input_ids) -> None:
    import torch

    model(input_ids=input_ids, labels=torch.zeros(1, dtype=torch.long, device="meta")).loss.backward()


def forward_flops(model, lengths: Iterable[int]) -> float:
    """The FLOPs of a forward pass over each of the rows of these token counts, alone."""
    import torch

    meta = _on_meta(model, train=False)
    total = 0.0
    with torch.no_grad():
        for length, count in Counter(lengths).items():
            total += count * _counted(partial(meta, input_ids=torch.ones((1, length), dtype=torch.long, device="meta")))
    return total


def _labelled(labels: list[int], ignored: int) -> int:
    return sum(label != ignored for label in labels)


def _on_meta(model, *, train: bool):
    meta = copy.deepcopy(model).to("meta")
    return meta.train(train)


def _counted(run) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return float(counter.get_total_flops())
