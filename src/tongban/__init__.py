"""tongban (通办) — an open platform for one-stop digital government services.

The city's action plan (一网通办, 2026–2027) is mapped to the domains of this package in
``docs/architecture.md``.
"""

__version__ = "0.1.0"
