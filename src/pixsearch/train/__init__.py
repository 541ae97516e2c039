"""PixSearch train."""
