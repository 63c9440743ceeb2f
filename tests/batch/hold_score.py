"""Run ``nextbest score ARGS`` that parks after K saved chunks of a phase, until it is killed.

Usage: ``python tests/batch/hold_score.py scores:2 score -t ... -o ...``. Prints
``HOLDING after <phase> chunk <K>`` on stderr when parked: the test then kills
the process at a known point, exactly as a crash would.
"""

import sys
import time

from nextbest.batch import command
from nextbest.cli import app

phase, count = sys.argv[1].split(":")
make_reporter = command.make_reporter


def holding_reporter(console):
    reporter = make_reporter(console)
    saved = reporter.chunk_saved

    def chunk_saved(p: str, n: int) -> None:
        saved(p, n)
        if (p, n) == (phase, int(count)):
            print(f"HOLDING after {p} chunk {n}", file=sys.stderr, flush=True)
            while True:
                time.sleep(3600)

    reporter.chunk_saved = chunk_saved
    return reporter


command.make_reporter = holding_reporter
app(sys.argv[2:], prog_name="nextbest")
