"""YAML and JSON the kit reads back from disk (recipes, records, manifests, search and golden files),
parsed with bounds, so a hostile or damaged file ends in one KitError line, never a traceback or a hang.

YAML: aliases are shared nodes, so a few lines (`a: &a [*b, *b, ...]`) can stand for billions of values
once anything walks the result (validation, the recipe dump in the manifest). The expanded size is
counted on the node graph, before any Python object is built; the same walk refuses tags other than
the plain ones (`!!binary`, `!!timestamp`, `!!set`, ...: a recipe holds text, numbers, lists and
mappings) and integers too long to be a setting (Python refuses past 4,300 digits with a ValueError).
JSON: the same file-size, nesting and integer-length limits.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..errors import KitError

FILE_LIMIT = 1 * 2**20  # bytes: a recipe is a page of text
NODE_LIMIT = 100_000  # values after alias expansion: a recipe has hundreds
DEPTH_LIMIT = 100  # nesting: recipes and records nest a handful of levels
INT_DIGITS = 100  # digits of one integer: a byte count has ten
JSON_FILE_LIMIT = 64 * 2**20  # bytes: records are kilobytes, a long search's search.json a few megabytes
_PLAIN = "tag:yaml.org,2002:"
PLAIN_TAGS = frozenset(_PLAIN + name for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge"))


class _Refused(Exception):
    def __init__(self, problem: str, fix: str, code: str):
        super().__init__(problem)
        self.problem, self.fix, self.code = problem, fix, code


class _TooBig(_Refused):
    def __init__(self, problem: str):
        super().__init__(problem, "write the values out instead of nesting aliases", "yaml-alias-bomb")


def _check_scalar(node: yaml.Node) -> None:
    if node.tag not in PLAIN_TAGS:
        shown = node.tag.replace(_PLAIN, "!!")[:60]
        raise _Refused(f"holds a value tagged {shown} (line {node.start_mark.line + 1}); only text, numbers, "
                       "booleans, lists and mappings are read", "remove the tag (quote the value if it is text)",
                       "yaml-tag")
    if node.tag == _PLAIN + "int" and len(node.value) > INT_DIGITS:
        raise _Refused(f"holds an integer of {len(node.value):,} digits (line {node.start_mark.line + 1}), over "
                       f"the {INT_DIGITS} any setting needs", "write a sensible number", "yaml-huge-int")


def expanded_size(root: yaml.Node, limit: int = NODE_LIMIT) -> int:
    """How many nodes `root` stands for with every alias expanded; _TooBig past `limit` or on a cycle.
    Every node is also checked for its tag and integer length (_Refused), and the nesting depth."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, False, 1)]
    while stack:
        node, children_done, depth = stack.pop()
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
        if depth > DEPTH_LIMIT:
            raise _Refused(f"nests deeper than {DEPTH_LIMIT} levels", "flatten the YAML", "yaml-too-deep")
        _check_scalar(node)
        on_path.add(key)
        stack.append((node, True, depth))
        stack.extend((child, False, depth + 1) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses a document expanding past NODE_LIMIT values, nesting past DEPTH_LIMIT,
    carrying a non-plain tag or an integer longer than INT_DIGITS."""

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            expanded_size(node)
        return node


def _check_size(path: Path, what: str, limit: int, fix: str) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise KitError(f"{what} {path} cannot be read ({exc.strerror})", fix, code="file-unreadable") from None
    if not path.is_file():
        raise KitError(f"{what} {path} is not a regular file", fix, code="file-not-regular")
    if size > limit:
        raise KitError(f"{what} {path} is {size:,} bytes, over the {limit:,} a {what} can need", fix,
                       code="file-too-big")


def _read_text(path: Path, what: str, fix: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KitError(f"{what} {path} is not UTF-8 text", fix, code="file-not-text") from None
    except OSError as exc:
        raise KitError(f"{what} {path} cannot be read ({exc.strerror})", fix, code="file-unreadable") from None


def load_yaml_file(path: Path, what: str = "recipe"):
    """The parsed document; KitError (one line) for a huge file, bad YAML, an alias bomb, deep nesting,
    a non-plain tag or a huge integer."""
    path = Path(path)
    size = path.stat().st_size
    if size > FILE_LIMIT:
        raise KitError(f"{what} {path} is {size:,} bytes, over the {FILE_LIMIT:,} a {what} can need",
                       f"give the path of a {what} YAML file", code="yaml-file-too-big")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=BoundedLoader)  # noqa: S506 (a SafeLoader)
    except _Refused as exc:
        raise KitError(f"{what} {path} is refused: it {exc.problem}" if not isinstance(exc, _TooBig)
                       else f"{what} {path} is refused: {exc.problem}", exc.fix, code=exc.code) from None
    except RecursionError:
        raise KitError(f"{what} {path} nests too deeply", "flatten the YAML", code="yaml-too-deep") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise KitError(f"{what} {path} is not valid YAML{where}", "fix the YAML syntax", code="yaml-syntax") from None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > INT_DIGITS:
        raise _Refused(f"holds an integer of {len(text):,} digits, over the {INT_DIGITS} any field needs",
                       "", "json-huge-int")
    return int(text)


def _json_depth_ok(value) -> None:
    """Walk without recursion: deep nesting must not reach code that recurses (dumps, reports)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > DEPTH_LIMIT:
            raise _Refused(f"nests deeper than {DEPTH_LIMIT} levels", "", "json-too-deep")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def parse_json(text: str | bytes, what: str, fix: str):
    """The parsed JSON value of `text` (from `what`); KitError for bad JSON, deep nesting or a huge integer."""
    try:
        value = json.loads(text, parse_int=_bounded_int)
        _json_depth_ok(value)
        return value
    except _Refused as exc:
        raise KitError(f"{what} is refused: it {exc.problem}", fix, code=exc.code) from None
    except RecursionError:
        raise KitError(f"{what} is refused: it nests too deeply", fix, code="json-too-deep") from None
    except (ValueError, UnicodeDecodeError):
        raise KitError(f"{what} is not valid JSON (truncated or edited?)", fix, code="json-syntax") from None


def load_json_file(path: Path, what: str, fix: str, limit: int = JSON_FILE_LIMIT, kind: type | None = dict):
    """A JSON file the kit reads back, parsed with bounds; KitError (one line, naming `what` and the
    file, with `fix`) when it is missing, huge, not JSON, too deep, or not of `kind` (None: any)."""
    path = Path(path)
    _check_size(path, what, limit, fix)
    value = parse_json(_read_text(path, what, fix), f"{what} {path}", fix)
    if kind is not None and not isinstance(value, kind):
        raise KitError(f"{what} {path} does not hold a JSON {'object' if kind is dict else kind.__name__}", fix,
                       code="json-wrong-type")
    return value
