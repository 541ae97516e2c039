"""The project's data formats, one strict reader each: dataset records (`records`), the
knowledge base's documents and images (`knowledge`), over JSON Lines (`jsonl`).

The benchmark-world generator that writes them lives in `pixsearch.world` (an application)."""
