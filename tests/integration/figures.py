"""Figures the reliability tests measure, for RELIABILITY.md.

With SUBTITLED_FIGURES=path set, each `record` appends `scenario<TAB>figure` to that file;
otherwise it does nothing."""

from __future__ import annotations

import os


def record(scenario: str, figure: str) -> None:
    target = os.environ.get("SUBTITLED_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(f"{scenario}\t{figure}\n")
