"""Preference data people already have, in: each format's sample file (tests/webapp/annotation/
samples/) parses to the expected prompts, answers and votes; bad records are reported with their
line numbers and nothing is written; stored rows become complete comparisons with imported
judgements that a snapshot can be frozen from."""
import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from webapp.annotation import preference_import as pi
from webapp.annotation import snapshots
from webapp.annotation.models import Comparison, Judgement
from webapp.annotation.preference_store import preferences_import
from webapp.generation.models import Generation

SAMPLES = Path(__file__).parent / "samples"
# sample file -> (format, comparisons, judgements, first row's answers best first)
EXPECTED = {
    "trl_standard.jsonl": ("trl", 3, 3, ["5", "6"]),
    "trl_conversational.jsonl": ("trl", 3, 3, ["8", "9"]),
    "ultrafeedback_binarized.jsonl": ("ultrafeedback", 3, 3, ["Red is a primary colour.", "Green, probably."]),
    "hh_rlhf.jsonl": ("hh_rlhf", 2, 2, ["6", "5"]),
    "chatbot_arena.jsonl": ("arena", 4, 4, ["9", "6"]),
    "label_studio_pairwise.json": ("label_studio_pairwise", 3, 4, ["7", "8"]),
    "label_studio_ranker.json": ("label_studio_ranker", 2, 2, ["10", "7", "12"]),
    "argilla_ranking.json": ("argilla", 2, 2, ["6", "5"]),
    "argilla_rating.json": ("argilla", 2, 3, ["4", "16"]),
}


def _parse(name, **kwargs):
    return pi.parse_preferences((SAMPLES / name).read_bytes(), filename=name, **kwargs)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_file_parses_to_its_votes(name):
    fmt, comparisons, judgements, best_first = EXPECTED[name]
    result = _parse(name)
    assert result.errors == [] and result.format == fmt
    assert len(result.rows) == comparisons and sum(len(r.votes) for r in result.rows) == judgements
    first = result.rows[0]
    order = [first.candidates[i]["text"] for group in first.votes[0]["ranking"] for i in group]
    assert order == best_first


def test_hh_rlhf_multi_turn_prompt_keeps_the_earlier_turns():
    row = _parse("hh_rlhf.jsonl").rows[1]
    assert [m["role"] for m in row.prompt] == ["user", "assistant", "user"]
    assert row.prompt[-1]["content"] == "Spell 'dog' backwards."
    assert [c["text"] for c in row.candidates] == ["god", "dgo"]


def test_arena_ties_and_both_bad_keep_their_meaning():
    rows = _parse("chatbot_arena.jsonl").rows
    assert rows[1].votes[0]["ranking"] == [[0, 1]] and not rows[1].votes[0]["both_bad"]
    assert rows[2].votes[0]["both_bad"]
    assert rows[3].votes[0]["ranking"] == [[1], [0]]
    assert [c["model"] for c in rows[0].candidates] == ["vicuna-13b", "alpaca-13b"]


def test_argilla_ranks_with_ties_and_skips_drafts():
    rows = _parse("argilla_ranking.json").rows
    assert [v["rater"] for v in rows[0].votes] == ["u-ann"]  # u-bob's response is a draft
    assert rows[1].votes[0]["ranking"] == [[1, 2], [0]]


def test_bad_records_are_reported_by_line_and_all_at_once():
    lines = [json.dumps({"prompt": "ok", "chosen": "a", "rejected": "b"}),
             "{not json",
             json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"}),
             json.dumps({"model_a": "x", "model_b": "y", "winner": "model_c", "conversation_a": [], "conversation_b": []}),
             json.dumps({"prompt": 3, "chosen": "a", "rejected": "b"})]
    result = pi.parse_preferences("\n".join(lines).encode(), filename="mixed.jsonl")
    assert [e.split(":")[0] for e in result.errors] == ["line 2", "line 3", "line 4", "line 5"]
    assert "same text" in result.errors[1] and "TRL" in result.errors[2] and "'prompt' must be a string or a list of messages, got int" in result.errors[3]


def test_json_array_errors_name_the_line_where_the_record_starts():
    tasks = json.loads((SAMPLES / "label_studio_pairwise.json").read_text())
    tasks[2]["annotations"][0]["result"][0]["value"]["selected"] = "middle"
    text = json.dumps(tasks, indent=2)
    result = pi.parse_preferences(text.encode(), filename="ls.json")
    start = text.splitlines().index("  {", 2 + text.splitlines().index("  {", 2 + text.splitlines().index("  {"))) + 1
    assert result.errors == [f"line {start}: pairwise 'value.selected' must be left or right, got 'middle'"]


def test_forced_format_refuses_other_records():
    result = _parse("trl_standard.jsonl", fmt="arena")
    assert result.errors and all(e.startswith("line ") and "missing field 'model_a'" in e for e in result.errors)


def test_empty_and_binary_files_are_refused_cleanly():
    assert pi.parse_preferences(b"", filename="x.jsonl").errors == ["file: no preference records found (the file is empty)"]
    assert "UTF-8" in pi.parse_preferences(b"\xff\xfe{}\n", filename="x.jsonl").errors[0]
    assert pi.parse_preferences(b"[1, 2]", filename="x.json").errors[0].startswith("line 1: not a preference record")


@pytest.mark.django_db
def test_import_stores_comparisons_and_imported_judgements(project):
    rows = _parse("label_studio_pairwise.json").rows
    counts = preferences_import(project=project, dataset="ls-pairs", rows=rows)
    assert counts["comparisons"] == 3 and counts["judgements"] == 4
    comparisons = Comparison.objects.filter(project=project, source="imported")
    assert comparisons.count() == 3 and set(comparisons.values_list("status", flat=True)) == {"complete"}
    names = set(Judgement.objects.filter(comparison__project=project).values_list("judge_name", flat=True))
    assert names == {"import:ls-pairs:1", "import:ls-pairs:2"}
    assert set(Judgement.objects.values_list("source", flat=True)) == {"imported"}
    first = comparisons.order_by("id").first()
    judgement = first.judgements.order_by("id").first()
    chosen = Generation.objects.get(pk=judgement.ranking[0][0])
    assert judgement.verdict == "a" and chosen.text == "7" and chosen.origin == "import"
    assert chosen.model_version.name == "imported:ls-pairs" and chosen.prompt.text == "What is 6 + 1?"


@pytest.mark.django_db
def test_second_import_under_the_same_name_is_refused_and_writes_nothing(project):
    rows = _parse("trl_standard.jsonl").rows
    preferences_import(project=project, dataset="trl", rows=rows)
    before = (Comparison.objects.count(), Generation.objects.count(), Judgement.objects.count())
    with pytest.raises(ValidationError, match="already imported"):
        preferences_import(project=project, dataset="trl", rows=rows)
    assert (Comparison.objects.count(), Generation.objects.count(), Judgement.objects.count()) == before
    preferences_import(project=project, dataset="trl-2", rows=rows)  # a new name is a new source
    assert Comparison.objects.count() == 2 * before[0]


@pytest.mark.django_db
def test_a_failure_half_way_leaves_nothing_behind(project, monkeypatch):
    from webapp.annotation import preference_store

    monkeypatch.setattr(preference_store, "_judgements", lambda *a: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        preferences_import(project=project, dataset="arena", rows=_parse("chatbot_arena.jsonl").rows)
    assert not Comparison.objects.exists() and not Generation.objects.exists()
    assert not project.prompt_sets.exists() and not project.model_versions.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_snapshot_freezes_from_each_import(project, name, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    preferences_import(project=project, dataset=name.split(".")[0], rows=_parse(name).rows)
    snapshot = snapshots.snapshot_freeze(project=project, name="from-import", source_filter="both")
    pair = snapshot.pairs.order_by("id").first()
    _, _, _, best_first = EXPECTED[name]
    assert snapshot.pair_count >= 1 and pair.chosen_text == best_first[0]
    assert all(p.provenance["judgements"] for p in snapshot.pairs.all())


@pytest.mark.django_db
def test_placeholder_models_of_an_import_are_not_offered_for_generation(client_for, project, researcher):
    preferences_import(project=project, dataset="arena", rows=_parse("chatbot_arena.jsonl").rows)
    html = client_for(researcher).get(f"/p/{project.slug}/generation/").content.decode()
    assert project.model_versions.filter(source="import:arena").count() == 3
    assert "imported:arena" not in html
    assert "Import preference data you already have" in client_for(researcher).get(f"/p/{project.slug}/comparisons/").content.decode()
