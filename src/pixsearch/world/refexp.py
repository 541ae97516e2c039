"""Referring expressions that single out one flag among the distractors of a scene.

An entity can be told apart by position ("the leftmost flag"), size ("the smallest flag"),
colour ("the red-and-white flag") or its relation to another ("the flag behind the blue one").
Only expressions that fit exactly one entity of the scene, with a safety margin, are kept; the
same expressions feed the questions, the gold trajectories (region spans) and Stage-1 data.
"""

from __future__ import annotations

import numpy as np

from pixsearch.world.scenes import SceneEntity

MIN_GAP_PX = 24  # centres closer than this along an axis make "left of" ambiguous
MIN_SIZE_RATIO = 1.5  # the largest must be this much larger than the next


def _centres(ents: list[SceneEntity]) -> np.ndarray:
    return np.array([[(e.box[0] + e.box[2]) / 2, (e.box[1] + e.box[3]) / 2] for e in ents])


def _ordinal(ents: list[SceneEntity], i: int, axis: int, words: tuple[str, str]) -> list[str]:
    """Extreme / second-extreme along an axis, when clearly separated from the neighbours."""
    c = _centres(ents)[:, axis]
    order = list(np.argsort(c))
    pos = order.index(i)
    n = len(ents)
    gaps = np.diff(np.sort(c))
    left_ok = pos == 0 or gaps[pos - 1] >= MIN_GAP_PX
    right_ok = pos == n - 1 or gaps[pos] >= MIN_GAP_PX
    if not (left_ok and right_ok):
        return []
    lo, hi = words
    if n == 2:
        return [f"the flag on the {lo if pos == 0 else hi}"] if axis == 0 else []
    out = []
    if pos == 0:
        out.append(f"the {lo}most flag" if axis == 0 else "the highest flag")
    elif pos == n - 1:
        out.append(f"the {hi}most flag" if axis == 0 else "the lowest flag")
    elif axis == 0 and pos == 1:
        out.append(f"the second flag from the {lo}")
    elif axis == 0 and pos == n - 2:
        out.append(f"the second flag from the {hi}")
    return out


def _size(ents: list[SceneEntity], i: int) -> list[str]:
    areas = np.array([e.full_area for e in ents], float)
    order = np.argsort(areas)
    if len(ents) < 2:
        return []
    if order[-1] == i and areas[order[-1]] >= MIN_SIZE_RATIO * areas[order[-2]]:
        return ["the largest flag"]
    if order[0] == i and areas[order[1]] >= MIN_SIZE_RATIO * areas[order[0]]:
        return ["the smallest flag"]
    return []


def colour_phrase(colours: list[str]) -> str:
    """'red-and-white' for a two-colour description, 'red' for a single colour."""
    return "-and-".join(colours[:2]) if len(colours) > 1 else colours[0]


def _colour(ents: list[SceneEntity], i: int, colours: dict[str, list[str]]) -> list[str]:
    keys = [frozenset(colours[e.code][:2]) for e in ents]
    if keys.count(keys[i]) != 1:
        return []
    return [f"the {colour_phrase(colours[ents[i].code])} flag"]


def _relation(ents: list[SceneEntity], i: int, colours: dict[str, list[str]]) -> list[str]:
    """'the flag behind the blue-and-white one': i is hidden in part by exactly one flag j,
    j is the only flag of its colours, and j hides no other flag."""
    occ = ents[i].occluders
    if len(occ) != 1:
        return []
    j = occ[0]
    hidden_by_j = [k for k, e in enumerate(ents) if j in e.occluders]
    if hidden_by_j != [i] or not _colour(ents, j, colours):
        return []
    return [f"the flag behind the {colour_phrase(colours[ents[j].code])} one"]


def referring_expressions(ents: list[SceneEntity], i: int,
                          colours: dict[str, list[str]]) -> list[str]:
    """Every unambiguous expression for entity `i` (position, size, colour, relation)."""
    return (_ordinal(ents, i, 0, ("left", "right")) + _ordinal(ents, i, 1, ("top", "bottom"))
            + _size(ents, i) + _colour(ents, i, colours) + _relation(ents, i, colours))


def count_left_of(ents: list[SceneEntity], i: int) -> int | None:
    """How many flags lie clearly left of entity i; None when one is too close to call."""
    c = _centres(ents)[:, 0]
    dx = c - c[i]
    others = np.delete(dx, i)
    if np.any(np.abs(others) < MIN_GAP_PX):
        return None
    return int((others < 0).sum())
