"""Readers of the published benchmark formats the paper evaluates on, and of its knowledge base.

`read_benchmark(format, data, ...)` reads one of `FORMATS` into `BenchmarkSample`s (see
`sample.py`); docs/benchmarks.md gives each format's folder layout and where it is published.
`wiki6m.py` streams the Wikipedia entity file of InfoSeek/OVEN as knowledge-base documents and
images. Each reader is strict: a file that does not follow its format is an error naming it.
"""

from __future__ import annotations

from pathlib import Path

from pixsearch.data.formats.sample import TASKS, BenchmarkSample, LabelSpace

FORMAT_TASKS: dict[str, str] = {
    "infoseek": "vqa", "oven": "vqa", "textvqa": "vqa",
    "hotpotqa": "text_qa", "nq-open": "text_qa", "popqa": "text_qa", "musique": "text_qa",
    "refcoco": "refseg", "refcoco+": "refseg", "refcocog": "refseg",
    "ade20k": "semseg", "coco-stuff": "semseg",
}
FORMATS: tuple[str, ...] = tuple(FORMAT_TASKS)
_NEED_IMAGES = ("infoseek", "oven", "textvqa", "refcoco", "refcoco+", "refcocog")

__all__ = ["FORMATS", "FORMAT_TASKS", "TASKS", "BenchmarkSample", "LabelSpace", "read_benchmark"]


def read_benchmark(fmt: str, data: str | Path, split: str | None = None,
                   images: str | Path | None = None, split_by: str | None = None,
                   classes: str | Path | None = None) -> list[BenchmarkSample]:
    """The samples of a benchmark in its published layout.

    Args:
        fmt: one of `FORMATS`.
        data: the question file (InfoSeek, OVEN, TextVQA, the text-only QA sets) or the
            dataset folder (RefCOCO*: the one with `refs(...).p`; ADE20K, COCO-Stuff: the root).
        split: the split to read from a folder (RefCOCO*: val, testA, testB, test; ADE20K,
            COCO-Stuff: val / validation / val2017, ...); files hold one split and ignore it.
        images: the image folder of formats that name images by id (InfoSeek, OVEN, TextVQA,
            RefCOCO*).
        split_by: the RefCOCO* partition (unc, umd, google; default per dataset).
        classes: a class-list file replacing the one found in an ADE20K / COCO-Stuff folder.
    """
    if fmt not in FORMAT_TASKS:
        raise ValueError(f"unknown benchmark format {fmt!r}; choose from {', '.join(FORMATS)}")
    data = Path(data).expanduser()
    if not data.exists():
        raise FileNotFoundError(f"{fmt} data {data} does not exist")
    if fmt in _NEED_IMAGES and images is None:
        raise ValueError(f"{fmt} names its images by id: pass the image folder (--images DIR; "
                         "see docs/benchmarks.md for which folder)")
    if fmt in ("infoseek", "oven"):
        from pixsearch.data.formats.oven import read_infoseek, read_oven

        return (read_infoseek if fmt == "infoseek" else read_oven)(data, images)
    if fmt == "textvqa":
        from pixsearch.data.formats.textvqa import read_textvqa

        return read_textvqa(data, images)
    if FORMAT_TASKS[fmt] == "text_qa":
        from pixsearch.data.formats.textqa import READERS

        return READERS[fmt](data)
    if FORMAT_TASKS[fmt] == "refseg":
        from pixsearch.data.formats.refcoco import read_refcoco

        if split is None:
            raise ValueError(f"{fmt} needs a split (val, testA, testB, test)")
        return read_refcoco(data, images, split, fmt, split_by)
    from pixsearch.data.formats.semseg import read_semseg

    return read_semseg(data, split or "val", fmt, classes)
