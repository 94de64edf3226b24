"""JSON from outside (uploads, request bodies, safetensors headers) read with bounds that PostgreSQL's
jsonb and our own code rely on: nesting at most MAX_DEPTH levels (deeper input raised RecursionError
and a 500 after 20 s), and only finite numbers (`NaN`, `Infinity`, `1e309` parse in Python but jsonb
refuses them at commit). Each refusal is a ValueError whose message says why, for a 400 or a
line-numbered import error."""
import json
import math

MAX_DEPTH = 32


def _constant(name: str):
    raise ValueError(f"{name} is not a JSON number (only finite numbers are stored)")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:30]} is out of range (only finite numbers are stored)")
    return value


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH):
    """json.loads, bounded: ValueError (json.JSONDecodeError for bad syntax) on nesting deeper than
    `max_depth`, on NaN/Infinity and on numbers out of float range."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    check(value, max_depth=max_depth)
    return value


def decoder() -> json.JSONDecoder:
    """A decoder with the number bounds, for raw_decode over a JSON array; the caller catches
    RecursionError and calls check() on each element."""
    return json.JSONDecoder(parse_constant=_constant, parse_float=_finite)


def check(value, *, max_depth: int = MAX_DEPTH) -> None:
    """The same bounds on an already-parsed value (parquet cells, CSV fields): iterative, so any
    depth is measured without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"{item} is not a JSON number (only finite numbers are stored)")
            continue
        if depth > max_depth:
            raise ValueError(f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)
