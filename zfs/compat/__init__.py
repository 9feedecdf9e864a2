"""Facades with the APIs of the two systems zfs grew from (NVIDIA FLARE's and Nanite's),
so their users port code line by line. Thin layers over the core API, not a second
implementation; where the original takes a context object, they take our ``Site``."""
