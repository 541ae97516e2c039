"""PixSearch data."""
