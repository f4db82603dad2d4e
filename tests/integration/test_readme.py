"""The README's quickstarts run as shown, on the real Redis (127.0.0.1:6379, the client's
default, namespace "shop" as written), and print what their comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.typing.test_type_checkers import readme_blocks

pytestmark = pytest.mark.redis


@pytest.fixture
def clean_shop(redis_url: str) -> None:
    """The quickstarts use namespace "shop": start them from an empty one."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match="feats:{shop}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def run_block(name: str, tmp_path: Path) -> list[str]:
    path = tmp_path / name
    path.write_text(readme_blocks()[name])
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.usefixtures("clean_shop")
def test_the_asyncio_quickstart_runs_as_shown(tmp_path: Path) -> None:
    assert run_block("quickstart_aio.py", tmp_path) == [
        "acme",
        "premium",
        "rule Country=CA: static premium",
    ]
    # It leaves the namespace as it found it, so it runs again the same way.
    assert run_block("quickstart_aio.py", tmp_path)[0] == "acme"


@pytest.mark.usefixtures("clean_shop")
def test_the_sync_quickstart_runs_as_shown(tmp_path: Path) -> None:
    assert run_block("quickstart_sync.py", tmp_path) == ["acme, with images"]


def test_the_snapshot_block_runs(tmp_path: Path) -> None:
    assert run_block("snapshot.py", tmp_path) == []


def test_the_testing_block_passes_under_pytest(tmp_path: Path) -> None:
    path = tmp_path / "test_checkout.py"
    path.write_text(readme_blocks()["test_checkout.py"])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_framework_blocks_are_the_examples_code() -> None:
    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text()
    blocks = re.findall(r"<!-- example: (\S+) -->\n```python\n(.*?)```", text, flags=re.DOTALL)
    assert {path for path, _ in blocks} >= {
        "examples/frameworks/fastapi_app.py",
        "examples/frameworks/django_shop/shop_site/settings.py",
        "examples/frameworks/django_shop/shop_site/flags.py",
        "examples/frameworks/flask_app.py",
        "examples/frameworks/celery_app.py",
    }
    for path, code in blocks:
        assert code in (root / path).read_text(), f"the README's block is not {path}'s code"
