"""PixSearch model."""
