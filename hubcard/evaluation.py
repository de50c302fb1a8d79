"""The evaluation stage: the base model, then the adapter, on the same examples with the same prompt.

Predictions are batched with the examples sorted by length (a batch pads to its longest member, so
similar lengths waste little), under torch.inference_mode, and put back in the data's order: two
evaluations of the same run give the same numbers. For causal-lm tasks, `score` reads the label
words' log-likelihoods after the prompt (one forward pass per example when every label word is one
token, one per example and label otherwise); `generate` decodes greedily and matches a label word
in the answer. Both run the opening that all prompts share (chat template, system prompt,
instruction) once, and each batch continues from its key/value cache.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hubcard import environment, metrics, plots
from hubcard.config import Config, config_of_run
from hubcard.data import LabeledData, load_data
from hubcard.errors import RunDirError
from hubcard.models import load_adapter, load_base_model, projects_chosen_positions, prompt_learning
from hubcard.rundir import (
    EvaluationFacts,
    Example,
    ModelEvaluation,
    RunDir,
    RunRecord,
    StageTiming,
    holding_run_dir,
    write_jsonl,
)
from hubcard.secrets import mask_tokens
from hubcard.tasks import NO_LABEL, Prompter, encode_for_classification, match_label
from hubcard.training import DEFAULT_SEED, prompter_for

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

NO_LABEL_NAME = "(no label)"
EXAMPLE_CHARS = 1000
"""An example's text in run.json (and so in the card and eval_results.json) is cut to this many characters."""
EXAMPLE_KINDS = ("fixed", "still wrong", "broken", "both right")
"""The order in which kinds of examples are picked for the card, in turns."""


@dataclass(frozen=True)
class Predictions:
    """One model's predictions for every evaluation example, in the data's order."""

    labels: list[int]
    answers: list[str] | None
    """causal-lm with `generate`: the model's answers as it wrote them."""
    seconds: float


@holding_run_dir
def evaluate_run(run_dir: str | Path) -> RunRecord:
    """Evaluate the base model and the trained adapter of a run; record metrics, examples and plots."""
    run = RunDir(run_dir)
    record = run.read()
    if record.data is None or record.training is None and not run.has_adapter():
        raise RunDirError(f"{run.path} has no trained adapter yet; run `hubcard train CONFIG` first")
    if not run.has_adapter():
        raise RunDirError(
            f"{run.adapter} is missing or incomplete (no adapter_config.json and weights), though run.json records a "
            f"finished training: run `hubcard train CONFIG` again with the same config to save the adapter again "
            "(from the last checkpoint when there is one)"
        )
    config = config_of_run(record.config, run.path, source=str(run.run_json))
    seed = int(config.training.get("seed", DEFAULT_SEED))
    started = _now()
    with environment.library_progress_bars_off():
        data = load_data(config.data, seed=seed, with_train=False, label_names=record.data.label_names)
        texts = list(data.eval["text"])
        tokenizer = run.adapter if (run.adapter / "tokenizer_config.json").is_file() else None  # the one that ships
        loaded = load_base_model(config.model, config.task.type, data.label_names, seed=seed, tokenizer_path=tokenizer)
    predictor = Predictor.for_run(config, record, loaded.tokenizer, data.label_names, evaluation_precision(config, record))

    model = to_device(loaded.model)
    with _stage_progress(predictor, passes=2, rows=len(texts)):  # one bar: base model, adapter, example answers
        base = predictor.predict(model, texts, "base model")
        model = load_adapter(model, run.adapter)
        adapter = predictor.predict(model, texts, "adapter")
        record_evaluation(run, record, config, data, predictor, model, base, adapter, seed=seed, started=started)
    run.write(record)
    return record


def record_evaluation(
    run: RunDir,
    record: RunRecord,
    config: Config,
    data: LabeledData,
    predictor: Predictor,
    model,
    base: Predictions,
    adapter: Predictions,
    *,
    seed: int,
    started: datetime,
) -> None:
    """Put the evaluation of `base` and `adapter` (predictions for `data.eval`) into `record`: metrics
    with paired-bootstrap intervals, the examples (picked with `seed`; for a causal-lm task the models'
    own answers, `model` being the adapter on its base model), the plots' names (the card stage draws
    them) and the evaluate stage's timing since `started`; write the predictions into `run`. run.json is the
    caller's to write."""
    rows, label_names = data.eval, data.label_names
    texts, references = list(rows["text"]), list(rows["label"])
    chosen = pick_examples(references, base.labels, adapter.labels, config.evaluation.num_examples, seed)
    answers = predictor.example_answers(model, texts, chosen, base, adapter)
    evaluation = _evaluation_facts(config, label_names, references, base, adapter, seed, predictor.precision)
    evaluation.examples = [_example(texts[i], references[i], base.labels[i], adapter.labels[i], label_names, *answers[i]) for i in chosen]
    for name, predictions in (("base", base), ("adapter", adapter)):
        write_jsonl(run.predictions / f"{name}.jsonl", _prediction_rows(rows["row"], texts, references, predictions, label_names))
    record.evaluation = evaluation
    plots.name_plots(run, record, plots.EVALUATION_PLOTS)  # drawn by the card stage
    record.stages["evaluate"] = StageTiming(started_at=started, finished_at=_now(), seconds=(_now() - started).total_seconds())


def headline(record: RunRecord) -> str:
    """'accuracy 0.512 → 0.874 (+0.362, 95% CI [0.310, 0.414])' for the first metric."""
    if record.evaluation is None:
        return "not evaluated"
    first = record.evaluation.comparison[0]
    low, high = first.difference_interval
    level = f"{record.evaluation.confidence_level:.0%}"
    return f"{first.name} {first.base:.3f} → {first.adapter:.3f} ({first.difference:+.3f}, {level} CI [{low:+.3f}, {high:+.3f}])"


# --- predicting -------------------------------------------------------------------------------


class Predictor:
    """Predicts labels for a run's task type and prediction method."""

    def __init__(self, tokenizer, max_length: int, batch_size: int, label_count: int, precision: str = "fp32"):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.label_count = label_count
        self.precision = precision
        """fp32, or bf16/fp16 autocast (`evaluation_precision`)."""
        self.progress: Any = None
        """A progress bar that every pass advances (one per stage), or None: a bar for each pass."""

    @staticmethod
    def for_run(config: Config, record: RunRecord, tokenizer, label_names: list[str], precision: str = "fp32") -> Predictor:
        arguments = (tokenizer, config.data.max_length, config.evaluation.batch_size, len(label_names), precision)
        if record.task.type == "sequence-classification":
            return ClassificationPredictor(*arguments)
        prompter = prompter_for(record.task, tokenizer, label_names)
        max_new_tokens = config.task.max_new_tokens
        if record.task.prediction == "generate":
            return GeneratingPredictor(*arguments, prompter=prompter, max_new_tokens=max_new_tokens)
        return ScoringPredictor(*arguments, prompter=prompter, max_new_tokens=max_new_tokens)

    def predict(self, model, texts: list[str], who: str) -> Predictions:
        started = time.perf_counter()
        labels, answers = self._predict(model, texts, f"Evaluating the {who}")
        return Predictions(labels, answers, time.perf_counter() - started)

    def _predict(self, model, texts: list[str], description: str) -> tuple[list[int], list[str] | None]:
        raise NotImplementedError

    def example_answers(
        self, model, texts: list[str], chosen: list[int], base: Predictions, adapter: Predictions
    ) -> dict[int, tuple[str | None, str | None]]:
        """(base answer, adapter answer) of the chosen examples, where the task has answers."""
        return {index: (None, None) for index in chosen}


class ClassificationPredictor(Predictor):
    def _predict(self, model, texts, description):

        encoded = [encode_for_classification(self.tokenizer, text, self.max_length) for text in texts]
        predictions = [0] * len(texts)
        for batch in _batches(encoded, self.batch_size, description, self.progress):
            inputs = self.tokenizer.pad([encoded[i] for i in batch], return_tensors="pt").to(_device(model))
            with _inference(model, self.precision):
                logits = model(**inputs).logits
            for index, label in zip(batch, logits.argmax(-1).tolist()):
                predictions[index] = label
        return predictions, None


class _PromptPredictor(Predictor):
    def __init__(self, *arguments, prompter: Prompter, max_new_tokens: int):
        super().__init__(*arguments)
        self.prompter = prompter
        self.max_new_tokens = max_new_tokens

    def generate(self, model, texts: list[str], description: str) -> list[str]:
        """Greedy answers to the prompts, without the prompt and special tokens."""
        prompts = [self.prompter.prompt_ids(text, self.max_length) for text in texts]
        opening = _SharedOpening.of(model, prompts, self.precision)
        pad_id = self.tokenizer.pad_token_id
        answers = [""] * len(texts)
        for batch in _batches(prompts, self.batch_size, description, self.progress):
            rest = [prompts[i][opening.length :] for i in batch]
            input_ids, attention_mask = _pad(rest, pad_id, left=True, device=_device(model))
            with _inference(model, self.precision):
                output = model.generate(
                    **opening.prepended_to(input_ids, attention_mask),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad_id,
                )
            for index, tokens in zip(batch, output[:, opening.length + input_ids.shape[1] :]):
                answers[index] = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return answers

    def example_answers(self, model, texts, chosen, base, adapter):
        """The models' own words for the examples; the base model speaks with the adapter disabled."""
        if base.answers is not None and adapter.answers is not None:
            return {index: (base.answers[index], adapter.answers[index]) for index in chosen}
        chosen_texts = [texts[index] for index in chosen]
        with model.disable_adapter():
            base_answers = self.generate(model, chosen_texts, "Asking the base model")
        adapter_answers = self.generate(model, chosen_texts, "Asking the adapter")
        return {index: pair for index, pair in zip(chosen, zip(base_answers, adapter_answers))}


class GeneratingPredictor(_PromptPredictor):
    def _predict(self, model, texts, description):
        answers = self.generate(model, texts, description)
        return [match_label(answer, self.prompter.label_words) for answer in answers], answers


class ScoringPredictor(_PromptPredictor):
    def _predict(self, model, texts, description):
        scores = self.label_scores(model, texts, description)
        return scores.argmax(axis=1).tolist(), None

    def label_scores(self, model, texts: list[str], description: str) -> np.ndarray:
        """Summed log-probabilities of each label word's tokens after each prompt: shape (texts, labels)."""
        import torch

        words = [self.prompter.word_ids(label) for label in range(self.label_count)]
        single_tokens = all(len(word) == 1 for word in words)
        prompts = [self.prompter.prompt_ids(text, self.max_length) for text in texts]
        # Each row is a prompt, or a prompt followed by one label word; the word's tokens end the row.
        rows = prompts if single_tokens else [prompt + word for prompt in prompts for word in words]
        per_row = 1 if single_tokens else len(words)
        width = max(len(word) for word in words)
        opening = _SharedOpening.of(model, prompts, self.precision)
        selective = projects_chosen_positions(model)
        scores = np.zeros((len(texts), len(words)))
        for batch in _batches(rows, self.batch_size * per_row, description, self.progress):
            input_ids, attention_mask = _pad(
                [rows[i][opening.length :] for i in batch], self.tokenizer.pad_token_id, left=False, device=_device(model)
            )
            # The positions whose logits predict the word: after the prompt, or the `width` before the
            # row's last token (a shorter word's are the last of them).
            last = attention_mask.sum(-1, keepdim=True) - 1
            positions = last if single_tokens else (last - width + torch.arange(width, device=last.device)).clamp(min=0)
            inputs = opening.continued_by(input_ids, attention_mask)
            with _inference(model, self.precision):
                if selective:  # the vocabulary projection for these positions only: most of its work saved
                    logits = model(**inputs, logits_to_keep=positions).logits
                else:  # prompt-learning adapters put virtual tokens first: positions count from the end
                    logits = model(**inputs).logits
                    positions = positions + logits.shape[1] - input_ids.shape[1]
                    logits = torch.take_along_dim(logits, positions[..., None], dim=1)
            log_probs = logits.float().log_softmax(-1)
            for position, row in enumerate(batch):
                example, label = divmod(row, per_row)
                if single_tokens:
                    scores[example] = log_probs[position, 0, [word[0] for word in words]].cpu().numpy()
                else:
                    word = torch.tensor(words[label], device=log_probs.device)
                    span = log_probs[position, width - len(word) :]
                    scores[example, label] = span.gather(1, word.unsqueeze(1)).sum().item()
        return scores


@dataclass(frozen=True)
class _SharedOpening:
    """The tokens every prompt starts with (chat template, system prompt, instruction), run through the
    model once: each batch continues from a copy of their key/value cache instead of recomputing them."""

    tokens: list[int]
    cache: Any

    @property
    def length(self) -> int:
        return len(self.tokens)

    @classmethod
    def of(cls, model, prompts: list[list[int]], precision: str) -> _SharedOpening:
        import torch

        # The last prompt token is never shared: its logits predict the label word or the answer.
        length = min(len(os.path.commonprefix(prompts)), min(len(prompt) for prompt in prompts) - 1)
        if length == 0 or prompt_learning(model):  # virtual tokens must come first, before the opening
            return cls([], None)
        tokens = prompts[0][:length]
        with _inference(model, precision):
            return cls(tokens, model(input_ids=torch.tensor([tokens], device=_device(model)), use_cache=True).past_key_values)

    def continued_by(self, input_ids, attention_mask) -> dict[str, Any]:
        """A forward pass's inputs for rows that follow the opening (`input_ids` without it)."""
        return {"input_ids": input_ids, **self._cached(attention_mask)}

    def prepended_to(self, input_ids, attention_mask) -> dict[str, Any]:
        """generate's inputs: the opening's tokens, then `input_ids`; generate skips what the cache holds."""
        import torch

        opening = torch.tensor(self.tokens, dtype=input_ids.dtype, device=input_ids.device).expand(input_ids.shape[0], -1)
        return {"input_ids": torch.cat([opening, input_ids], 1), **self._cached(attention_mask)}

    def _cached(self, attention_mask) -> dict[str, Any]:
        """The attention mask over the opening and the rows, and a copy of the cache for each row."""
        import torch

        if self.cache is None:
            return {"attention_mask": attention_mask}
        rows = attention_mask.shape[0]
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        whole_mask = torch.cat([attention_mask.new_ones(rows, self.length), attention_mask], 1)
        return {"attention_mask": whole_mask, "past_key_values": cache}


def _batches(items: Sequence[Any], batch_size: int, description: str, progress: Any = None) -> Iterator[list[int]]:
    """Indices of `items` in batches of similar length, longest first (an out-of-memory error shows at
    once). `progress`: the stage's bar, advanced by each batch (its total grows if this pass was not
    counted in it); None: a bar of this pass's own."""
    from tqdm.auto import tqdm

    order = sorted(range(len(items)), key=lambda i: -len(_ids(items[i])))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if progress is None:
        yield from tqdm(batches, desc=description, unit="batch", leave=False)
        return
    progress.set_description(description, refresh=False)
    progress.total = max(progress.total, progress.n + len(batches))
    for batch in batches:
        yield batch
        progress.update()


@contextlib.contextmanager
def _stage_progress(predictor: Predictor, *, passes: int, rows: int) -> Iterator[None]:
    """One progress bar for `passes` passes over `rows` rows, which the predictor's passes advance."""
    from tqdm.auto import tqdm

    with tqdm(total=passes * math.ceil(rows / predictor.batch_size), desc="Evaluating", unit="batch", leave=False) as bar:
        predictor.progress = bar
        try:
            yield
        finally:
            predictor.progress = None


def _ids(item: Any) -> Sequence[int]:
    return item["input_ids"] if isinstance(item, dict) else item


def _pad(rows: list[list[int]], pad_id: int, *, left: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[index, span] = torch.tensor(row, dtype=torch.long)
        mask[index, span] = 1
    return ids.to(device), mask.to(device)


def to_device(model):
    """The model on the GPU when there is one (a model loaded in 4-bit is placed already)."""
    import torch

    if torch.cuda.is_available() and not getattr(model, "is_loaded_in_4bit", False):
        return model.to("cuda")
    return model


def _device(model):
    return next(model.parameters()).device


def evaluation_precision(config: Config, record: RunRecord) -> str:
    """`evaluation.precision` from the config; by default fp32 on a CPU (exact, whatever the training's
    precision) and the training's precision on a GPU (as the Trainer computed)."""
    import torch

    if config.evaluation.precision is not None:
        return config.evaluation.precision
    return record.hardware.precision if torch.cuda.is_available() else "fp32"


@contextlib.contextmanager
def _inference(model, precision: str) -> Iterator[None]:
    """Inference mode, in fp32 or under bf16/fp16 autocast (the weights stay as they are)."""
    import torch

    model.eval()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(_device(model).type, dtype=dtype) if dtype else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        yield


# --- results ----------------------------------------------------------------------------------


def pick_examples(references: Sequence[int], base: Sequence[int], adapter: Sequence[int], count: int, seed: int) -> list[int]:
    """`count` example indices, taking the kinds in turns (fixed, still wrong, broken, both right),
    chosen at random within a kind with `seed`: the same run shows the same examples."""
    by_kind: dict[str, list[int]] = {kind: [] for kind in EXAMPLE_KINDS}
    for index, (truth, before, after) in enumerate(zip(references, base, adapter)):
        by_kind[_kind(truth, before, after)].append(index)
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(indices)) for indices in by_kind.values()]
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return chosen


def _kind(truth: int, before: int, after: int) -> str:
    if before == truth:
        return "both right" if after == truth else "broken"
    return "fixed" if after == truth else "still wrong"


def _example(text, truth, before, after, label_names, base_answer, adapter_answer) -> Example:
    """An example as run.json, the card and the upload show it: the text's beginning, at most
    EXAMPLE_CHARS characters, and token-like strings masked (the predictions keep the text whole)."""
    shown = mask_tokens(text)[:EXAMPLE_CHARS]
    return Example(
        text=shown,
        label=label_names[truth],
        base_prediction=_label_name(before, label_names),
        adapter_prediction=_label_name(after, label_names),
        base_answer=mask_tokens(base_answer) if base_answer is not None else None,
        adapter_answer=mask_tokens(adapter_answer) if adapter_answer is not None else None,
        kind=_kind(truth, before, after),
        exact=shown == text,
    )


def _label_name(prediction: int, label_names: list[str]) -> str:
    return NO_LABEL_NAME if prediction == NO_LABEL else label_names[prediction]


def _evaluation_facts(config, label_names, references, base: Predictions, adapter: Predictions, seed: int, precision: str) -> EvaluationFacts:
    names = metrics.metric_names(config.evaluation.metrics)
    backend = metrics.choose_backend(tuple(names))
    scored = {
        name: metrics.score(backend, names, references, predictions.labels, label_names)
        for name, predictions in (("base", base), ("adapter", adapter))
    }
    comparison = metrics.paired_bootstrap(
        names,
        references,
        base.labels,
        adapter.labels,
        len(label_names),
        point_estimates=(scored["base"].metrics, scored["adapter"].metrics),
        samples=config.evaluation.bootstrap_samples,
        confidence_level=config.evaluation.confidence_level,
        seed=seed,
    )
    return EvaluationFacts(
        metric_backend=backend.name,
        metric_names=names,
        average=metrics.AVERAGE,
        rows=len(references),
        batch_size=config.evaluation.batch_size,
        precision=precision,
        base=_model_evaluation(scored["base"], base),
        adapter=_model_evaluation(scored["adapter"], adapter),
        comparison=comparison,
        bootstrap_samples=config.evaluation.bootstrap_samples,
        confidence_level=config.evaluation.confidence_level,
        examples=[],
    )


def _model_evaluation(scores: metrics.Scores, predictions: Predictions) -> ModelEvaluation:
    return ModelEvaluation(
        metrics=scores.metrics,
        per_class=scores.per_class,
        confusion_matrix=scores.confusion_matrix,
        unmatched_answers=scores.unmatched,
        seconds=predictions.seconds,
    )


def _prediction_rows(row_numbers, texts, references, predictions: Predictions, label_names) -> list[dict[str, Any]]:
    rows = []
    for index, (row, text, truth, label) in enumerate(zip(row_numbers, texts, references, predictions.labels)):
        entry = {"row": row, "text": text, "label": label_names[truth], "prediction": _label_name(label, label_names)}
        if predictions.answers is not None:
            entry["answer"] = predictions.answers[index]
        rows.append(entry)
    return rows


def _now() -> datetime:
    return datetime.now(timezone.utc)

