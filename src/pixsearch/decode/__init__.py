"""PixSearch decode."""
