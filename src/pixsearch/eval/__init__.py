"""PixSearch eval."""
