"""The base model and its tokenizer (a Hub id, a local folder or a .gguf file), and the PEFT adapter.

A .gguf file is dequantized once into a plain transformers checkpoint in hubcard's cache (Trainer
refuses to train a model that is still marked as GGUF-quantized); the cache is keyed by the file's
content hash, so a changed file is converted again and an unchanged one never is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hubcard import environment
from hubcard.config import Config, ModelSection, PeftSection, local_path, looks_like_local_path, portable_path
from hubcard.errors import ConfigError, ConfigProblem, ModelLoadError
from hubcard.rundir import AdapterFacts, ModelFacts

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

GGUF_METADATA_FILE = "hubcard-gguf.json"
HUB_CACHE_FOLDER = re.compile(r"models--(?P<owner>[\w.-]+?)--(?P<name>[\w.-]+)$")
HUB_URL = re.compile(r"^https?://(?:www\.)?huggingface\.co/(?P<repo>[\w.-]+/[\w.-]+?)/?$")
HEAD_NAMES = ("classifier", "score")
"""The classification heads PEFT itself trains and saves for sequence classification."""
POSITION_LIMITS = ("max_position_embeddings", "n_positions", "n_ctx")
"""Model config attributes that say how many positions (tokens) the model takes."""
MODULES_LISTED = 12


def cache_dir() -> Path:
    """Where converted models are kept: $HUBCARD_CACHE, else ~/.cache/hubcard."""
    return Path(os.environ.get("HUBCARD_CACHE") or Path.home() / ".cache" / "hubcard")


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from, and what from_pretrained loads."""

    kind: Literal["hub", "local", "gguf"]
    load_path: str
    """The Hub id or folder that from_pretrained reads (for GGUF: the dequantized cache folder)."""
    revision: str | None = None
    gguf_file: str | None = None
    gguf_metadata: dict[str, Any] = field(default_factory=dict)
    """The GGUF file's `general.*` fields (name, license, languages, source URLs...)."""


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: ModelSource


def resolve_source(section: ModelSection) -> ModelSource:
    """Find the model's files, converting a .gguf file into the cache first."""
    name = section.name_or_path
    path = local_path(name)
    if section.gguf_file is not None:
        gguf = path / section.gguf_file if path.is_dir() else _download(name, section.gguf_file, section.revision)
        return _gguf_source(gguf)
    if path.suffix == ".gguf" and path.is_file():
        return _gguf_source(path)
    if path.is_dir():
        return ModelSource(kind="local", load_path=str(path))
    if path.exists() or looks_like_local_path(name):
        raise ModelLoadError(
            f"model.name_or_path: {name} is not a model folder or a .gguf file; give a folder with config.json "
            "and weights, a .gguf file, or a Hub model id such as openai-community/gpt2"
        )
    return ModelSource(kind="hub", load_path=name, revision=section.revision)


def load_base_model(
    section: ModelSection, task_type: str, label_names: list[str], *, seed: int, tokenizer_path: Path | None = None
) -> LoadedModel:
    """The base model for `task_type` and its tokenizer (the model's, or the one in `tokenizer_path`),
    with a pad token, in float32.

    `seed` is set just before loading, so a classification head that starts random starts the same
    every time the model is loaded: evaluating the base model again gives the same numbers.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, set_seed

    source = resolve_source(section)
    common: dict[str, Any] = {"revision": source.revision, "trust_remote_code": section.trust_remote_code}
    tokenizer_source = ModelSource(kind="local", load_path=str(tokenizer_path)) if tokenizer_path else source
    tokenizer = _load(_auto_tokenizer(), tokenizer_source, **common)
    model_options: dict[str, Any] = {"dtype": torch.float32, **common, **_quantization(section)}
    if task_type == "sequence-classification":
        auto_class = AutoModelForSequenceClassification
        model_options |= {
            "num_labels": len(label_names),
            "id2label": dict(enumerate(label_names)),
            "label2id": {label: index for index, label in enumerate(label_names)},
            "ignore_mismatched_sizes": True,  # a checkpoint's own head for other labels is replaced
        }
    else:
        auto_class = AutoModelForCausalLM
    set_seed(seed)
    model = _load(auto_class, source, **model_options)
    ensure_pad_token(tokenizer, model)
    return LoadedModel(model=model, tokenizer=tokenizer, source=source)


def _auto_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer


def _load(auto_class, source: ModelSource, **options: Any):
    try:
        return auto_class.from_pretrained(source.load_path, **options)
    except (OSError, ValueError, KeyError) as error:
        advice = "; check model.name_or_path and model.revision, and that the Hub is reachable" if source.kind == "hub" else ""
        raise ModelLoadError(f"cannot load {source.load_path} with {auto_class.__name__}: {_whole_message(error)}{advice}") from error


def check_model_fits(config: Config) -> None:
    """Refuse, before the base model's weights are loaded, a config the model cannot take: data.max_length
    beyond the positions it takes (its config.json), peft.target_modules naming modules it lacks, or
    a peft section PEFT refuses for it (tried on the model built on the meta device: no weights, no
    memory). Raises ConfigError listing the problems; a model whose config cannot be read passes
    (loading it reports why)."""
    problems = model_problems(config)
    if problems:
        raise ConfigError(problems, config.source)


def model_problems(config: Config) -> list[ConfigProblem]:
    """The problems `check_model_fits` raises."""
    import torch
    from transformers import AutoConfig

    source = resolve_source(config.model)
    options = {"revision": source.revision, "trust_remote_code": config.model.trust_remote_code}
    try:
        model_config = AutoConfig.from_pretrained(source.load_path, **options)
    except (OSError, ValueError, KeyError):
        return []
    problems = _position_problems(config, model_config)
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            skeleton = _auto_class(config.task.type).from_config(model_config, trust_remote_code=config.model.trust_remote_code)
    except Exception:  # an architecture without this task's head: loading it reports that, with its cause
        return problems
    return problems + _adapter_problems(config, skeleton)


def _position_problems(config: Config, model_config) -> list[ConfigProblem]:
    limit, attribute = next(
        ((value, name) for name in POSITION_LIMITS if isinstance(value := getattr(model_config, name, None), int) and value > 0),
        (None, None),
    )
    if limit is None:
        return []
    needed, what = config.data.max_length, f"data.max_length is {config.data.max_length} tokens"
    if config.task.type == "causal-lm":  # the prompt is cut to max_length; the answer follows it
        needed += config.task.max_new_tokens
        what += f", plus task.max_new_tokens ({config.task.max_new_tokens}) for the answer"
    if needed <= limit:
        return []
    room = limit - (needed - config.data.max_length)
    return [
        ConfigProblem(
            "data.max_length",
            f"{what}, but the base model takes at most {limit} positions ({attribute} in its config.json); "
            f"set data.max_length to {room} or less",
        )
    ]


def _adapter_problems(config: Config, skeleton) -> list[ConfigProblem]:
    """peft.target_modules against the model's module names (PEFT's rule: a name or the end of a dotted
    name, or a regular expression for the whole name), then PEFT itself on the model's skeleton."""
    import re

    from peft import get_peft_model

    names = [name for name, _ in skeleton.named_modules() if name]
    targets = config.peft.options.get("target_modules")
    if isinstance(targets, str) and targets != "all-linear" and not any(re.fullmatch(targets, name) for name in names):
        return [ConfigProblem("peft.target_modules", f"the pattern {targets!r} matches no module of the model; {_adaptable(skeleton)}")]
    if isinstance(targets, list):
        missing = [t for t in targets if not any(name == t or name.endswith(f".{t}") for name in names)]
        if missing:
            listed = ", ".join(map(repr, missing))
            return [ConfigProblem("peft.target_modules", f"the model has no module named {listed}; {_adaptable(skeleton)}")]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            get_peft_model(skeleton, config.peft.to_peft_config(config.task.type))
    except (ValueError, TypeError) as error:  # PEFT's own refusals: unsupported layers, no target found
        return [ConfigProblem("peft", f"PEFT cannot put this adapter on the model: {_whole_message(error)}; {_adaptable(skeleton)}")]
    except Exception:  # something the meta device does not support: the real model will say
        return []
    return []


def _adaptable(model) -> str:
    """'its layers an adapter can target include: query, key, value, dense, ...' (last name parts)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, Conv1D)
    found = list(dict.fromkeys(name.rsplit(".", 1)[-1] for name, module in model.named_modules() if name and isinstance(module, kinds)))
    more = f" and {len(found) - MODULES_LISTED} more" if len(found) > MODULES_LISTED else ""
    return f"its layers an adapter can target include: {', '.join(found[:MODULES_LISTED])}{more}"


def _auto_class(task_type: str):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForSequenceClassification if task_type == "sequence-classification" else AutoModelForCausalLM


def check_4bit_support(section: ModelSection) -> None:
    """Refuse 4-bit loading (QLoRA) where it cannot run: it needs a CUDA GPU and bitsandbytes."""
    if not section.load_in_4bit:
        return
    import importlib.util

    import torch

    missing = [
        what
        for what, present in (
            ("a CUDA GPU", torch.cuda.is_available()),
            ("the bitsandbytes package", importlib.util.find_spec("bitsandbytes") is not None),
        )
        if not present
    ]
    if missing:
        raise ModelLoadError(
            "model.load_in_4bit: 4-bit loading (also implied by peft.method: qlora) needs a CUDA GPU and the "
            f"bitsandbytes package, and this machine lacks {' and '.join(missing)}; run on a GPU machine with "
            "`pip install bitsandbytes`, or train on the full-precision model (peft.method: lora, model.load_in_4bit: false)"
        )


def _quantization(section: ModelSection) -> dict[str, Any]:
    """4-bit loading (QLoRA), which needs bitsandbytes and a CUDA GPU."""
    if not section.load_in_4bit:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    check_4bit_support(section)
    compute_dtype = torch.bfloat16 if environment.gpu_precision() == "bf16" else torch.float16
    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype, bnb_4bit_use_double_quant=True
        ),
        "dtype": compute_dtype,
    }


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> None:
    """Give the tokenizer a pad token (its end-of-sequence token, else its unknown token, else a new
    one) and tell the model, so batched inference knows which positions are padding."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


# --- the adapter ------------------------------------------------------------------------------


def attach_adapter(model: PreTrainedModel, section: PeftSection, task_type: str) -> PeftModel:
    """Wrap `model` in a trainable PeftModel built from the config's peft section.

    For sequence classification the classification head is trained in full and saved with the
    adapter (modules_to_save), so the published adapter reproduces the evaluated scores.
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    peft_config = section.to_peft_config(task_type)
    heads = classification_heads(model) if task_type == "sequence-classification" else []
    extra_heads = [head for head in heads if head not in HEAD_NAMES]  # PEFT adds classifier/score itself
    if extra_heads and hasattr(peft_config, "modules_to_save"):
        peft_config.modules_to_save = list(dict.fromkeys([*(peft_config.modules_to_save or []), *extra_heads]))
    if getattr(model, "is_loaded_in_4bit", False):  # the Trainer checkpoints gradients, as training.gradient_checkpointing says
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, peft_config)


def projects_chosen_positions(model) -> bool:
    """Whether the model's forward pass takes `logits_to_keep` (most transformers causal LMs: the
    vocabulary projection for chosen positions only) and no prompt-learning adapter shifts the
    positions by putting virtual tokens before the input."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return not prompt_learning(model) and "logits_to_keep" in inspect.signature(base.forward).parameters


def prompt_learning(model) -> bool:
    """Whether the model's active adapter learns virtual tokens that go before the input (prompt tuning)."""
    peft_config = getattr(model, "active_peft_config", None)
    return peft_config is not None and peft_config.is_prompt_learning


def classification_heads(model: PreTrainedModel) -> list[str]:
    """The names of the top-level modules with weights that are not the base model: the head."""
    backbone = getattr(model, model.base_model_prefix, None)
    return [
        name
        for name, module in model.named_children()
        if module is not backbone and any(True for _ in module.parameters())
    ]


def load_adapter(model: PreTrainedModel, adapter_dir: Path) -> PeftModel:
    """The trained adapter in `adapter_dir` on `model`, for inference."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir))


def adapter_fit_problem(model: PreTrainedModel, adapter_dir: Path) -> str | None:
    """Why the adapter in `adapter_dir` cannot be attached to `model`, or None when it can.

    Tried on a copy of `model` built on the meta device from its config (no weights, no memory), so
    `model` itself is never touched by an adapter that does not fit: PEFT's own refusal (a layer it
    targets that the model lacks, weights of other dimensions, an adapter_config.json it cannot read).
    A classification head trained for another number of labels than `model` has is said in those terms.
    """
    import torch
    from peft import PeftModel

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skeleton = type(model)(model.config)
    labels = _label_problem(skeleton, adapter_dir)
    if labels is not None:
        return labels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "copying ... to a meta parameter is a no-op": what is wanted here
            PeftModel.from_pretrained(skeleton, str(adapter_dir))
    except Exception as error:  # noqa: BLE001 - whatever PEFT or torch refuses, the adapter does not fit
        return f"the adapter{_targets(adapter_dir)} does not fit {_model_name(model)}: {_whole_message(error)}"
    return None


def _targets(adapter_dir: Path) -> str:
    """' (it targets q_proj, v_proj)', as adapter_config.json says, or '' when it does not say."""
    try:
        targets = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8")).get("target_modules")
    except (OSError, ValueError, AttributeError):
        return ""
    if isinstance(targets, list) and targets:
        return f" (it targets {', '.join(sorted(map(str, targets)))})"
    return f" (it targets {targets})" if isinstance(targets, str) else ""


def _label_problem(skeleton: PreTrainedModel, adapter_dir: Path) -> str | None:
    """'the adapter's classification head has 3 outputs ...' when a head tensor the adapter saved has
    another number of rows than the model's, where the model's has one per label."""
    labels = getattr(skeleton.config, "num_labels", None)
    weights = adapter_dir / "adapter_model.safetensors"
    if not classification_heads(skeleton) or not weights.is_file() or not labels:
        return None
    from safetensors import safe_open

    heads = tuple(f"{head}." for head in classification_heads(skeleton))
    shapes = dict(skeleton.state_dict().items())
    with safe_open(str(weights), "pt") as saved:
        for key in saved.keys():
            name = key.removeprefix("base_model.model.")
            if name.startswith(heads) and name in shapes and shapes[name].shape[0] == labels:
                outputs = saved.get_slice(key).get_shape()[0]
                if outputs != labels:
                    names = ", ".join(str(label) for label in skeleton.config.id2label.values())
                    return (
                        f"labels that do not match: the adapter's classification head ({name}) has {outputs} outputs, "
                        f"the evaluation data has {labels} labels ({names})"
                    )
    return None


def detach_adapter(peft_model: PeftModel) -> PreTrainedModel:
    """The base model as it was before `load_adapter`: the adapter's layers taken out (PEFT's unload,
    for the adapters that insert layers; prompt learning leaves the model as it was) and each module the
    adapter trained in full (modules_to_save: the classification head) put back as it was — PEFT's
    unload keeps the trained copy."""
    from peft.utils.other import AuxiliaryTrainingWrapper

    model = peft_model.get_base_model()
    originals = [(name, module.original_module) for name, module in model.named_modules() if isinstance(module, AuxiliaryTrainingWrapper)]
    if hasattr(peft_model.base_model, "unload"):
        model = peft_model.base_model.unload()
    for name, original in originals:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, original)
    return model


def _model_name(model: PreTrainedModel) -> str:
    return str(getattr(model.config, "_name_or_path", "") or type(model).__name__)


# --- facts for the card -----------------------------------------------------------------------


def model_facts(
    section: ModelSection, loaded: LoadedModel, peft_model: PeftModel, *, base_parameters: int, project: Path | None = None
) -> ModelFacts:
    """The base model's facts for run.json; a local path inside `project` is recorded relative to it."""
    trainable, total = peft_model.get_nb_trainable_parameters()
    metadata = _card_metadata(loaded.source)
    language = metadata.get("language")
    return ModelFacts(
        name_or_path=portable_path(section.name_or_path, project) if project else section.name_or_path,
        hub_id=base_model_hub_id(section, loaded.source),
        revision=section.revision,
        source=loaded.source.kind,
        gguf_file=loaded.source.gguf_file,
        architecture=type(loaded.model).__name__,
        model_type=loaded.model.config.model_type,
        num_parameters=base_parameters,
        trainable_parameters=trainable,
        total_parameters=total,
        dtype=str(loaded.model.dtype).removeprefix("torch."),
        trust_remote_code=section.trust_remote_code,
        load_in_4bit=section.load_in_4bit,
        license=metadata.get("license"),
        language=[language] if isinstance(language, str) else language,
        uses_chat_template=getattr(loaded.tokenizer, "chat_template", None) is not None,
    )


def base_model_hub_id(section: ModelSection, source: ModelSource) -> str | None:
    """The Hub id the card names as base model, or None when it cannot be known; never a local path.

    In order: model.hub_id; name_or_path when it is a Hub id (also for a .gguf file in a Hub repo);
    a local folder inside the Hub cache (models--owner--name/snapshots/...); a GGUF file's own
    record of the Hub repo it was converted from. A config.json's `_name_or_path` is not used: for a
    fine-tuned model saved with transformers 4 it names the model it was fine-tuned from.
    """
    if section.hub_id:
        return section.hub_id
    if source.kind == "hub" or (section.gguf_file is not None and not local_path(section.name_or_path).is_dir()):
        return section.name_or_path
    if source.kind == "local":
        for part in Path(source.load_path).resolve().parts:
            if match := HUB_CACHE_FOLDER.match(part):
                return f"{match['owner']}/{match['name']}"
        return None
    for key in ("general.source.repo_url", "general.source.url", "general.repo_url", "general.url"):
        if isinstance(url := source.gguf_metadata.get(key), str) and (match := HUB_URL.match(url)):
            return match["repo"]
    return None


def _card_metadata(source: ModelSource) -> dict[str, Any]:
    """license and language of the base model: from the GGUF file, or from its model card."""
    if source.kind == "gguf":
        return {"license": source.gguf_metadata.get("general.license"), "language": source.gguf_metadata.get("general.languages")}
    from huggingface_hub import hf_hub_download
    from huggingface_hub.repocard import metadata_load

    try:
        readme = (
            Path(source.load_path) / "README.md"
            if source.kind == "local"
            else Path(hf_hub_download(source.load_path, "README.md", revision=source.revision))
        )
        return metadata_load(readme) or {} if readme.is_file() else {}
    except Exception:  # no card, no network, a card without front matter: the facts are unknown
        return {}


def adapter_facts(method: str, adapter_dir: Path, *, model_type: str, author: str, configured: Collection[str] = ()) -> AdapterFacts:
    """The saved adapter's facts; `author`, `configured`: who set its values (see adapter_settings_set_by)."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    sizes = {str(path.relative_to(adapter_dir)): path.stat().st_size for path in sorted(adapter_dir.rglob("*")) if path.is_file()}
    target_modules = config.get("target_modules")
    return AdapterFacts(
        method=method,
        peft_type=config["peft_type"],
        config=config,
        target_modules=sorted(target_modules) if isinstance(target_modules, list) else None,
        modules_to_save=config.get("modules_to_save"),
        size_bytes=sum(size for name, size in sizes.items() if name.startswith("adapter_model")),
        files=list(sizes),
        file_sizes=sizes,
        set_by=adapter_settings_set_by(config, model_type, author=author, configured=configured),
    )


# adapter_config.json keys that record what the adapter is, not how it was configured.
ADAPTER_BOOKKEEPING = {"base_model_name_or_path", "revision", "peft_type", "task_type", "inference_mode", "peft_version", "auto_mapping"}


def adapter_settings_set_by(saved: dict[str, Any], model_type: str, *, author: str, configured: Collection[str] = ()) -> dict[str, str]:
    """Who set each setting of adapter_config.json (`saved`): `config` for the keys the config's peft
    section set (`configured`, its method's implied options too); `PEFT default` for a value that is
    the PEFT config class's default, or what PEFT chooses itself when that default is unset (the
    target modules of the base model's `model_type`, the classification head of a sequence
    classifier); `author` for any other value: `hubcard` when hubcard built the PEFT config, `your
    code` for an adapter built elsewhere (a notebook)."""
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

    config_class = PEFT_TYPE_TO_CONFIG_MAPPING[saved["peft_type"]]
    defaults = {field.name: _field_default(field) for field in dataclasses.fields(config_class)}
    target_mapping = getattr(PEFT_TYPE_TO_TUNER_MAPPING.get(saved["peft_type"]), "target_module_mapping", None) or {}
    if defaults.get("target_modules") is None and model_type in target_mapping:
        defaults["target_modules"] = target_mapping[model_type]
    if saved.get("task_type") == "SEQ_CLS" and "modules_to_save" in defaults and defaults["modules_to_save"] is None:
        defaults["modules_to_save"] = list(HEAD_NAMES)
    set_by = {}
    for key, value in saved.items():
        if key in ADAPTER_BOOKKEEPING or key not in defaults:
            continue
        if key in configured:
            set_by[key] = "config"
        else:
            set_by[key] = "PEFT default" if _comparable(value) == _comparable(defaults[key]) else author
    return set_by


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else None


def _comparable(value: Any) -> Any:
    """A value as adapter_config.json stores it: enums as their value, sets and lists of names sorted."""
    value = getattr(value, "value", value)
    if isinstance(value, (set, frozenset, tuple, list)):
        items = [_comparable(item) for item in value]
        return sorted(items, key=repr) if all(isinstance(item, str) for item in items) else items
    if isinstance(value, dict):
        return {str(key): _comparable(item) for key, item in value.items()}
    return value


# --- GGUF -------------------------------------------------------------------------------------


def _download(repo_id: str, filename: str, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except Exception as error:
        raise ModelLoadError(f"model.gguf_file: cannot download {filename} from {repo_id}: {_first_line(error)}") from error


def _gguf_source(gguf: Path) -> ModelSource:
    folder = dequantized_gguf(gguf)
    metadata = json.loads((folder / GGUF_METADATA_FILE).read_text(encoding="utf-8"))
    return ModelSource(kind="gguf", load_path=str(folder), gguf_file=gguf.name, gguf_metadata=metadata["general"])


def dequantized_gguf(gguf: Path) -> Path:
    """A transformers checkpoint (float32 weights, tokenizer) of a .gguf file, converted once and cached."""
    digest = file_sha256(gguf)
    folder = cache_dir() / "gguf" / digest[:32]
    if (folder / GGUF_METADATA_FILE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        _convert_gguf(gguf, staging)
        (staging / GGUF_METADATA_FILE).write_text(
            json.dumps({"file": gguf.name, "sha256": digest, "general": _gguf_general_fields(gguf)}, indent=2),
            encoding="utf-8",
        )
        try:
            staging.rename(folder)
        except OSError:  # converted meanwhile by another process
            if not (folder / GGUF_METADATA_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _convert_gguf(gguf: Path, output: Path) -> None:
    """transformers dequantizes GGUF tensors to float32 on load but keeps the model marked as quantized
    (Trainer then refuses it, save_pretrained too): rebuild it from its config without the mark."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        options = {"gguf_file": gguf.name}
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **options)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, **options)
    except (OSError, ValueError, KeyError, ImportError) as error:
        raise ModelLoadError(f"cannot read {gguf} as a GGUF model: {_first_line(error)}") from error
    config = quantized.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)


def _gguf_general_fields(gguf: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields
    return {name: _json_safe(fields[name].contents()) for name in fields if name.startswith("general.")}


def _json_safe(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return str(value)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, in hex (for an LFS file: its oid on the Hub)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _whole_message(error: BaseException, limit: int = 600) -> str:
    """The error's message on one line (transformers' messages list their causes on several lines)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
