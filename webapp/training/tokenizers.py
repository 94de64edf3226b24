"""Same tokenizer or not, for the launch form (issue 20): each teacher/student pair of the project
with the mode the chosen method would run in (ml.cross_tokenizer: as it is, in cross-tokenizer mode
(ULD), or refused with the reason), from tokenizer fingerprints read with the standard library. A
pair whose fingerprint cannot be known here (a hub id, an endpoint) is decided by the worker."""
from ml.cross_tokenizer import REFUSED, mode_of, same_fingerprint

MAX_PAIRS = 24  # a project with many versions shows the first pairs; the worker decides every run anyway


def _same(teacher, student) -> bool | None:
    if teacher.is_endpoint or student.is_endpoint:
        return None
    return same_fingerprint(teacher.source, student.source)


def tokenizer_notes(teachers, students, method: str) -> list[dict]:
    """[{teacher, student, same, mode, why}] for each pair (same None: not known on this page)."""
    notes = []
    for teacher in teachers:
        for student in students:
            same = _same(teacher, student)
            mode, why = mode_of(method, same)
            notes.append({"teacher": teacher.name, "student": student.name, "same": same,
                          "mode": mode if same is not None else "decided when the run starts", "why": why})
            if len(notes) >= MAX_PAIRS:
                return notes
    return notes


def tokenizer_refusal(method: str, config: dict, teacher, student) -> str | None:
    """Why `method` cannot run on this pair (different tokenizers), or None."""
    if teacher is None or student is None or _same(teacher, student) is not False:
        return None
    mode, why = mode_of(method, False)
    if mode == REFUSED:
        return f"{teacher.name} and {student.name} have different tokenizers: {method} is refused: {why}."
    if method == "dpo" and config.get("reference") == "teacher":
        return (f"{teacher.name} and {student.name} have different tokenizers: teacher-as-reference DPO scores one "
                "sequence of token ids under both models; use reference=base (optionally with rpo_alpha).")
    return None
