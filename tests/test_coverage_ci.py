"""Nothing in the suite passes CI by skipping.

A test that needs a service, an optional package or the shared data asks for it
through ``tests.plugins.services`` (``require_service``, ``require_module``,
``require_data``): locally a missing piece skips with a message, under
``CI=true`` it fails. This module checks the helpers and that no test skips any
other way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.plugins import services as helpers

TESTS_DIR = Path(__file__).resolve().parent
# Ways to skip that bypass the helpers (written split so this file does not match itself).
SKIPS = re.compile(r"pytest\.(?:" + "skip" + r"\(|" + "importorskip" + r"\(|mark\.skip(?:if)?\b)"
                   r"|\bunittest\.skip")


@pytest.mark.parametrize("in_ci", [False, True])
def test_require_module_skips_locally_and_fails_in_ci(monkeypatch, in_ci):
    monkeypatch.setattr(helpers, "IN_CI", in_ci)
    expected = pytest.fail.Exception if in_ci else pytest.skip.Exception
    with pytest.raises(expected, match="no_such_module_for_this_test"):
        helpers.require_module("no_such_module_for_this_test")
    assert helpers.require_module("json").dumps([1]) == "[1]"  # present: the module itself


@pytest.mark.parametrize("in_ci", [False, True])
def test_require_data_skips_locally_and_fails_in_ci(monkeypatch, tmp_path, in_ci):
    monkeypatch.setattr(helpers, "IN_CI", in_ci)
    present = tmp_path / "train.csv"
    present.write_text("q\n")
    missing = tmp_path / "dev.csv"
    expected = pytest.fail.Exception if in_ci else pytest.skip.Exception
    with pytest.raises(expected, match="dev.csv") as info:
        helpers.require_data(present, missing)
    assert "train.csv" not in str(info.value)  # names only what is missing
    assert helpers.require_data(present) == present


def test_no_test_skips_except_through_the_helpers():
    offenders = []
    for path in sorted(TESTS_DIR.rglob("*.py")):
        if path in (Path(helpers.__file__).resolve(), Path(__file__).resolve()):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SKIPS.search(line):
                offenders.append(f"{path.relative_to(TESTS_DIR)}:{number}: {line.strip()}")
    assert not offenders, "use tests.plugins.services.require_* instead:\n" + "\n".join(offenders)
