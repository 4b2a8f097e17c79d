"""Preflight: what a job will receive, and every reason it would fail on HF, found before approval.

Two parts:

- :func:`folder_findings` (pure, given the shipped folder): the script is in
  the folder; the dependency declaration that applies (:mod:`mlr_action.job.runner`)
  and whether it reads; every local import of the script, and of the local
  modules it imports in turn, present in the folder (read with :mod:`ast`,
  never run); third-party imports covered by a declaration; the folder's
  size; symlinks and submodules that are not shipped.
- :func:`hf_findings` (through the hf backend): the token and the namespace
  (whoami), and every allowed flavor in the live hardware catalog.

Guarantees: a :class:`Finding` is one line for people; a ``problem`` says what
is wrong and the fix, a ``warning`` what may be wrong, an ``info`` what will
happen. Nothing here writes or spends; an import inside ``try``/``except
ImportError`` counts as optional; a file too deeply nested (or too large)
for Python's parser is a problem that says so, never a traceback.
"""

from __future__ import annotations

import ast
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlr_action.job.runner import HEADER, NOTHING, REQUIREMENTS, Recipe
from mlr_action.job.shipped import LARGE_BYTES, ShippedFolder

INFO, WARNING, PROBLEM = "info", "warning", "problem"
MAX_MODULES = 200  # local modules followed from the script
# Import names whose distribution is called something else (the common ones in training code).
ALIASES = {
    "sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow", "cv2": "opencv-python", "bs4": "beautifulsoup4",
    "skimage": "scikit-image", "attr": "attrs", "dateutil": "python-dateutil", "google": "protobuf",
    "OpenSSL": "pyopenssl", "Crypto": "pycryptodome", "dotenv": "python-dotenv", "jwt": "pyjwt",
    "sentencepiece": "sentencepiece", "fitz": "pymupdf", "serial": "pyserial", "wandb": "wandb",
}
def distribution(module: str) -> str:
    """The distribution that installs the top-level module ``module`` (``sklearn`` -> ``scikit-learn``)."""
    return ALIASES.get(module, module)


_OPTIONAL = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


@dataclass(frozen=True)
class Finding:
    level: str  # INFO, WARNING or PROBLEM
    text: str

    def __str__(self) -> str:
        return self.text if self.level == INFO else f"{self.level}: {self.text}"


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == PROBLEM]


# -- the folder ------------------------------------------------------------------------------------------


def folder_findings(folder: ShippedFolder, script: str, plan: Recipe, *, work_tree: Path | None = None) -> list[Finding]:
    """What the folder gives the job, and what is missing from it (``work_tree``: where to look for what is)."""
    out = [Finding(INFO, f"folder: {len(folder.files)} files, {_size(folder.size)}, digest {folder.digest[:12]}")]
    if folder.size > LARGE_BYTES:
        out.append(Finding(WARNING, f"the folder weighs {_size(folder.size)}: every new version is uploaded once; "
                                    "keep data sets and checkpoints out of it (download them in the script)"))
    out += [Finding(WARNING, f"{entry} is not shipped (a job gets regular files only): commit the file itself if the "
                             "job needs it") for entry in folder.skipped[:20]]
    out += [Finding(PROBLEM, f"{p}; fix it, or the job cannot install its dependencies") for p in plan.problems]
    if folder.get(script) is None:
        return out + [Finding(PROBLEM, f"the script {script} is not in the shipped folder ({folder.source}): "
                                       f"{_absent_fix(script, work_tree)}")]
    missing, third_party = _imports(folder, script, work_tree)
    out += missing
    out += _declared(third_party, plan, script)
    return out


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.1f} kB"


def _absent_fix(path: str, work_tree: Path | None) -> str:
    if work_tree is not None and (work_tree / path).exists():
        return f"it is in the work tree but not committed (or ignored by .gitignore): commit {path}"
    return f"add {path} to the campaign folder and commit it"


def third_party(folder: ShippedFolder, script: str, work_tree: Path | None = None) -> dict[str, tuple[str, int]]:
    """The third-party imports of ``script`` and the local modules it imports: top name -> (file, line) of the first.

    What :func:`folder_findings` asks a declaration for (the standard library, the folder's own modules and
    optional imports left out); :mod:`mlr_action.onboard.draft_deps` drafts ``dependencies:`` from it.
    """
    return _imports(folder, script, work_tree)[1]


def _imports(folder: ShippedFolder, script: str, work_tree: Path | None) -> tuple[list[Finding], dict[str, tuple[str, int]]]:
    """Missing local modules (problems), and third-party imports (top name -> the file and line that import it)."""
    base = posixpath.dirname(script)  # `python path/train.py` puts path/ first on sys.path
    seen, queue, missing, third = {script}, [script], [], {}
    while queue and len(seen) <= MAX_MODULES:
        path = queue.pop(0)
        try:
            imported = _imported(folder.text(path) or "", path)
        except (RecursionError, MemoryError) as exc:  # a pathological file: said, never a traceback
            missing.append(Finding(PROBLEM, f"{path} is too deeply nested or too large for Python's parser "
                                            f"({type(exc).__name__}), so its imports cannot be checked, and Python may "
                                            "not run it either: split the deeply nested expression into smaller "
                                            "statements"))
            continue
        for name, line, level in imported:
            if level:
                target = _relative(folder, path, name, level)
                if target is None:
                    missing.append(Finding(PROBLEM, f"{path} line {line} imports {'.' * level}{name}, which is not in "
                                                    f"the shipped folder: {_absent_fix(_dotted(path, name, level), work_tree)}"))
                    continue
            else:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                target = _module(folder, base, name)
                if target is None:
                    if work_tree is not None and _module_on_disk(work_tree / base, top):
                        missing.append(Finding(PROBLEM, f"{path} line {line} imports {top}, which is in the work tree "
                                                        f"but not in the shipped folder ({folder.source}): commit it "
                                                        "(and make sure .gitignore does not exclude it)"))
                    else:
                        third.setdefault(top, (path, line))
                    continue
            for found in target:
                if found not in seen:
                    seen.add(found)
                    queue.append(found)
    return missing, third


def _imported(source: str, path: str) -> list[tuple[str, int, int]]:
    """(module, line, level) of every import that is not optional; a file that does not parse has none.

    RecursionError and MemoryError (a file nested too deeply for the parser) are the caller's to report.
    """
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError):
        return []
    optional = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) and _catches_import_error(t)
                for stmt in t.body for n in ast.walk(stmt)}
    out = []
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                out += [(f"{node.module}.{a.name}" if node.module else a.name, node.lineno, node.level)
                        for a in node.names]
            elif node.module:
                out += [(f"{node.module}.{a.name}", node.lineno, 0) for a in node.names]
    return out


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = [] if handler.type is None else [handler.type] if not isinstance(handler.type, ast.Tuple) \
            else list(handler.type.elts)
        if handler.type is None or any(isinstance(n, ast.Name) and n.id in _OPTIONAL for n in names):
            return True
    return False


def _module(folder: ShippedFolder, base: str, dotted: str) -> list[str] | None:
    """The folder's files for ``dotted`` under ``base`` (the longest importable prefix); None when its top is absent.

    ``from pkg import name`` arrives as ``pkg.name``: ``name`` may be a submodule or an attribute.
    """
    parts = dotted.split(".")
    found: list[str] = []
    for depth in range(1, len(parts) + 1):
        stem = posixpath.join(base, *parts[:depth])
        for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
            if folder.get(candidate) is not None:
                found.append(candidate)
                break
        else:
            is_namespace = any(f.path.startswith(stem + "/") for f in folder.files)
            if depth == 1 and not is_namespace:
                return None
            if not is_namespace:
                break
    return found


def _relative(folder: ShippedFolder, path: str, dotted: str, level: int) -> list[str] | None:
    package = posixpath.dirname(path)
    for _ in range(level - 1):
        package = posixpath.dirname(package)
    found = _module(folder, package, dotted)
    if found is None and "." in dotted:  # `from . import name`: name may be an attribute of the package
        found = _module(folder, package, dotted.rsplit(".", 1)[0])
    if found is None and "." not in dotted and folder.get(posixpath.join(package, "__init__.py")) is not None:
        return [posixpath.join(package, "__init__.py")]  # `from . import name`: an attribute of the package
    return found


def _dotted(path: str, name: str, level: int) -> str:
    package = posixpath.dirname(path)
    for _ in range(level - 1):
        package = posixpath.dirname(package)
    return posixpath.join(package, *name.split(".")[:1]) + ".py"


def _module_on_disk(base: Path, top: str) -> bool:
    return (base / f"{top}.py").is_file() or (base / top).is_dir()


_DIST = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(third: dict[str, tuple[str, int]], plan: Recipe, script: str) -> list[Finding]:
    """Third-party imports against what the folder and the Campaign block declare."""
    if not third:
        return []
    names = sorted(third)
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    declared = {_norm(m.group(1)) for p in (*plan.packages, *plan.extra) if (m := _DIST.match(p))}
    if plan.source == NOTHING and not plan.extra:
        if plan.image:
            return [Finding(WARNING, f"the code imports {shown} and declares no dependency: fine only if the image "
                                     f"{plan.image} has them")]
        return [Finding(PROBLEM, f"the code imports {shown} but the folder declares no dependencies, so the job "
                                 "cannot import them: list them in requirements.txt next to program.md (or in a PEP 723 "
                                 "header in the script, or under `dependencies:` in the Campaign block); a name that is "
                                 "a module of yours must be committed in the campaign folder")]
    if plan.source == REQUIREMENTS and any(p.startswith("-") for p in plan.packages):
        return []  # includes and index options: what they bring cannot be read here
    unmatched = [n for n in names if _norm(n) not in declared and _norm(distribution(n)) not in declared]
    if not unmatched:
        return []
    where = {HEADER: f"{script}'s PEP 723 header"}.get(plan.source, plan.source if plan.source != NOTHING
                                                       else "`dependencies:`")
    return [Finding(WARNING, f"{', '.join(unmatched[:12])} imported by the code but not declared in {where} under "
                             "that name: declare it unless another package brings it (or the image has it); if it "
                             "is a module of yours, commit it in the campaign folder")]


# -- Hugging Face ----------------------------------------------------------------------------------------


def hf_findings(backend: Any, program: Any, campaign_id: str) -> list[Finding]:
    """The token, the namespace and the flavors, asked of HF through ``backend`` (an HfBackend)."""
    from mlr_action.core.jobs import BackendError

    out = []
    try:
        user, orgs = backend.account()
        namespace = program.campaign.namespace or user
        if namespace not in (user, *orgs):
            out.append(Finding(PROBLEM, f"namespace: the token's user {user} is not a member of {namespace} (it belongs "
                                        f"to {', '.join(orgs) or 'no organization'}): fix `namespace:` or use a token "
                                        f"of a member of {namespace}"))
        else:
            out.append(Finding(INFO, f"token: user {user}; jobs run and are billed in {namespace}"))
            out.append(Finding(INFO, f"the folder is uploaded to the private model repo {namespace}/"
                                     f"{backend.code_repo(campaign_id).split('/', 1)[1]} and mounted read-only"))
    except BackendError as exc:
        out.append(Finding(PROBLEM, f"token: {exc}"))
    return out + flavor_findings(backend, program)


def flavor_findings(backend: Any, program: Any) -> list[Finding]:
    """Every allowed flavor in HF's live hardware catalog (a public list: no token needed)."""
    from mlr_action.core.jobs import BackendError

    try:
        catalog = backend.flavors()
    except BackendError as exc:
        return [Finding(WARNING, f"the hardware catalog could not be read ({exc}); flavors not checked")]
    return [Finding(PROBLEM, f"allowed_flavors: {flavor} is not in HF's hardware catalog today (it offers "
                             f"{', '.join(sorted(catalog)[:20])}): remove it or pick one of those")
            for flavor in program.envelope.allowed_flavors if flavor not in catalog]


# -- the report ---------------------------------------------------------------------------------------------


def checked(program: Any, shipped: ShippedFolder, *, work_tree: Path, repo: Path) -> tuple[list[str], list[Finding], str]:
    """What a job receives from ``shipped`` (one line each), the folder's findings, and the campaign id.

    The one core of ``mlr validate`` (:func:`report`) and the pull request check
    (:func:`mlr_action.github.action_validate.preflight_for`); each adds its own HF checks.
    """
    from mlr_action.job.jobspec import campaign_id_for
    from mlr_action.core.program_paths import script_path
    from mlr_action.job.receives import receives_lines
    from mlr_action.job.runner import code_repo, recipe

    script = script_path(program.campaign.script)[0] or program.campaign.script
    plan = recipe(shipped, script, program.campaign)
    findings = folder_findings(shipped, script, plan, work_tree=work_tree)
    campaign = campaign_id_for(program, repo)
    repo_id = code_repo(program.campaign.namespace or "<the token's user>", campaign)
    return receives_lines(program, shipped, plan, script, code_repo=repo_id), findings, campaign


def report(program: Any, *, folder: Path, repo: Path, backend: Any = None) -> tuple[list[str], bool]:
    """The lines of ``mlr validate``'s "What a job receives" and "Preflight" sections, and whether no problem.

    ``folder`` holds program.md (the work tree's files are read as git would commit them); ``backend``, the hf
    backend, adds the token, namespace and flavor checks.
    """
    from mlr_action.job.shipped import ShipError, from_work_tree

    try:
        shipped = from_work_tree(folder)
    except ShipError as exc:
        return ["Preflight", f"  problem: {exc}"], False
    receives, findings, campaign = checked(program, shipped, work_tree=folder, repo=repo)
    if backend is not None:
        findings += hf_findings(backend, program, campaign)
    lines = ["What a job receives", *(f"  {line}" for line in receives)]
    lines += ["", "Preflight", *(f"  {f}" for f in findings)]
    bad = problems(findings)
    lines.append(f"  {len(bad)} problem{'s' * (len(bad) != 1)}: fix each before approving" if bad
                 else "  no problem found")
    return lines, not bad
