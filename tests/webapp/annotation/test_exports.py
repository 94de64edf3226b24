"""Snapshot exports read back by their consumers: a snapshot frozen from imported preference data
exports to TRL JSONL that TRL's DPOTrainer trains on (a tiny model, one step, standard and
conversational), LLaMA-Factory's ranking files and Axolotl's DPO rows load with `datasets` under
the column mapping their docs give (neither tool is small enough to install here), the worker and
an on-demand download exporting at once both succeed (B26), and an export already written is
served without importing `datasets` (B15)."""
import io
import json
import sys
import threading
import zipfile

import pytest
from django.db import connection

from tests.webapp.annotation.test_preference_import import EXPECTED, _parse
from webapp.annotation import exports, snapshots
from webapp.annotation.preference_store import preferences_import

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    return tmp_path


def _snapshot(project, *samples):
    for name in samples:
        preferences_import(project=project, dataset=name.split(".")[0], rows=_parse(name).rows)
    return snapshots.snapshot_freeze(project=project, name="imported", source_filter="both")


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_standard_snapshot_exports_every_format(project, data_dir):
    snapshot = _snapshot(project, "trl_standard.jsonl", "chatbot_arena.jsonl")
    folder = exports.snapshot_export(snapshot)
    trl = _jsonl(folder / "pairs.jsonl")
    assert len(trl) == snapshot.pair_count == 5  # 3 TRL pairs + 2 decisive Arena battles (ties dropped)
    assert trl[0]["prompt"] == "What is 2 + 3?" and trl[0]["chosen"] == "5" and trl[0]["rejected"] == "6"

    import datasets
    info = json.loads((folder / "llamafactory" / "dataset_info.json").read_text())["distillery_snapshot"]
    assert info["ranking"] is True and info["file_name"] == "data.json" and "formatting" not in info  # alpaca
    rows = datasets.load_dataset("json", data_files=str(folder / "llamafactory" / info["file_name"]), split="train")
    columns = info["columns"]
    assert rows.num_rows == 5 and rows[0][columns["prompt"]] == "What is 2 + 3?" and rows[0][columns["chosen"]] == "5"

    axolotl = datasets.load_dataset("json", data_files=str(folder / "axolotl" / "chat_template.jsonl"), split="train")
    assert axolotl[0]["messages"] == [{"role": "user", "content": "What is 2 + 3?"}]
    assert axolotl[0]["chosen"] == {"role": "assistant", "content": "5"}
    intel = datasets.load_dataset("json", data_files=str(folder / "axolotl" / "chatml_intel.jsonl"), split="train")
    assert set(intel.column_names) == {"system", "question", "chosen", "rejected"} and intel[0]["question"] == "What is 2 + 3?"
    assert "type: chat_template.default" in (folder / "axolotl" / "axolotl.yaml").read_text()


def test_chat_snapshot_is_conversational_everywhere(project, data_dir):
    snapshot = _snapshot(project, "hh_rlhf.jsonl", "trl_conversational.jsonl")
    folder = exports.snapshot_export(snapshot)
    trl = _jsonl(folder / "pairs.jsonl")
    assert all(isinstance(r["prompt"], list) and r["chosen"][0]["role"] == "assistant" for r in trl)
    text_prompt = next(r for r in trl if r["chosen"][0]["content"] == "6")  # HH's single-turn prompt, now a user turn
    assert text_prompt["prompt"] == [{"role": "user", "content": "What is 10 - 4?"}]
    info = json.loads((folder / "llamafactory" / "dataset_info.json").read_text())["distillery_snapshot"]
    assert info["formatting"] == "sharegpt" and info["ranking"] is True
    multi = next(r for r in json.loads((folder / "llamafactory" / "data.json").read_text()) if r["chosen"]["value"] == "god")
    assert [m["from"] for m in multi["conversations"]] == ["human", "gpt", "human"]
    assert not (folder / "axolotl" / "chatml_intel.jsonl").exists()  # a multi-turn prompt has no single question


def test_downloads_zip_each_format(project, data_dir, client_for, researcher):
    snapshot = _snapshot(project, "trl_standard.jsonl")
    client = client_for(researcher)
    for fmt, member in (("hf", "dataset_info.json"), ("llamafactory", "dataset_info.json"), ("axolotl", "chat_template.jsonl")):
        response = client.get(f"/p/{project.slug}/snapshots/{snapshot.pk}/download/{fmt}")
        assert response.status_code == 200 and response["Content-Disposition"].endswith(f'-{fmt}.zip"')
        names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
        assert any(n.endswith(member) for n in names)
    assert client.get(f"/p/{project.slug}/snapshots/{snapshot.pk}/download/pickle").status_code == 404


@pytest.mark.django_db(transaction=True)  # the two writers are threads with their own connections
def test_worker_and_download_exporting_at_once_both_succeed(project, data_dir, monkeypatch):
    """B26: both writers are inside the export at the same moment (a barrier in the HF write)."""
    import datasets

    snapshot = _snapshot(project, "trl_standard.jsonl")
    barrier, save = threading.Barrier(2, timeout=30), datasets.Dataset.save_to_disk

    def save_when_both_are_here(self, path, *args, **kwargs):
        barrier.wait()
        return save(self, path, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", save_when_both_are_here)
    outcomes = []

    def export():
        try:
            outcomes.append(exports.snapshot_export(snapshot))
        except Exception as exc:  # the old shared ".tmp" folder: one writer deletes the other's files
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=export) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [exports.export_dir(snapshot)] * 2
    assert len(_jsonl(exports.export_dir(snapshot) / "pairs.jsonl")) == 3
    assert datasets.load_from_disk(str(exports.export_dir(snapshot) / "hf")).num_rows == 3
    assert [p.name for p in exports.export_dir(snapshot).parent.iterdir()] == [exports.export_dir(snapshot).name]


def test_an_existing_export_is_served_without_datasets(project, data_dir, monkeypatch):
    """B15: the web process may lack `datasets`; a finished export must not need it."""
    snapshot = _snapshot(project, "trl_standard.jsonl")
    exports.snapshot_export(snapshot)
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now raises ImportError
    assert exports.snapshot_export(snapshot) == exports.export_dir(snapshot)


@pytest.mark.slow
@pytest.mark.parametrize("samples", [(name,) for name in sorted(EXPECTED)] +
                         [("trl_standard.jsonl", "label_studio_pairwise.json"), ("ultrafeedback_binarized.jsonl", "hh_rlhf.jsonl")])
def test_dpo_trainer_accepts_the_trl_export(project, data_dir, tiny_demo_dir, tmp_path, samples):
    """The issue's bar: each format's sample file (and mixes of text and chat prompts) → snapshot →
    TRL JSONL → DPOTrainer trains a step on it."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    snapshot = _snapshot(project, *samples)
    pairs = exports.snapshot_export(snapshot) / "pairs.jsonl"
    train = datasets.load_dataset("json", data_files=str(pairs), split="train").remove_columns(["weight", "provenance"])
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_dir / "student")
    model = AutoModelForCausalLM.from_pretrained(tiny_demo_dir / "student", torch_dtype=torch.float32)
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                     use_cpu=True, save_strategy="no", logging_steps=1, disable_tqdm=True, max_length=128)
    trainer = DPOTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    trainer.train()
    assert trainer.state.global_step == 1
    assert any("rewards/accuracies" in entry for entry in trainer.state.log_history)
