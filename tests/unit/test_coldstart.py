"""Cold start: importing the Functions app must not load the heavy SDKs and ML libraries.

A fresh interpreter imports ``function_app`` (what every cold start does) and reports ``sys.modules``;
the heavy packages must not be there. They belong inside the functions that need them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("azure.ai.ml", "pandas", "datasets", "torch", "transformers", "peft", "mlflow", "rouge_score", "nltk")


def test_importing_function_app_loads_no_heavy_library() -> None:
    probe = "import json, sys; import function_app; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert "function_app" in modules
    loaded = sorted(m for m in modules if any(m == heavy or m.startswith(heavy + ".") for heavy in HEAVY))
    assert loaded == [], f"importing function_app loaded {loaded}"
