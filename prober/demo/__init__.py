"""The bundled sample API (a stand-in "Mirror Collective API") for demos, tests and benchmarks.

Run it with `python -m prober.demo`; see `prober.demo.api` for the details.
"""

from __future__ import annotations

from prober.demo.api import DEFAULT_EMAIL, DEFAULT_PASSWORD, DEFAULT_VERSION, Fault, SampleAPI

__all__ = ["DEFAULT_EMAIL", "DEFAULT_PASSWORD", "DEFAULT_VERSION", "Fault", "SampleAPI"]
