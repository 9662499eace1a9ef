"""clipforge: turn long videos into highlight clips from a plain-language prompt.

This package is the plain-Python library. It never imports prefect: the Prefect
layer lives in ``tasks/`` and ``flows/``.
"""

__version__ = "0.1.0"
