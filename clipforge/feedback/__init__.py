"""The performance feedback loop: clip identity, outcome import, learning score weights.

- :mod:`.ids` — the stable clip id and the MP4 comment tag that carries it;
- :mod:`.weights` — :class:`ScoreWeights` and the pure :func:`score` the selection uses;
- :mod:`.record` — the ``clip`` rows to record after a render;
- :mod:`.importer` — read and validate an analytics export (CSV/JSON), then import it;
- :mod:`.learn` — normalise outcomes, fit candidate weights, adopt them behind guards.

All SQL lives in :mod:`clipforge.clip_store`.
"""
