"""The naive baseline the benchmarks compare with: the same server, sending with
Tornado's `write_message` per frame and receiver instead of frames built once.

    python -m bench.baseline --config PATH [--host H] [--port P]
"""

from __future__ import annotations

import sys

from imserver.cli import main

if __name__ == "__main__":
    sys.exit(main(prebuilt=False))
