"""Pictures shipped with the package, so that examples run right after installation.

`scene.jpg` (960×540) is an egocentric scene of the benchmark world's kind: the flags of
Canada (left, the larger) and Switzerland (right, on a pole) pasted with perspective and
lighting onto scikit-image's `chelsea` photograph (CC0, Stefan van der Walt); flags from
`flag-icons` (MIT). It was made with `pixsearch.world.scenes.compose_ego(["CA", "CH"],
"chelsea", WorldConfig.preset("small").scene, numpy.random.default_rng(1000))`, saved
as JPEG at quality 90.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent


def sample_scene() -> Path:
    """The path of the shipped sample scene (`scene.jpg`, see the module docstring)."""
    return ASSETS / "scene.jpg"
