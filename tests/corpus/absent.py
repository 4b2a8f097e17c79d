"""Run a training script whose deep-learning framework is not installed here, up to its first use of it.

    python absent.py SCRIPT [--name=value ...]

The script runs for real (``runpy``, as ``__main__``, with the given argv and
its own argument parser: stdlib argparse, or the real ``HfArgumentParser``
code from the ``hf-argparser`` package). Only the frameworks are stand-ins:
importing ``torch``, ``torchvision``, ``lightning``, ``datasets``,
``evaluate`` or ``transformers`` gives modules whose every attribute can be
imported, subclassed and annotated with, but raises ``Reached`` the moment
the script *calls* anything of theirs. ``transformers`` also provides the real
``HfArgumentParser`` and a ``TrainingArguments`` dataclass written from
transformers' documented fields and defaults (tests/corpus/fake_transformers.py).

Exit codes: 0 when the script reached its framework after parsing its
arguments (the drafted arguments were accepted), 3 when it reached the
framework before any parse, and whatever the script's parser says otherwise
(argparse exits 2 on an unknown argument; HfArgumentParser raises
ValueError, exit 1).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import runpy
import sys
import types
from pathlib import Path

ABSENT = {"torch", "torchvision", "lightning", "pytorch_lightning", "datasets", "evaluate", "transformers"}
PARSED: list[bool] = []


class Reached(BaseException):
    """The script called into a framework that is not installed."""


class Absent:
    """Any object of a missing framework: attributes and subclassing work, calling it ends the run."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Absent(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        raise Reached(self._name)

    def __mro_entries__(self, bases):
        return (object,)


class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        if spec.name == "transformers":
            here = Path(__file__).with_name("fake_transformers.py")
            real = importlib.util.spec_from_file_location("fake_transformers", here)
            module = importlib.util.module_from_spec(real)
            real.loader.exec_module(module)
        else:
            module = types.ModuleType(spec.name)
        module.__path__ = []
        known = module.__dict__

        def missing(attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return known[attr] if attr in known else Absent(f"{spec.name}.{attr}")

        module.__getattr__ = missing
        return module

    def exec_module(self, module):
        pass


def _record_parses() -> None:
    original = argparse.ArgumentParser.parse_known_args

    def parse_known_args(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        PARSED.append(True)
        return result

    argparse.ArgumentParser.parse_known_args = parse_known_args


def main() -> int:
    script, *argv = sys.argv[1:]
    sys.meta_path.insert(0, Finder())
    _record_parses()
    sys.argv = [script, *argv]
    sys.path.insert(0, str(Path(script).resolve().parent))
    try:
        runpy.run_path(script, run_name="__main__")
    except Reached as reached:
        print(f"reached {reached} after {'parsing its arguments' if PARSED else 'no parse'}")
        return 0 if PARSED else 3
    print("the script finished without calling its framework")
    return 0 if PARSED else 3


if __name__ == "__main__":
    sys.exit(main())
