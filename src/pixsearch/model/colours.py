"""Named colours, of pixels and of words: what a referring expression's colours say about
each candidate of the referent selector (`referent.py`).

Pixels get one of the basic colour terms by hue, saturation and value (`colour_names`), so a
candidate has a share of each (`colour_shares`); an expression names some of the same terms,
or their kin (`colour_mentions`), and `colour_match` scores each candidate against them.

An expression may also tie its flag to another one: "the flag behind the red-and-white one",
"the flag partly hidden by the blue one". Its colour words then describe that other flag, and
matching them against the candidates picks the wrong one. `expression_colours` splits the
words at the first word of such a relation (`RELATION_CUES`) — the colours before it are the
referent's own, the rest the other flag's — and `relation_match` scores each candidate by how
well it, and the candidates that touch it, fit the other flag's colours. Like the rest of the
selector's inputs these are numbers per candidate; no control flow is read from the words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Basic colour terms (Berlin & Kay) by hue, saturation and value: referring expressions name
# colours ("the red-and-black flag"), so the share of each named colour inside a candidate is
# what a selector can match them against (mean RGB alone confuses red + green with brown).
# Hue bins in degrees; pixels darker than BLACK_V are black, paler than WHITE_S white, so
# lighting changes brightness without changing the name.
HUE_NAMES = (("red", 0, 15), ("orange", 15, 40), ("yellow", 40, 70), ("green", 70, 165),
             ("light blue", 165, 205), ("blue", 205, 265), ("purple", 265, 330),
             ("red", 330, 360))
COLOUR_NAMES = ("red", "orange", "yellow", "green", "light blue", "blue", "purple", "white",
                "black")
BLACK_V, WHITE_S = 0.2, 0.25
NAMES = len(COLOUR_NAMES)

# The words an expression may name each colour of `COLOUR_NAMES` by. "blue" also covers the
# light-blue hue bin: people call sky-blue stripes blue, and the hue bins split them.
COLOUR_WORDS = {
    "red": ("red", "scarlet", "crimson", "maroon", "vermilion"),
    "orange": ("orange", "saffron", "amber"),
    "yellow": ("yellow", "gold", "golden"),
    "green": ("green", "emerald", "olive", "lime"),
    "light blue": ("light blue", "light-blue", "sky blue", "sky-blue", "azure", "cyan",
                   "turquoise"),
    "blue": ("blue", "navy"),
    "purple": ("purple", "violet", "magenta"),
    "white": ("white",),
    "black": ("black",),
}
_COVERS = {"blue": ("blue", "light blue")}  # word name -> the hue bins it covers
MATCH = 4  # a colour is named; min, sum and complement of the named colours' shares


def colour_names(rgb: torch.Tensor) -> torch.Tensor:
    """Index into `COLOUR_NAMES` of every pixel of an image [3, M, M] (RGB in [0, 1]): [M²]."""
    px = rgb.flatten(1).float()
    v, vmin = px.amax(0), px.amin(0)
    chroma = v - vmin
    sat = chroma / v.clamp_min(1e-6)
    r, g, b = px
    safe = chroma.clamp_min(1e-6)
    hue = torch.where(v == r, ((g - b) / safe) % 6,
                      torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    names = torch.zeros_like(hue, dtype=torch.long)
    for name, lo, hi in HUE_NAMES:
        names = torch.where((hue >= lo) & (hue < hi), COLOUR_NAMES.index(name), names)
    names = torch.where(sat < WHITE_S, COLOUR_NAMES.index("white"), names)
    return torch.where(v < BLACK_V, COLOUR_NAMES.index("black"), names)


def colour_shares(masks: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """Share of each mask's [K, M, M] pixels named each of `COLOUR_NAMES`: [K, NAMES]."""
    onehot = F.one_hot(colour_names(rgb), NAMES).float()
    w = masks.flatten(1).float()
    return w @ onehot / w.sum(1, keepdim=True).clamp_min(1)


def colour_mentions(text: str) -> torch.Tensor:
    """Which of `COLOUR_NAMES` the expression `text` names (`COLOUR_WORDS`): [NAMES] of 0/1.
    "light blue" and its kin are taken before "blue", so they do not also name blue."""
    text = text.lower()
    out = torch.zeros(NAMES)
    for name in sorted(COLOUR_WORDS, key=lambda n: -max(len(w) for w in COLOUR_WORDS[n])):
        for word in COLOUR_WORDS[name]:
            pattern = rf"(?<![a-z]){re.escape(word)}(?![a-z])"
            if re.search(pattern, text):
                out[COLOUR_NAMES.index(name)] = 1.0
                text = re.sub(pattern, " ", text)
    return out


def colour_match(shares: torch.Tensor, mentions: torch.Tensor) -> torch.Tensor:
    """How well candidates with named-colour shares [K, NAMES] (`colour_shares`) fit the
    colours an expression names (`colour_mentions`, [NAMES]): whether it names any, the
    smallest share among the named colours (a "red-and-white" flag has both), their summed
    share, and the share of colours it does not name: [K, MATCH]."""
    k = shares.shape[0]
    named = [i for i in range(NAMES) if mentions[i] > 0]
    if not named:
        return shares.new_zeros(k, MATCH)
    cover = shares.new_zeros(len(named), NAMES)
    for row, i in enumerate(named):
        for bin_name in _COVERS.get(COLOUR_NAMES[i], (COLOUR_NAMES[i],)):
            cover[row, COLOUR_NAMES.index(bin_name)] = 1.0
    per_name = shares @ cover.T  # [K, named]
    union = shares @ cover.amax(0)
    return torch.stack([torch.ones_like(union), per_name.amin(1), per_name.sum(1).clamp(max=1),
                        1 - union], 1)


# Words that relate the referent to another flag; colour words after the first of them name
# that other flag ("the flag behind the red one", "the blue flag next to the white one").
RELATION_CUES = re.compile(
    r"(?<![a-z])(behind|hidden|covered|covering|blocked|obscured|overlapped|overlapping|"
    r"underneath|beneath|below|above|under|in front of|next to|beside|near|left of|right of|"
    r"touching|against|covers|hides|hiding|overlaps|blocks|obscures)(?![a-z])")
# "the flag that the blue one covers": a colour phrase ending in "one" after the head word
# "flag" is another flag too, wherever the relation word stands.
_OTHER_ONE = re.compile(r"(?<![a-z])flag\b.*?\bthe ([a-z\s&-]+?) one(?![a-z])")
RELATION = 3  # other colours named; the candidate's own fit to them; its touching ones' best


@dataclass(frozen=True)
class ExpressionColours:
    """The colours an expression names (`colour_mentions` vectors [NAMES] of 0/1).

    Attributes:
        own: the colours of the referent itself.
        other: the colours of another flag it is related to (zeros when none is named);
            None when the words were not split (`expression_colours(relations=False)`).
    """

    own: torch.Tensor
    other: torch.Tensor | None = None


def expression_colours(text: str, relations: bool = False) -> ExpressionColours:
    """The colour words of a referring expression; with `relations`, split into the
    referent's own and those of the flag it is related to (see the module doc)."""
    if not relations:
        return ExpressionColours(colour_mentions(text))
    text = text.lower()
    cue = RELATION_CUES.search(text)
    own, other = (text[:cue.start()], text[cue.start():]) if cue else (text, "")
    one = _OTHER_ONE.search(own)
    if one:
        own, other = own[:one.start(1)] + own[one.end(1):], one.group(1) + " " + other
    return ExpressionColours(colour_mentions(own), colour_mentions(other))


def touching(masks: torch.Tensor, reach: int = 1) -> torch.Tensor:
    """[K, K] 0/1: candidate masks [K, M, M] that touch one another (within `reach` pixels)
    without being mostly the same pixels (nested proposals of one entity do not count)."""
    w = masks.float()
    grown = F.max_pool2d(w[:, None], 2 * reach + 1, stride=1, padding=reach)[:, 0]
    contact = torch.einsum("kij,lij->kl", grown, w) > 0
    inter = torch.einsum("kij,lij->kl", w, w)
    area = w.flatten(1).sum(1)
    nested = inter >= 0.5 * torch.minimum(area[:, None], area[None]).clamp_min(1)
    return (contact & ~nested).to(w.dtype)


def relation_match(masks: torch.Tensor, shares: torch.Tensor, other: torch.Tensor
                   ) -> torch.Tensor:
    """Per candidate mask [K, M, M] with named-colour shares [K, NAMES]: whether the
    expression names another flag's colours `other` [NAMES], how well the candidate fits
    them (the smallest of their shares: it may be that flag), and the best such fit among
    the candidates touching it (it may be the flag behind or next to that one): [K, RELATION]."""
    k = shares.shape[0]
    if not other.any():
        return shares.new_zeros(k, RELATION)
    fit = colour_match(shares, other)[:, 1]
    near = (touching(masks) * fit[None]).amax(1) if k > 1 else torch.zeros_like(fit)
    return torch.stack([torch.ones_like(fit), fit, near], 1)
