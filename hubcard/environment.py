"""Facts about the machine a run used: library versions, hardware, the precision it computes natively,
the thread settings it runs best with, and an emissions estimate."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import sys
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hubcard.rundir import Emissions, Hardware

logger = logging.getLogger(__name__)

RECORDED_PACKAGES = (
    "hubcard",
    "transformers",
    "peft",
    "torch",
    "datasets",
    "huggingface_hub",
    "accelerate",
    "evaluate",
    "scikit-learn",
    "codecarbon",
)


SPIN_COUNT = 2000
"""How many times an idle libgomp thread spins before it sleeps (libgomp's default: 300,000)."""


def set_thread_defaults(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set the OpenMP thread settings hubcard runs best with, where the user has not set them; what
    was set. Only before torch is imported (OpenMP reads them once, when torch loads it): the `hubcard`
    command calls it first thing, and importing hubcard.notebook before torch does too.

    GOMP_SPINCOUNT (unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set): a thread of libgomp, the
    OpenMP runtime of torch's Linux wheels, that runs out of work spins SPIN_COUNT times (tens of
    microseconds) before it sleeps, instead of 300,000 (milliseconds). On an idle machine that still
    catches the next of a training step's many short parallel regions; beside other busy processes a
    waiting thread no longer holds the core they need while the thread that has work waits for one.
    A passive policy (OMP_WAIT_POLICY=PASSIVE: no spinning) wins there too, but loses on an idle
    machine (bench/README.md, `threads`). Other OpenMP runtimes ignore the variable.

    OMP_NUM_THREADS: the CPUs this process may use, where a container's CPU quota (cgroup `cpu.max`)
    or the CPU affinity allows fewer than the machine has: torch would start a thread for each CPU it
    sees and most of them would wait for the quota.
    """
    if "torch" in sys.modules:
        return {}
    chosen: dict[str, str] = {}
    if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(environ):
        chosen["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    usable = usable_cpus()
    if usable < (os.cpu_count() or usable) and "OMP_NUM_THREADS" not in environ:
        chosen["OMP_NUM_THREADS"] = str(usable)
    environ.update(chosen)
    return chosen


def usable_cpus() -> int:
    """How many CPUs this process can keep busy: those it may run on (its affinity), at most its
    cgroup's CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def _cgroup_cpu_quota() -> float | None:
    """The CPUs' worth of time the cgroup may use, or None without a limit (or without cgroups)."""
    with contextlib.suppress(OSError, ValueError):
        quota, _, period = Path("/sys/fs/cgroup/cpu.max").read_text().partition(" ")
        return None if quota == "max" else int(quota) / int(period)
    with contextlib.suppress(OSError, ValueError):
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 else None
    return None


@contextlib.contextmanager
def library_progress_bars_off() -> Iterator[None]:
    """datasets' and transformers' own progress bars (splits generated, rows tokenized, weights
    loaded) off in the block, as they were afterwards: a stage shows one bar, its own."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets_on, transformers_on = not datasets.are_progress_bars_disabled(), transformers_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_on:
            datasets.enable_progress_bars()
        if transformers_on:
            transformers_logging.enable_progress_bar()


def versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a run's results."""
    from importlib import metadata

    found = {}
    for package in RECORDED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def device_arguments() -> dict[str, bool]:
    """The TrainingArguments that train on CUDA when present, else on the CPU, also in several processes
    (gloo): without CUDA, accelerate joins them only when told to use the CPU. Every TrainingArguments
    hubcard builds gets them, since each one sets accelerate's view of the processes up anew."""
    import torch

    return {} if torch.cuda.is_available() else {"use_cpu": True}


Precision = Literal["fp32", "bf16", "fp16"]

CPU_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512_BF16", "bf16": "Arm BF16"}
"""/proc/cpuinfo flags (x86 `flags`, Arm `Features`) of CPUs with bf16 arithmetic in hardware, by name."""


@dataclass(frozen=True)
class PrecisionChoice:
    """A precision, who chose it and why, for run.json and the card.

    `set_by`: the card's "set by" terms: 'hubcard' (for this hardware), 'config' (the config's
    training.bf16/fp16), 'your code' (a notebook's own TrainingArguments). `reason`: why, in words
    ('this CPU computes bf16 natively, with AVX512_BF16')."""

    precision: Precision
    set_by: str
    reason: str


def native_precision() -> PrecisionChoice:
    """The precision to train in on this machine: half precision where the hardware computes it
    natively (mixed precision: fp32 weights, half-precision matrix products), else fp32.

    GPU: bf16 where it is native (NVIDIA Ampere or later), else fp16. CPU: bf16 where the CPU has
    bf16 instructions (`cpu_bf16_feature`), else fp32: emulated bf16 is slower than fp32.
    """
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        if gpu_precision() == "bf16":
            return PrecisionChoice("bf16", "hubcard", f"the GPU, {name}, computes bf16 natively")
        return PrecisionChoice("fp16", "hubcard", f"the GPU, {name}, has no native bf16")
    feature = cpu_bf16_feature()
    if feature is not None:
        return PrecisionChoice("bf16", "hubcard", f"this CPU computes bf16 natively, with {feature}")
    return PrecisionChoice(
        "fp32", "hubcard", "this CPU has no bf16 instructions (AVX512_BF16, AMX or Arm BF16): half precision would be emulated, slower than fp32"
    )


def cpu_bf16_feature() -> str | None:
    """The CPU's bf16 instructions by name ('AVX512_BF16', 'AMX-BF16', 'Arm BF16'), or None.

    Both must agree: the CPU flags (/proc/cpuinfo) and torch's own checks, that oneDNN runs bf16 here
    (`torch.ops.mkldnn._is_mkldnn_bf16_supported`, which also says yes where AVX-512 only emulates
    it) and, on x86, that ATen's kernels use AVX-512 (`torch.backends.cpu.get_cpu_capability`; the
    ATEN_CPU_CAPABILITY variable can lower it).
    """
    import torch

    flags = cpu_flags()
    feature = next((name for flag, name in CPU_BF16_FLAGS.items() if flag in flags), None)
    if feature is None or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    if platform.machine().lower() in ("x86_64", "amd64") and not torch.backends.cpu.get_cpu_capability().startswith(("AVX512", "AMX")):
        return None
    return feature


def gpu_precision() -> Literal["bf16", "fp16"]:
    """bf16 on a GPU that computes in it natively (NVIDIA Ampere or later), else fp16. torch's default
    check also says yes where bf16 is only emulated, slowly (T4, V100)."""
    import torch

    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


def hardware(precision: PrecisionChoice | None = None, num_processes: int = 1) -> Hardware:
    """The CPU, memory and GPUs of this machine: the GPUs a run used, one per process when there are several."""
    import psutil
    import torch

    from hubcard.rundir import Hardware

    accelerator, count, accelerator_memory = None, 0, None
    if torch.cuda.is_available():
        count = torch.cuda.device_count() if num_processes == 1 else num_processes
        properties = torch.cuda.get_device_properties(0)
        accelerator = properties.name
        accelerator_memory = round(properties.total_memory / 2**30, 1)
    return Hardware(
        cpu=cpu_model(),
        cpu_count=os.cpu_count() or 1,
        memory_gib=round(psutil.virtual_memory().total / 2**30, 1),
        accelerator=accelerator,
        accelerator_count=count,
        accelerator_memory_gib=accelerator_memory,
        precision=precision.precision if precision else "fp32",
        precision_set_by=precision.set_by if precision else None,
        precision_reason=precision.reason if precision else None,
        num_processes=num_processes,
        platform=platform.platform(),
    )


def cpu_model() -> str:
    """The CPU's marketing name ('AMD EPYC 7R13'), or the architecture when the OS does not say."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 `flags`, Arm `Features`); empty where there are none."""
    return set(_cpuinfo_field("flags", "Features").split())


def _cpuinfo_field(*names: str) -> str:
    """The first CPU's value of the first of `names` in /proc/cpuinfo; '' where there is none (not Linux)."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() in names:
                    return value.strip()
    return ""


class EmissionsMeter:
    """An estimate of the emissions of a stage, by codecarbon's offline tracker.

    `with EmissionsMeter.started() as meter:` starts the tracker in a background thread, so that
    codecarbon's hardware detection (1-2 s: CPU model and power, memory, GPUs) runs beside what the
    block does first (loading the data and the model) instead of before it; the tracker measures from
    then on. When the block ends, also by an exception, the meter waits for the start to finish, stops
    the tracker and holds the estimate in `result`; where the tracker cannot run, `result` says why
    instead of failing the run. A meter made with `EmissionsMeter()` measures nothing (the helper
    processes of a multi-process run: codecarbon measures the whole machine).

    The offline tracker never uses the network. The country (for the carbon intensity) comes from
    codecarbon's own configuration (`CODECARBON_COUNTRY_ISO_CODE` or `~/.codecarbon.config`); without
    one codecarbon uses its world average.
    """

    def __init__(self) -> None:
        self.result: Emissions | None = None
        self._tracker = None
        self._starting: threading.Thread | None = None

    @classmethod
    def started(cls) -> EmissionsMeter:
        meter = cls()
        meter._starting = threading.Thread(target=meter._start, name="hubcard-emissions", daemon=True)
        meter._starting.start()
        return meter

    def _start(self) -> None:
        try:
            from codecarbon import OfflineEmissionsTracker

            logging.getLogger("codecarbon").setLevel(logging.ERROR)
            tracker = OfflineEmissionsTracker(log_level="error", output_methods=[], project_name="hubcard")
            tracker.start()
        except Exception as error:  # codecarbon could not start (missing sensors, read-only home, ...)
            from hubcard.rundir import Emissions

            logger.warning("emissions are not measured: %s", error)
            self.result = Emissions(measured=False, reason=f"codecarbon could not start: {error}")
            return
        self._tracker = tracker

    def __enter__(self) -> EmissionsMeter:
        return self

    def __exit__(self, *exception: object) -> None:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self._tracker is not None:
            self.result = _stop(self._tracker)
            self._tracker = None


def _stop(tracker) -> Emissions:
    from hubcard.rundir import Emissions

    try:
        kg_co2eq = tracker.stop()
        data = tracker.final_emissions_data
    except Exception as error:
        return Emissions(measured=False, reason=f"codecarbon failed while measuring: {error}")
    if kg_co2eq is None or data is None:
        return Emissions(measured=False, reason="codecarbon returned no measurement")
    return Emissions(
        measured=True,
        kg_co2eq=float(kg_co2eq),
        energy_kwh=float(data.energy_consumed),
        tracker=f"codecarbon {data.codecarbon_version} OfflineEmissionsTracker",
        country=data.country_iso_code or None,
    )
