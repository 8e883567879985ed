"""`make bench`: what an action run costs and how soon its result arrives, measured locally.

Modules: `prices` (the dated price table and the pricing arithmetic), `analysis` (pure functions
over what a run recorded: transitions, looks, delays, targets), `chart` (the cost chart as a PNG,
written without third-party packages), `measure` (driving the local worker) and `run` (the
report). Entry point: `python -m local.bench`.
"""
