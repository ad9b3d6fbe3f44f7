from __future__ import annotations

import pytest

from subtitled import failpoints


@pytest.mark.parametrize(
    ("spec", "name", "subject", "armed"),
    [("", "after-claim", "a.mkv", False), ("after-claim", "after-claim", "a.mkv", True),
     ("after-claim:poison", "after-claim", "a.mkv", False),
     ("after-claim:poison", "after-claim", "poison.mkv", True),
     ("before-write, after-claim:x", "after-claim", "x.mkv", True),
     ("before-write", "after-write", "a.mkv", False)],
)
def test_failpoints_are_inert_unless_named(monkeypatch: pytest.MonkeyPatch, spec: str,
                                           name: str, subject: str, armed: bool) -> None:
    monkeypatch.setenv(failpoints.ENVIRONMENT, spec)
    assert failpoints._armed(name, subject) is armed
