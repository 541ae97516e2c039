"""The entities of the benchmark world: real countries and their facts.

Facts come from `countryinfo` (capital, population, area, region, borders, ...); ISO code names
of languages and currencies are spelled out with `pycountry`. Only countries that have a flag
SVG and the basic facts (capital, population, area) become entities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

from pixsearch.world.flags import flag_codes, flag_colours


def _import_sources():
    try:
        import countryinfo
        import pycountry
    except ImportError as e:
        raise ImportError(
            "the benchmark world needs countryinfo and pycountry: pip install 'pixsearch[world]'"
        ) from e
    return countryinfo, pycountry


@dataclass
class Country:
    """One entity of the world, with every fact the knowledge base states about it."""

    code: str  # ISO 3166-1 alpha-2, upper case
    code3: str
    name: str
    aliases: list[str]  # other names that count as the same answer (official, common)
    capital: str
    population: int
    area: float  # km²
    region: str
    subregion: str
    languages: list[str]
    currencies: list[str]
    calling_codes: list[str]
    borders: list[str]  # names of bordering countries (any country, in the KB or not)
    border_codes: list[str]  # their alpha-2 codes, same order
    timezones: list[str]
    demonym: str
    native_name: str
    tld: list[str]
    geojson: dict | None = field(default=None, repr=False)  # outline; None for a few countries

    @property
    def colours(self) -> list[str]:
        """Flag colours, largest area first (computed on first use from the rendered flag)."""
        return [name for name, _ in flag_colours(self.code)]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("geojson")
        d["colours"] = self.colours
        return d


def _names(pycountry, codes: list[str], db) -> list[str]:
    out = []
    for c in codes:
        rec = db.get(alpha_2=c) if len(c) == 2 else db.get(alpha_3=c)
        if rec is not None:
            out.append(getattr(rec, "common_name", None) or rec.name)
    return list(dict.fromkeys(out))


def _aliases(info: dict, pyc) -> list[str]:
    names = [s.strip() for s in info.get("altSpellings") or [] if len(s.strip()) > 3]
    if pyc is not None:
        names += [getattr(pyc, a, None) or "" for a in ("name", "official_name", "common_name")]
    name = info["name"]
    return [n for n in dict.fromkeys(names) if n and n != name]


def _text(value: str | list[str]) -> str:
    """A few entries hold a one-element list where a string is expected (the Holy See's
    capital); use the first element."""
    return value[0] if isinstance(value, list) else value


def _eligible(info: dict, flags: set[str]) -> bool:
    iso = (info.get("ISO") or {}).get("alpha2")
    return bool(iso in flags and info.get("capital") and info.get("population")
                and info.get("area"))


@lru_cache(maxsize=1)
def load_countries() -> tuple[Country, ...]:
    """Every eligible country, sorted by code (deterministic; one entry per ISO code)."""
    countryinfo, pycountry = _import_sources()
    flags = set(flag_codes())
    infos = [c.info() for c in countryinfo.all_countries()]
    by_code3 = {(i.get("ISO") or {}).get("alpha3"): i for i in infos if i.get("ISO")}
    chosen: dict[str, dict] = {}
    for info in infos:
        if not _eligible(info, flags):
            continue
        code = info["ISO"]["alpha2"]
        # Duplicates (e.g. two entries for the Holy See): keep the one with an outline.
        if code not in chosen or (info.get("geoJSON") and not chosen[code].get("geoJSON")):
            chosen[code] = info
    out = []
    for code in sorted(chosen):
        info = chosen[code]
        borders3 = [b for b in info.get("borders") or [] if b in by_code3]
        out.append(Country(
            code=code, code3=info["ISO"]["alpha3"], name=info["name"],
            aliases=_aliases(info, pycountry.countries.get(alpha_2=code)),
            capital=_text(info["capital"]), population=int(info["population"]),
            area=float(info["area"]), region=info.get("region") or "",
            subregion=info.get("intermediateregion") or info.get("subregion") or "",
            languages=_names(pycountry, info.get("languages") or [], pycountry.languages)
            or [x for x in info.get("languages") or [] if len(x) > 3],
            currencies=_names(pycountry, info.get("currencies") or [], pycountry.currencies),
            calling_codes=[c for c in info.get("callingCodes") or [] if c],
            borders=[by_code3[b]["name"] for b in borders3],
            border_codes=[by_code3[b]["ISO"]["alpha2"] for b in borders3],
            timezones=list(info.get("timezones") or []),
            demonym=_text(info.get("demonym") or ""),
            native_name=_text(info.get("nativeName") or "").strip(),
            tld=list(info.get("tld") or []),
            geojson=info.get("geoJSON") or None,
        ))
    return tuple(out)


def country_index(countries: tuple[Country, ...] | list[Country]) -> dict[str, Country]:
    """code → Country."""
    return {c.code: c for c in countries}
