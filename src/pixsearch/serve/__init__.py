"""PixSearch serve: the HTTP API and web page over one `Predictor` (an application, like `cli/`).

app.py      routes: the page, /docs, /api/health, /api/samples, /api/ask, /api/ask/stream
limits.py   what one request may ask (`ServeLimits`) and the checks made before any work
queue.py    the decode worker that owns the model, its bounded queue and cancellation
errors.py   the one error shape `{"error", "detail"}`
samples.py  sample scenes and questions for the page (a world's test split, or skimage.data)
static/     the page (index.html, app.js, rle.js, style.css) and the API description (docs.html)
"""
