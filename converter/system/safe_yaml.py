"""YAML from users, parsed with bounds: aliases are shared nodes, so a few lines (`a: &a [*b, *b, ...]`)
can stand for billions of values once anything walks the result (validation, the recipe dump in
the manifest). The expanded size is counted on the node graph, before any Python object is built."""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import KitError

FILE_LIMIT = 1 * 2**20  # bytes: a recipe is a page of text
NODE_LIMIT = 100_000  # values after alias expansion: a recipe has hundreds


class _TooBig(Exception):
    pass


def expanded_size(root: yaml.Node, limit: int = NODE_LIMIT) -> int:
    """How many nodes `root` stands for with every alias expanded; _TooBig past `limit` or on a cycle."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > limit:
                raise _TooBig(f"over {limit:,} values once its aliases are expanded")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _TooBig("an alias that contains itself")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses a document expanding past NODE_LIMIT values."""

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            expanded_size(node)
        return node


def load_yaml_file(path: Path, what: str = "recipe"):
    """The parsed document; KitError (one line) for a huge file, bad YAML or an alias bomb."""
    size = path.stat().st_size
    if size > FILE_LIMIT:
        raise KitError(f"{what} {path} is {size:,} bytes, over the {FILE_LIMIT:,} a {what} can need",
                       f"give the path of a {what} YAML file", code="yaml-file-too-big")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=BoundedLoader)  # noqa: S506 (a SafeLoader)
    except _TooBig as exc:
        raise KitError(f"{what} {path} is refused: {exc}", "write the values out instead of nesting aliases",
                       code="yaml-alias-bomb") from None
    except RecursionError:
        raise KitError(f"{what} {path} nests too deeply", "flatten the YAML", code="yaml-too-deep") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise KitError(f"{what} {path} is not valid YAML{where}", "fix the YAML syntax", code="yaml-syntax") from None
