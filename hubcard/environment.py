"""Facts about the machine a run used: library versions, hardware, and an emissions estimate."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Literal

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


def versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a run's results."""
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


def gpu_precision() -> Literal["bf16", "fp16"]:
    """bf16 on a GPU that computes in it natively (NVIDIA Ampere or later), else fp16. torch's default
    check also says yes where bf16 is only emulated, slowly (T4, V100)."""
    import torch

    return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"


def hardware(precision: Literal["fp32", "bf16", "fp16"] = "fp32", num_processes: int = 1) -> Hardware:
    """The CPU, memory and GPUs of this machine: the GPUs a run used, one per process when there are several."""
    import psutil
    import torch

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
        precision=precision,
        num_processes=num_processes,
        platform=platform.platform(),
    )


def cpu_model() -> str:
    """The CPU's marketing name ('AMD EPYC 7R13'), or the architecture when the OS does not say."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "unknown"


@dataclass
class EmissionsMeter:
    """Filled in when the `measure_emissions` block ends."""

    result: Emissions | None = None


@contextlib.contextmanager
def measure_emissions() -> Iterator[EmissionsMeter]:
    """Estimate the emissions of the code in the block with codecarbon's offline tracker.

    The offline tracker never uses the network. The country (for the carbon intensity) comes from
    codecarbon's own configuration (`CODECARBON_COUNTRY_ISO_CODE` or `~/.codecarbon.config`); without
    one codecarbon uses its world average. Where the tracker cannot run, the result says why instead
    of failing the run.
    """
    meter = EmissionsMeter()
    tracker = None
    try:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        tracker = OfflineEmissionsTracker(log_level="error", output_methods=[], project_name="hubcard")
        tracker.start()
    except Exception as error:  # codecarbon could not start (missing sensors, read-only home, ...)
        logger.warning("emissions are not measured: %s", error)
        meter.result = Emissions(measured=False, reason=f"codecarbon could not start: {error}")
        tracker = None
    try:
        yield meter
    finally:
        if tracker is not None:
            meter.result = _stop(tracker)


def _stop(tracker) -> Emissions:
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
