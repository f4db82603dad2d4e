"""examples/shop.py's features under the real type checkers: what the stories' scripts call is
typed by the declarations (no ``Any``), and a wrong call to it is an error for mypy --strict
and pyright alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.typing.test_type_checkers import ROOT, run_mypy, run_pyright

pytestmark = pytest.mark.slow

RIGHT = """\
from typing import assert_type

from shop import (
    AllowedPriorities,
    ConfirmText,
    ImageProcessing,
    PaymentProcessor,
    Processor,
    User,
)


async def right(user: User) -> None:
    assert_type(await PaymentProcessor.create(user), Processor)
    assert_type(await AllowedPriorities.create(user), list[str])
    assert_type(await ConfirmText.create(user), str)
    assert_type(await ImageProcessing.is_enabled(user), bool)
    assert_type(PaymentProcessor.find_implementation(user), str)
    await PaymentProcessor.used_implementation("acme", user)
"""

MISTAKES = (
    (
        "await PaymentProcessor.create(42)",
        'Argument 1 to "create" of "FeatureClass" has incompatible type "int"; expected "User"',
    ),
    ("await PaymentProcessor.create()", 'Too few arguments for "create" of "FeatureClass"'),
    (
        "await PaymentProcessor.create(user, user)",
        'Too many arguments for "create" of "FeatureClass"',
    ),
    (
        "fee: int = await ConfirmText.create(user)",
        'Incompatible types in assignment (expression has type "str", variable has type "int")',
    ),
    (
        "await AllowedPriorities.used_implementation('two_priorities', 7)",
        'Argument 2 to "used_implementation" of "FeatureClass" has incompatible type "int"; '
        'expected "User"',
    ),
    (
        "PaymentProcessor.acme(user)",
        'Argument 1 to "acme" of "PaymentProcessor" has incompatible type "User"; '
        'expected "PaymentProcessor"',
    ),
    (
        "await ImageProcessing.is_enabled('US')",
        'Argument 1 to "is_enabled" of "Boolean" has incompatible type "str"; expected "User"',
    ),
)


def write_checks(directory: Path) -> tuple[Path, Path, dict[int, str]]:
    """examples/shop.py beside a file of right calls and one of mistakes (line -> message)."""
    shop = directory / "shop.py"
    shutil.copy(ROOT / "examples" / "shop.py", shop)
    right = directory / "shop_right.py"
    right.write_text(RIGHT)
    header = "from shop import AllowedPriorities, ConfirmText, ImageProcessing, PaymentProcessor"
    lines = [header, "from shop import User", "", "", "async def wrong(user: User) -> None:"]
    expected = {}
    for code, message in MISTAKES:
        lines.append(f"    {code}")
        expected[len(lines)] = message
    wrong = directory / "shop_wrong.py"
    wrong.write_text("\n".join(lines) + "\n")
    return right, wrong, expected


def test_mypy_strict_types_the_shops_features(tmp_path: Path) -> None:
    right, wrong, expected = write_checks(tmp_path)
    errors = run_mypy(tmp_path / "shop.py", right, wrong, cwd=tmp_path)
    assert [error for error in errors if error[0] != wrong.name] == []
    found: dict[int, list[str]] = {}
    for _, line, message in errors:
        found.setdefault(line, []).append(message)
    for line, message in expected.items():
        assert message in found.get(line, []), (line, message, found.get(line))
    assert set(found) == set(expected), "errors on lines that are not mistakes"


def test_pyright_types_the_shops_features(tmp_path: Path) -> None:
    right, wrong, expected = write_checks(tmp_path)
    errors = run_pyright(tmp_path / "shop.py", right, wrong, cwd=tmp_path)
    assert [error for error in errors if error[0] != wrong.name] == []
    assert {line for _, line, _ in errors} == set(expected)
