"""A frozen preference snapshot written out for the trainers people use, under one export folder:
- `pairs.jsonl`: TRL preference rows (prompt, chosen, rejected, plus weight and provenance); when
  any prompt is a chat, every row is conversational (prompt messages, chosen/rejected as one
  assistant message each), since TRL wants one style per dataset;
- `hf/`: the same rows as an HF datasets directory (`save_to_disk`);
- `llamafactory/`: LLaMA-Factory's ranking format (alpaca style, or sharegpt when prompts are
  chats) with its `dataset_info.json` entry;
- `axolotl/`: Axolotl's DPO `chat_template.default` rows (messages, chosen, rejected as messages),
  `chatml.intel` rows (system, question, chosen, rejected) when every prompt is single-turn, and a
  config snippet naming both.
The worker writes them after a freeze; a download can also write them on demand. Each writer uses
its own temporary folder and renames it into place, so the two never delete each other's files."""
import json
import shutil
import tempfile
from pathlib import Path

from django.conf import settings

from webapp.annotation.models import PreferenceSnapshot

LLAMAFACTORY_NAME = "distillery_snapshot"
ZIPPED = ("hf", "llamafactory", "axolotl")  # export sub-folders offered as a zip download


def export_dir(snapshot: PreferenceSnapshot) -> Path:
    return Path(settings.DATA_DIR) / "snapshots" / f"{snapshot.pk}-{snapshot.content_hash[:12]}"


def _pairs(snapshot: PreferenceSnapshot):
    return snapshot.pairs.select_related("prompt").order_by("id").iterator(chunk_size=1000)


def is_conversational(snapshot: PreferenceSnapshot) -> bool:
    return snapshot.pairs.filter(prompt__messages__isnull=False).exists()


def _messages(pair) -> list:
    return pair.prompt.messages or [{"role": "user", "content": pair.prompt_text}]


def trl_rows(snapshot: PreferenceSnapshot):
    """TRL preference rows, standard (text prompts) or conversational (any chat prompt)."""
    chat = is_conversational(snapshot)
    for pair in _pairs(snapshot):
        row = ({"prompt": _messages(pair), "chosen": [{"role": "assistant", "content": pair.chosen_text}],
                "rejected": [{"role": "assistant", "content": pair.rejected_text}]} if chat else
               {"prompt": pair.prompt_text, "chosen": pair.chosen_text, "rejected": pair.rejected_text})
        row.update(weight=pair.weight, provenance={
            **pair.provenance, "snapshot": snapshot.name, "snapshot_hash": snapshot.content_hash, "prompt_id": pair.prompt_id,
            "chosen_generation": pair.chosen_id, "rejected_generation": pair.rejected_id})
        yield row


def llamafactory_rows(snapshot: PreferenceSnapshot, chat: bool):
    """LLaMA-Factory ranking data: alpaca {instruction, input, chosen, rejected}, or sharegpt
    {conversations: [{from, value}], chosen: {from, value}, rejected: {from, value}}."""
    if not chat:
        return ({"instruction": p.prompt_text, "input": "", "chosen": p.chosen_text, "rejected": p.rejected_text}
                for p in _pairs(snapshot))
    who = {"user": "human", "assistant": "gpt", "system": "system"}
    return ({"conversations": [{"from": who[m["role"]], "value": m["content"]} for m in _messages(p)],
             "chosen": {"from": "gpt", "value": p.chosen_text}, "rejected": {"from": "gpt", "value": p.rejected_text}}
            for p in _pairs(snapshot))


def llamafactory_info(chat: bool) -> dict:
    if not chat:
        columns = {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}
        return {LLAMAFACTORY_NAME: {"file_name": "data.json", "ranking": True, "columns": columns}}
    return {LLAMAFACTORY_NAME: {"file_name": "data.json", "formatting": "sharegpt", "ranking": True,
                                "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}}}


def axolotl_rows(snapshot: PreferenceSnapshot) -> tuple[list, list | None]:
    """(chat_template.default rows, chatml.intel rows or None when some prompt has several turns)."""
    template, intel = [], []
    for row, intel_row in _axolotl_stream(snapshot):
        template.append(row)
        if intel is not None and intel_row is not None:
            intel.append(intel_row)
        else:
            intel = None
    return template, intel


def _axolotl_stream(snapshot: PreferenceSnapshot):
    """(chat_template.default row, chatml.intel row or None when the prompt has several turns) per pair."""
    for pair in _pairs(snapshot):
        messages = _messages(pair)
        row = {"messages": messages, "chosen": {"role": "assistant", "content": pair.chosen_text},
               "rejected": {"role": "assistant", "content": pair.rejected_text}}
        system = [m["content"] for m in messages if m["role"] == "system"]
        turns = [m for m in messages if m["role"] != "system"]
        intel = ({"system": system[0] if system else "", "question": turns[0]["content"], "chosen": pair.chosen_text,
                  "rejected": pair.rejected_text} if len(turns) == 1 and len(system) <= 1 else None)
        yield row, intel


def _axolotl_yaml(folder: Path, with_intel: bool) -> str:
    lines = ["# Axolotl DPO: add one of these under `datasets:` (rl: dpo)", "datasets:",
             f"  - path: {folder / 'chat_template.jsonl'}", "    ds_type: json", "    split: train",
             "    type: chat_template.default", "    field_messages: messages", "    field_chosen: chosen",
             "    field_rejected: rejected"]
    if with_intel:
        lines += [f"  # - path: {folder / 'chatml_intel.jsonl'}", "  #   ds_type: json", "  #   split: train",
                  "  #   type: chatml.intel"]
    return "\n".join(lines) + "\n"


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_all(snapshot: PreferenceSnapshot, tmp: Path, final: Path) -> None:
    """Every format, each streamed from the pairs (a server-side iterator), so memory stays flat
    however many pairs the snapshot holds (issue 23)."""
    import datasets  # only when writing: the web process starts without it

    _write_jsonl(tmp / "pairs.jsonl", trl_rows(snapshot))
    # Arrow wants one type per column: nested provenance as JSON text. Written in batches to a cache
    # inside the temporary folder (keyed by this snapshot), then saved.
    datasets.Dataset.from_generator(_hf_rows, gen_kwargs={"snapshot_id": snapshot.pk, "content_hash": snapshot.content_hash},
                                    cache_dir=str(tmp / ".hf-cache")).save_to_disk(str(tmp / "hf"))
    shutil.rmtree(tmp / ".hf-cache", ignore_errors=True)
    chat = is_conversational(snapshot)
    (tmp / "llamafactory").mkdir()
    with open(tmp / "llamafactory" / "data.json", "w", encoding="utf-8") as fh:  # a JSON array, one element per line
        fh.write("[\n")
        for i, row in enumerate(llamafactory_rows(snapshot, chat)):
            fh.write((",\n" if i else "") + json.dumps(row, ensure_ascii=False))
        fh.write("\n]\n")
    (tmp / "llamafactory" / "dataset_info.json").write_text(json.dumps(llamafactory_info(chat), indent=2))
    (tmp / "axolotl").mkdir()
    with_intel = _write_axolotl(snapshot, tmp / "axolotl")
    (tmp / "axolotl" / "axolotl.yaml").write_text(_axolotl_yaml(final / "axolotl", with_intel))


def _hf_rows(snapshot_id: int, content_hash: str):
    snapshot = PreferenceSnapshot.objects.get(pk=snapshot_id)
    for row in trl_rows(snapshot):
        yield dict(row, provenance=json.dumps(row["provenance"]))


def _write_axolotl(snapshot: PreferenceSnapshot, folder: Path) -> bool:
    """axolotl_rows, streamed to chat_template.jsonl and chatml_intel.jsonl (the latter dropped
    as soon as a prompt has several turns). Returns whether chatml_intel.jsonl was kept."""
    intel_path = folder / "chatml_intel.jsonl"
    with open(folder / "chat_template.jsonl", "w", encoding="utf-8") as template, open(intel_path, "w", encoding="utf-8") as intel:
        for row, intel_row in _axolotl_stream(snapshot):
            template.write(json.dumps(row, ensure_ascii=False) + "\n")
            if intel_row is None:
                intel.close()
            elif not intel.closed:
                intel.write(json.dumps(intel_row, ensure_ascii=False) + "\n")
        keep = not intel.closed
    if not keep:
        intel_path.unlink(missing_ok=True)
    return keep


def snapshot_export(snapshot: PreferenceSnapshot) -> Path:
    """Writes every format under the snapshot's export folder; idempotent, and safe when the worker
    and an on-demand download write at once: each builds in its own temporary folder and renames it
    into place; whoever comes second finds the folder there and drops its copy."""
    target = export_dir(snapshot)
    if (target / "axolotl" / "axolotl.yaml").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_all(snapshot, tmp, target)
        if target.exists() and not (target / "axolotl" / "axolotl.yaml").exists():
            shutil.rmtree(target, ignore_errors=True)  # an older, incomplete export (fewer formats)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "axolotl" / "axolotl.yaml").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
