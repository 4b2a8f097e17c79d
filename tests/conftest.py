import os
import sys
from pathlib import Path

# The suites are grouped like the package (tests/core/, tests/github/, ...) and share helpers and fixtures by
# module name: tests/ and each group folder are on the path. No group folder is a package, so none shadows a
# library of the same name (tests/github/ and PyGithub's github).
_HERE = Path(__file__).parent
sys.path[:0] = [str(_HERE), *sorted(str(p) for p in _HERE.iterdir() if p.is_dir() and any(p.glob("test_*.py")))]
# huggingface_hub's user-agent telemetry fetches a registry from huggingface.co once per process: no test reaches
# the internet (read when huggingface_hub is imported; a test that wants it unset removes it for its subprocess).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
