"""Stage 1: formula text -> ModelSpec (response, fixed terms, random-effect blocks).

The bar structure (``(x | g)``, ``(x || g)``, ``(1 | a/b)``) is parsed here, because the
formula engine ``formulae`` loses it; the terms on either side of a bar are left as text for
``formulae`` to evaluate in :mod:`hierbayes.design`. R spellings that formulae does not know
(``I(x^2)``) are rewritten to their Python form. Any column name can be written in R's
backquotes (`` `exam score` ``); backquoted text is never split or rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FormulaError", "RandomBlock", "ModelSpec", "parse_formula", "unquote"]


class FormulaError(ValueError):
    """The formula cannot be parsed or does not describe a model we can build."""


@dataclass(frozen=True)
class RandomBlock:
    """One ``(terms | group)`` term of the formula.

    ``terms`` is the left side of the bar as written (R spellings already rewritten), ``group``
    the grouping factor: a column, or columns joined by ``:`` for an interaction of factors,
    named without backquotes. ``correlated`` is False for ``||``, whose terms get independent
    SDs (the design stage splits such a block into one block per column, as lme4 does).
    """

    terms: str
    group: str
    correlated: bool = True
    source: str = ""  # the bar term as the user wrote it, for error messages
    columns: tuple[str, ...] = ()  # the grouping columns (default: ``group`` split at ':')

    @property
    def group_columns(self) -> tuple[str, ...]:
        return self.columns or tuple(part.strip() for part in self.group.split(":"))


@dataclass(frozen=True)
class ModelSpec:
    """A parsed formula: response, fixed part and random-effect blocks."""

    formula: str
    response: str
    fixed: str
    blocks: tuple[RandomBlock, ...]


_GROUP_NAME = re.compile(r"^(?:[^\W\d]|\.)[\w.]*$")  # a column name that needs no backquotes
_QUOTED = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"")  # a backquoted name or a string literal


def unquote(name: str) -> str:
    """`` `exam score` `` -> ``exam score``; other text is returned stripped."""
    name = name.strip()
    if len(name) > 1 and name[0] == name[-1] == "`" and "`" not in name[1:-1]:
        return name[1:-1]
    return name


def _mask(text: str) -> str:
    """``text`` with every backquoted name and string blanked out (same length), so that the
    parentheses, bars and operators found in it are the formula's own."""
    masked = _QUOTED.sub(lambda m: "_" * len(m.group()), text)
    if "`" in masked:
        raise FormulaError(f"formula text {text!r} has an unclosed backquote '`'")
    return masked


def parse_formula(formula: str) -> ModelSpec:
    """Parse ``formula`` (lme4 syntax) into a :class:`ModelSpec`.

    >>> spec = parse_formula("y ~ x + (1 + x | g) + (1 | a/b)")
    >>> [(b.terms, b.group) for b in spec.blocks]
    [('1 + x', 'g'), ('1', 'a'), ('1', 'a:b')]
    """
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError("the formula must be a non-empty string such as 'y ~ x + (1 | g)'")
    _check_parentheses(formula)
    sides = _split_top(formula, "~")
    if len(sides) != 2:
        raise FormulaError(
            f"formula {formula!r} must have exactly one '~' with the response on its left, "
            "e.g. 'y ~ x + (1 | g)'"
        )
    response, rhs = (s.strip() for s in sides)
    if not response:
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    if not rhs:
        raise FormulaError(f"formula {formula!r} has nothing on the right of '~'")

    fixed_terms: list[str] = []
    blocks: list[RandomBlock] = []
    for sign, term in _split_terms(rhs, formula):
        bar = _bar_content(term)
        if bar is None:
            _check_missing_bar(term)
            fixed_terms.append(term if sign == "+" else f"-{term}")
            continue
        if sign == "-":
            raise FormulaError(f"a random-effect term cannot be subtracted: '-{term}'")
        blocks.extend(_parse_bar(term, bar))

    fixed = _join_terms(fixed_terms) if fixed_terms else "1"
    return ModelSpec(
        formula=formula.strip(),
        response=to_python(response),
        fixed=to_python(fixed),
        blocks=tuple(blocks),
    )


# R functions whose formulae namesake differs (formulae's scale() divides by the SD with n,
# R's with n - 1): rewritten to our R-compatible versions, and named back in column labels.
R_RENAMES = {"scale": "rscale"}
_R_CALL = re.compile(r"(?<![\w.])(" + "|".join(R_RENAMES) + r")\s*\(")


def to_python(expr: str) -> str:
    """Rewrite R spellings: ``^`` (power) inside function calls becomes ``**``; R's ``scale``.

    ``I(age^2)`` is R's square; in Python ``^`` is exclusive-or. At the top level of a
    formula ``^`` means interaction crossing, which we leave alone. Backquoted names and
    strings are left as they are.
    """
    masked = _mask(expr)
    renames = {m.start(): m.group(1) for m in _R_CALL.finditer(masked)}
    out = []
    stack: list[bool] = []  # for each open parenthesis: is it a function call?
    i = 0
    while i < len(expr):
        if i in renames:
            out.append(R_RENAMES[renames[i]])
            i += len(renames[i])
            continue
        ch = masked[i]
        if ch == "(":
            before = masked[:i].rstrip()
            stack.append(bool(before) and (before[-1].isalnum() or before[-1] in "_."))
        elif ch == ")" and stack:
            stack.pop()
        out.append("**" if ch == "^" and any(stack) else expr[i])
        i += 1
    return "".join(out)


def _check_parentheses(text: str) -> None:
    depth = 0
    for ch in _mask(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            raise FormulaError(f"formula {text!r} has a ')' without a matching '('")
    if depth:
        raise FormulaError(f"formula {text!r} has an unclosed '('")


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` where it occurs outside parentheses, brackets and quotes."""
    masked = _mask(text)
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = masked[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and masked.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _split_terms(rhs: str, formula: str) -> list[tuple[str, str]]:
    """Split the right-hand side into (sign, term) at top-level ``+`` and ``-``."""
    masked = _mask(rhs)
    terms: list[tuple[str, str]] = []
    depth, sign, start = 0, "+", 0
    for i, ch in enumerate(masked):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if depth or ch not in "+-":
            continue
        term, start = rhs[start:i].strip(), i + 1
        if term:
            terms.append((sign, term))
            sign = ch
        elif ch == "-":
            sign = "-"  # '-1' at the start, or '+ -1'
        else:
            raise FormulaError(f"formula {formula!r} has an empty term before a '+'")
    if not rhs[start:].strip():
        raise FormulaError(f"formula {formula!r} ends with a dangling '{sign}'")
    terms.append((sign, rhs[start:].strip()))
    return terms


def _join_terms(terms: list[str]) -> str:
    text = " + ".join(terms)
    return text.replace("+ -", "- ")


def _parenthesised(term: str) -> str | None:
    """If ``term`` is one ``( ... )`` return what is inside the parentheses."""
    masked = _mask(term)
    if not (masked.startswith("(") and masked.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(masked):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(term) - 1:
            return None  # e.g. "(a)(b)": the first parenthesis closes early
    return term[1:-1]


def _bar_content(term: str) -> str | None:
    """If ``term`` is ``( ... | ... )`` return what is inside the parentheses."""
    inner = _parenthesised(term)
    return inner if inner is not None and len(_split_top(inner, "|")) > 1 else None


def _check_missing_bar(term: str) -> None:
    """``(x g)``: names separated by spaces only, no operator: a bar term without its bar."""
    inner = _parenthesised(term)
    if inner is None:
        return
    spans = [m.span() for m in re.finditer(r"\S+", _mask(inner))]
    names = [inner[a:b] for a, b in spans]
    if len(names) < 2 or not all(re.fullmatch(r"[\w.]+", _mask(name)) for name in names):
        return
    suggestion = f"({' + '.join(names[:-1])} | {names[-1]})"
    raise FormulaError(
        f"term {term!r} has names separated by spaces but no operator: a random-effect term "
        f"needs a bar between its terms and the grouping factor; did you mean {suggestion}?"
    )


def _parse_bar(term: str, inner: str) -> list[RandomBlock]:
    parts = _split_top(inner, "||")
    correlated = len(parts) == 1
    if correlated:
        parts = _split_top(inner, "|")
    if len(parts) != 2:
        raise FormulaError(f"random-effect term {term!r} must have one '|' or '||'")
    lhs, rhs = (p.strip() for p in parts)
    if not lhs:
        raise FormulaError(f"random-effect term {term!r} has no terms left of the bar; use (1 | g)")
    if not rhs:
        raise FormulaError(f"random-effect term {term!r} has no grouping factor right of the bar")
    lhs = to_python(lhs)
    return [
        RandomBlock(terms=lhs, group=group, correlated=correlated, source=term, columns=columns)
        for group, columns in _expand_groups(rhs, term)
    ]


def _expand_groups(rhs: str, term: str) -> list[tuple[str, tuple[str, ...]]]:
    """``a/b/c`` -> ``a``, ``a:b``, ``a:b:c`` (lme4's nesting); ``a:b`` stays one factor.

    Returns (group name, grouping columns) per factor; names lose their backquotes.
    """
    parts = [[name.strip() for name in _split_top(part, ":")] for part in _split_top(rhs, "/")]
    for name in (name for part in parts for name in part):
        if not (_GROUP_NAME.match(name) or unquote(name) not in (name, "")):
            hint = ""
            if re.fullmatch(r"[^`:/|()+*~]+", name):
                hint = f"; a name with spaces or symbols goes in backquotes: `{name}`"
            raise FormulaError(
                f"grouping factor {rhs.strip()!r} in {term!r} must be a column name, or columns "
                f"joined by ':' (interaction) or '/' (nesting){hint}"
            )
    nested = [[unquote(name) for name in part] for part in parts]
    columns = [tuple(col for part in nested[:k] for col in part) for k in range(1, len(nested) + 1)]
    return [(":".join(cols), cols) for cols in columns]
