"""Pure SLO math: windows, burn rates, alert policies, rule and dashboard generation.

Imports nothing from `prober`, reads no clock, does no I/O: `now` is always an argument.
"""

__all__: list[str] = []
