"""flowkit.llm stays light to import (the per-call overhead is measured in bench/llm_overhead.py)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_flowkit_llm_does_not_import_litellm() -> None:
    code = ("import sys, flowkit.llm.remote, flowkit.llm.cache, flowkit.llm.limits, "
            "flowkit.testing.fakeserver; print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
