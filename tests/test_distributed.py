"""Several processes: `accelerate launch` and `torchrun` start two CPU processes (gloo) that train a
tiny model data-parallel; the main process alone evaluates, renders the card and publishes to the
loopback Hub. A single-process evaluation of the same adapter gives the same numbers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hubcard import evaluation
from hubcard.rundir import RunDir, RunRecord, read_jsonl
from tests.test_training import bert, llama  # noqa: F401  (fixtures: the tiny models)
from tests.tiny import config_dict, write_config

OWNER = "alice"
LAUNCH_TIMEOUT = 300
"""Seconds; a run that hangs fails its test (its launcher and workers are killed) instead of the suite."""
LAUNCHERS = {
    # `accelerate launch --cpu` starts one process (its simple launcher); --multi_gpu is its torchrun-based
    # launcher, which hubcard runs on the CPU when there is no CUDA.
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0"],
    "torchrun": ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
}


def launch_hubcard(launcher: str, folder: Path, arguments: list[str]) -> subprocess.CompletedProcess:
    """`python -m hubcard ARGUMENTS` under `launcher`, in its own process group: killed whole (launcher
    and workers) if it outlasts LAUNCH_TIMEOUT. One thread per process, like `evaluate_alone`."""
    command = [sys.executable, *LAUNCHERS[launcher], "-m", "hubcard", *arguments]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, cwd=folder, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(command)} did not finish in {LAUNCH_TIMEOUT} s:\n{stderr[-4000:]}")
    assert process.returncode == 0, f"{' '.join(command)} failed:\n{stderr[-4000:]}"
    assert "Traceback" not in stderr, stderr[-4000:]
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def evaluate_alone(run_dir: Path) -> RunRecord:
    """`hubcard evaluate RUN_DIR` in this one process, with one thread: the launched processes' arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluation.evaluate_run(run_dir)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("launcher", "task_type", "training"),
    [
        pytest.param("accelerate", "sequence-classification", {}, id="accelerate-classification"),
        pytest.param(
            "torchrun",
            "causal-lm",
            {"gradient_checkpointing": True, "gradient_accumulation_steps": 2},
            id="torchrun-causal-lm-checkpointing-accumulation",
        ),
    ],
)
def test_two_processes_train_data_parallel_and_the_main_one_alone_publishes(
    launcher, task_type, training, hub, monkeypatch, tmp_path, bert, llama
):
    monkeypatch.setenv("HF_TOKEN", hub.add_user(OWNER))
    repo_id = f"{OWNER}/tiny-{launcher}"
    base_model = bert if task_type == "sequence-classification" else llama
    model = {"hub_id": f"someone/tiny-{task_type}"}  # what the published adapter_config.json names
    raw = config_dict(base_model, task_type, tmp_path / "run", model=model, training=training, hub={"repo_id": repo_id})
    launched = launch_hubcard(launcher, tmp_path, ["train-and-publish", str(write_config(raw, tmp_path))])

    run = RunDir(tmp_path / "run")
    record = run.read()
    assert record.hardware.num_processes == 2 and "in 2 processes" in run.card.read_text(encoding="utf-8")
    # Data-parallel: each optimizer step took a batch of 8 rows per process per accumulated batch.
    accumulated = training.get("gradient_accumulation_steps", 1)
    assert record.training.global_steps == 4 and record.training.epochs == 4 * 8 * 2 * accumulated / 64
    assert record.training.gradient_checkpointing == bool(training.get("gradient_checkpointing"))

    # One process evaluated, rendered and published: one summary, one repo creation, one commit.
    assert launched.stdout.count("Result: ") == 1 and "train_runtime" not in launched.stdout + launched.stderr
    assert sum("train_runtime" in entry for entry in read_jsonl(run.training_log)) == 1  # logged by the main process alone
    assert len(hub.requests("create_repo")) == 1 and len(hub.requests("commit")) == 1
    commits = hub.commits(repo_id)
    assert len(commits) == 2 and record.publish.commit_oid == commits[0].oid  # the Hub's initial commit, then hubcard's
    assert hub.files(repo_id)["adapter_model.safetensors"] == (run.adapter / "adapter_model.safetensors").read_bytes()

    # Every file written once: the Trainer's checkpoints (with each process's random state), no leftovers.
    assert sorted(path.name for path in run.checkpoints.iterdir()) == ["checkpoint-3", "checkpoint-4"]
    for checkpoint in run.checkpoints.iterdir():
        assert {"adapter_model.safetensors", "rng_state_0.pth", "rng_state_1.pth"} <= {path.name for path in checkpoint.iterdir()}
    assert not [path for path in run.path.rglob("*") if path.name.endswith(".tmp")]
    assert set(record.stages) == {"train", "evaluate"}

    # A single-process evaluation of the same adapter gives the same numbers.
    again = tmp_path / "again"
    shutil.copytree(run.path, again)
    evaluated, reevaluated = record.evaluation, evaluate_alone(again).evaluation
    assert reevaluated.comparison == evaluated.comparison
    for model in ("base", "adapter"):
        before, after = getattr(evaluated, model), getattr(reevaluated, model)
        assert (after.metrics, after.confusion_matrix) == (before.metrics, before.confusion_matrix)
    assert reevaluated.examples == evaluated.examples
    for name in ("base.jsonl", "adapter.jsonl"):
        assert (again / "predictions" / name).read_bytes() == (run.predictions / name).read_bytes()
