"""Who may import whom: every import in the tree, checked against the layer plan.

The plan (docs/architecture.md, "Who may import whom"):

    synth/                   a leaf: nothing of voicemarket, oracle, scripts, benchmarks, tests
    voicemarket base         errors.py, protocol.py, units.py (and the package itself): only each other
    voicemarket/content/     base + content
    voicemarket/market/      base + content + market
    voicemarket/web/         base + web (the HTTP conventions every service shares)
    voicemarket/index/       base + content + market + web + index (the indexer and its read API)
    voicemarket/cli/         base + content + market + web + index + cli
    voicemarket/dev/         anything (the development harness: local services, the demo, the sandbox)
    oracle/                  base, content, market, web, synth, oracle; never cli, index or dev
    scripts/                 anything but voicemarket.dev
    tests/, benchmarks/      anything
    any other folder         anything but voicemarket.dev

Every ``.py`` file is parsed with :mod:`ast` (nothing is imported): ``import a.b``,
``from a.b import c``, ``from a import b`` where ``b`` is a submodule, relative imports,
``importlib.import_module("a.b")`` with a literal name, and imports anywhere in a file —
inside functions, ``if TYPE_CHECKING:`` blocks and ``try:`` — all count.
"""

from __future__ import annotations

import ast
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Top-level packages of this repository; imports of anything else (stdlib, third party) are not checked.
OURS = {"voicemarket", "synth", "oracle", "scripts", "benchmarks", "tests"}
BASE_MODULES = {"errors", "protocol", "units"}  # voicemarket/<name>.py (or a package of that name)
SUB_PACKAGES = {"content", "market", "web", "index", "cli", "dev"}
UNPLACED = "voicemarket (no layer)"

EVERYTHING = {
    "base",
    "content",
    "market",
    "web",
    "index",
    "cli",
    "dev",
    "synth",
    "oracle",
    "scripts",
    "benchmarks",
    "tests",
}
ALLOWED: dict[str, set[str]] = {
    "synth": {"synth"},
    "base": {"base"},
    "content": {"base", "content"},
    "market": {"base", "content", "market"},
    "web": {"base", "web"},
    "index": {"base", "content", "market", "web", "index"},
    "cli": {"base", "content", "market", "web", "index", "cli"},
    "dev": EVERYTHING,
    "oracle": {"base", "content", "market", "web", "synth", "oracle"},
    "scripts": EVERYTHING - {"dev"},
    "tests": EVERYTHING,
    "benchmarks": EVERYTHING,
    "other": EVERYTHING - {"dev"},
}
RULES = {
    "synth": "synth/ is a leaf: it imports nothing of voicemarket, oracle, scripts, benchmarks or tests",
    "base": "the base layer (voicemarket/errors.py, protocol.py, units.py) imports only itself",
    "content": "voicemarket.content imports only the base layer and itself (never market, cli or dev)",
    "market": "voicemarket.market imports only the base layer, content and itself (never cli or dev)",
    "web": "voicemarket.web imports only the base layer and itself",
    "index": "voicemarket.index imports only the base layer, content, market, web and itself (never cli or dev)",
    "cli": "voicemarket.cli imports only the base layer, content, market, web, index and itself (never dev)",
    "oracle": "oracle/ imports voicemarket base/content/market/web, synth and itself; never cli, index or dev",
    "scripts": "only tests/, benchmarks/ and voicemarket/dev/ import voicemarket.dev; scripts/ never does",
    "other": "only tests/, benchmarks/ and voicemarket/dev/ import voicemarket.dev",
}
# A file whose text matches none of these cannot import anything of ours (parsing is most of the time spent).
MENTIONS_OURS = re.compile(rb"\b(?:" + b"|".join(n.encode() for n in sorted(OURS)) + rb")\b|from\s+\.")
SKIP_DIRS = {"node_modules", "__pycache__", "out", "cache", "demo-output"}


@dataclass(frozen=True, order=True)
class Violation:
    path: str  # relative to the scanned root, with forward slashes
    line: int
    importer: str  # the importing file's layer
    target: str  # the imported module
    target_layer: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.target} ({self.target_layer}): {self.rule}"


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name of ours; None for stdlib and third-party modules."""
    parts = module.split(".")
    if parts[0] not in OURS:
        return None
    if parts[0] != "voicemarket":
        return parts[0]
    if len(parts) == 1 or parts[1] in BASE_MODULES:
        return "base"
    return parts[1] if parts[1] in SUB_PACKAGES else UNPLACED


def module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(root: Path) -> list[Path]:
    """Every .py file under root, outside hidden folders, virtual environments and build outputs."""
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in SKIP_DIRS
            and not d.endswith(".egg-info")
            and not (here / d / "pyvenv.cfg").exists()
        )
        found.extend(here / f for f in sorted(files) if f.endswith(".py"))
    return found


def imported_modules(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in a parsed file, wherever it stands in the file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}" if base else alias.name
                found.append((node.lineno, submodule if submodule in known else base))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _is_dynamic_import(node.func)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}


def check(root: Path) -> list[Violation]:
    """Every import under root that goes against the layer plan, sorted by file and line."""
    files = python_files(root)
    names = {path: module_name(path.relative_to(root)) for path in files}
    known = set(names.values())
    violations = []
    for path, module in names.items():
        relative = path.relative_to(root).as_posix()
        importer = layer_of(module) or "other"
        if importer == UNPLACED:
            violations.append(
                Violation(
                    relative,
                    1,
                    importer,
                    module,
                    importer,
                    "every voicemarket module belongs to a layer: base (errors.py, protocol.py,"
                    " units.py), content/, market/, web/, index/, cli/ or dev/",
                )
            )
            continue
        if ALLOWED[importer] == EVERYTHING:
            continue  # tests, benchmarks and dev may import anything: no need to parse them
        source = path.read_bytes()
        if not MENTIONS_OURS.search(source):
            continue  # no relative import and no name of ours anywhere in the text: nothing to check
        tree = ast.parse(source, filename=str(path))
        for line, target in sorted(set(imported_modules(tree, module, path.name == "__init__.py", known))):
            target_layer = layer_of(target)
            if target_layer is not None and target_layer not in ALLOWED[importer]:
                violations.append(Violation(relative, line, importer, target, target_layer, RULES[importer]))
    return sorted(violations)


def test_the_tree_imports_only_in_the_allowed_directions():
    violations = check(ROOT)
    assert not violations, (
        f"{len(violations)} import(s) against the layer plan (docs/architecture.md, 'Who may import whom'):\n"
        + "\n".join(f"  {v}" for v in violations)
        + "\nMove the shared code down a layer (e.g. formatting into voicemarket/units.py) instead of importing up."
    )


# A small tree with one violation of each rule (marked "# bad") and the allowed imports beside them.
SYNTHETIC = {
    "synth/__init__.py": "",
    "synth/engine.py": """
        import torch
        from synth.errors import SynthError
        import voicemarket.errors  # bad
        def load():
            from oracle import serve  # bad
    """,
    "synth/errors.py": "",
    "voicemarket/__init__.py": "",
    "voicemarket/errors.py": "from voicemarket import units\n",
    "voicemarket/units.py": """
        from voicemarket.errors import PackageError
        from voicemarket.content import cid  # bad
    """,
    "voicemarket/protocol.py": "from . import units\n",
    "voicemarket/stray.py": "",  # bad: a voicemarket module in no layer
    "voicemarket/content/__init__.py": "",
    "voicemarket/content/cid.py": """
        from voicemarket import errors
        from voicemarket.protocol import Tier
        from .odrl import policy
        from voicemarket.market.chain import model_id  # bad
        from ..cli import console  # bad
    """,
    "voicemarket/content/odrl.py": "from synth import Synthesizer  # bad\n",
    "voicemarket/market/__init__.py": "",
    "voicemarket/market/chain.py": "from voicemarket.content.cid import CID\n",
    "voicemarket/market/licensing.py": """
        from voicemarket.units import format_amount
        def describe(expiry):
            from voicemarket.cli.console import format_time  # bad
            return format_time(expiry)
    """,
    "voicemarket/web/__init__.py": "",
    "voicemarket/web/api.py": """
        from voicemarket.errors import ServiceSettingsError
        from voicemarket.market import chain  # bad
    """,
    "voicemarket/index/__init__.py": "",
    "voicemarket/index/api.py": """
        from voicemarket.web.api import create_app
        from voicemarket.market.chain import model_id
        from voicemarket.cli import console  # bad
    """,
    "voicemarket/market/earnings.py": "from voicemarket.index import queries  # bad\n",
    "voicemarket/cli/__init__.py": "",
    "voicemarket/cli/console.py": """
        from voicemarket.market import licensing
        from voicemarket import dev  # bad
        from voicemarket.index import queries
    """,
    "voicemarket/dev/__init__.py": "",
    "voicemarket/dev/demo.py": "import oracle.serve\nfrom voicemarket.cli.console import table\nimport tests.helpers\n",
    "oracle/__init__.py": "",
    "oracle/serve.py": """
        from synth import Synthesizer
        from voicemarket.market.chain import FailReason
        from voicemarket.content.cid import CID
        import voicemarket.cli.console  # bad
        from voicemarket.web.api import create_app
        from voicemarket.index import api  # bad
        try:
            from voicemarket.dev import sandbox  # bad
        except ImportError:
            pass
    """,
    "scripts/say.py": """
        import importlib
        from voicemarket.cli.console import table
        from oracle.serve import serve
        demo = importlib.import_module("voicemarket.dev.demo")  # bad
    """,
    "audit/gate.py": "from voicemarket.dev.services import RedisServer  # bad\nimport json\n",
    "tests/test_x.py": "from voicemarket.dev.services import RedisServer\nfrom voicemarket.cli import console\n",
    "benchmarks/gas.py": "import voicemarket.dev.demo\n",
}


def test_the_checker_catches_each_kind_of_violation(tmp_path):
    expected = set()
    for name, text in SYNTHETIC.items():
        text = textwrap.dedent(text).lstrip("\n")
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
        expected.update((name, number) for number, line in enumerate(text.splitlines(), 1) if "# bad" in line)
    expected.add(("voicemarket/stray.py", 1))
    (tmp_path / "node_modules" / "pkg").mkdir(parents=True)  # never scanned
    (tmp_path / "node_modules" / "pkg" / "x.py").write_text("import voicemarket.dev\n")

    violations = check(tmp_path)

    assert {(v.path, v.line) for v in violations} == expected, "\n".join(map(str, violations))
    by_place = {(v.path, v.line): v for v in violations}
    assert by_place["synth/engine.py", 5].target == "oracle.serve"
    assert by_place["voicemarket/units.py", 2].target == "voicemarket.content.cid"
    assert by_place["voicemarket/content/cid.py", 5].target == "voicemarket.cli.console"
    assert by_place["voicemarket/cli/console.py", 2].target == "voicemarket.dev"
    assert by_place["scripts/say.py", 4].target == "voicemarket.dev.demo"
    assert by_place["oracle/serve.py", 6].rule == RULES["oracle"]
    assert by_place["audit/gate.py", 1].rule == RULES["other"]
    assert "content imports only the base layer" in str(by_place["voicemarket/content/cid.py", 4])
