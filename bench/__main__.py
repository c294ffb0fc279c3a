"""`python -m bench`: run the benchmark suite (see BENCHMARKS.md)."""

from __future__ import annotations

import sys

from bench import runner

if __name__ == "__main__":
    sys.exit(runner.main())
