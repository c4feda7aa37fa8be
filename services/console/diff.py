"""What changed between two versions of a rule, line by line (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.console.formats import pretty

#: Fields every version has that say nothing about what the rule does.
_IGNORED = ("version",)


@dataclass(frozen=True)
class DiffLine:
    kind: Literal["same", "added", "removed", "skip"]
    text: str


def rule_diff(
    old: Mapping[str, Any], new: Mapping[str, Any], *, context: int = 3
) -> list[DiffLine]:
    """A unified diff of the two rules as pretty JSON, ``version`` left out."""
    before = pretty({k: v for k, v in old.items() if k not in _IGNORED}).splitlines()
    after = pretty({k: v for k, v in new.items() if k not in _IGNORED}).splitlines()
    lines: list[DiffLine] = []
    for group in difflib.SequenceMatcher(a=before, b=after).get_grouped_opcodes(context):
        if lines:
            lines.append(DiffLine("skip", "…"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines.extend(DiffLine("same", text) for text in before[i1:i2])
                continue
            lines.extend(DiffLine("removed", text) for text in before[i1:i2])
            lines.extend(DiffLine("added", text) for text in after[j1:j2])
    return lines
