"""Run every example in turn, each in its own process; exit non-zero if any fails."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = (
    "payments_ops.py",
    "payments_rollout.py",
    "confirm_text.py",
    "image_processing.py",
    "priorities_experiment.py",
    "openfeature_provider.py",
)


def main() -> int:
    failed = []
    for name in EXAMPLES:
        print(f"\n{'=' * 20} examples/{name} {'=' * 20}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / name)], cwd=HERE, check=False)
        took = time.perf_counter() - started
        if result.returncode != 0:
            failed.append(name)
            print(f"--- {name} FAILED with exit code {result.returncode} ({took:.1f}s)")
    print(f"\n{len(EXAMPLES) - len(failed)} of {len(EXAMPLES)} examples ran successfully.")
    if failed:
        print(f"Failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
