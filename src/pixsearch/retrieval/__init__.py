"""PixSearch retrieval."""
