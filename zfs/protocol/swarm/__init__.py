"""Swarm transfers as pure cores: the bytes travel through the recipients, not N times out
of the sender's one link.

Push goes down a plan of trees, one per stripe of the file, each chunk passed on by the
targets as it arrives, acks and failures aggregated on the way back (all-or-nothing,
lock-step, as plain push). Pull lets recipients of one RID fetch chunks from each other,
pointed at holders by the owner, each chunk checked against a per-chunk digest that came
from the owner. Stdlib only: no I/O, no clocks (``now`` is passed in), no threads.
"""
