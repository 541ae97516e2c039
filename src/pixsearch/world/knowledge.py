"""The world's knowledge base: entity cards, fact passages and entity images.

Per country: one entity card (short, what image search returns — like CRAG-MM's entity with
attributes) and one passage per fact group (what text search returns). Images: the flag and,
where the GeoJSON exists, the outline, both linked to the card. Written in the knowledge-base
format (`pixsearch.data.knowledge`) as `kb/docs.jsonl` and `kb/images/images.jsonl` + PNGs, the
input of `pixsearch index build`.
"""

from __future__ import annotations

from pathlib import Path

from pixsearch.data.knowledge import DOCS_FILE, IMAGES_DIR, write_documents, write_images
from pixsearch.logs import progress_bar
from pixsearch.types import Document, KBImage
from pixsearch.world.countries import Country
from pixsearch.world.flags import render_flag
from pixsearch.world.outlines import render_outline

# fact group -> text-search query the gold trajectories write for it
FACT_QUERIES: dict[str, str] = {
    "capital": "capital of {name}", "population": "population of {name}",
    "area": "area of {name}", "region": "region of {name}",
    "languages": "languages of {name}", "currency": "currency of {name}",
    "calling": "calling code of {name}", "borders": "countries bordering {name}",
    "timezones": "time zone of {name}", "people": "demonym of {name}",
}


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def card_id(code: str) -> str:
    return f"{code}:card"


def passage_id(code: str, fact: str) -> str:
    return f"{code}:{fact}"


def entity_card(c: Country) -> Document:
    """The short card image search returns: the entity and a few identifying attributes."""
    # The title already names the entity (evidence lines read "[1] Title: text").
    text = (f"Country in {c.subregion or c.region}. Capital: {c.capital}. "
            f"Flag colours: {', '.join(c.colours)}.")
    return Document(id=card_id(c.code), title=c.name, text=text, entity=c.code, kind="card")


def _fact_texts(c: Country) -> dict[str, str]:
    n = c.name
    facts = {
        "capital": f"The capital of {n} is {c.capital}.",
        "population": f"{n} has a population of {c.population:,} people.",
        "area": f"{n} has an area of {c.area:,.0f} square kilometres.",
        "region": f"{n} is in {c.region}, in the subregion {c.subregion}.",
        "borders": (f"{n} borders {_join(c.borders)}." if c.borders
                    else f"{n} has no land borders with other countries."),
        "people": f"People from {n} are called {c.demonym}. Its native name is {c.native_name}."
        if c.demonym and c.native_name else "",
    }
    if c.languages:
        facts["languages"] = f"The languages of {n} are {_join(c.languages)}." if len(
            c.languages) > 1 else f"The language of {n} is {c.languages[0]}."
    if c.currencies:
        facts["currency"] = f"The currency of {n} is the {_join(c.currencies)}."
    if c.calling_codes:
        facts["calling"] = (f"The international calling code of {n} is +{c.calling_codes[0]}. "
                            f"Its internet domain is {', '.join(c.tld)}.")
    if c.timezones:
        facts["timezones"] = f"{n} uses the time zone {_join(c.timezones[:4])}." + (
            f" ({len(c.timezones)} zones in all.)" if len(c.timezones) > 4 else "")
    return {k: v for k, v in facts.items() if v}


def fact_passages(c: Country) -> list[Document]:
    """One passage per fact group; the title names the country and the fact."""
    return [Document(id=passage_id(c.code, k), title=f"{c.name} — {k}", text=t, entity=c.code,
                     kind="passage") for k, t in _fact_texts(c).items()]


def build_documents(countries: list[Country]) -> list[Document]:
    """Cards and passages of every country given (only the countries in the KB)."""
    return [d for c in countries for d in (entity_card(c), *fact_passages(c))]


def write_kb(countries: list[Country], kb_dir: Path, image_size: int = 160
             ) -> tuple[list[Document], list[KBImage]]:
    """Write `kb_dir/docs.jsonl`, `kb_dir/images/*.png` and `kb_dir/images/images.jsonl`."""
    img_dir = kb_dir / IMAGES_DIR
    img_dir.mkdir(parents=True, exist_ok=True)
    docs = build_documents(countries)
    images: list[KBImage] = []
    for c in progress_bar(countries, desc="kb images", leave=False):
        render_flag(c.code, image_size).save(img_dir / f"{c.code}_flag.png")
        images.append(KBImage(id=f"{c.code}_flag", path=f"{c.code}_flag.png", doc_id=card_id(c.code)))
        if c.geojson is not None:
            render_outline(c.geojson, image_size).save(img_dir / f"{c.code}_outline.png")
            images.append(KBImage(id=f"{c.code}_outline", path=f"{c.code}_outline.png",
                                  doc_id=card_id(c.code)))
    write_documents(kb_dir / DOCS_FILE, docs)
    write_images(img_dir, images)
    return docs, images
