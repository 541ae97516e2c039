"""VQA accuracy with ten human answers, as the official VQA / TextVQA evaluation computes it.

For a prediction and ten human answers, the official code (`vqaEval.py` of the VQA API, used
unchanged by TextVQA) scores each human answer left out in turn: `min(1, #matches among the
other nine / 3)`, and averages the ten — the mean over the 10-choose-9 subsets of
`min(#humans that said it / 3, 1)`. Before matching, when the humans disagree (more than one
distinct answer), the prediction and the answers are normalised:

- punctuation: `; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !` is deleted where it touches a space
  (or when the text has a digit-comma-digit), replaced by a space elsewhere; a period not
  followed by a digit is deleted (the official code passes `re.UNICODE` as the count of
  `re.sub`, so at most 32 periods go; kept for parity);
- words: lower-cased, number words zero…ten → digits, articles a/an/the dropped, the
  apostrophe-less contractions ("dont") restored ("don't").

Matching is then exact string equality (case-insensitive).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@",
          "`", ",", "?", "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA = re.compile(r"(\d)(,)(\d)")
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
            "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
# the official table: apostrophe-less spellings → the contraction
_CONTRACTIONS = dict(pair.split("=") for pair in (
    "aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't "
    "couldn'tve=couldn't've couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't "
    "hadnt=hadn't hadnt've=hadn't've hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd "
    "hed've=he'd've he'dve=he'd've hes=he's howd=how'd howll=how'll hows=how's Id've=I'd've "
    "I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've "
    "itll=it'll let's=let's maam=ma'am mightnt=mightn't mightnt've=mightn't've "
    "mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've neednt=needn't "
    "notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at "
    "'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's "
    "shouldve=should've shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've "
    "somebody'd=somebodyd somebodyd've=somebody'd've somebody'dve=somebody'd've "
    "somebodyll=somebody'll somebodys=somebody's someoned=someone'd "
    "someoned've=someone'd've someone'dve=someone'd've someonell=someone'll "
    "someones=someone's somethingd=something'd somethingd've=something'd've "
    "something'dve=something'd've somethingll=something'll thats=that's thered=there'd "
    "thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd "
    "theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've "
    "twas='twas wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't "
    "whatll=what'll whatre=what're whats=what's whatve=what've whens=when's whered=where'd "
    "wheres=where's whereve=where've whod=who'd whod've=who'd've who'dve=who'd've "
    "wholl=who'll whos=who's whove=who've whyll=why'll whyre=why're whys=why's wont=won't "
    "wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've wouldn'tve=wouldn't've "
    "yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've y'alld've=y'all'd've "
    "y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've youll=you'll "
    "youre=you're youve=you've").split())


def _punctuation(text: str) -> str:
    out = text
    for p in _PUNCT:
        if f"{p} " in text or f" {p}" in text or _COMMA.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out, count=32)


def _digits_articles(text: str) -> str:
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_normalize(text: str) -> str:
    """The official answer normalisation (punctuation, then digits / articles / contractions)."""
    return _digits_articles(_punctuation(text))


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Accuracy of one prediction against the human answers (usually ten), in [0, 1]."""
    if not answers:
        raise ValueError("VQA accuracy needs the human answers")
    golds = [_clean(a) for a in answers]
    pred = _clean(prediction)
    if len(set(golds)) > 1:  # the official code normalises only when the humans disagree
        golds = [vqa_normalize(a) for a in golds]
        pred = vqa_normalize(pred)
    pred = pred.lower()
    scores = []
    for i in range(len(golds)):
        matches = sum(g.lower() == pred for j, g in enumerate(golds) if j != i)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)
