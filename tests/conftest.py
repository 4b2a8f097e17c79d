import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# huggingface_hub's user-agent telemetry fetches a registry from huggingface.co once per process: no test reaches
# the internet (read when huggingface_hub is imported; a test that wants it unset removes it for its subprocess).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
