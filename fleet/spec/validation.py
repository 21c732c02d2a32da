"""Pydantic errors turned into one-line problems with file:line and a "did you mean" hint.

Pydantic reports locations as paths (`('clusters', 0, 'lables')`); `fleet.spec.yamlload` knows
the line of each path. The valid keys for a hint are found by walking the model's field
annotations along the same path, so hints always list real keys of the right sub-model.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from fleet.errors import Problem
from fleet.spec.yamlload import Loc, YamlDocument

M = TypeVar("M", bound=BaseModel)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`"; did you mean 'labels'?"` when a candidate is close enough, else ""."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def format_loc(loc: Loc) -> str:
    """`('clusters', 0, 'labels')` -> `clusters[0].labels`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validate_document(
    model: type[M], doc: YamlDocument, *, prefix: Loc = ()
) -> tuple[M | None, list[Problem]]:
    """Validate the data found at `prefix` inside `doc` against `model`.

    Returns the model or the problems (with file:line), never raises a pydantic error.
    An empty document or a missing value validates as `{}`.
    """
    payload: Any = doc.data
    for part in prefix:
        payload = payload[part]
    if payload is None:
        payload = {}
    try:
        return model.model_validate(payload), []
    except ValidationError as err:
        return None, problems_from(err, model, doc, prefix=prefix)


def problems_from(
    err: ValidationError, model: type[BaseModel], doc: YamlDocument, *, prefix: Loc = ()
) -> list[Problem]:
    """One Problem per pydantic error, deduplicated, in document order."""
    problems: list[Problem] = []
    seen: set[tuple[int | None, str]] = set()
    for error in err.errors(include_url=False):
        loc: Loc = tuple(p for p in error["loc"] if isinstance(p, int | str))
        full = (*prefix, *_data_loc(loc))
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            where = format_loc(full[:-1])
            message = f"unknown key '{key}'" + (f" in {where}" if where else "")
            message += did_you_mean(key, _keys_at(model, loc[:-1]))
            line = doc.line_of(full)
        elif kind == "missing":
            key = str(loc[-1]) if loc else "?"
            where = format_loc(full[:-1])
            message = f"missing required key '{key}'" + (f" in {where}" if where else "")
            line = doc.line_of(full[:-1])
        else:
            message = _clean(error["msg"])
            if kind == "literal_error":
                expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
                message += did_you_mean(str(error.get("input")), expected)
            where = format_loc(full)
            message = f"{where}: {message}" if where else message
            line = doc.line_of(full)
        if (line, message) not in seen:
            seen.add((line, message))
            problems.append(Problem(message, str(doc.file), line))
    problems.sort(key=lambda p: p.line or 0)
    return problems


def _clean(msg: str) -> str:
    for noise in ("Value error, ", "Assertion failed, "):
        msg = msg.replace(noise, "")
    return msg


def _data_loc(loc: Loc) -> Loc:
    # Union/validator members show up in pydantic locations (`'function-before[...]'`,
    # `'int'`); they are not keys of the document.
    return tuple(
        p
        for p in loc
        if not (isinstance(p, str) and ("[" in p or p in ("int", "str", "bool", "float")))
    )


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            models = [a for a in members if _is_model(a) or get_origin(a) in (list, dict)]
            tp = models[0] if models else members[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Valid keys (aliases) of the sub-model found by following `loc` from `model`."""
    tp: Any = model
    for part in _data_loc(loc):
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(part, int) and origin is list:
            tp = get_args(tp)[0]
        elif origin is dict:
            tp = get_args(tp)[1]
        elif _is_model(tp):
            fields = tp.model_fields
            match = next(
                (f for n, f in fields.items() if f.alias == part or n == part),
                None,
            )
            if match is None:
                return []
            tp = match.annotation
        else:
            return []
    tp = _unwrap(tp)
    if not _is_model(tp):
        return []
    return [f.alias or n for n, f in tp.model_fields.items()]
