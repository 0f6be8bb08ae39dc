"""`python -m lumix_engine generate | decompose | batch | demo` (see apps/cli.py)."""
import sys
import time

STARTED = time.perf_counter()  # the package (and torch) is already imported by now; diffusers is not

from .apps.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(started=STARTED))
