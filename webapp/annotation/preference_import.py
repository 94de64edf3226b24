"""Preference data people already have, in as comparisons with judgements. One small pure function
per format turns one record into a plain `PreferenceRow` (a prompt, 2..k candidate answers, and the
votes over them as rankings of candidate indices); `parse_preferences` reads a whole file (JSONL, a
JSON array, or parquet), detects the format, and reports every problem with its line number (or
row, for parquet) before anything touches the database. `preferences_import` then stores the rows in
one transaction: prompts in a prompt set named after the dataset, each answer as a generation
(origin=import) of a weightless stand-in model version naming where it came from, each vote as a judgement
with source=imported and the judge name `import:<dataset>[:<rater>]`, so a snapshot can be frozen
from them and says where its pairs came from.

Formats: TRL preference rows (explicit prompt or conversational; strings or message lists),
UltraFeedback-binarized, HH-RLHF transcripts, Chatbot-Arena battles, Label Studio pairwise and
ranker exports, and Argilla v2 exports (nested `to_json` or flattened) with ranking or rating
questions."""
import io
import json
import re
from dataclasses import dataclass, field

from webapp import json_bounds
from webapp.catalog.importers import MAX_ERRORS, MAX_PROMPT_CHARS, MESSAGE_ROLES, ParseResult, _lines, _plain

MAX_RECORDS = 100_000
MAX_CANDIDATES = 6  # the annotation page's k-way limit
FORMATS = {
    "auto": "Detect from the file",
    "trl": "TRL preference (prompt / chosen / rejected)",
    "ultrafeedback": "UltraFeedback-binarized",
    "hh_rlhf": "HH-RLHF (chosen / rejected transcripts)",
    "arena": "Chatbot-Arena battles",
    "label_studio_pairwise": "Label Studio pairwise export",
    "label_studio_ranker": "Label Studio ranker export",
    "argilla": "Argilla v2 export (ranking or rating questions)",
}
ARENA_WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


class RecordError(ValueError):
    """One record cannot be read; the message says why, in the file's own terms."""


@dataclass
class PreferenceRow:
    """prompt: text, or chat messages; candidates: answer texts with the model that wrote them when
    the file says; votes: {rater, ranking (groups of candidate indices, best first), both_bad}."""

    prompt: str | list
    candidates: list
    votes: list
    metadata: dict = field(default_factory=dict)


# ---------------------------------------------------------------- small shared checks

def _text(value, name: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"'{name}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RecordError(f"'{name}' is empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise RecordError(f"'{name}' is {len(value):,} characters, over the {MAX_PROMPT_CHARS:,} limit")
    return value.strip()


def _messages(value, name: str) -> list:
    value = _plain(value)
    ok = isinstance(value, list) and value and all(
        isinstance(m, dict) and m.get("role") in MESSAGE_ROLES and isinstance(m.get("content"), str) for m in value)
    if not ok:
        raise RecordError(f"'{name}' must be a non-empty list of {{role: system|user|assistant, content: string}}")
    if sum(len(m["content"]) for m in value) > MAX_PROMPT_CHARS:
        raise RecordError(f"'{name}' holds over {MAX_PROMPT_CHARS:,} characters")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _field(record: dict, name: str):
    if name not in record or record[name] is None:
        raise RecordError(f"missing field '{name}'")
    return record[name]


def _split_conversation(chosen: list, rejected: list) -> tuple[list, str, str]:
    """Implicit-prompt conversations: the shared leading messages are the prompt, and each side's
    one remaining assistant message is its answer."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    prompt, chosen_rest, rejected_rest = chosen[:shared], chosen[shared:], rejected[shared:]
    if not prompt or prompt[-1]["role"] != "user":
        raise RecordError("'chosen' and 'rejected' must share the prompt messages, ending with a user turn")
    for side, rest in (("chosen", chosen_rest), ("rejected", rejected_rest)):
        if len(rest) != 1 or rest[0]["role"] != "assistant":
            raise RecordError(f"'{side}' must end in exactly one assistant message after the shared prompt")
    return prompt, _text(chosen_rest[0]["content"], "chosen"), _text(rejected_rest[0]["content"], "rejected")


def _completion(value, name: str) -> str:
    """A TRL completion: a string, or a list holding one assistant message."""
    if isinstance(value, str):
        return _text(value, name)
    messages = _messages(value, name)
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise RecordError(f"'{name}' must be one assistant message when 'prompt' is given")
    return _text(messages[0]["content"], name)


def _pair(prompt, chosen: str, rejected: str, metadata=None, models=(None, None)) -> PreferenceRow:
    if chosen == rejected:
        raise RecordError("'chosen' and 'rejected' are the same text; there is no preference to learn")
    return PreferenceRow(prompt=prompt, candidates=[{"text": chosen, "model": models[0]}, {"text": rejected, "model": models[1]}],
                         votes=[{"rater": None, "ranking": [[0], [1]], "both_bad": False}], metadata=metadata or {})


# ---------------------------------------------------------------- one function per format

def parse_trl(record: dict) -> PreferenceRow:
    """TRL preference: {prompt, chosen, rejected}, each a string (standard) or messages
    (conversational); without 'prompt', chosen/rejected are whole conversations sharing a prefix."""
    chosen, rejected = _field(record, "chosen"), _field(record, "rejected")
    if record.get("prompt") is None:
        if isinstance(chosen, str) or isinstance(rejected, str):
            raise RecordError("without 'prompt', 'chosen' and 'rejected' must be conversations (message lists)")
        return _pair(*_split_conversation(_messages(chosen, "chosen"), _messages(rejected, "rejected")))
    prompt = record["prompt"]
    if not isinstance(prompt, (str, list)):
        raise RecordError(f"'prompt' must be a string or a list of messages, got {type(prompt).__name__}")
    prompt = _text(prompt, "prompt") if isinstance(prompt, str) else _messages(prompt, "prompt")
    return _pair(prompt, _completion(chosen, "chosen"), _completion(rejected, "rejected"))


def parse_ultrafeedback(record: dict) -> PreferenceRow:
    """UltraFeedback-binarized: {prompt, prompt_id, chosen, rejected (full conversations),
    score_chosen, score_rejected}; the scores are kept as metadata."""
    prompt, chosen, rejected = _split_conversation(_messages(_field(record, "chosen"), "chosen"),
                                                   _messages(_field(record, "rejected"), "rejected"))
    if isinstance(record.get("prompt"), str) and len(prompt) == 1 and prompt[0]["content"].strip() != record["prompt"].strip():
        raise RecordError("'prompt' differs from the user turn of 'chosen'")
    meta = {k: _plain(record[k]) for k in ("prompt_id", "score_chosen", "score_rejected") if record.get(k) is not None}
    return _pair(prompt[0]["content"].strip() if len(prompt) == 1 else prompt, chosen, rejected, meta)


HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _hh_messages(transcript: str, name: str) -> list:
    parts = HH_TURN.split("\n\n" + transcript.lstrip("\n") if not transcript.startswith("\n\n") else transcript)
    if parts[0].strip() or len(parts) < 3:
        raise RecordError(f"'{name}' is not an HH-RLHF transcript (\\n\\nHuman: … \\n\\nAssistant: …)")
    return [{"role": "user" if who == "Human" else "assistant", "content": text} for who, text in zip(parts[1::2], parts[2::2])]


def parse_hh_rlhf(record: dict) -> PreferenceRow:
    """HH-RLHF: {chosen, rejected}, two transcripts that share everything up to the last
    'Assistant:' turn; the shared part is the prompt (as messages when it has several turns)."""
    chosen = _hh_messages(_text(_field(record, "chosen"), "chosen"), "chosen")
    rejected = _hh_messages(_text(_field(record, "rejected"), "rejected"), "rejected")
    prompt, chosen_text, rejected_text = _split_conversation(chosen, rejected)
    return _pair(prompt[0]["content"].strip() if len(prompt) == 1 else prompt, chosen_text, rejected_text)


def parse_arena(record: dict) -> PreferenceRow:
    """Chatbot-Arena battles: {model_a, model_b, winner ∈ model_a|model_b|tie|tie (bothbad),
    conversation_a, conversation_b, judge?}; multi-turn battles need identical earlier turns."""
    model_a, model_b = _text(_field(record, "model_a"), "model_a"), _text(_field(record, "model_b"), "model_b")
    winner = _field(record, "winner")
    if winner not in ARENA_WINNERS:
        raise RecordError(f"'winner' must be one of {', '.join(ARENA_WINNERS)}; got {str(winner)[:40]!r}")
    conv_a, conv_b = _messages(_field(record, "conversation_a"), "conversation_a"), _messages(_field(record, "conversation_b"), "conversation_b")
    if conv_a[:-1] != conv_b[:-1] or conv_a[-1]["role"] != "assistant" or conv_b[-1]["role"] != "assistant" or len(conv_a) < 2:
        raise RecordError("the two conversations must share every turn but the last, which must be each model's answer")
    prompt = conv_a[:-1]
    ranking = {"model_a": [[0], [1]], "model_b": [[1], [0]]}.get(winner, [[0, 1]])
    judge = record.get("judge") if isinstance(record.get("judge"), str) else None
    meta = {k: _plain(record[k]) for k in ("question_id", "language", "turn") if record.get(k) is not None}
    return PreferenceRow(prompt=prompt[0]["content"].strip() if len(prompt) == 1 else prompt,
                         candidates=[{"text": _text(conv_a[-1]["content"], "conversation_a"), "model": model_a},
                                     {"text": _text(conv_b[-1]["content"], "conversation_b"), "model": model_b}],
                         votes=[{"rater": judge, "ranking": ranking, "both_bad": winner == "tie (bothbad)"}], metadata=meta)


def _ls_prompt(data: dict):
    for name in ("prompt", "question", "instruction", "text", "input"):
        if data.get(name) is not None:
            return _text(data[name], f"data.{name}")
    raise RecordError("'data' has no prompt field (prompt, question, instruction, text or input)")


def _ls_results(task: dict, kind: str):
    """(rater, result) for each finished annotation of a Label Studio task holding a `kind` result."""
    annotations = task.get("annotations")
    if not isinstance(annotations, list):
        raise RecordError("missing 'annotations' (export the project as JSON with annotations)")
    found = []
    for annotation in annotations:
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue
        rater = annotation.get("completed_by")
        rater = str(rater.get("email") or rater.get("id")) if isinstance(rater, dict) else (str(rater) if rater is not None else None)
        for result in annotation.get("result") or []:
            if isinstance(result, dict) and result.get("type") == kind:
                found.append((rater, result))
    if not found:
        raise RecordError(f"no {kind} result in any annotation")
    return found


def parse_label_studio_pairwise(task: dict) -> PreferenceRow:
    """Label Studio pairwise template: data {prompt, <left>, <right>} and, per annotation, a
    result {type: pairwise, to_name: [left, right] or "left,right", value: {selected: left|right}}."""
    data = _field(task, "data")
    if not isinstance(data, dict):
        raise RecordError("'data' must be an object")
    results = _ls_results(task, "pairwise")
    names = results[0][1].get("to_name") or ["answer1", "answer2"]
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else names
    if len(names) != 2 or any(data.get(n) is None for n in names):
        raise RecordError(f"the pairwise result compares {names!r}, which 'data' does not hold")
    votes = []
    for rater, result in results:
        selected = (result.get("value") or {}).get("selected")
        if selected not in ("left", "right"):
            raise RecordError(f"pairwise 'value.selected' must be left or right, got {str(selected)[:20]!r}")
        votes.append({"rater": rater, "ranking": [[0], [1]] if selected == "left" else [[1], [0]], "both_bad": False})
    candidates = [{"text": _text(data[n], f"data.{n}"), "model": None} for n in names]
    if candidates[0]["text"] == candidates[1]["text"]:
        raise RecordError("the two answers are the same text")
    return PreferenceRow(prompt=_ls_prompt(data), candidates=candidates, votes=votes, metadata={"label_studio_task": task.get("id")})


def parse_label_studio_ranker(task: dict) -> PreferenceRow:
    """Label Studio ranker (List + Ranker): data {prompt, items: [{id, title?, body}]} and, per
    annotation, {type: ranker, value: {ranker: {<list or bucket>: [ids best first]}}}; with
    buckets, each bucket is one tied group, in the order the buckets appear."""
    data = _field(task, "data")
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not 2 <= len(items) <= MAX_CANDIDATES:
        raise RecordError(f"'data.items' must be a list of 2 to {MAX_CANDIDATES} {{id, body}} objects")
    ids = [str(i.get("id")) if isinstance(i, dict) else None for i in items]
    candidates = [{"text": _text(i.get("body") or i.get("text"), f"data.items[{n}].body"), "model": i.get("title") if isinstance(i.get("title"), str) else None}
                  for n, i in enumerate(items)]
    votes = []
    for rater, result in _ls_results(task, "ranker"):
        ranker = (result.get("value") or {}).get("ranker")
        if not isinstance(ranker, dict) or not ranker:
            raise RecordError("ranker 'value.ranker' must be an object of ranked id lists")
        groups = list(ranker.values()) if len(ranker) > 1 else [[x] for x in next(iter(ranker.values()))]
        ranking = [[ids.index(str(x)) for x in group if str(x) in ids] for group in groups]
        ranking = [g for g in ranking if g]
        if sorted(i for g in ranking for i in g) != list(range(len(ids))):
            raise RecordError("a ranking must place every item exactly once")
        votes.append({"rater": rater, "ranking": ranking, "both_bad": False})
    return PreferenceRow(prompt=_ls_prompt(data), candidates=candidates, votes=votes, metadata={"label_studio_task": task.get("id")})


def _argilla_parts(record: dict):
    """(fields, responses {question: [{value, user_id, status}]}) from a nested or flattened record."""
    if isinstance(record.get("fields"), dict):
        return record["fields"], record.get("responses") or {}
    fields = {k: v for k, v in record.items() if "." not in k and k not in ("id", "status", "_server_id", "metadata")}
    responses = {}
    for key, values in record.items():
        if key.endswith(".responses") and isinstance(values, list):
            question = key[: -len(".responses")]
            users = record.get(f"{question}.responses.users") or [None] * len(values)
            statuses = record.get(f"{question}.responses.status") or ["submitted"] * len(values)
            responses[question] = [{"value": v, "user_id": u, "status": s} for v, u, s in zip(values, users, statuses)]
    return fields, responses


def _argilla_ranking(value, answers: list) -> list:
    """A ranking response: option names best first, or [{value, rank}] where equal ranks tie."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        by_rank = {}
        for v in value:
            by_rank.setdefault(v.get("rank"), []).append(v.get("value"))
        groups = [by_rank[r] for r in sorted(by_rank, key=lambda r: (r is None, r))]
    elif isinstance(value, list) and value:
        groups = [[v] for v in value]
    else:
        raise RecordError("a ranking response must be a list of options")
    if any(v not in answers for g in groups for v in g) or sorted(v for g in groups for v in g) != sorted(answers):
        raise RecordError(f"a ranking response must order exactly the answer fields {answers}")
    return [[answers.index(v) for v in g] for g in groups]


def parse_argilla(record: dict) -> PreferenceRow:
    """Argilla v2 record: fields {prompt, <answer fields>}, and submitted responses to either one
    ranking question (options named after the answer fields) or one rating question per answer
    field (the question's name contains the field's name); a higher rating is better."""
    fields, responses = _argilla_parts(record)
    prompt_name = next((n for n in ("prompt", "instruction", "question", "text") if fields.get(n) is not None), None)
    if prompt_name is None:
        raise RecordError("no prompt field (prompt, instruction, question or text)")
    answers = [n for n, v in fields.items() if n != prompt_name and isinstance(v, str)]
    if not 2 <= len(answers) <= MAX_CANDIDATES:
        raise RecordError(f"need 2 to {MAX_CANDIDATES} answer fields next to '{prompt_name}', found {answers}")
    by_user = {}
    ratings = {q: a for q in responses for a in answers if a in q and q != a}
    for question, given in responses.items():
        for response in given if isinstance(given, list) else []:
            if not isinstance(response, dict) or response.get("status", "submitted") != "submitted":
                continue
            user = str(response.get("user_id")) if response.get("user_id") is not None else None
            if question in ratings:
                if not isinstance(response.get("value"), (int, float)):
                    raise RecordError(f"rating response to '{question}' must be a number")
                by_user.setdefault(user, {"ratings": {}})["ratings"][ratings[question]] = response["value"]
            else:
                by_user.setdefault(user, {})["ranking"] = _argilla_ranking(response.get("value"), answers)
    votes = []
    for user, given in by_user.items():
        if "ranking" in given:
            votes.append({"rater": user, "ranking": given["ranking"], "both_bad": False})
        elif len(given["ratings"]) == len(answers):
            scores = sorted({given["ratings"][a] for a in answers}, reverse=True)
            votes.append({"rater": user, "both_bad": False,
                          "ranking": [[i for i, a in enumerate(answers) if given["ratings"][a] == s] for s in scores]})
    if not votes:
        raise RecordError("no submitted ranking, or ratings of every answer field, in 'responses'")
    return PreferenceRow(prompt=_text(fields[prompt_name], prompt_name),
                         candidates=[{"text": _text(fields[a], a), "model": a} for a in answers], votes=votes,
                         metadata={"argilla_id": str(record.get("id"))} if record.get("id") is not None else {})


PARSERS = {"trl": parse_trl, "ultrafeedback": parse_ultrafeedback, "hh_rlhf": parse_hh_rlhf, "arena": parse_arena,
           "label_studio_pairwise": parse_label_studio_pairwise, "label_studio_ranker": parse_label_studio_ranker,
           "argilla": parse_argilla}


def detect_format(record) -> str | None:
    """The format a record's keys say it is in (None when no format fits)."""
    if not isinstance(record, dict):
        return None
    if "data" in record and "annotations" in record:
        kinds = {r.get("type") for a in record.get("annotations") or [] if isinstance(a, dict)
                 for r in a.get("result") or [] if isinstance(r, dict)}
        return "label_studio_ranker" if "ranker" in kinds else "label_studio_pairwise"
    if "fields" in record and "responses" in record or any(k.endswith(".responses") for k in record):
        return "argilla"
    if {"model_a", "model_b", "winner"} <= record.keys():
        return "arena"
    if {"chosen", "rejected"} <= record.keys():
        if "score_chosen" in record or "prompt_id" in record:
            return "ultrafeedback"
        if record.get("prompt") is None and isinstance(record["chosen"], str) and "\n\nAssistant:" in record["chosen"]:
            return "hh_rlhf"
        return "trl"
    return None


# ---------------------------------------------------------------- whole files

def _json_records(data: bytes, result: ParseResult):
    """(line number, record) from JSONL, or from one JSON array (Label Studio / Argilla exports),
    where each element's line is where it starts."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if body.lstrip()[:1] != b"[":
        for number, line in _lines(data, result):
            try:
                yield number, json_bounds.loads(line)
            except json.JSONDecodeError as exc:
                result.error(f"line {number}", f"not valid JSON ({exc.msg} at column {exc.colno})")
            except ValueError as exc:  # nested too deep, NaN, a number out of range
                result.error(f"line {number}", f"not stored: {exc}")
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        result.error(f"line {line}", "not valid UTF-8; save the file as UTF-8")
        return
    decoder, pos = json_bounds.decoder(), text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            record, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            result.error(f"line {exc.lineno}", f"not valid JSON ({exc.msg} at column {exc.colno})")
            return
        except (ValueError, RecursionError) as exc:  # the rest of the array cannot be found past it
            result.error(f"line {line}", f"not stored: {exc if isinstance(exc, ValueError) else f'nested deeper than {json_bounds.MAX_DEPTH} levels'}")
            return
        yield line, record


def _parquet_records(data: bytes, result: ParseResult):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a broken file
        result.error("file", f"not a readable parquet file ({exc})")
        return
    for index, record in enumerate(table.to_pylist(), 1):
        yield index, record


def parse_preferences(data: bytes, *, filename: str, fmt: str = "auto") -> ParseResult:
    """Every record of the file as a PreferenceRow in `result.rows`, or every problem (up to
    MAX_ERRORS) in `result.errors`, each naming its line; a file with any error imports nothing."""
    if fmt not in FORMATS:
        return ParseResult("unknown", errors=[f"unknown format {fmt!r}"])
    result, where = ParseResult(fmt), "row" if filename.lower().endswith(".parquet") else "line"
    records = _parquet_records(data, result) if where == "row" else _json_records(data, result)
    for number, record in records:
        try:
            json_bounds.check(record)
            record = _plain(record)
            json_bounds.check(record)  # parquet's NaN inside lists, after conversion
        except ValueError as exc:
            result.error(f"{where} {number}", f"not stored: {exc}")
            continue
        kind = fmt if fmt != "auto" else detect_format(record)
        if kind is None:
            result.error(f"{where} {number}", "not a preference record of a known format (prompt/chosen/rejected, "
                                              "Arena battle, Label Studio task or Argilla record)")
            continue
        if result.format == "auto":
            result.format = kind
        elif kind != result.format:
            result.error(f"{where} {number}", f"looks like {FORMATS[kind]}, but the file so far is {FORMATS[result.format]}")
            continue
        if not isinstance(record, dict):
            result.error(f"{where} {number}", f"expected an object, got {type(record).__name__}")
            continue
        try:
            result.rows.append(PARSERS[kind](record))
        except RecordError as exc:
            result.error(f"{where} {number}", str(exc))
        if len(result.rows) > MAX_RECORDS:
            result.error(f"{where} {number}", f"more than {MAX_RECORDS:,} records; split the file")
            break
        if len(result.errors) > MAX_ERRORS:
            break
    if not result.rows and not result.errors:
        result.error("file", "no preference records found (the file is empty)")
    return result
