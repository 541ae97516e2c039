"""Readable terminal rendering of an Answer and its Trace (shared by `ask`, `demo`, `eval`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pixsearch.types import Answer


def print_answer(answer: Answer, console: Console | None = None, hits: int = 3) -> None:
    """Answer text, then one block per search: modality, query or crop box, top hits. Text
    from the model, the question or the knowledge base is printed literally (never read as
    rich markup: an answer may contain `[/x]`)."""
    console = console or Console()
    console.print(f"[bold green]Answer:[/] {_lit(answer.text) or '[dim](empty)[/]'}")
    tr = answer.trace
    console.print(f"[dim]{tr.n_generated} generated + {tr.n_forced} evidence tokens, "
                  f"{tr.n_searches} search(es), stop: {tr.stop_reason}, "
                  f"{tr.timings.get('total', 0.0):.2f}s[/]")
    if tr.failure is not None:
        console.print(f"[yellow]no answer: {_lit(tr.failure)}; the model wrote:[/] "
                      f"{_lit(tr.raw_answer) or '[dim](nothing)[/]'}")
    if tr.p_correct is not None:
        console.print(f"[dim]confidence {tr.p_correct:.2f}[/]" + (
            f" [yellow]abstained (threshold {tr.abstain_threshold:.2f}); the model wrote:[/] "
            f"{_lit(tr.raw_answer)}" if tr.abstained else ""))
    for step in tr.steps:
        what = _lit(step.query_text) if step.modality == "text" else (
            f"crop box {step.box}" if step.modality == "region" else "whole image")
        if step.skipped:
            console.print(f"  [yellow]search {step.index + 1} ({step.modality}) skipped:[/] "
                          f"{_lit(step.skipped)}")
            continue
        if step.error:
            console.print(f"  [red]search {step.index + 1} ({step.modality}) failed:[/] "
                          f"{_lit(step.error)}")
            continue
        console.print(f"  [cyan]search {step.index + 1}[/] [bold]{step.modality}[/]: {what}")
        table = Table(show_header=True, header_style="dim", box=None, padding=(0, 2))
        for col in ("#", "score", "title", "snippet"):
            table.add_column(col)
        for i, h in enumerate(step.hits[:hits]):
            table.add_row(str(i + 1), f"{h.score:.3f}", _lit(h.title), _lit(h.snippet(70)))
        console.print(table)


def _lit(text: str | None) -> str:
    """`text` escaped for rich markup ("" for None)."""
    return escape(text) if text else ""


def save_overlays(answer: Answer, image: Image.Image, out: Path, stem: str) -> list[Path]:
    """Write one PNG per region mask: the image with the mask tinted and its box drawn."""
    from PIL import ImageDraw

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    regions = [s for s in answer.trace.steps if s.modality == "region" and s.box is not None]
    for i, (mask, step) in enumerate(zip(answer.masks, regions)):
        base = np.asarray(image.convert("RGB"), dtype=np.float32)
        tint = np.array([255, 40, 40], dtype=np.float32)
        base[mask] = 0.5 * base[mask] + 0.5 * tint
        img = Image.fromarray(base.astype(np.uint8))
        ImageDraw.Draw(img).rectangle(step.box, outline=(255, 255, 0), width=3)
        path = out / f"{stem}_region{i + 1}.png"
        img.save(path)
        paths.append(path)
    return paths
