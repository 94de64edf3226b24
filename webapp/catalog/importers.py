"""Prompt files into validated rows, before anything touches the database: JSONL, CSV, parquet and
HF `datasets` directories (a directory on disk, or a .zip of one when uploaded). Every problem is
reported with its line (or row) number, all of them at once, so a user fixes a file in one pass;
a file with any error imports nothing. Rows come out as `prompts_bulk_create` wants them:
{text | messages, split, tags, metadata}."""
import csv
import io
import json
import math
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from webapp import json_bounds
from webapp.catalog.models import Split

MAX_LINE_BYTES = 64 * 1024  # one prompt per line; longer lines are almost always a broken file
MAX_PROMPT_CHARS = 32_000
MAX_ERRORS = 50  # past this many, the file is clearly of the wrong kind; stop listing
MAX_ROWS = 200_000
MAX_ZIP_MEMBERS = 1000  # an uploaded HF directory: a few files per split, or shards of big ones
TEXT_FIELDS = ("prompt", "text", "instruction", "question")
RESERVED = {*TEXT_FIELDS, "messages", "split", "tags"}
SPLIT_ALIASES = {"train": Split.TRAIN, "eval": Split.EVAL, "test": Split.EVAL, "validation": Split.EVAL,
                 "valid": Split.EVAL, "dev": Split.EVAL}
MESSAGE_ROLES = {"system", "user", "assistant"}
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
           ".zip": "hf"}


@dataclass
class ParseResult:
    format: str
    rows: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)

    def error(self, where: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{where}: {message}")
        elif len(self.errors) == MAX_ERRORS:
            self.errors.append("… more errors not shown; fix the ones above first.")


def detect_format(name: str) -> str | None:
    return FORMATS.get(Path(name).suffix.lower())


def parse_upload(data: bytes, *, filename: str, default_split: str = Split.TRAIN) -> ParseResult:
    """Parses an uploaded file's bytes by its extension."""
    fmt = detect_format(filename)
    if fmt is None:
        return ParseResult("unknown", errors=[f"{filename}: unknown file type; use .jsonl, .csv, .parquet "
                                              "or a .zip of an HF datasets directory (save_to_disk)."])
    if fmt == "hf":
        return _parse_hf_zip(data, default_split)
    return {"jsonl": _parse_jsonl, "csv": _parse_csv, "parquet": _parse_parquet}[fmt](data, default_split)


def parse_path(path, *, default_split: str = Split.TRAIN) -> ParseResult:
    """Parses a file, or an HF `datasets` directory, on the local disk (the management command)."""
    path = Path(path)
    if path.is_dir():
        return _parse_hf_dir(path, default_split)
    if not path.is_file():
        return ParseResult("unknown", errors=[f"{path}: no such file or directory"])
    return parse_upload(path.read_bytes(), filename=path.name, default_split=default_split)


def normalize_record(record, where: str, default_split: str, result: ParseResult) -> None:
    """Checks one record and appends the row (or errors naming `where`) to `result`."""
    if not isinstance(record, dict):
        return result.error(where, f"expected an object with a 'prompt' field, got {type(record).__name__}")
    before = len(result.errors)
    text, messages = _content(record, where, result)
    split = _split(record.get("split"), default_split, where, result)
    tags = _tags(record, where, result)
    try:
        extra = {k: v for k, v in record.items() if k not in RESERVED and not _missing(v)}
        json_bounds.check(extra)  # before _plain's recursion
        metadata = {k: _plain(v) for k, v in extra.items()}
        json_bounds.check(metadata)  # NaN/1e309 inside (jsonb would refuse them at commit, far from the line)
        json.dumps(metadata)
    except ValueError as exc:
        metadata = {}
        result.error(where, f"extra fields: {exc}")
    except TypeError:
        metadata = {}
        result.error(where, "extra fields must be JSON values (strings, numbers, lists, objects)")
    if len(result.errors) == before:
        row = {"split": split, "tags": tags, "metadata": metadata}
        row.update({"messages": messages} if messages is not None else {"text": text})
        result.rows.append(row)


def _content(record, where, result):
    text_field = next((f for f in TEXT_FIELDS if not _missing(record.get(f))), None)
    messages = record.get("messages")
    if text_field is None and _missing(messages):
        result.error(where, "missing field 'prompt' (or 'text', or chat 'messages')")
        return "", None
    if text_field is not None:
        text = record[text_field]
        if not isinstance(text, str):
            result.error(where, f"'{text_field}' must be a string, got {type(text).__name__} ({str(text)[:40]!r})")
            return "", None
        if not text.strip():
            result.error(where, f"'{text_field}' is empty")
        elif len(text) > MAX_PROMPT_CHARS:
            result.error(where, f"'{text_field}' is {len(text):,} characters, over the {MAX_PROMPT_CHARS:,} limit")
        return text.strip(), None
    if isinstance(messages, str):  # CSV cells hold JSON text
        try:
            messages = json_bounds.loads(messages)
        except ValueError as exc:
            result.error(where, f"'messages' is not valid JSON ({getattr(exc, 'msg', exc)})")
            return "", None
    messages = _plain(messages)
    ok = isinstance(messages, list) and messages and all(
        isinstance(m, dict) and m.get("role") in MESSAGE_ROLES and isinstance(m.get("content"), str) for m in messages)
    if not ok:
        result.error(where, "'messages' must be a non-empty list of {role: system|user|assistant, content: string}")
        return "", None
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    if sum(len(m["content"]) for m in messages) > MAX_PROMPT_CHARS:
        result.error(where, f"'messages' hold over {MAX_PROMPT_CHARS:,} characters")
    return "", messages


def _split(value, default_split, where, result):
    if _missing(value) or value == "":
        return default_split
    split = SPLIT_ALIASES.get(str(value).strip().lower()) if isinstance(value, str) else None
    if split is None:
        result.error(where, f"'split' must be train or eval (test/validation count as eval), got {value!r}")
    return split or default_split


def _tags(record, where, result):
    tags = _plain(record.get("tags"))
    if _missing(tags) or tags == "":
        tags = []
    elif isinstance(tags, str):
        tags = [t.strip() if isinstance(t, str) else t
                for t in (json_bounds.loads(tags) if tags.startswith("[") and _is_json(tags) else tags.split(","))]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        result.error(where, "'tags' must be a list of strings or a comma-separated string")
        return []
    if any(len(t) > 64 for t in tags):
        result.error(where, "a tag is longer than 64 characters")
    family = record.get("family")
    if isinstance(family, str) and family and family not in tags:
        tags.append(family)  # the demo world's task family doubles as a filterable tag
    return [t for t in tags if t]


def _is_json(text: str) -> bool:
    try:
        json_bounds.loads(text)
        return True
    except ValueError:
        return False


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value):
    """numpy/pyarrow scalars and arrays (from parquet / datasets) into plain JSON-able Python."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _lines(data: bytes, result: ParseResult):
    """Yields (line number, decoded line) for non-blank lines, recording encoding and size errors."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), 1):
        if len(raw) > MAX_LINE_BYTES:
            result.error(f"line {number}", f"line is {len(raw) / 1024:,.0f} KB, over the {MAX_LINE_BYTES // 1024} KB limit")
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.error(f"line {number}", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                                           "save the file as UTF-8")
            continue
        if line.strip():
            yield number, line.rstrip("\r")


def _parse_jsonl(data: bytes, default_split: str) -> ParseResult:
    result = ParseResult("jsonl")
    for number, line in _lines(data, result):
        try:
            record = json_bounds.loads(line)
        except json.JSONDecodeError as exc:
            result.error(f"line {number}", f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except ValueError as exc:  # nested too deep, NaN, a number out of range
            result.error(f"line {number}", f"not stored: {exc}")
            continue
        normalize_record(record, f"line {number}", default_split, result)
        if len(result.rows) > MAX_ROWS:
            result.error(f"line {number}", f"more than {MAX_ROWS:,} prompts; split the file")
            break
    if not result.rows and not result.errors:
        result.error("file", "no prompts found (the file is empty)")
    return result


def _parse_csv(data: bytes, default_split: str) -> ParseResult:
    result = ParseResult("csv")
    for _ in _lines(data, result):  # validates encoding and line sizes, line by line
        pass
    if result.errors:
        return result
    text = data.decode("utf-8-sig")
    csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or not ({*TEXT_FIELDS, "messages"} & {f.strip() for f in reader.fieldnames}):
        result.error("line 1", f"the header needs a 'prompt' (or 'text' / 'messages') column; got {reader.fieldnames}")
        return result
    try:
        for record in reader:
            number = reader.line_num
            if None in record:
                result.error(f"line {number}", f"{len(record[None])} more value(s) than header columns")
                continue
            record = {k.strip(): (v if v != "" else None) for k, v in record.items()}
            normalize_record(record, f"line {number}", default_split, result)
    except csv.Error as exc:
        result.error(f"line {reader.line_num}", f"malformed CSV ({exc})")
    if not result.rows and not result.errors:
        result.error("file", "no prompts found (only a header)")
    return result


def _parse_records(records, fmt: str, default_split: str, split_of=None) -> ParseResult:
    result = ParseResult(fmt)
    for index, record in enumerate(records, 1):
        split = split_of(index) if split_of else default_split
        normalize_record(record, f"row {index}", split, result)
        if len(result.rows) > MAX_ROWS:
            result.error(f"row {index}", f"more than {MAX_ROWS:,} prompts; split the file")
            break
    if not result.rows and not result.errors:
        result.error("file", "no prompts found (the table is empty)")
    return result


def _parse_parquet(data: bytes, default_split: str) -> ParseResult:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a broken file
        return ParseResult("parquet", errors=[f"file: not a readable parquet file ({exc})"])
    return _parse_records(table.to_pylist(), "parquet", default_split)


def _parse_hf_dir(path: Path, default_split: str) -> ParseResult:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # FileNotFoundError, or datasets' own errors for a foreign directory
        return ParseResult("hf", errors=[f"{path.name}: not an HF datasets directory saved with save_to_disk ({exc})"])
    if isinstance(loaded, datasets.DatasetDict):
        records, splits = [], []
        for name, part in loaded.items():
            split = SPLIT_ALIASES.get(name.lower(), default_split)
            for record in part:
                records.append(record)
                splits.append(split)
        result = _parse_records(records, "hf", default_split, split_of=lambda i: splits[i - 1])
    else:
        result = _parse_records(list(loaded), "hf", default_split)
    return result


def max_unzipped_bytes() -> int:
    """An uploaded archive may unpack to 8× the upload limit (Arrow data compresses a few times)."""
    from django.conf import settings

    return 8 * settings.MAX_UPLOAD_BYTES


def _parse_hf_zip(data: bytes, default_split: str) -> ParseResult:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return ParseResult("hf", errors=["file: not a valid .zip archive"])
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        return ParseResult("hf", errors=[f"file: the archive holds {len(members)} files; at most {MAX_ZIP_MEMBERS} "
                                         "are accepted (an HF datasets directory has a few per split)"])
    unpacked, cap = sum(m.file_size for m in members), max_unzipped_bytes()
    if unpacked > cap:  # zipfile never inflates a member past its declared size, so this bound holds
        return ParseResult("hf", errors=[f"file: the archive unpacks to {unpacked:,} bytes; at most {cap:,} are accepted"])
    with tempfile.TemporaryDirectory() as tmp, archive:
        for member in members:
            target = (Path(tmp) / member.filename).resolve()
            if not target.is_relative_to(Path(tmp).resolve()):  # zip-slip: refuse paths escaping the folder
                return ParseResult("hf", errors=[f"file: unsafe path in archive: {member.filename!r}"])
        archive.extractall(tmp)
        roots = {p.parent for p in Path(tmp).rglob("*") if p.name in ("dataset_dict.json", "state.json")}
        top = min(roots, key=lambda p: len(p.parts)) if roots else Path(tmp)
        if (top / "state.json").exists() and (top.parent / "dataset_dict.json").exists():
            top = top.parent
        return _parse_hf_dir(top, default_split)


def prompts_import(*, project, prompt_set_name: str, rows: list) -> tuple:
    """Creates the prompt set if needed and stores the rows, all in one transaction: a failure
    leaves neither the set nor any prompt behind. Returns (prompt_set, created, duplicates)."""
    from django.db import transaction

    from webapp.catalog.models import PromptSet
    from webapp.catalog.services import prompts_bulk_create

    with transaction.atomic():
        prompt_set, _ = PromptSet.objects.get_or_create(project=project, name=prompt_set_name.strip())
        created, duplicates = prompts_bulk_create(prompt_set=prompt_set, rows=rows)
    return prompt_set, created, duplicates


def staged_path(*, project, user, token: str) -> Path:
    """Where a parsed upload waits between preview and commit; the name binds it to one user."""
    from django.conf import settings

    if not token.isalnum():
        raise ValueError("bad staging token")
    return Path(settings.DATA_DIR) / "imports" / f"p{project.pk}-u{user.pk}-{token}.json"
