"""Decode-time abstention: say "I don't know" when the answer is unlikely to be right.

A search-interleaved answer can go wrong at each link: the mask lands on another object, the
index has no document about the entity (its best hit is then some other entity, with a low
score and no clear winner), or the LM writes a fact it is unsure of. `confidence_features`
reads those signals off a finished `Trace` (the confidence of each region mask, retrieval
scores and margins of every search, the LM's log-probabilities of the answer tokens), and
`AbstentionConfig` maps them to a calibrated probability that the answer is right (logistic
regression fitted on a validation split by `pixsearch eval calibrate`, never on test). Below
the threshold, the answer is replaced by `message`. The policy is saved with the model
(`ModelConfig.abstention`), so the CLI, the server and the evaluation all use the threshold
that was chosen for those weights.

An answer read off the model's own look (a count from a perception line, `perception.py`) owes
nothing to retrieval: the hit scores that predict a retrieved fact's truth say nothing about it.
Such answers (every name, number, colour and left or right of the answer found in a perception
line: `seen_read`) get a logistic regression of their own (`AbstentionConfig.perception`); both
give a calibrated probability of a right answer, and one threshold decides.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from pixsearch.tokens import DISPLAY
from pixsearch.turns import DISPLAY_TAG_RE
from pixsearch.types import Trace

# features in a fixed order: the calibration fits one weight per name
FEATURES = ("searched", "n_searches", "hit_top1_min", "hit_margin_min", "hit_top1_first",
            "lm_mean_logprob", "lm_min_logprob", "region", "image", "text", "mask_score_min",
            "top_title_named", "final_grounded", "region_mask_score", "region_hit_top1",
            "region_hit_margin")
# the policy of answers read off a perception line sees what can doubt a look, not the hits
PERCEPTION_FEATURES = ("lm_mean_logprob", "lm_min_logprob", "region", "image", "mask_score_min",
                       "n_searches")
# 1 when the answer is read off a perception line (`seen_read`; routes to that policy)
SEEN_READ = "seen_read"

_INFO = re.compile(re.escape(DISPLAY["info_open"]) + r".*?(?:" + re.escape(DISPLAY["info_close"])
                   + r"|$)", re.S)
_WORD = re.compile(r"\+?[^\W_][\w'’+-]*")


@dataclass
class Logistic:
    """A fitted logistic regression over named confidence features.

    Attributes:
        weights: weight per feature name (standardised features).
        bias: intercept.
        mean, scale: standardisation of each feature before the weights.
    """

    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    mean: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown abstention feature(s) {sorted(unknown)}; known: "
                             f"{list(FEATURES)}")

    def p(self, features: dict[str, float]) -> float:
        """The probability this regression gives an answer with these features."""
        z = self.bias
        for name, w in self.weights.items():
            x = (features.get(name, 0.0) - self.mean.get(name, 0.0)) / (self.scale.get(name) or 1.0)
            z += w * x
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@dataclass
class AbstentionConfig:
    """A calibrated abstention policy.

    Attributes:
        enabled: apply the policy when decoding (a model without calibration keeps it off).
        threshold: abstain when the calibrated probability of a right answer is below it.
        weights: logistic-regression weight per feature name (`FEATURES`).
        bias: logistic-regression intercept.
        mean, scale: standardisation of each feature before the weights (fitted on val).
        message: the text of an abstention (CRAG-MM's "I don't know" detection accepts it).
        fitted_on: where the calibration came from (run folder, split, number of records).
        perception: the regression for answers read off a perception line (`SEEN_READ`),
            over `PERCEPTION_FEATURES`; None: the one above decides every answer.
    """

    enabled: bool = False
    threshold: float = 0.5
    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    mean: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    message: str = "I don't know."
    fitted_on: str = ""
    perception: Logistic | None = None

    def __post_init__(self) -> None:
        Logistic(self.weights)  # checks the feature names
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"abstention threshold must be in [0, 1], got {self.threshold}")

    def p_correct(self, features: dict[str, float]) -> float:
        """The calibrated probability that an answer with these features is right."""
        if self.perception is not None and features.get(SEEN_READ, 0.0) >= 1.0:
            return self.perception.p(features)
        return Logistic(self.weights, self.bias, self.mean, self.scale).p(features)


def confidence_features(trace: Trace) -> dict[str, float]:
    """The signals of a finished answer that predict whether it is right (see `FEATURES`).

    Hit scores are the search API's similarity scores (higher is better); searches that were
    skipped or returned nothing count as score 0. LM log-probabilities are those the engine
    recorded for the answer tokens after the last evidence block (`trace.lm_logprobs`)."""
    done = [s for s in trace.steps if s.skipped is None]
    tops = [s.hits[0].score if s.hits else 0.0 for s in done]
    margins = [(s.hits[0].score - s.hits[1].score) if len(s.hits) > 1 else
               (s.hits[0].score if s.hits else 0.0) for s in done]
    lp = trace.lm_logprobs
    first = done[0].modality if done else None
    # an answer without a region mask has no mask to doubt: 1 (the region flag tells them apart)
    masks = [s.mask_score for s in done if s.modality == "region" and s.mask_score is not None]
    return {
        "searched": float(bool(done)),
        "n_searches": float(len(done)),
        "hit_top1_min": min(tops) if tops else 0.0,
        "hit_margin_min": min(margins) if margins else 0.0,
        "hit_top1_first": tops[0] if tops else 0.0,
        "lm_mean_logprob": sum(lp) / len(lp) if lp else 0.0,
        "lm_min_logprob": min(lp) if lp else 0.0,
        "region": float(first == "region"),
        "image": float(first == "image"),
        "text": float(first == "text"),
        "mask_score_min": min(masks) if masks else 1.0,
        **grounding_features(trace),
        **region_route_features(first, tops, margins, masks),
        SEEN_READ: seen_read(trace),
    }


def decide(trace: Trace, answer: str, policy: AbstentionConfig) -> str:
    """The text to return for a finished `trace` whose model wrote `answer`: the policy's
    message for a failed answer, or below the calibrated threshold (the model's words kept in
    `trace.raw_answer`), else the answer. Records the confidence in the trace even when the
    policy is off (risk-coverage curves need it). The engine decides with it when an answer
    ends, and `eval apply-policy` with another policy over a saved trace."""
    if policy.weights:
        trace.p_correct = policy.p_correct(confidence_features(trace))
    if trace.failure is not None:
        trace.raw_answer = answer
        return policy.message
    if policy.weights and policy.enabled:
        trace.abstain_threshold = policy.threshold
        if trace.p_correct < policy.threshold:
            trace.raw_answer, trace.abstained = answer, True
            return policy.message
    return answer


def region_route_features(first: str | None, tops: list[float], margins: list[float],
                          masks: list[float]) -> dict[str, float]:
    """The first search's signals again, for answers that began with a region search (0 for
    the others), so the linear policy gets a slope of its own on that route. There the
    retrieval finds whichever flag the mask landed on as confidently as the right one, so the
    hit score says little and the referent's confidence (the mask score) says most; on a
    whole-image or text route it is the other way round, and one shared slope fits neither."""
    region = float(first == "region")
    return {"region_mask_score": region * (min(masks) if masks else 1.0),
            "region_hit_top1": region * (tops[0] if tops else 0.0),
            "region_hit_margin": region * (margins[0] if margins else 0.0)}


def grounding_features(trace: Trace) -> dict[str, float]:
    """Does the answer agree with what the searches found? Two signals of a hallucination
    that retrieval scores miss (a confident hit, then an answer about something else):

    - `top_title_named`: share of the searches with hits whose best hit's title (the entity
      it is about) the answer text names;
    - `final_grounded`: share of the names and numbers of the final sentence (words with a
      digit, capitalised words not opening the sentence) found in some evidence.

    Both are 1 where there is nothing to check (no search, no hits, no name or number)."""
    prose = DISPLAY_TAG_RE.sub(" ", _INFO.sub(" ", trace.display))
    final = trace.display.rsplit(DISPLAY["info_close"], 1)[-1] if trace.steps else ""
    evidence = " ".join(h.text + " " + h.title for s in trace.steps for h in s.hits)
    tops = [s.hits[0].title for s in trace.steps if s.skipped is None and s.hits]
    named = [t.lower() in prose.lower() for t in tops if t]
    return {"top_title_named": sum(named) / len(named) if named else 1.0,
            "final_grounded": _grounded(DISPLAY_TAG_RE.sub(" ", final), evidence)}


def seen_read(trace: Trace) -> float:
    """1 when every name and number of the answer (as `final_grounded` picks them) and every
    word it uses of what a perception line speaks of (`PERCEPTION_WORDS`: colours, left and
    right) is a word of a perception line of its evidence, else 0 (also with no name or
    number, or no perception line): an answer read off the model's own look, like "There are
    3 flags in the picture." after `[0] Seen: 3 like it in the image.`, but not "There are 3
    flags to the left of the red one." after that line, which says nothing of red or left."""
    from pixsearch.perception import PERCEPTION_WORDS, SEEN  # torch: not for `pixsearch --help`

    seen = {w for s in trace.steps for line in (s.evidence or "").splitlines()
            if line.startswith(SEEN) for w in _words(line[len(SEEN):])}
    if not seen:
        return 0.0
    final = DISPLAY_TAG_RE.sub(" ", trace.display.rsplit(DISPLAY["info_close"], 1)[-1])
    spans = [w for m in _spans(final) for w in _words(m.group(0))]
    said = spans + [w for w in _words(final) if w in PERCEPTION_WORDS]
    return float(bool(spans) and all(w in seen for w in said))


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def _spans(final: str) -> list[re.Match]:
    """The names and numbers of `final`: words with a digit, capitalised words not opening a
    sentence."""
    starts = {m.end() for m in re.finditer(r"(?:^|[.!?])\s*", final)}
    return [m for m in _WORD.finditer(final) if any(c.isdigit() for c in m.group(0))
            or (m.group(0)[0].isupper() and m.start() not in starts)]


def _grounded(final: str, evidence: str) -> float:
    if not evidence.strip():
        return 1.0
    spans = _spans(final)
    if not spans:
        return 1.0
    norm = evidence.lower().replace(",", "")
    found = [m.group(0).lower().replace(",", "").strip("'’") in norm for m in spans]
    return sum(found) / len(found)
