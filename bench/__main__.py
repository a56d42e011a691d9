"""Run a benchmark scenario: python -m bench <scenario> [options]."""

from __future__ import annotations

import sys

from . import storage

SCENARIOS = {"storage": storage.cli}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in SCENARIOS:
        print(f"usage: python -m bench {{{','.join(SCENARIOS)}}} [options]", file=sys.stderr)
        raise SystemExit(2)
    SCENARIOS[sys.argv[1]](sys.argv[2:])


main()
