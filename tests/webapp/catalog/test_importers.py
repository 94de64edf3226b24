"""Prompt file validation: every format, and malformed files (bad encoding, missing fields, huge
lines, wrong types) rejected with line-numbered errors."""
import io
import json
import zipfile

import pytest

from webapp.catalog.importers import MAX_LINE_BYTES, MAX_ZIP_MEMBERS, parse_path, parse_upload


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def test_jsonl_rows_and_fields():
    result = parse_upload(jsonl({"prompt": " What is 2+2? ", "family": "add", "answer": "4"}, "",
                                {"messages": [{"role": "user", "content": "Hi"}], "split": "test", "tags": "a, b"}),
                          filename="p.jsonl")
    assert result.ok and result.format == "jsonl"
    assert result.rows[0] == {"text": "What is 2+2?", "split": "train", "tags": ["add"], "metadata": {"family": "add", "answer": "4"}}
    assert result.rows[1] == {"messages": [{"role": "user", "content": "Hi"}], "split": "eval", "tags": ["a", "b"], "metadata": {}}


def test_csv_with_quoted_newlines():
    data = b'prompt,split,topic\n"Reverse: a b\n\nc",eval,words\nCount: x y,,letters\n'
    result = parse_upload(data, filename="p.csv")
    assert result.ok, result.errors
    assert result.rows[0]["text"] == "Reverse: a b\n\nc" and result.rows[0]["split"] == "eval"
    assert result.rows[1] == {"text": "Count: x y", "split": "train", "tags": [], "metadata": {"topic": "letters"}}


def test_parquet_and_hf_directory(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"prompt": ["one", "two"], "score": [1.5, 2.0]}), buffer)
    result = parse_upload(buffer.getvalue(), filename="p.parquet")
    assert result.ok and [r["text"] for r in result.rows] == ["one", "two"] and result.rows[1]["metadata"] == {"score": 2.0}

    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": "a"}]),
                          "test": datasets.Dataset.from_list([{"prompt": "b"}])}).save_to_disk(str(tmp_path / "ds"))
    result = parse_path(tmp_path / "ds")
    assert result.ok and [(r["text"], r["split"]) for r in result.rows] == [("a", "train"), ("b", "eval")]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for path in (tmp_path / "ds").rglob("*"):
            if path.is_file():
                z.write(path, f"ds/{path.relative_to(tmp_path / 'ds')}")
    result = parse_upload(archive.getvalue(), filename="ds.zip")
    assert result.ok and len(result.rows) == 2


@pytest.mark.parametrize("data,filename,message", [
    (b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n', "p.jsonl", "line 2: not valid UTF-8 (byte 0xe9 at column 16)"),
    (jsonl({"prompt": "ok"}, {"answer": "4"}), "p.jsonl", "line 2: missing field 'prompt'"),
    (jsonl({"prompt": "ok"}, {"prompt": 42}), "p.jsonl", "line 2: 'prompt' must be a string, got int"),
    (jsonl({"prompt": "ok"}, {"prompt": "x", "tags": [1]}), "p.jsonl", "line 2: 'tags' must be a list of strings"),
    (jsonl({"prompt": "ok"}, {"prompt": "x", "split": "holdout"}), "p.jsonl", "line 2: 'split' must be train or eval"),
    (jsonl({"prompt": "ok"}, {"messages": [{"role": "robot", "content": "x"}]}), "p.jsonl", "line 2: 'messages' must be"),
    (jsonl({"prompt": "ok"}, "[1, 2]"), "p.jsonl", "line 2: expected an object"),
    (jsonl({"prompt": "ok"}, "{broken"), "p.jsonl", "line 2: not valid JSON"),
    (jsonl({"prompt": "ok"}, {"prompt": "x" * (MAX_LINE_BYTES + 10)}), "p.jsonl", "line 2: line is"),
    (b"", "p.jsonl", "no prompts found"),
    (b"question_text,split\nhello,train\n", "p.csv", "line 1: the header needs a 'prompt'"),
    (b"prompt,split\nhello,train,extra\n", "p.csv", "line 2: 1 more value(s) than header columns"),
    (b"prompt\n\xff\xfe\n", "p.csv", "line 2: not valid UTF-8"),
    (b"not parquet at all", "p.parquet", "not a readable parquet file"),
    (b"PK not a zip", "p.zip", "not a valid .zip"),
    (b"prompt: hi", "p.yaml", "unknown file type"),
])
def test_malformed_files_give_clear_errors(data, filename, message):
    result = parse_upload(data, filename=filename)
    assert not result.ok
    assert any(message in e for e in result.errors), result.errors


def test_all_errors_reported_at_once():
    result = parse_upload(jsonl({"prompt": 1}, {"prompt": "fine"}, {"nope": 2}, "{bad"), filename="p.jsonl")
    assert [e.split(":")[0] for e in result.errors] == ["line 1", "line 3", "line 4"]


def _zip(members: dict) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return archive.getvalue()


def test_zip_bomb_is_refused_before_unpacking(settings, tmp_path, monkeypatch):
    settings.MAX_UPLOAD_BYTES = 1024 * 1024  # caps the unpacked size at 8 MiB
    bomb = _zip({"ds/state.json": b"{}", "ds/data-00000-of-00001.arrow": bytes(64 * 1024 * 1024)})
    assert len(bomb) < 200_000  # a small upload, far under the upload limit...
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # ...that must write nothing to disk
    result = parse_upload(bomb, filename="ds.zip")
    assert not result.ok and "unpacks to 67,108,866 bytes; at most 8,388,608" in result.errors[0]
    assert list(tmp_path.iterdir()) == []


def test_zip_with_too_many_members_is_refused():
    many = _zip({f"ds/f{i}.json": b"{}" for i in range(MAX_ZIP_MEMBERS + 1)})
    result = parse_upload(many, filename="ds.zip")
    assert not result.ok and f"holds {MAX_ZIP_MEMBERS + 1} files; at most {MAX_ZIP_MEMBERS}" in result.errors[0]
