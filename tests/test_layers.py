"""The layers of docs/CONVENTIONS.md run one way: a module imports only its own layer or the
layers below it (imports inside functions included). Read from the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "pixlink"

# module prefix (dotted, below ``pixlink``) -> layer; the longest matching prefix wins
LAYERS: dict[str, int] = {
    "": 0,  # the ground floor: types, geometry, errors, io, config, log, progress, vecmath, device, spans, ...
    "kb": 1, "index": 1, "models": 1,
    "regions": 2, "link": 2, "grounding": 2, "ner": 2,
    "ner.gmner": 3, "annotate": 3, "train": 3, "eval": 3, "demo": 3,
    "jobs": 4, "serve": 4, "cli": 4,
}


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    for n in range(len(parts), -1, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return prefix, LAYERS[prefix]
    return "", 0


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name[len("pixlink."):]) for a in node.names if a.name.startswith("pixlink.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and (node.module == "pixlink" or node.module.startswith("pixlink.")):
                    base = node.module[len("pixlink."):] if node.module != "pixlink" else ""
                    out += [(node.lineno, f"{base}.{a.name}".strip(".")) for a in node.names]
                continue
            pkg = module.split(".") if is_pkg else module.split(".")[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
            base = ".".join(pkg + ([node.module] if node.module else []))
            out += [(node.lineno, f"{base}.{a.name}".strip(".")) for a in node.names]
    return out


def _violations() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        own_prefix, own = layer_of(module)
        for line, target in _imports(path, module):
            tprefix, tl = layer_of(target)
            if tl > own:
                bad.append(f"{path.relative_to(SRC.parent)}:{line} ({own_prefix or 'ground'}, layer {own}) imports "
                           f"pixlink.{target} ({tprefix}, layer {tl})")
    return bad


def test_layer_rules_are_read_right():
    assert layer_of("link.linker") == ("link", 2)
    assert layer_of("ner.gmner.pipeline") == ("ner.gmner", 3)
    assert layer_of("ner.tagger") == ("ner", 2)
    assert layer_of("io") == ("", 0)
    path = SRC / "link" / "linker.py"
    targets = {t for _, t in _imports(path, "link.linker")}
    assert "errors.Errors" in targets and "link.config.LinkerConfig" in targets


def test_no_module_imports_a_higher_layer():
    bad = _violations()
    if bad:
        pytest.fail("imports against the layers of docs/CONVENTIONS.md:\n" + "\n".join(bad))
