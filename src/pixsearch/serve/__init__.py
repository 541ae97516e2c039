"""PixSearch serve."""
