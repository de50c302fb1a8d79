"""The training and evaluation stages on tiny random models: both task types, every PEFT method,
the run directory they leave, and predictions that a reloaded adapter reproduces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hubcard import card, environment, evaluation, training
from hubcard.errors import ModelLoadError, RunDirError
from hubcard.rundir import RunDir, read_jsonl
from hubcard.tasks import NO_LABEL, Prompter, encode_for_causal_lm, match_label
from tests.tiny import ROOT, config_dict, make_config, tiny_model, write_config

METHODS = {
    "lora": {"r": 4, "lora_alpha": 8},
    "dora": {"r": 4},
    "ia3": {},
    "loha": {"r": 4},
    "lokr": {"r": 4},
    "adalora": {"init_r": 6, "target_r": 4, "total_step": 4},
    "prompt_tuning": {"num_virtual_tokens": 4},
}


@pytest.fixture(scope="session")
def bert(tmp_path_factory) -> Path:
    return tiny_model("bert", tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def llama(tmp_path_factory) -> Path:
    return tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))


def train_and_evaluate(raw: dict, folder: Path):
    config = make_config(raw, folder)
    run = training.train(config)
    return config, run, evaluation.evaluate_run(run.path)


@pytest.fixture(scope="session")
def classification_run(bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("classification")
    raw = config_dict(bert, "sequence-classification", folder / "run", model={"hub_id": "someone/tiny-bert"})
    return train_and_evaluate(raw, folder)


# --- the run directory ------------------------------------------------------------------------


def test_classification_run_records_every_stage(classification_run):
    config, run, record = classification_run
    assert record.training.global_steps == 4 and record.training.seed == 42
    assert [entry["step"] for entry in record.training.log_history if "loss" in entry] == [1, 2, 3, 4]
    assert record.model.num_parameters < record.model.total_parameters
    assert 0 < record.model.trainable_parameters < record.model.total_parameters
    assert record.model.hub_id == "someone/tiny-bert" and record.model.source == "local"
    assert record.data.train.rows == 64 and record.data.eval.rows == 24
    assert sum(record.data.eval.label_counts.values()) == 24
    assert record.adapter.modules_to_save and "classifier" in record.adapter.modules_to_save
    assert record.evaluation.rows == 24 and record.evaluation.metric_names[:2] == ["accuracy", "f1"]
    assert record.evaluation.metric_backend in ("evaluate", "scikit-learn")
    assert {"train", "evaluate"} <= set(record.stages) and record.stages["train"].seconds > 0
    native = environment.native_precision()  # bf16 where this CPU computes it natively, else fp32
    assert (record.hardware.precision, record.hardware.precision_set_by, record.hardware.precision_reason) == (
        native.precision,
        "hubcard",
        native.reason,
    )
    assert record.evaluation.precision == "fp32"  # exact, whatever the training's precision
    assert record.hardware.cpu_count >= 1
    assert {"transformers", "peft", "torch", "datasets", "huggingface_hub", "hubcard"} <= set(record.versions)
    assert record.emissions is not None and (record.emissions.measured or record.emissions.reason)
    assert set(record.plots) == {"loss", "confusion_base", "confusion_adapter"}  # named; the card stage draws them
    card.render_run_card(run.path)
    for plot in record.plots.values():
        assert (run.path / plot).read_bytes().startswith(b"\x89PNG")


def test_adapter_folder_names_the_hub_id_and_holds_no_placeholder_card(classification_run):
    _, run, _ = classification_run
    files = sorted(path.name for path in run.adapter.iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= set(files)
    assert "README.md" not in files
    adapter_config = json.loads((run.adapter / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "someone/tiny-bert"
    assert [folder.name for folder in run.checkpoints.iterdir()] == ["checkpoint-4"]  # a short run: its last step only


def test_predictions_cover_every_row_and_match_the_metrics(classification_run):
    _, run, record = classification_run
    for name, scores in (("base", record.evaluation.base), ("adapter", record.evaluation.adapter)):
        rows = read_jsonl(run.predictions / f"{name}.jsonl")
        assert len(rows) == 24 and len({row["row"] for row in rows}) == 24
        accuracy = np.mean([row["prediction"] == row["label"] for row in rows])
        assert scores.metrics["accuracy"] == pytest.approx(accuracy)
        assert sum(map(sum, scores.confusion_matrix)) == 24


def test_reloading_the_adapter_on_the_base_model_reproduces_its_predictions(classification_run, bert):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, run, record = classification_run
    tokenizer = AutoTokenizer.from_pretrained(run.adapter)
    base = AutoModelForSequenceClassification.from_pretrained(bert, num_labels=2)
    model = PeftModel.from_pretrained(base, run.adapter).eval()
    rows = read_jsonl(run.predictions / "adapter.jsonl")
    with torch.inference_mode():
        for row in rows:
            logits = model(**tokenizer(row["text"], truncation=True, max_length=48, return_tensors="pt")).logits
            assert record.data.label_names[logits.argmax(-1).item()] == row["prediction"]


def test_evaluating_twice_gives_the_same_numbers(classification_run):
    _, run, record = classification_run
    again = evaluation.evaluate_run(run.path)
    assert again.evaluation.comparison == record.evaluation.comparison
    assert again.evaluation.examples == record.evaluation.examples
    assert again.evaluation.base.confusion_matrix == record.evaluation.base.confusion_matrix


def test_the_card_of_a_real_run_passes_check(classification_run):
    _, run, _ = classification_run
    path = card.render_run_card(run.path)
    assert card.check_card(path.read_text(encoding="utf-8")) == []


# --- the run directory's owner ----------------------------------------------------------------


def test_same_run_is_not_trained_twice_and_a_different_one_is_refused(bert, tmp_path):
    raw = config_dict(bert, "sequence-classification", tmp_path / "run", training={"max_steps": 2})
    run = training.train(make_config(raw, tmp_path))
    first = run.read()
    assert training.train(make_config(raw, tmp_path)).read() == first  # already trained: nothing happens
    raw["peft"] = {"method": "lora", "r": 2}
    with pytest.raises(RunDirError, match="holds a different run.*--overwrite"):
        training.train(make_config(raw, tmp_path))
    assert run.read() == first
    retrained = training.train(make_config(raw, tmp_path), overwrite=True).read()
    assert retrained.config["peft"]["r"] == 2 and retrained.created_at > first.created_at


def test_a_folder_that_is_not_a_run_is_never_used(bert, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("years of work")
    raw = config_dict(bert, "sequence-classification", tmp_path / "run")
    for overwrite in (False, True):
        with pytest.raises(RunDirError, match="holds no hubcard run"):
            training.train(make_config(raw, tmp_path), overwrite=overwrite)
    assert (tmp_path / "run" / "thesis.tex").read_text() == "years of work"
    with pytest.raises(RunDirError, match="no run to continue"):
        training.train(make_config(config_dict(bert, "sequence-classification", tmp_path / "new"), tmp_path), resume=True)


def test_resume_continues_from_the_last_checkpoint(bert, tmp_path):
    raw = config_dict(bert, "sequence-classification", tmp_path / "run", training={"max_steps": 6, "save_steps": 2})
    run = training.train(make_config(raw, tmp_path))
    record = run.read()
    # An interruption after step 4: the run knows no finished training, the last checkpoint is step 4.
    import shutil

    shutil.rmtree(run.checkpoints / "checkpoint-6")
    record.training = None
    run.write(record)
    resumed = training.train(make_config(raw, tmp_path), resume=True).read()
    assert resumed.training.global_steps == 6
    assert Path(resumed.training.resumed_from_checkpoint).name == "checkpoint-4"
    assert [entry["step"] for entry in resumed.training.log_history if "loss" in entry][-2:] == [5, 6]


# --- every PEFT method, both task types -------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_each_peft_method_trains_and_reloads_for_classification(method, bert, tmp_path):
    raw = config_dict(bert, "sequence-classification", tmp_path / "run", peft={"method": method, **METHODS[method]})
    _, run, record = train_and_evaluate(raw, tmp_path)
    assert record.adapter.method == method and record.training.global_steps == 4
    assert record.adapter.size_bytes > 0 and 0 < record.model.trainable_parameters < record.model.total_parameters
    assert json.loads((run.adapter / "adapter_config.json").read_text())["peft_type"] == record.adapter.peft_type
    assert len(read_jsonl(run.predictions / "adapter.jsonl")) == 24


@pytest.mark.parametrize("method", ["dora", "prompt_tuning"])
@pytest.mark.parametrize("prediction", ["score", "generate"])
def test_causal_lm_trains_on_the_answer_and_evaluates(method, prediction, llama, tmp_path):
    raw = config_dict(
        llama,
        "causal-lm",
        tmp_path / "run",
        task={"prediction": prediction, "max_new_tokens": 4},
        peft={"method": method, **METHODS[method]},
    )
    _, run, record = train_and_evaluate(raw, tmp_path)
    assert record.task.prediction == prediction and record.model.uses_chat_template
    rows = read_jsonl(run.predictions / "adapter.jsonl")
    assert len(rows) == 24
    assert ("answer" in rows[0]) == (prediction == "generate")
    examples = record.evaluation.examples
    assert len(examples) == 5 and all(example.base_answer is not None and example.adapter_answer is not None for example in examples)
    if prediction == "score":
        assert record.evaluation.adapter.unmatched_answers == 0


# --- the task's pieces ------------------------------------------------------------------------


def test_causal_lm_loss_is_on_the_answer_only(llama):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama)
    prompter = Prompter(tokenizer, "Sentiment of: {text} ({labels})", ["negative", "positive"], "Be brief.")
    prompt = prompter.prompt("great film")
    assert prompt.startswith("<system>Be brief.[SEP]<user>Sentiment of: great film (negative, positive)[SEP]")
    assert prompt.endswith("<assistant>")
    encoded = encode_for_causal_lm(prompter, "great film", 1, max_length=64)
    answer = [token for token, label in zip(encoded["input_ids"], encoded["labels"]) if label != -100]
    assert tokenizer.decode(answer) == "positive [SEP]"
    short = encode_for_causal_lm(prompter, "great film " * 50, 1, max_length=16)
    assert len(short["input_ids"]) == 16 and tokenizer.decode(short["input_ids"]).endswith("positive [SEP]")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The sentiment of the text is negative.", 0),
        ("NEUTRAL", 1),
        ("positive, not negative", 2),
        ("I cannot tell.", NO_LABEL),
    ],
)
def test_generated_answers_are_matched_to_the_first_label_word(answer, expected):
    assert match_label(answer, ["negative", "neutral", "positive"]) == expected


def test_label_word_scores_do_not_depend_on_the_batch(llama):
    """Multi-token label words (one row per label) and single-token ones (one row per example), in
    batches that continue from the prompts' shared opening."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama)
    model = AutoModelForCausalLM.from_pretrained(llama).eval()
    texts = ["a", "a much longer review of a film that goes on", "fine", "terrible acting and a weak plot"]
    for words in (["negative", "positive"], ["thumbs down", "a thumbs up"], ["thumbs down", "thumbs up"]):
        prompter = Prompter(tokenizer, "{text}", words)
        batched = evaluation.ScoringPredictor(tokenizer, 64, 4, 2, prompter=prompter, max_new_tokens=4)
        single = evaluation.ScoringPredictor(tokenizer, 64, 1, 2, prompter=prompter, max_new_tokens=4)
        scores = batched.label_scores(model, texts, "batched")
        assert np.allclose(scores, single.label_scores(model, texts, "one by one"), atol=1e-4)
        # Alone, a text's whole prompt is the opening every prompt shares (computed once, then cached).
        assert np.allclose(scores[1:2], batched.label_scores(model, texts[1:2], "alone"), atol=1e-4)
        # The same numbers by hand: the summed log-probabilities of the word's tokens after the prompt.
        prompt = prompter.prompt_ids(texts[1], 64)
        word = prompter.word_ids(1)
        with torch.inference_mode():
            log_probs = model(input_ids=torch.tensor([prompt + word])).logits[0].log_softmax(-1)
        by_hand = sum(log_probs[len(prompt) - 1 + i, token].item() for i, token in enumerate(word))
        assert scores[1, 1] == pytest.approx(by_hand, abs=1e-4)


def test_generated_answers_do_not_depend_on_the_batch(llama):
    """Left-padded batches that continue from the prompts' cached opening answer as each prompt alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama)
    model = AutoModelForCausalLM.from_pretrained(llama).eval()
    texts = ["a", "a much longer review of a film that goes on", "fine", "terrible acting and a weak plot"]
    prompter = Prompter(tokenizer, "Sentiment of: {text}", ["negative", "positive"])
    predictor = evaluation.GeneratingPredictor(tokenizer, 64, 4, 2, prompter=prompter, max_new_tokens=6)
    answers = predictor.generate(model, texts, "batched")
    for text, answer in zip(texts, answers):
        prompt = prompter.prompt_ids(text, 64)
        with torch.inference_mode():
            alone = model.generate(
                input_ids=torch.tensor([prompt]), max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        assert answer == tokenizer.decode(alone[0, len(prompt) :], skip_special_tokens=True).strip()


def test_label_word_scores_after_a_prompt_tuning_adapters_virtual_tokens(llama):
    """Prompt tuning puts virtual tokens before the input: the scores are read after the prompt all the same."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llama)
    torch.manual_seed(0)
    prompt_tuning = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(llama), prompt_tuning).eval()
    texts = ["fine", "a much longer review of a film that goes on"]
    for words in (["negative", "positive"], ["thumbs down", "a thumbs up"]):
        prompter = Prompter(tokenizer, "{text}", words)
        predictor = evaluation.ScoringPredictor(tokenizer, 64, 2, 2, prompter=prompter, max_new_tokens=4)
        scores = predictor.label_scores(model, texts, "scores")
        prompt, word = prompter.prompt_ids(texts[0], 64), prompter.word_ids(0)
        with torch.inference_mode():
            log_probs = model(input_ids=torch.tensor([prompt + word])).logits[0, 5:].log_softmax(-1)
        by_hand = sum(log_probs[len(prompt) - 1 + i, token].item() for i, token in enumerate(word))
        assert scores[0, 0] == pytest.approx(by_hand, abs=1e-4)


def test_classification_batches_hold_examples_of_similar_length(bert):
    """Sorted by token count, longest first: a batch pads to its own longest example, not to a random one."""
    from transformers import AutoTokenizer

    from hubcard.tasks import encode_for_classification

    tokenizer = AutoTokenizer.from_pretrained(bert)
    texts = ["good", "a long and winding review of a film that never ends", "bad film", "fine", "dull, slow and far too long"]
    encoded = [encode_for_classification(tokenizer, text, 64) for text in texts]
    batches = list(evaluation._batches(encoded, 2, "sorting"))
    lengths = [len(encoded[index]["input_ids"]) for batch in batches for index in batch]
    assert lengths == sorted(lengths, reverse=True) and sorted(i for batch in batches for i in batch) == list(range(5))


def test_examples_show_each_kind_in_turn_and_are_reproducible():
    references = [0, 0, 0, 0, 1, 1, 1, 1]
    base = [1, 1, 1, 0, 0, 1, 0, 1]
    adapter = [0, 0, 1, 1, 1, 1, 0, 1]
    chosen = evaluation.pick_examples(references, base, adapter, 5, seed=3)
    kinds = [evaluation._kind(references[i], base[i], adapter[i]) for i in chosen]
    assert kinds[:4] == ["fixed", "still wrong", "broken", "both right"] and kinds[4] == "fixed"
    assert chosen == evaluation.pick_examples(references, base, adapter, 5, seed=3)
    assert len(set(chosen)) == 5


def test_training_arguments_are_chosen_for_the_hardware_and_the_user_wins(bert, tmp_path):
    raw = config_dict(bert, "sequence-classification", tmp_path / "run", training={"num_train_epochs": 2, "logging_steps": 3})
    config = make_config(raw, tmp_path)
    arguments = training.training_arguments(config, RunDir(config.run_dir), rows=64)
    native = environment.native_precision().precision
    assert (arguments.bf16, arguments.fp16) == (native == "bf16", native == "fp16")
    assert arguments.logging_steps == 3  # the user's value
    assert arguments.train_sampling_strategy == "group_by_length" and arguments.save_total_limit == 2
    changed = training.changed_arguments(arguments)
    assert changed["logging_steps"] == 3 and "output_dir" not in changed


def test_precision_is_what_the_hardware_computes_natively_unless_the_config_says(bert, tmp_path):
    native = environment.native_precision()
    assert training.precision_choice({}) == native
    assert training.precision_choice({"fp16": False}) == native  # a GPU config's "no fp16" leaves bf16 to the hardware
    assert training.precision_choice({"bf16": True}) == environment.PrecisionChoice("bf16", "config", "training.bf16: true")
    assert native.set_by == "hubcard" and native.reason  # e.g. this CPU computes bf16 natively, with AVX512_BF16
    raw = config_dict(bert, "sequence-classification", tmp_path / "run", training={"bf16": False, "fp16": False})
    arguments = training.training_arguments(make_config(raw, tmp_path), RunDir(tmp_path / "run"), rows=64)
    assert not arguments.bf16 and not arguments.fp16
    if native.precision != "fp32":
        ruled_out = training.precision_choice({native.precision: False})
        assert (ruled_out.precision, ruled_out.set_by) == ("fp32", "config")
        assert ruled_out.reason == f"training.{native.precision}: false, though {native.reason}"


@pytest.mark.skipif("avx512_bf16" not in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else True, reason="needs an x86 CPU with AVX512_BF16")
def test_bf16_is_native_only_where_the_cpu_flags_and_torchs_kernels_agree():
    """This CPU has AVX512_BF16: bf16 is native, unless ATen is told to use AVX2 kernels only."""
    assert environment.cpu_bf16_feature() in ("AVX512_BF16", "AMX-BF16")
    check = "from hubcard import environment; print(environment.cpu_bf16_feature())"
    lowered = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env={**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}, check=True
    )
    assert lowered.stdout.strip() == "None"


def test_thread_settings_are_set_before_torch_loads_and_never_over_the_users():
    code = """
import json, os, sys
sys.argv = ["hubcard", "--version"]
from hubcard import environment
from hubcard.cli import main
try:
    main()
except SystemExit:
    pass
chosen = {name: os.environ.get(name) for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
mine = environment.set_thread_defaults({"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"})
import torch
print(json.dumps([chosen, mine, environment.set_thread_defaults({})]))
"""
    environ = {name: value for name, value in os.environ.items() if name not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True)
    by_the_command, beside_the_users, after_torch = json.loads(result.stdout.splitlines()[-1])
    assert by_the_command == {"GOMP_SPINCOUNT": str(environment.SPIN_COUNT), "OMP_WAIT_POLICY": None}
    assert "OMP_WAIT_POLICY" not in beside_the_users and "GOMP_SPINCOUNT" not in beside_the_users
    assert "OMP_NUM_THREADS" not in beside_the_users
    assert after_torch == {}  # too late: OpenMP has read its settings
    notebook = "import os, hubcard.notebook; print(os.environ.get('GOMP_SPINCOUNT'))"
    imported = subprocess.run([sys.executable, "-c", notebook], capture_output=True, text=True, env=environ, check=True)
    assert imported.stdout.strip() == str(environment.SPIN_COUNT)  # a notebook that imports hubcard before torch


def test_causal_lm_loss_at_the_answer_positions_equals_the_whole_computation(llama, tmp_path):
    """The loss and the LoRA gradients, with and without a count of labelled tokens across accumulated
    batches, equal what the model computes over every position; only the answers' positions are projected."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, TrainingArguments

    from hubcard.trainer import HubcardTrainer, answer_positions

    tokenizer = AutoTokenizer.from_pretrained(llama)
    torch.manual_seed(0)
    lora = LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(llama), lora)
    prompter = Prompter(tokenizer, "Review: {text}", ["negative", "positive", "a thumbs up"])  # answers of 1 to 3 words
    texts = ["fine", "a much longer review of a film that goes on and on", "dull", "terrible acting and a weak plot"]
    batch = DataCollatorForSeq2Seq(tokenizer, padding=True)([encode_for_causal_lm(prompter, text, i % 3, 64) for i, text in enumerate(texts)])
    trainer = HubcardTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[]), model_projects_answers=True)
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]

    def loss_and_gradients(compute) -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad()
        loss = compute()
        loss.backward()
        parameters = dict(model.named_parameters())
        return loss.item(), {name: parameters[name].grad.clone() for name in trainable}

    labelled = int(batch["labels"][:, 1:].ne(-100).sum())
    for items in (None, torch.tensor(2 * labelled)):  # a mean; a sum over the tokens of two accumulated batches
        counted = {} if items is None else {"num_items_in_batch": items}
        answers = loss_and_gradients(lambda: trainer.compute_loss(model, dict(batch), num_items_in_batch=items))
        whole = loss_and_gradients(lambda: model(**batch, **counted).loss)
        assert answers[0] == pytest.approx(whole[0], rel=1e-6)
        for name in trainable:
            assert torch.allclose(answers[1][name], whole[1][name], atol=1e-7), name
        assert any(gradient.abs().sum() > 0 for gradient in answers[1].values())
    assert len(answer_positions(batch["labels"])) < batch["input_ids"].shape[1] / 2


@pytest.mark.parametrize("task_type", ["sequence-classification", "causal-lm"])
def test_under_mixed_precision_the_logits_alone_are_computed_in_fp32(task_type, bert, llama):
    import copy

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from hubcard.trainer import logits_in_fp32

    causal = task_type == "causal-lm"
    base = AutoModelForCausalLM.from_pretrained(llama) if causal else AutoModelForSequenceClassification.from_pretrained(bert, num_labels=2)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM" if causal else "SEQ_CLS", r=4))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    logits_in_fp32(model, task_type)
    attention = next(module for name, module in model.named_modules() if name.endswith(("q_proj", "query")) and hasattr(module, "base_layer"))
    seen = []
    attention.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    input_ids = torch.tensor([[5, 6, 7, 8]])
    for each in (model, copy.deepcopy(model)):  # a copy computes with its own head
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = each(input_ids=input_ids).logits
        assert logits.dtype == torch.float32
    assert seen and set(seen) == {torch.bfloat16}  # the layers below the head: still in bf16
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())  # nothing else changed


def test_a_run_prints_one_bar_and_logs_every_step_to_the_run_directory(bert, tmp_path):
    """`hubcard train`: no logged entry on the console (stdout or stderr), every one in the training log;
    the plots are drawn by the card stage, and drawn again after a new evaluation; the metric backend
    and the card's notes are said once."""
    raw = config_dict(bert, "sequence-classification", tmp_path / "run", training={"max_steps": 4, "logging_steps": 1})
    config = write_config(raw, tmp_path)
    run = RunDir(tmp_path / "run")

    def hubcard(*arguments: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "hubcard", *arguments], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    trained = hubcard("train", str(config))
    assert trained.stdout == f"Adapter saved in {run.adapter}\n"
    assert "Training" in trained.stderr and "loss " in trained.stderr  # the bar, with the loss in it
    for raw_entry in ("{'loss'", "'grad_norm'", "train_runtime", "Loading weights", "Tokenizing"):
        assert raw_entry not in trained.stderr
    logged = read_jsonl(run.training_log)
    assert [entry["step"] for entry in logged if "loss" in entry] == [1, 2, 3, 4]
    assert all("learning_rate" in entry and "grad_norm" in entry for entry in logged if "loss" in entry)
    assert logged[-1]["step"] == 4 and "train_runtime" in logged[-1]
    assert logged == run.read().training.log_history
    assert not run.plots.exists()  # training draws nothing

    evaluated = hubcard("evaluate", str(run.path))
    assert "{'" not in evaluated.stderr and not run.plots.exists()
    assert evaluated.stderr.count("Metrics: computed ") == 1  # the metric backend, said once
    hubcard("render-card", str(run.path))
    drawn = {name: (run.path / path).read_bytes() for name, path in run.read().plots.items()}
    assert set(drawn) == {"loss", "confusion_base", "confusion_adapter"} and all(png.startswith(b"\x89PNG") for png in drawn.values())
    hubcard("evaluate", str(run.path))  # new evaluation facts: their plots are drawn again by the card stage
    assert sorted(path.name for path in run.plots.iterdir()) == ["loss.png"]
    published = hubcard("publish", str(run.path), "--dry-run")  # renders the card more than once
    assert sorted(path.name for path in run.plots.iterdir()) == ["confusion_adapter.png", "confusion_base.png", "loss.png"]
    for note in ("base_model is left out of the card's metadata", "the card's metadata has no model-index"):
        assert published.stderr.count(note) == 1, published.stderr  # the card's notes, said once


def test_checkpoints_follow_the_clock_unless_the_config_says_when(bert, tmp_path, monkeypatch):
    from hubcard import trainer

    def checkpoints(name: str, **options) -> list[str]:
        raw = config_dict(bert, "sequence-classification", tmp_path / name, training={"max_steps": 4, **options})
        run = training.train(make_config(raw, tmp_path))
        return sorted(folder.name for folder in run.checkpoints.iterdir())

    assert checkpoints("short") == ["checkpoint-4"]  # seconds of training: the last step only
    monkeypatch.setattr(trainer, "CHECKPOINT_INTERVAL_S", 0.0)  # as if each step took longer than the interval
    assert checkpoints("long") == ["checkpoint-3", "checkpoint-4"]  # one per step, the last two kept
    assert checkpoints("configured", save_steps=2) == ["checkpoint-2", "checkpoint-4"]  # the config's cadence wins


def test_evaluation_runs_in_the_precision_the_config_asks_for(classification_run, tmp_path):
    _, run, record = classification_run
    copy = RunDir(tmp_path / "run")
    shutil.copytree(run.path, copy.path)
    copied = copy.read()
    copied.config["evaluation"]["precision"] = "bf16"
    copy.write(copied)
    in_bf16 = evaluation.evaluate_run(copy.path)
    assert in_bf16.evaluation.precision == "bf16" and record.evaluation.precision == "fp32"
    same = sum(a == b for a, b in zip(read_jsonl(copy.predictions / "adapter.jsonl"), read_jsonl(run.predictions / "adapter.jsonl")))
    assert same >= 20  # of 24: bf16 rounds, the labels barely move
    assert "evaluation in bf16" in card.render_card(in_bf16)


# --- memory and 4-bit -------------------------------------------------------------------------


@pytest.mark.parametrize("task_type", ["sequence-classification", "causal-lm"])
def test_gradient_checkpointing_and_accumulation_train_every_adapter_layer_and_show_in_the_card(task_type, bert, llama, tmp_path):
    from safetensors.torch import load_file

    memory = {"gradient_checkpointing": True, "gradient_accumulation_steps": 2}
    raw = config_dict(bert if task_type == "sequence-classification" else llama, task_type, tmp_path / "run", training=memory)
    run = training.train(make_config(raw, tmp_path))
    record = run.read()
    assert record.training.gradient_checkpointing and record.training.gradient_accumulation_steps == 2
    assert record.training.global_steps == 4 and record.training.epochs == 1.0  # 4 steps of 2 batches of 8: the 64 rows
    # Gradients reached the LoRA layers inside the checkpointed blocks: every lora_B (zero at first) moved.
    lora_b = [tensor for name, tensor in load_file(run.adapter / "adapter_model.safetensors").items() if "lora_B" in name]
    assert lora_b and all(tensor.abs().sum() > 0 for tensor in lora_b)
    text = card.render_run_card(run.path).read_text(encoding="utf-8")
    assert "- **Gradient checkpointing:** on" in text and "gradients accumulated over 2 batches" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="refusing 4-bit loading needs a machine without CUDA")
def test_qlora_without_cuda_is_refused_before_the_run_directory_is_touched(bert, tmp_path):
    config = make_config(config_dict(bert, "sequence-classification", tmp_path / "run", peft={"method": "qlora", "r": 4}), tmp_path)
    with pytest.raises(ModelLoadError, match=r"^model\.load_in_4bit: .*peft\.method: qlora.* lacks a CUDA GPU"):
        training.train(config)
    assert not (tmp_path / "run").exists()


def test_4bit_training_checkpoints_gradients_unless_the_config_says_otherwise(bert, tmp_path):
    raw = config_dict(bert, "sequence-classification", tmp_path / "run", peft={"method": "qlora", "r": 4})
    chosen = training.training_arguments(make_config(raw, tmp_path), RunDir(tmp_path / "run"), rows=64)
    assert chosen.gradient_checkpointing and chosen.gradient_checkpointing_kwargs == {"use_reentrant": False}
    raw["training"]["gradient_checkpointing"] = False
    assert not training.training_arguments(make_config(raw, tmp_path), RunDir(tmp_path / "run"), rows=64).gradient_checkpointing
